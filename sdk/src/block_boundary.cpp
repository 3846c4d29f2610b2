// The block boundary: one hand-built autograd node per kBoundary / kRecompute block.
//
// Why a hand-built node rather than torch::autograd::Function: a BlockFunction captures its trainable tensors (LoRA
// A/B, full fine-tune weights), so they are not arguments Function::apply could list. PyTorch's reentrant checkpoint
// lets a nested backward() accumulate into them, which works only when the outer call is backward() (never under
// autograd::grad(outputs, inputs)), and drops a block's gradients silently when its input does not require grad.
// Here the forward records the block's graph once and reads off the edges that leave it (the input, the
// accumulators of trainable leaves, any captured non-leaf that requires grad); those edges become the node's next
// edges. kRecompute frees the recorded graph and, in backward, replays the RNG, recomputes the block and asks the
// engine for the gradients at exactly those edges; kBoundary keeps the recorded graph and asks the engine the same
// question of it. Either way backward() and grad() see every gradient.
#include "loft/block_boundary.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
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
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/variable.h>

namespace loft {
namespace {

using torch::autograd::Edge;
using torch::autograd::edge_list;
using torch::autograd::Node;
using torch::autograd::variable_list;

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
  explicit ReplayGuard(const ReplayState& replay) : outer_(ReplayState::capture(replay.device)) { apply(replay); }
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

// Drops the edge into `x`'s own accumulator (the block's detached input): the node reaches the real input through
// its first next edge instead.
edge_list without_input(edge_list boundary, const at::Tensor& x) {
  auto x_acc = torch::autograd::impl::try_get_grad_accumulator(x);
  if (!x_acc) return boundary;
  edge_list kept;
  for (auto& edge : boundary) {
    if (edge.function != x_acc) kept.push_back(std::move(edge));
  }
  return kept;
}

void notify(const BlockListener& listener, int64_t index, BlockStage stage, BlockExecution execution,
            at::Tensor* saved_input = nullptr) {
  if (!listener) return;
  BlockEvent event;
  event.index = index;
  event.stage = stage;
  event.execution = execution;
  event.saved_input = saved_input;
  listener(event);
}

// ---- the backward node ------------------------------------------------------------------------------------------

// Next edges: [0] the block input's edge (invalid when the input needs no grad), then the block's boundary edges.
// kRecompute keeps the block function, its input and the replay state; kBoundary keeps the recorded graph (through
// `out_`) and the edge of its detached input.
class BlockBoundaryBackward final : public Node {
 public:
  BlockBoundaryBackward(int64_t index, BlockExecution execution, BlockListener listener, edge_list boundary,
                        bool input_requires_grad)
      : index_(index),
        execution_(execution),
        listener_(std::move(listener)),
        boundary_(std::move(boundary)),
        input_requires_grad_(input_requires_grad) {}

  // kRecompute: what the recompute needs.
  void keep_for_recompute(BlockFunction block, const at::Tensor& input, ReplayState replay) {
    block_ = std::make_unique<BlockFunction>(std::move(block));
    input_ = input.detach();
    input_sizes_ = input.sizes().vec();
    input_dtype_ = input.scalar_type();
    input_device_ = input.device();
    input_version_counter_ = input.unsafeGetTensorImpl()->version_counter();
    input_version_ = input._version();
    replay_ = std::move(replay);
  }
  // kBoundary: the recorded graph's root and the detached input's gradient edge.
  void keep_graph(at::Tensor out, Edge input_edge) {
    out_ = std::move(out);
    input_edge_ = std::move(input_edge);
    kept_ = true;
  }
  at::Tensor* saved_input() { return &input_; }

  std::string name() const override { return "loft::BlockBoundaryBackward"; }

  void release_variables() override {
    block_.reset();
    input_.reset();
    out_.reset();
    input_edge_ = Edge();
    kept_ = false;
  }

  variable_list apply(variable_list&& grads) override {
    const bool recompute = execution_ == BlockExecution::kRecompute;
    TORCH_CHECK(recompute ? block_ != nullptr : kept_, "loft block boundary: block ", index_,
                recompute ? " was already recomputed and its input freed" : " already ran its backward and freed its graph",
                "; pass retain_graph=true to run backward through it twice");
    TORCH_CHECK(!at::GradMode::is_enabled(), "loft block boundary: block ", index_,
                ": double backward (create_graph=true) through a block run by the SDK's boundary is not supported");
    if (recompute) {
      TORCH_CHECK(input_version_counter_.current_version() == input_version_, "loft block boundary: the input of block ",
                  index_, " was modified in place after its forward; the recompute would see different values");
    }
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

    at::Tensor out;
    Edge input_edge;
    if (recompute) {
      notify(listener_, index_, BlockStage::kRecomputePre, execution_, &input_);
      TORCH_CHECK(input_.defined() && input_.sizes() == c10::IntArrayRef(input_sizes_) &&
                      input_.scalar_type() == input_dtype_ && input_.device() == input_device_,
                  "loft block boundary: block ", index_, ": the saved input given back at kRecomputePre must have ",
                  "the sizes, dtype and device of the forward's (", input_device_, ")");
      at::Tensor x = input_.detach();
      if (want_input) x.requires_grad_(true);
      edge_list recorded;
      {
        ReplayGuard replay(replay_);
        at::AutoGradMode grad_mode(true);
        RecordingMark mark;
        out = (*block_)(x);
        recorded = boundary_edges(out, mark);
      }
      check_same_boundary(recorded, x);
      TORCH_CHECK(out.requires_grad(), "loft block boundary: block ", index_,
                  " no longer depends on anything that requires grad when recomputed");
      if (want_input) input_edge = torch::autograd::impl::gradient_edge(x);
      notify(listener_, index_, BlockStage::kRecomputePost, execution_);
    } else {
      out = out_;
      input_edge = input_edge_;
    }

    if (want_input) {
      wanted.push_back(input_edge);
      slots.push_back(0);
    }
    notify(listener_, index_, BlockStage::kBackwardPre, execution_);
    // kBoundary keeps its graph for a later pass (release_variables frees it when this pass does not retain).
    variable_list computed = torch::autograd::Engine::get_default_engine().execute(
        {torch::autograd::impl::gradient_edge(out)}, {grads[0]}, /*keep_graph=*/!recompute, /*create_graph=*/false,
        /*accumulate_grad=*/false, wanted);
    out.reset();
    for (size_t i = 0; i < slots.size(); ++i) result[slots[i]] = std::move(computed[i]);
    notify(listener_, index_, BlockStage::kBackwardPost, execution_);
    return result;
  }

