// Qwen2Model: building the network from named weights (checkpoint or random), the forward pass in Hugging Face's
// order of operations (so fp32 logits agree to rounding), and the cached prefill/decode steps generation uses.
#include "loft/framework/qwen2.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorIndexing.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Generator.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/addcmul.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/roll.h>
#include <ATen/ops/rms_norm.h>
#include <ATen/ops/repeat_interleave.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/zeros.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>
#include <fmt/ranges.h>

#include "attention.h"
#include "loft/framework/safetensors.h"
#include "weights.h"

namespace loft {
namespace {

using model::ExpectedTensor;

// A weight by name as a CPU tensor of the expected shape (checked by the caller).
using WeightFetch = std::function<at::Tensor(const ExpectedTensor&)>;

std::string shape_str(at::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// A frozen linear layer with its optional adapter. forward = adapter ? adapter(x, base(x) + bias) : base(x) + bias.
struct Linear {
  LinearSite site;
  std::unique_ptr<QuantizedLinear> base;
  at::Tensor bias;  // frozen, compute dtype; offload strategies may move it (through BlockResidency)
  std::unique_ptr<Adapter> adapter;

  at::Tensor base_forward(const at::Tensor& x) const {
    at::Tensor y = base->forward(x);
    return bias.defined() ? y + bias : y;
  }
  at::Tensor forward(const at::Tensor& x, bool training) const {
    if (!adapter) return base_forward(x);
    return adapter->forward(x, adapter->uses_base_output() ? base_forward(x) : at::Tensor(), training);
  }
};

// A parameter outside the linear sites (embedding, norm, untied lm_head): frozen in the compute dtype, or an fp32
// master that trains.
struct Param {
  std::string name;
  at::Tensor frozen;
  at::Tensor master;

  at::Tensor value(c10::ScalarType dtype) const {
    if (!master.defined()) return frozen;
    return master.scalar_type() == dtype ? master : master.to(dtype);
  }
  bool trains() const { return master.defined(); }
};

struct Block {
  int64_t index = 0;
  Param input_norm, post_norm;
  Linear q, k, v, o, gate, up, down;

  std::vector<Linear*> linears() { return {&q, &k, &v, &o, &gate, &up, &down}; }
  std::vector<const Linear*> linears() const { return {&q, &k, &v, &o, &gate, &up, &down}; }
};

// How the attention of one forward pass reads and writes keys and values.
struct AttentionPlan {
  enum class Mode { kCausal, kPrefill, kDecode, kPacked } mode = Mode::kCausal;
  at::Tensor cos, sin;           // [B or 1, S, head_dim], compute dtype; sin negated on its first half (apply_rope)
  KvCache* cache = nullptr;      // prefill / decode
  at::Tensor positions;          // decode: [B] where each row's new key goes
  at::Tensor key_mask;           // decode: [B, 1, 1, key_len] bool
  int64_t key_len = 0;           // decode: cache positions attended over
  at::Tensor cu_seqlens;         // packed: [N+1] int32 sequence starts over the flattened B*S tokens
  int64_t max_seqlen = 0;        // packed: the longest sequence
  at::Tensor packed_mask;        // packed, off the flash path: [B, 1, S, S] bool, causal within each sequence
};

// HF Qwen2RMSNorm: fp32 statistics, the weight applied in the input's dtype. On CUDA in bf16/fp16, ATen's fused
// kernel (one pass forward, one backward, instead of ~8 and ~12 elementwise kernels): fp32 statistics too, but x·rstd
// is not rounded to the input dtype before the weight multiplies it, so outputs may differ from HF's by one rounding.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto input_dtype = x.scalar_type();
  if (x.is_cuda() && (input_dtype == at::kBFloat16 || input_dtype == at::kHalf)) {
    return at::rms_norm(x, {x.size(-1)}, weight, eps);
  }
  at::Tensor h = x.to(at::kFloat);
  at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(variance + eps);
  return weight * h.to(input_dtype);
}

// HF apply_rotary_pos_emb, y = x·cos + rotate_half(x)·sin, as a function of its own: rotate_half(x) = cat(-x2, x1)
// = roll(x, D/2)·sign with sign = -1 on the first half, so with sin pre-signed (`signed_sin`, once per forward
// pass) y = x·cos + roll(x)·signed_sin (3 kernels) and dy/dx is g·cos + roll(g·signed_sin) (3 kernels), where
// autograd through the cat/neg form runs about twice as many. x [B, H, S, D]; cos/signed_sin [B or 1, S, D].
class RotaryEmbedding : public torch::autograd::Function<RotaryEmbedding> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& signed_sin) {
    const at::Tensor c = cos.unsqueeze(1), s = signed_sin.unsqueeze(1);
    ctx->save_for_backward({c, s});
    return at::addcmul(x * c, at::roll(x, x.size(-1) / 2, -1), s);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grad[0];
    return {at::addcmul(at::roll(g * saved[1], g.size(-1) / 2, -1), g, saved[0]), at::Tensor(), at::Tensor()};
  }
};

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& signed_sin) {
  return RotaryEmbedding::apply(x, cos, signed_sin);
}

}  // namespace

