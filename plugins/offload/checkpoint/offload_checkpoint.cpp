// offload/checkpoint: every frozen tensor on the run's device; selected decoder blocks keep only their input (and
// their captured state) and are recomputed inside the backward pass (reentrant activation checkpointing).
//
// Why a hand-built autograd node rather than torch::autograd::Function: a BlockFunction captures its trainable
// tensors (LoRA A/B, full fine-tune weights), so they are not arguments Function::apply could list. PyTorch's
// reentrant checkpoint lets a nested backward() accumulate into them, which works only when the outer call is
// backward() (never under autograd::grad(outputs, inputs)), and drops a block's gradients silently when its input
// does not require grad. Here the forward records the block's graph once, reads off the edges that leave it (the
// input, the accumulators of trainable leaves, any captured non-leaf that requires grad), frees that graph and makes
// those edges the node's next edges. Backward replays the RNG, recomputes the block and asks the engine for the
// gradients at exactly those edges, so both backward() and grad() see every gradient.
#include <cctype>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <ATen/Context.h>
#include <ATen/SequenceNumber.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <ATen/core/grad_mode.h>
#include <ATen/record_function.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/variable.h>

#include "loft/offload.h"
#include "loft/plugin.h"

namespace {

using torch::autograd::Edge;
using torch::autograd::edge_list;
using torch::autograd::Node;
using torch::autograd::variable_list;

// ---- which blocks recompute -------------------------------------------------------------------------------------

// The parsed `blocks` option.
struct BlockSelection {
  enum class Kind { kAll, kNone, kEveryN, kList } kind = Kind::kAll;
  int64_t every_n = 1;
  std::set<int64_t> indices;