 private:
  // The recompute must reach the same tensors that require grad as the forward did, or its gradients would go
  // elsewhere.
  void check_same_boundary(const edge_list& recorded, const at::Tensor& x) const {
    auto x_acc = torch::autograd::impl::try_get_grad_accumulator(x);
    size_t matched = 0;
    for (const Edge& edge : recorded) {
      if (x_acc && edge.function == x_acc) continue;
      bool known = false;
      for (const Edge& b : boundary_) known = known || same_edge(b, edge);
      TORCH_CHECK(known, "loft block boundary: block ", index_, " reached a tensor that requires grad (",
                  edge.function->name(), ") when recomputed that its forward did not use; a recomputed block must "
                  "be a pure function of its input and captured tensors");
      ++matched;
    }
    TORCH_CHECK(matched == boundary_.size(), "loft block boundary: block ", index_, " used ", boundary_.size(),
                " tensors that require grad in its forward but ", matched, " when recomputed");
  }

  int64_t index_;
  BlockExecution execution_;
  BlockListener listener_;
  edge_list boundary_;
  bool input_requires_grad_;
  // kRecompute
  std::unique_ptr<BlockFunction> block_;
  at::Tensor input_;
  std::vector<int64_t> input_sizes_;
  at::ScalarType input_dtype_ = at::kFloat;
  c10::Device input_device_{c10::kCPU};
  c10::VariableVersion input_version_counter_{c10::VariableVersion::Disabled::DISABLED};
  uint32_t input_version_ = 0;
  ReplayState replay_;
  // kBoundary
  at::Tensor out_;
  Edge input_edge_;
  bool kept_ = false;
};

at::Tensor run_plain(int64_t index, const BlockFunction& block, const at::Tensor& hidden,
                     const BlockListener& listener) {
  notify(listener, index, BlockStage::kForwardPre, BlockExecution::kPlain);
  at::Tensor out = block(hidden);
  notify(listener, index, BlockStage::kForwardPost, BlockExecution::kPlain);
  return out;
}

}  // namespace

at::Tensor run_block_boundary(int64_t index, const BlockFunction& block, const at::Tensor& hidden,
                              BlockExecution execution, const BlockListener& listener) {
  // Without grad mode (eval, generation) there is no backward to prepare for.
  if (execution == BlockExecution::kPlain || !at::GradMode::is_enabled()) {
    return run_plain(index, block, hidden, listener);
  }
  const bool recompute = execution == BlockExecution::kRecompute;
  notify(listener, index, BlockStage::kForwardPre, execution);
  ReplayState replay;
  if (recompute) replay = ReplayState::capture(hidden.device());
  at::Tensor x = hidden.detach();
  if (hidden.requires_grad()) x.requires_grad_(true);
  at::Tensor out;
  edge_list boundary;
  {
    // kRecompute records under grad mode too, so the forward picks the same kernels as the recompute; its graph
    // lives only until `out` is dropped below, so at most one block's activations exist at a time.
    at::AutoGradMode grad_mode(true);
    RecordingMark mark;
    out = block(x);
    boundary = boundary_edges(out, mark);
  }
  Edge x_edge;
  if (!recompute && hidden.requires_grad()) x_edge = torch::autograd::impl::gradient_edge(x);
  boundary = without_input(std::move(boundary), x);
  if (!out.requires_grad() || (boundary.empty() && !hidden.requires_grad())) {
    // Nothing inside needs a gradient: no node, nothing kept.
    at::Tensor result = out.detach();
    out.reset();
    notify(listener, index, BlockStage::kForwardPost, execution);
    return result;
  }

  edge_list next;
  next.reserve(boundary.size() + 1);
  next.push_back(hidden.requires_grad() ? torch::autograd::impl::gradient_edge(hidden) : Edge());
  for (const auto& edge : boundary) next.push_back(edge);
  auto node = std::shared_ptr<BlockBoundaryBackward>(
      new BlockBoundaryBackward(index, execution, listener, std::move(boundary), hidden.requires_grad()),
      torch::autograd::deleteNode);
  node->set_next_edges(std::move(next));
  at::Tensor result = out.detach();
  if (recompute) {
    node->keep_for_recompute(block, hidden, std::move(replay));
    out.reset();  // drops the recorded graph and, with it, the block's activations
  } else {
    node->keep_graph(std::move(out), std::move(x_edge));
  }
  torch::autograd::set_history(result, node);
  notify(listener, index, BlockStage::kForwardPost, execution, recompute ? node->saved_input() : nullptr);
  return result;
}

}  // namespace loft