namespace model {

std::vector<ExpectedTensor> expected_tensors(const Qwen2Config& c) {
  const int64_t q_out = c.num_attention_heads * c.head_dim, kv_out = c.num_key_value_heads * c.head_dim;
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, "[vocab_size, hidden_size]"});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    out.push_back({p + "input_layernorm.weight", {c.hidden_size}, "[hidden_size]"});
    out.push_back({p + "self_attn.q_proj.weight", {q_out, c.hidden_size}, "[num_attention_heads*head_dim, hidden_size]"});
    out.push_back({p + "self_attn.q_proj.bias", {q_out}, "[num_attention_heads*head_dim]"});
    out.push_back({p + "self_attn.k_proj.weight", {kv_out, c.hidden_size}, "[num_key_value_heads*head_dim, hidden_size]"});
    out.push_back({p + "self_attn.k_proj.bias", {kv_out}, "[num_key_value_heads*head_dim]"});
    out.push_back({p + "self_attn.v_proj.weight", {kv_out, c.hidden_size}, "[num_key_value_heads*head_dim, hidden_size]"});
    out.push_back({p + "self_attn.v_proj.bias", {kv_out}, "[num_key_value_heads*head_dim]"});
    out.push_back({p + "self_attn.o_proj.weight", {c.hidden_size, q_out}, "[hidden_size, num_attention_heads*head_dim]"});
    out.push_back({p + "post_attention_layernorm.weight", {c.hidden_size}, "[hidden_size]"});
    out.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, c.hidden_size}, "[intermediate_size, hidden_size]"});
    out.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, c.hidden_size}, "[intermediate_size, hidden_size]"});
    out.push_back({p + "mlp.down_proj.weight", {c.hidden_size, c.intermediate_size}, "[hidden_size, intermediate_size]"});
  }
  out.push_back({"model.norm.weight", {c.hidden_size}, "[hidden_size]"});
  if (!c.tie_word_embeddings) {
    out.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, "[vocab_size, hidden_size] (tie_word_embeddings is false)"});
  }
  return out;
}

}  // namespace model

struct Qwen2Model::Impl {
  Qwen2Config config;
  ModelOptions options;
  Param embed, final_norm, lm_head;  // lm_head undefined when tied
  std::vector<std::unique_ptr<Block>> blocks;
  at::Tensor inv_freq;  // [head_dim / 2] fp32 on the device
  double scale = 1.0;
  model::Attention attention{AttentionBackend::kAuto, nullptr};

  c10::ScalarType dtype() const { return options.dtype; }

  // HF Qwen2RotaryEmbedding.forward: freqs = pos.float() * inv_freq, emb = cat(freqs, freqs), cos/sin in fp32,
  // then cast to the compute dtype. `positions` [B or 1, S] int64. Returns cos and the signed sin apply_rope takes
  // (negated on the first half; negation is exact, so the values are HF's).
  std::pair<at::Tensor, at::Tensor> rope(const at::Tensor& positions) const {
    at::Tensor freqs = positions.unsqueeze(-1).to(at::kFloat) * inv_freq;
    at::Tensor emb = at::cat({freqs, freqs}, -1);
    at::Tensor sin = emb.sin();
    const int64_t half = sin.size(-1) / 2;
    sin = at::cat({-sin.narrow(-1, 0, half), sin.narrow(-1, half, half)}, -1);
    return {emb.cos().to(dtype()), sin.to(dtype())};
  }

  at::Tensor block_forward(const Block& b, const at::Tensor& x, const AttentionPlan& plan, bool training) {
    const auto& c = config;
    const int64_t B = x.size(0), S = x.size(1);
    at::Tensor h = rms_norm(x, b.input_norm.value(dtype()), c.rms_norm_eps);
    at::Tensor q = b.q.forward(h, training).reshape({B, S, c.num_attention_heads, c.head_dim}).transpose(1, 2);
    at::Tensor k = b.k.forward(h, training).reshape({B, S, c.num_key_value_heads, c.head_dim}).transpose(1, 2);
    at::Tensor v = b.v.forward(h, training).reshape({B, S, c.num_key_value_heads, c.head_dim}).transpose(1, 2);
    q = apply_rope(q, plan.cos, plan.sin);
    k = apply_rope(k, plan.cos, plan.sin);

    at::Tensor attn;
    switch (plan.mode) {
      case AttentionPlan::Mode::kCausal:
        attn = attention.causal(q, k, v, scale);
        break;
      case AttentionPlan::Mode::kPrefill:
        plan.cache->keys[b.index].slice(2, 0, S).copy_(k);
        plan.cache->values[b.index].slice(2, 0, S).copy_(v);
        attn = attention.causal(q, k, v, scale);
        break;
      case AttentionPlan::Mode::kDecode: {
        at::Tensor& keys = plan.cache->keys[b.index];
        at::Tensor& values = plan.cache->values[b.index];
        const at::Tensor index = plan.positions.view({B, 1, 1, 1}).expand({B, c.num_key_value_heads, 1, c.head_dim});
        keys.scatter_(2, index, k);
        values.scatter_(2, index, v);
        attn = attention.masked(q, keys.slice(2, 0, plan.key_len), values.slice(2, 0, plan.key_len), plan.key_mask,
                                scale);
        break;
      }
      case AttentionPlan::Mode::kPacked:
        attn = attention.packed(q, k, v, plan.cu_seqlens, plan.max_seqlen, plan.packed_mask, scale);
        break;
    }
    attn = attn.transpose(1, 2).reshape({B, S, c.num_attention_heads * c.head_dim});
    at::Tensor hidden = x + b.o.forward(attn, training);
    h = rms_norm(hidden, b.post_norm.value(dtype()), c.rms_norm_eps);
    at::Tensor mlp = b.down.forward(at::silu(b.gate.forward(h, training)) * b.up.forward(h, training), training);
    return hidden + mlp;
  }