  bool selects(int64_t index) const {
    switch (kind) {
      case Kind::kAll: return true;
      case Kind::kNone: return false;
      case Kind::kEveryN: return index % every_n == 0;
      case Kind::kList: return indices.count(index) != 0;
    }
    return false;
  }
};

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// A non-negative decimal integer, or nothing.
std::optional<int64_t> parse_index(const std::string& s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

[[noreturn]] void bad_blocks(const std::string& value, const std::string& why) {
  throw std::invalid_argument(fmt::format(
      "offload/checkpoint: option 'blocks' = \"{}\": {}; write \"all\", \"none\", \"every_n:K\" with K >= 1, "
      "or a comma list of block indices such as \"0,2,5\"",
      value, why));
}

BlockSelection parse_blocks(const std::string& value) {
  BlockSelection sel;
  const std::string v = trim(value);
  if (v == "all") return sel;
  if (v == "none") {
    sel.kind = BlockSelection::Kind::kNone;
    return sel;
  }
  const std::string prefix = "every_n:";
  if (v.compare(0, prefix.size(), prefix) == 0) {
    auto k = parse_index(trim(v.substr(prefix.size())));
    if (!k || *k < 1) bad_blocks(value, "K must be an integer >= 1");
    sel.kind = BlockSelection::Kind::kEveryN;
    sel.every_n = *k;
    return sel;
  }
  if (v.empty()) bad_blocks(value, "empty");
  sel.kind = BlockSelection::Kind::kList;
  size_t start = 0;
  while (true) {
    const size_t comma = v.find(',', start);
    const std::string item = trim(v.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    auto index = parse_index(item);
    if (!index) bad_blocks(value, fmt::format("\"{}\" is not a block index (a non-negative integer)", item));
    if (!sel.indices.insert(*index).second) bad_blocks(value, fmt::format("block {} is listed twice", *index));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return sel;
}

// ---- state the recompute must replay ----------------------------------------------------------------------------

// CPU and (for a CUDA block) CUDA generator states, and the autocast settings, as they were when the block ran.
struct ReplayState {
  at::Tensor cpu_rng;
  at::Tensor device_rng;  // undefined unless the block ran on CUDA
  c10::Device device{c10::kCPU};
  bool autocast = false;
  at::ScalarType autocast_dtype = at::kFloat;

  static ReplayState capture(c10::Device device) {
    ReplayState s;
    s.device = device;
    s.cpu_rng = rng_state(c10::Device(c10::kCPU));
    if (device.is_cuda()) s.device_rng = rng_state(device);
    s.autocast = at::autocast::is_autocast_enabled(device.type());
    s.autocast_dtype = at::autocast::get_autocast_dtype(device.type());
    return s;
  }
  static at::Tensor rng_state(c10::Device device) {
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  }
  static void set_rng_state(c10::Device device, const at::Tensor& state) {
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
};

// Installs a captured ReplayState for its lifetime and puts back whatever was current before.
class ReplayGuard {
 public:
  explicit ReplayGuard(const ReplayState& replay) : replay_(replay), outer_(ReplayState::capture(replay.device)) {
    apply(replay_);
  }
  ~ReplayGuard() { apply(outer_); }
  ReplayGuard(const ReplayGuard&) = delete;
  ReplayGuard& operator=(const ReplayGuard&) = delete;

 private:
  static void apply(const ReplayState& s) {
    ReplayState::set_rng_state(c10::Device(c10::kCPU), s.cpu_rng);
    if (s.device_rng.defined()) ReplayState::set_rng_state(s.device, s.device_rng);
    at::autocast::set_autocast_enabled(s.device.type(), s.autocast);
    at::autocast::set_autocast_dtype(s.device.type(), s.autocast_dtype);
  }
  const ReplayState& replay_;
  ReplayState outer_;
};

// ---- the block's graph boundary ---------------------------------------------------------------------------------

// Nodes the block created: recorded on this thread after `first_sequence_nr` was the next sequence number.
// AccumulateGrad nodes carry UINT64_MAX and are never the block's own.
struct RecordingMark {
  uint64_t first_sequence_nr = at::sequence_number::peek();
  uint64_t thread_id = at::RecordFunction::currentThreadId();
  bool owns(const Node* node) const {
    const uint64_t nr = node->sequence_nr();
    return nr != UINT64_MAX && nr >= first_sequence_nr && node->thread_id() == thread_id;
  }
};

// The distinct edges from the block's own nodes to nodes outside it, in a deterministic (discovery) order.
edge_list boundary_edges(const at::Tensor& out, const RecordingMark& mark) {
  edge_list boundary;
  if (!out.requires_grad()) return boundary;
  Edge root = torch::autograd::impl::gradient_edge(out);
  if (!mark.owns(root.function.get())) return {root};  // the block returned an outside tensor unchanged
  std::set<std::pair<const Node*, uint32_t>> taken;
  std::unordered_set<const Node*> seen{root.function.get()};
  std::vector<Node*> stack{root.function.get()};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const Edge& edge : node->next_edges()) {
      if (!edge.is_valid()) continue;
      Node* next = edge.function.get();
      if (mark.owns(next)) {
        if (seen.insert(next).second) stack.push_back(next);
      } else if (taken.emplace(next, edge.input_nr).second) {
        boundary.push_back(edge);
      }
    }
  }
  return boundary;
}

bool same_edge(const Edge& a, const Edge& b) { return a.function == b.function && a.input_nr == b.input_nr; }

// ---- the backward node ------------------------------------------------------------------------------------------

// Next edges: [0] the block input's edge (invalid when the input needs no grad), then the block's boundary edges.
class BlockRecomputeBackward final : public Node {
 public:
  BlockRecomputeBackward(int64_t index, loft::BlockFunction block, const at::Tensor& input, ReplayState replay,
                         edge_list boundary)
      : index_(index),
        block_(std::make_unique<loft::BlockFunction>(std::move(block))),
        input_(input.detach()),
        input_version_(input._version()),
        input_requires_grad_(input.requires_grad()),
        replay_(std::move(replay)),
        boundary_(std::move(boundary)) {}

  std::string name() const override { return "loft::BlockRecomputeBackward"; }

  void release_variables() override {
    block_.reset();
    input_.reset();
  }

  variable_list apply(variable_list&& grads) override {
    TORCH_CHECK(block_ != nullptr, "offload/checkpoint: block ", index_,
                " was already recomputed and its input freed; pass retain_graph=true to run backward through it "
                "twice");
    TORCH_CHECK(!at::GradMode::is_enabled(), "offload/checkpoint: block ", index_,
                ": double backward (create_graph=true) through a recomputed block is not supported");
    TORCH_CHECK(input_._version() == input_version_, "offload/checkpoint: the input of block ", index_,
                " was modified in place after its forward; the recompute would see different values");
    variable_list result(num_outputs());
    if (grads.empty() || !grads[0].defined()) return result;

    // Ask only for what this backward pass needs (autograd::grad may want a subset).
    edge_list wanted;
    std::vector<size_t> slots;
    for (size_t i = 0; i < boundary_.size(); ++i) {
      if (task_should_compute_output(i + 1)) {
        wanted.push_back(boundary_[i]);
        slots.push_back(i + 1);
      }
    }
    const bool want_input = input_requires_grad_ && task_should_compute_output(0);
    if (wanted.empty() && !want_input) return result;

    at::Tensor x = input_.detach();
    if (want_input) x.requires_grad_(true);
    at::Tensor out;
    edge_list recorded;
    {
      ReplayGuard replay(replay_);
      at::AutoGradMode grad_mode(true);
      RecordingMark mark;
      out = (*block_)(x);
      recorded = boundary_edges(out, mark);
    }
    check_same_boundary(recorded, x);
    TORCH_CHECK(out.requires_grad(), "offload/checkpoint: block ", index_,
                " no longer depends on anything that requires grad when recomputed");

    if (want_input) {
      wanted.push_back(torch::autograd::impl::gradient_edge(x));
      slots.push_back(0);
    }
    variable_list computed = torch::autograd::Engine::get_default_engine().execute(
        {torch::autograd::impl::gradient_edge(out)}, {grads[0]}, /*keep_graph=*/false, /*create_graph=*/false,
        /*accumulate_grad=*/false, wanted);
    for (size_t i = 0; i < slots.size(); ++i) result[slots[i]] = std::move(computed[i]);
    return result;
  }

 private:
  // The recompute must reach the same trainable tensors as the forward did, or its gradients would go elsewhere.
  void check_same_boundary(const edge_list& recorded, const at::Tensor& x) const {
    auto x_acc = torch::autograd::impl::try_get_grad_accumulator(x);
    size_t matched = 0;
    for (const Edge& edge : recorded) {
      if (x_acc && edge.function == x_acc) continue;
      bool known = false;
      for (const Edge& b : boundary_) known = known || same_edge(b, edge);
      TORCH_CHECK(known, "offload/checkpoint: block ", index_, " reached a tensor that requires grad (",
                  edge.function->name(), ") when recomputed that its forward did not use; a recomputed block must "
                  "be a pure function of its input and captured tensors");
      ++matched;
    }
    TORCH_CHECK(matched == boundary_.size(), "offload/checkpoint: block ", index_, " used ", boundary_.size(),
                " tensors that require grad in its forward but ", matched, " when recomputed");
  }

  int64_t index_;
  std::unique_ptr<loft::BlockFunction> block_;
  at::Tensor input_;
  uint32_t input_version_;
  bool input_requires_grad_;
  ReplayState replay_;
  edge_list boundary_;
};

// Runs `block` on `hidden`, keeping only the input and captured state for a recompute in backward.
at::Tensor run_checkpointed(int64_t index, const loft::BlockFunction& block, const at::Tensor& hidden) {
  ReplayState replay = ReplayState::capture(hidden.device());
  at::Tensor x = hidden.detach();
  if (hidden.requires_grad()) x.requires_grad_(true);
  at::Tensor out;
  edge_list boundary;
  {
    // Recorded under grad mode so the forward picks the same kernels as the recompute; the graph lives only until
    // this scope ends, so at most one block's activations exist at a time, as during the recompute.
    at::AutoGradMode grad_mode(true);
    RecordingMark mark;
    out = block(x);
    boundary = boundary_edges(out, mark);
  }
  if (!out.requires_grad()) return out;  // nothing inside needs a gradient: no node, nothing to keep
  if (auto x_acc = torch::autograd::impl::try_get_grad_accumulator(x)) {
    edge_list kept;
    for (auto& edge : boundary) {
      if (edge.function != x_acc) kept.push_back(std::move(edge));
    }
    boundary = std::move(kept);
  }
  if (boundary.empty() && !hidden.requires_grad()) return out.detach();

  edge_list next;
  next.reserve(boundary.size() + 1);
  next.push_back(hidden.requires_grad() ? torch::autograd::impl::gradient_edge(hidden) : Edge());
  for (const auto& edge : boundary) next.push_back(edge);
  auto node = std::shared_ptr<BlockRecomputeBackward>(
      new BlockRecomputeBackward(index, block, hidden, std::move(replay), std::move(boundary)),
      torch::autograd::deleteNode);
  node->set_next_edges(std::move(next));
  at::Tensor result = out.detach();  // drops the recorded graph and, with it, the block's activations
  torch::autograd::set_history(result, node);
  return result;
}

// ---- the strategy -----------------------------------------------------------------------------------------------

class CheckpointOffload final : public loft::OffloadStrategy {
 public:
  CheckpointOffload(c10::Device device, BlockSelection selection) : device_(device), selection_(std::move(selection)) {}

  void place(const std::vector<loft::BlockResidency>& blocks) override {
    for (const auto& block : blocks) {
      for (auto* linear : block.frozen_linears) linear->to(device_, /*non_blocking=*/false);
      for (auto* tensor : block.frozen_tensors) {
        if (tensor->defined()) *tensor = tensor->to(device_);
      }
    }
  }

  at::Tensor run_block(int64_t index, const loft::BlockFunction& block, const at::Tensor& hidden) override {
    // Without grad mode (eval, generation) there is no backward to prepare for.
    if (!at::GradMode::is_enabled() || !selection_.selects(index)) return block(hidden);
    return run_checkpointed(index, block, hidden);
  }

 private:
  c10::Device device_;
  BlockSelection selection_;
};

void register_plugin(loft::Registrar& registrar) {
  registrar.add_offload("checkpoint", [](const loft::HostContext& ctx, const loft::Options& options) {
    return std::make_unique<CheckpointOffload>(ctx.device(), parse_blocks(options.string("blocks")));
  });
}

}  // namespace

LOFT_PLUGIN("offload/checkpoint", register_plugin)