  // Embedding, every block (through the offload strategy), final norm.
  at::Tensor run(const at::Tensor& input_ids, const AttentionPlan& plan, bool training) {
    at::Tensor x = at::embedding(embed.value(dtype()), input_ids);
    for (const auto& block : blocks) {
      // Captured by value: an offload strategy may keep the function to recompute the block in backward.
      const Block* b = block.get();
      BlockFunction fn = [this, b, plan, training](const at::Tensor& hidden) {
        return block_forward(*b, hidden, plan, training);
      };
      x = options.offload != nullptr ? options.offload->run_block(b->index, fn, x) : fn(x);
    }
    return rms_norm(x, final_norm.value(dtype()), config.rms_norm_eps);
  }

  at::Tensor ids_on_device(const at::Tensor& input_ids, int64_t dims) const {
    TORCH_CHECK(input_ids.dim() == dims && input_ids.scalar_type() == at::kLong, "qwen2: input_ids must be ",
                dims == 2 ? "[batch, seq]" : "[batch]", " int64, got ", input_ids.sizes(), " ",
                input_ids.scalar_type());
    if (input_ids.device().is_cpu() && input_ids.numel() > 0) {
      const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
      TORCH_CHECK(lo >= 0 && hi < config.vocab_size, "qwen2: token id ", lo < 0 ? lo : hi,
                  " is outside the vocabulary [0, ", config.vocab_size, ")");
    }
    return input_ids.to(options.device);
  }

  std::vector<std::string> non_linear_names() const {
    std::vector<std::string> names{"model.embed_tokens.weight"};
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      names.push_back(fmt::format("model.layers.{}.input_layernorm.weight", i));
      names.push_back(fmt::format("model.layers.{}.post_attention_layernorm.weight", i));
    }
    names.push_back("model.norm.weight");
    if (!config.tie_word_embeddings) names.push_back("lm_head.weight");
    return names;
  }
};

namespace {

// Builds the model from named weights. Throws (c10::Error, std::exception) on plugin failures; the caller turns
// that into a Status.
std::unique_ptr<Qwen2Model::Impl> build(const Qwen2Config& config, const ModelOptions& options,
                                        const WeightFetch& fetch) {
  auto impl = std::make_unique<Qwen2Model::Impl>();
  impl->config = config;
  impl->options = options;
  impl->attention = model::Attention(options.attention, options.log);
  const c10::Device device = options.device;
  const c10::ScalarType dtype = options.dtype;

  std::map<std::string, ExpectedTensor> expected;
  for (auto& t : model::expected_tensors(config)) expected.emplace(t.name, t);
  auto get = [&](const std::string& name) { return fetch(expected.at(name)); };

  std::set<std::string> trainable;
  if (options.peft != nullptr) {
    for (auto& name : options.peft->trainable_parameters(impl->non_linear_names())) trainable.insert(name);
  }

  // Residency before materialisation: the offload strategy gives every unit (embedding, each block, final norm, an
  // untied lm_head) its home before any tensor exists; each unit is then built there, one after the other.
  std::vector<ModelUnit> units;
  {
    const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
    auto frozen_bytes = [&](const std::string& prefix) {
      int64_t bytes = 0;
      for (const auto& [name, t] : expected) {
        if (name.compare(0, prefix.size(), prefix) != 0 || trainable.count(name) != 0) continue;
        int64_t numel = 1;
        for (int64_t d : t.shape) numel *= d;
        bytes += numel * element;
      }
      return bytes;
    };
    units.push_back({UnitKind::kEmbedding, 0, "model.embed_tokens", frozen_bytes("model.embed_tokens.")});
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      const std::string name = fmt::format("model.layers.{}", i);
      units.push_back({UnitKind::kBlock, i, name, frozen_bytes(name + ".")});
    }
    units.push_back({UnitKind::kFinalNorm, 0, "model.norm", frozen_bytes("model.norm.")});
    if (!config.tie_word_embeddings) units.push_back({UnitKind::kLmHead, 0, "lm_head", frozen_bytes("lm_head.")});
  }
  std::vector<Home> homes(units.size(), Home::kRunDevice);
  if (options.offload != nullptr) {
    homes = options.offload->plan(units);
    TORCH_CHECK(homes.size() == units.size(), "qwen2: the offload strategy planned ", homes.size(),
                " homes for the model's ", units.size(), " units");
  }
  auto where = [&](size_t unit) { return home_device(homes[unit], device); };
  const size_t final_norm_unit = static_cast<size_t>(config.num_hidden_layers) + 1;

  // Owned copies: never keep a view into a memory-mapped checkpoint. A frozen tensor is built at its unit's home; a
  // trainable one (an fp32 master) always on the run device.
  auto make_param = [&](const std::string& name, c10::Device home) {
    Param p;
    p.name = name;
    const at::Tensor source = get(name);
    if (trainable.count(name) != 0) {
      p.master = source.to(device, at::kFloat, /*non_blocking=*/false, /*copy=*/true).detach().requires_grad_(true);
    } else {
      p.frozen = source.to(home, dtype, /*non_blocking=*/false, /*copy=*/true);
    }
    return p;
  };
  // A linear is quantized (and its adapter attached) on the run device, so a unit homed elsewhere gives the same
  // storage and adapters as a resident one; move_home() then moves the frozen parts to the unit's home before the next
  // unit is built, so at most one block's weights are on the run device on its behalf.
  auto make_linear = [&](int64_t layer, const std::string& module, const std::string& short_name, bool has_bias) {
    Linear l;
    l.site.name = fmt::format("model.layers.{}.{}.{}", layer, module, short_name);
    l.site.short_name = short_name;
    l.site.layer_index = layer;
    const std::vector<int64_t>& shape = expected.at(l.site.name + ".weight").shape;
    if (options.stored_linear) l.base = options.stored_linear(l.site.name, shape[0], shape[1]);
    if (l.base == nullptr) {
      const at::Tensor weight = get(l.site.name + ".weight");
      l.base = options.make_linear(weight.to(device, /*non_blocking=*/false, /*copy=*/true), l.site.name);
    }
    TORCH_CHECK(l.base != nullptr, "qwen2: the linear maker returned nothing for ", l.site.name);
    TORCH_CHECK(l.base->out_features() == shape[0] && l.base->in_features() == shape[1],
                "qwen2: the linear maker built [", l.base->out_features(), ", ", l.base->in_features(), "] for ",
                l.site.name, ", whose weight is ", shape_str(shape));
    l.site.out_features = shape[0];
    l.site.in_features = shape[1];
    l.site.base = l.base.get();
    if (has_bias) {
      l.bias = get(l.site.name + ".bias").to(device, dtype, false, /*copy=*/true);
      l.site.bias = l.bias;
    }
    // Adapters: the Linear objects live in heap blocks, so every LinearSite pointer stays valid. Attached per site
    // with per-site seeds, so building unit by unit gives the adapters of building everything first.
    if (options.peft != nullptr && options.peft->targets(l.site)) {
      l.adapter = options.peft->attach(l.site);
      TORCH_CHECK(l.adapter != nullptr, "qwen2: the PEFT method attached nothing to ", l.site.name);
    }
    return l;
  };
  auto move_home = [&](Linear& l, c10::Device home) {
    if (home == device) return;
    l.base->to(home, /*non_blocking=*/false);
    if (l.bias.defined()) {
      l.bias = l.bias.to(home);
      l.site.bias = l.bias;
    }
  };

  impl->embed = make_param("model.embed_tokens.weight", where(0));
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const c10::Device home = where(static_cast<size_t>(i) + 1);
    auto b = std::make_unique<Block>();
    b->index = i;
    b->input_norm = make_param(fmt::format("model.layers.{}.input_layernorm.weight", i), home);
    b->q = make_linear(i, "self_attn", "q_proj", true);
    b->k = make_linear(i, "self_attn", "k_proj", true);
    b->v = make_linear(i, "self_attn", "v_proj", true);
    b->o = make_linear(i, "self_attn", "o_proj", false);
    b->post_norm = make_param(fmt::format("model.layers.{}.post_attention_layernorm.weight", i), home);
    b->gate = make_linear(i, "mlp", "gate_proj", false);
    b->up = make_linear(i, "mlp", "up_proj", false);
    b->down = make_linear(i, "mlp", "down_proj", false);
    for (Linear* l : b->linears()) move_home(*l, home);
    impl->blocks.push_back(std::move(b));
  }
  impl->final_norm = make_param("model.norm.weight", where(final_norm_unit));
  if (!config.tie_word_embeddings) impl->lm_head = make_param("lm_head.weight", where(final_norm_unit + 1));

  // Residency: every unit's frozen linears and tensors, at their homes, handed to the offload strategy once.
  if (options.offload != nullptr) {
    std::vector<BlockResidency> residency;
    auto param_unit = [&](Param& p, UnitKind kind, size_t unit) {
      BlockResidency r;
      r.kind = kind;
      r.home = homes[unit];
      if (!p.trains()) r.frozen_tensors.push_back(&p.frozen);
      residency.push_back(std::move(r));
    };
    param_unit(impl->embed, UnitKind::kEmbedding, 0);
    for (auto& block : impl->blocks) {
      BlockResidency r;
      r.index = block->index;
      r.kind = UnitKind::kBlock;
      r.home = homes[static_cast<size_t>(block->index) + 1];
      for (Linear* l : block->linears()) {
        r.frozen_linears.push_back(l->base.get());
        if (l->bias.defined()) r.frozen_tensors.push_back(&l->bias);
      }
      for (Param* p : {&block->input_norm, &block->post_norm}) {
        if (!p->trains()) r.frozen_tensors.push_back(&p->frozen);
      }
      residency.push_back(std::move(r));
    }
    param_unit(impl->final_norm, UnitKind::kFinalNorm, final_norm_unit);
    if (!config.tie_word_embeddings) param_unit(impl->lm_head, UnitKind::kLmHead, final_norm_unit + 1);
    options.offload->place(residency);
    // place() may have replaced the bias tensors through the pointers above: the sites show the model's own again,
    // so that no stale copy keeps a streamed block's original storage alive.
    for (auto& block : impl->blocks) {
      for (Linear* l : block->linears()) l->site.bias = l->bias;
    }
  }

  // RoPE inverse frequencies exactly as transformers computes them (fp32, on the CPU at init).
  const int64_t d = config.head_dim;
  at::Tensor exponents = at::arange(0, d, 2, at::TensorOptions().dtype(at::kFloat)) / d;
  impl->inv_freq = at::reciprocal(at::pow(at::Scalar(config.rope_theta), exponents)).to(device);
  impl->scale = std::pow(static_cast<double>(d), -0.5);
  return impl;
}

Status checked_build(const Qwen2Config& config, const ModelOptions& options, const WeightFetch& fetch,
                     std::unique_ptr<Qwen2Model::Impl>& out) {
  if (!options.make_linear) return Status::InvalidArgument("qwen2: ModelOptions.make_linear is not set");
  try {
    out = build(config, options, fetch);
  } catch (const c10::Error& e) {
    return Status::Internal(fmt::format("qwen2: building the model failed: {}", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("qwen2: building the model failed: {}", e.what()));
  }
  return Status::Ok();
}

// transformers (5.x) ties lm_head to the embedding only when the checkpoint holds no lm_head.weight or an equal one;
// a different one is used untied, with a warning. The same here: `config` comes back untied in that case.
Status untie_distinct_lm_head(const CheckpointReader& ckpt, const std::filesystem::path& hf_folder, Qwen2Config& config,
                              const LogSink* log) {
  const std::string head = "lm_head.weight", embed = "model.embed_tokens.weight";
  if (!config.tie_word_embeddings || !ckpt.contains(head) || !ckpt.contains(embed)) return Status::Ok();
  const TensorInfo& info = ckpt.info(head);
  const std::vector<int64_t> expected{config.vocab_size, config.hidden_size};
  if (info.shape != expected || !c10::isFloatingType(info.dtype)) {
    return Status::InvalidArgument(fmt::format(
        "{}: tensor '{}' is {} {}, but a Qwen2 lm_head is floating point {} = [vocab_size, hidden_size]; fix or remove "
        "it (tie_word_embeddings is true, so the embedding can serve as the head)",
        ckpt.file_of(head).path().string(), head, c10::toString(info.dtype), shape_str(info.shape),
        shape_str(expected)));
  }
  const at::Tensor h = ckpt.tensor(head), e = ckpt.tensor(embed);
  const bool equal = e.sizes() == h.sizes() &&
                     (h.scalar_type() == e.scalar_type() ? at::equal(h, e) : at::equal(h.to(at::kFloat), e.to(at::kFloat)));
  if (equal) return Status::Ok();
  config.tie_word_embeddings = false;
  if (log != nullptr) {
    log->warn("qwen2: {}/config.json says tie_word_embeddings = true, but the checkpoint's {} differs from {}; using "
              "it as an untied head, as transformers does (set tie_word_embeddings to false in config.json to silence "
              "this)",
              hf_folder.string(), head, embed);
  }
  return Status::Ok();
}

// Checkpoint tensors the model does not read, in one warning line, as transformers lists its unexpected keys (and,
// like it, without the per-layer rotary_emb.inv_freq buffers older checkpoints carry: loft computes them).
void warn_unused_tensors(const CheckpointReader& ckpt, const std::filesystem::path& hf_folder,
                         const Qwen2Config& config, const LogSink* log) {
  if (log == nullptr) return;
  std::set<std::string> used;
  for (const ExpectedTensor& t : model::expected_tensors(config)) used.insert(t.name);
  if (config.tie_word_embeddings) used.insert("lm_head.weight");  // equal to the embedding (checked above)
  std::vector<std::string> unused;
  for (const std::string& name : ckpt.names()) {
    if (used.count(name) == 0 && name.find("rotary_emb.inv_freq") == std::string::npos) unused.push_back(name);
  }
  if (unused.empty()) return;
  constexpr size_t kListed = 32;
  const std::vector<std::string> listed(unused.begin(), unused.begin() + std::min(kListed, unused.size()));
  log->warn("qwen2: {}: {} tensor{} in the checkpoint {} not used by Qwen2ForCausalLM and {} ignored: {}{}",
            hf_folder.string(), unused.size(), unused.size() == 1 ? "" : "s", unused.size() == 1 ? "is" : "are",
            unused.size() == 1 ? "is" : "are", fmt::join(listed, ", "),
            unused.size() > kListed ? fmt::format(", ... ({} more)", unused.size() - kListed) : "");
}

}  // namespace

Qwen2Model::Qwen2Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Qwen2Model::~Qwen2Model() = default;

StatusOr<std::unique_ptr<Qwen2Model>> Qwen2Model::create_random(const Qwen2Config& config, uint64_t seed,
                                                                const ModelOptions& options) {
  if (auto s = config.validate("Qwen2Config"); !s.ok()) return s;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto cpu_float = at::TensorOptions().dtype(at::kFloat);
  // Drawn in build order, one tensor at a time.
  WeightFetch fetch = [&](const ExpectedTensor& t) -> at::Tensor {
    const bool is_norm = t.name.find("norm.weight") != std::string::npos;
    const bool is_bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
    if (is_norm) return at::ones(t.shape, cpu_float);
    if (is_bias) return at::zeros(t.shape, cpu_float);
    at::Tensor w = at::empty(t.shape, cpu_float);
    w.normal_(0.0, config.initializer_range, gen);
    if (t.name == "model.embed_tokens.weight" && config.pad_token_id) w[*config.pad_token_id].zero_();
    return w;
  };
  ModelOptions drawn_in_order = options;
  drawn_in_order.stored_linear = nullptr;  // skipping a draw would shift every later weight
  std::unique_ptr<Impl> impl;
  if (auto s = checked_build(config, drawn_in_order, fetch, impl); !s.ok()) return s;
  return std::unique_ptr<Qwen2Model>(new Qwen2Model(std::move(impl)));
}

StatusOr<std::unique_ptr<Qwen2Model>> Qwen2Model::load(const std::filesystem::path& hf_folder,
                                                        const ModelOptions& options) {
  auto config = read_qwen2_config(hf_folder / "config.json");
  if (!config.ok()) return config.status();
  return load(hf_folder, config.value(), options);
}

StatusOr<std::unique_ptr<Qwen2Model>> Qwen2Model::load(const std::filesystem::path& hf_folder,
                                                        const Qwen2Config& file_config, const ModelOptions& options) {
  const std::filesystem::path config_path = hf_folder / "config.json";
  auto reader = CheckpointReader::open(hf_folder);
  if (!reader.ok()) return reader.status();
  const CheckpointReader& ckpt = reader.value();

  Qwen2Config config = file_config;
  if (auto s = untie_distinct_lm_head(ckpt, hf_folder, config, options.log); !s.ok()) return s;
  // Every shape against the config before anything is built (headers only, no tensor data touched).
  for (const ExpectedTensor& t : model::expected_tensors(config)) {
    if (!ckpt.contains(t.name)) {
      return Status::NotFound(fmt::format("{}: tensor '{}' is missing; {} implies it with shape {} = {}",
                                          hf_folder.string(), t.name, config_path.string(), shape_str(t.shape), t.rule));
    }
    const TensorInfo& info = ckpt.info(t.name);
    if (info.shape != t.shape) {
      return Status::InvalidArgument(fmt::format(
          "{}: tensor '{}' has shape {}, but {} implies {} = {}; the config and the weights disagree",
          ckpt.file_of(t.name).path().string(), t.name, shape_str(info.shape), config_path.string(),
          shape_str(t.shape), t.rule));
    }
    if (!c10::isFloatingType(info.dtype)) {
      return Status::InvalidArgument(fmt::format("{}: tensor '{}' has dtype {}; a Qwen2 weight must be floating point",
                                                 ckpt.file_of(t.name).path().string(), t.name,
                                                 c10::toString(info.dtype)));
    }
  }
  warn_unused_tensors(ckpt, hf_folder, config, options.log);
  WeightFetch fetch = [&](const ExpectedTensor& t) { return ckpt.tensor(t.name); };
  std::unique_ptr<Impl> impl;
  if (auto s = checked_build(config, options, fetch, impl); !s.ok()) return s;
  if (options.log != nullptr) {
    const auto& c = config;
    options.log->info("qwen2: {} ({} layers, hidden {}, {} query / {} key-value heads of {}, vocab {}{}), {} on {}",
                      hf_folder.string(), c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
                      c.num_key_value_heads, c.head_dim, c.vocab_size, c.tie_word_embeddings ? ", tied" : "",
                      c10::toString(options.dtype), options.device.str());
  }
  return std::unique_ptr<Qwen2Model>(new Qwen2Model(std::move(impl)));
}

const Qwen2Config& Qwen2Model::config() const { return impl_->config; }
c10::Device Qwen2Model::device() const { return impl_->options.device; }
c10::ScalarType Qwen2Model::dtype() const { return impl_->options.dtype; }
std::string Qwen2Model::attention_backend() const { return impl_->attention.description(); }

at::Tensor Qwen2Model::hidden_states(const at::Tensor& input_ids, const at::Tensor& lengths, bool training) {
  at::Tensor ids = impl_->ids_on_device(input_ids, 2);
  if (lengths.defined()) {
    TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == ids.size(0), "qwen2: lengths must be [", ids.size(0),
                "], got ", lengths.sizes());
  }
  AttentionPlan plan;
  plan.mode = AttentionPlan::Mode::kCausal;
  const at::Tensor positions = at::arange(ids.size(1), at::TensorOptions().dtype(at::kLong).device(ids.device()));
  std::tie(plan.cos, plan.sin) = impl_->rope(positions.unsqueeze(0));
  return impl_->run(ids, plan, training);
}

at::Tensor Qwen2Model::packed_hidden_states(const at::Tensor& input_ids, const at::Tensor& position_ids,
                                            const at::Tensor& cu_seqlens, int64_t max_seqlen, bool training) {
  at::Tensor ids = impl_->ids_on_device(input_ids, 2);
  const int64_t B = ids.size(0), S = ids.size(1);
  TORCH_CHECK(position_ids.sizes() == ids.sizes(), "qwen2: position_ids must be [", B, ", ", S, "], got ",
              position_ids.sizes());
  TORCH_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.scalar_type() == at::kInt && cu_seqlens.size(0) >= 2,
              "qwen2: cu_seqlens must be [N+1] int32");
  const at::Tensor cu_host = cu_seqlens.to(at::kCPU);
  TORCH_CHECK(cu_host[0].item<int32_t>() == 0 && cu_host[-1].item<int64_t>() == B * S,
              "qwen2: cu_seqlens must run from 0 to ", B * S, " (every token in exactly one sequence)");
  AttentionPlan plan;
  plan.mode = AttentionPlan::Mode::kPacked;
  plan.cu_seqlens = cu_seqlens.to(impl_->options.device);
  plan.max_seqlen = max_seqlen;
  const at::Tensor positions = position_ids.to(impl_->options.device, at::kLong);
  std::tie(plan.cos, plan.sin) = impl_->rope(positions);
  if (impl_->attention.packed_needs_mask(impl_->dtype(), impl_->options.device)) {
    // Sequence number of every token, then: same sequence and not in the future.
    const at::Tensor seq_lengths = cu_host.slice(0, 1) - cu_host.slice(0, 0, -1);
    const at::Tensor seq = at::repeat_interleave(at::arange(seq_lengths.size(0), at::kLong), seq_lengths.to(at::kLong))
                               .view({B, S})
                               .to(impl_->options.device);
    const at::Tensor causal = at::ones({S, S}, at::TensorOptions().dtype(at::kBool).device(seq.device())).tril();
    plan.packed_mask = (seq.unsqueeze(2) == seq.unsqueeze(1)).logical_and(causal).unsqueeze(1);
  }
  return impl_->run(ids, plan, training);
}

at::Tensor Qwen2Model::lm_head_weight() {
  const Param& p = impl_->config.tie_word_embeddings ? impl_->embed : impl_->lm_head;
  return p.value(impl_->dtype());
}

at::Tensor Qwen2Model::logits(const at::Tensor& input_ids, const at::Tensor& lengths, bool training) {
  return at::linear(hidden_states(input_ids, lengths, training), lm_head_weight()).to(at::kFloat);
}

std::vector<std::pair<std::string, at::Tensor>> Qwen2Model::trainable_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto add = [&](const Param& p) {
    if (p.trains()) out.emplace_back(p.name, p.master);
  };
  add(impl_->embed);
  for (const auto& block : impl_->blocks) {
    add(block->input_norm);
    add(block->post_norm);
    for (const Linear* l : block->linears()) {
      if (!l->adapter) continue;
      for (auto& [name, tensor] : l->adapter->trainable()) out.emplace_back(l->site.name + "." + name, tensor);
    }
  }
  add(impl_->final_norm);
  if (!impl_->config.tie_word_embeddings) add(impl_->lm_head);
  return out;
}

std::vector<const LinearSite*> Qwen2Model::linear_sites() const {
  std::vector<const LinearSite*> out;
  for (const auto& block : impl_->blocks) {
    for (const Linear* l : block->linears()) out.push_back(&l->site);
  }
  return out;
}

std::vector<std::pair<const LinearSite*, Adapter*>> Qwen2Model::adapters() const {
  std::vector<std::pair<const LinearSite*, Adapter*>> out;
  for (const auto& block : impl_->blocks) {
    for (const Linear* l : block->linears()) {
      if (l->adapter) out.emplace_back(&l->site, l->adapter.get());
    }
  }
  return out;
}

std::vector<std::string> Qwen2Model::non_linear_parameter_names() const { return impl_->non_linear_names(); }

std::vector<std::pair<std::string, at::Tensor>> Qwen2Model::state_dict(c10::ScalarType dtype) const {
  at::NoGradGuard no_grad;
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto cpu = [&](const at::Tensor& t) { return t.detach().to(at::kCPU, dtype).contiguous(); };
  auto add_param = [&](const Param& p) { out.emplace_back(p.name, cpu(p.trains() ? p.master : p.frozen)); };
  auto add_linear = [&](const Linear& l) {
    at::Tensor bias = l.bias;
    at::Tensor weight;
    if (l.adapter) {
      weight = l.adapter->merged_weight(dtype);
      // An adapter that computes the whole output (full fine-tuning) trains its own bias.
      if (!l.adapter->uses_base_output()) {
        for (auto& [name, tensor] : l.adapter->state_dict()) {
          if (name == "bias") bias = tensor;
        }
      }
    } else {
      weight = l.base->dequantize(dtype);
    }
    out.emplace_back(l.site.name + ".weight", cpu(weight));
    if (bias.defined()) out.emplace_back(l.site.name + ".bias", cpu(bias));
  };
  add_param(impl_->embed);
  for (const auto& block : impl_->blocks) {
    add_param(block->input_norm);
    for (const Linear* l : {&block->q, &block->k, &block->v, &block->o}) add_linear(*l);
    add_param(block->post_norm);
    for (const Linear* l : {&block->gate, &block->up, &block->down}) add_linear(*l);
  }
  add_param(impl_->final_norm);
  if (!impl_->config.tie_word_embeddings) add_param(impl_->lm_head);
  return out;
}

KvCache Qwen2Model::new_cache(int64_t batch, int64_t capacity) const {
  const auto& c = impl_->config;
  KvCache cache;
  const auto opts = at::TensorOptions().dtype(impl_->dtype()).device(impl_->options.device);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    cache.keys.push_back(at::zeros({batch, c.num_key_value_heads, capacity, c.head_dim}, opts));
    cache.values.push_back(at::zeros({batch, c.num_key_value_heads, capacity, c.head_dim}, opts));
  }
  cache.lengths = at::zeros({batch}, opts.dtype(at::kLong));
  cache.host_lengths.assign(static_cast<size_t>(batch), 0);
  cache.capacity = capacity;
  return cache;
}

at::Tensor Qwen2Model::prefill(const at::Tensor& input_ids, const at::Tensor& lengths, KvCache& cache) {
  at::Tensor ids = impl_->ids_on_device(input_ids, 2);
  const int64_t B = ids.size(0), S = ids.size(1);
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == B, "qwen2: prefill lengths must be [", B, "]");
  TORCH_CHECK(S <= cache.capacity && static_cast<int64_t>(cache.keys.size()) == impl_->config.num_hidden_layers &&
                  cache.keys[0].size(0) == B,
              "qwen2: prefill of [", B, ", ", S, "] does not fit a cache of ", cache.keys.empty() ? 0 : cache.keys[0].size(0),
              " rows x ", cache.capacity, " positions");
  const at::Tensor host = lengths.to(at::kCPU, at::kLong).contiguous();
  cache.host_lengths.assign(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + B);
  for (int64_t len : cache.host_lengths) TORCH_CHECK(len >= 1 && len <= S, "qwen2: prefill length ", len, " not in [1, ", S, "]");
  cache.lengths = host.to(impl_->options.device);

  AttentionPlan plan;
  plan.mode = AttentionPlan::Mode::kPrefill;
  plan.cache = &cache;
  const at::Tensor positions = at::arange(S, at::TensorOptions().dtype(at::kLong).device(ids.device()));
  std::tie(plan.cos, plan.sin) = impl_->rope(positions.unsqueeze(0));
  const at::Tensor hidden = impl_->run(ids, plan, /*training=*/false);
  const at::Tensor rows = at::arange(B, at::TensorOptions().dtype(at::kLong).device(ids.device()));
  return hidden.index({rows, cache.lengths - 1});
}

at::Tensor Qwen2Model::decode(const at::Tensor& next_ids, KvCache& cache) {
  at::Tensor ids = impl_->ids_on_device(next_ids, 1);
  const int64_t B = ids.size(0);
  TORCH_CHECK(static_cast<int64_t>(cache.host_lengths.size()) == B, "qwen2: decode of ", B, " rows on a cache of ",
              cache.host_lengths.size());
  int64_t longest = 0;
  for (int64_t len : cache.host_lengths) longest = std::max(longest, len);
  TORCH_CHECK(longest < cache.capacity, "qwen2: the KV cache is full (", cache.capacity, " positions)");

  AttentionPlan plan;
  plan.mode = AttentionPlan::Mode::kDecode;
  plan.cache = &cache;
  plan.positions = cache.lengths;
  plan.key_len = longest + 1;
  const at::Tensor key_index = at::arange(plan.key_len, at::TensorOptions().dtype(at::kLong).device(ids.device()));
  plan.key_mask = (key_index.unsqueeze(0) <= cache.lengths.unsqueeze(1)).view({B, 1, 1, plan.key_len});
  std::tie(plan.cos, plan.sin) = impl_->rope(cache.lengths.unsqueeze(1));
  const at::Tensor hidden = impl_->run(ids.unsqueeze(1), plan, /*training=*/false);
  cache.lengths = cache.lengths + 1;
  for (auto& len : cache.host_lengths) ++len;
  return hidden.select(1, 0);
}

}  // namespace loft
