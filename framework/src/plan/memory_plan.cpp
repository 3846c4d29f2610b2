// The arithmetic of `loft plan`: what each category of memory holds at a training step's peak, term by term from
// what loft's implementation allocates (qwen2_model.cpp's saved tensors, chunked_loss.cpp's chunk, the trainer's
// gradients), and the throughput model --fit ranks configurations with. No device work; deterministic.
#include "loft/framework/memory_plan.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>


namespace loft {

namespace {

int64_t element_size(c10::ScalarType dtype) { return static_cast<int64_t>(c10::elementSize(dtype)); }

// A linear site of block `layer` as Qwen2Model builds it.
struct Site {
  LinearSite site;
  bool bias = false;
};

std::vector<Site> block_sites(const Qwen2Config& c, int64_t layer) {
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  struct Shape { const char* module; const char* name; int64_t out, in; bool bias; };
  const Shape shapes[] = {{"self_attn", "q_proj", q, c.hidden_size, true},
                          {"self_attn", "k_proj", kv, c.hidden_size, true},
                          {"self_attn", "v_proj", kv, c.hidden_size, true},
                          {"self_attn", "o_proj", c.hidden_size, q, false},
                          {"mlp", "gate_proj", c.intermediate_size, c.hidden_size, false},
                          {"mlp", "up_proj", c.intermediate_size, c.hidden_size, false},
                          {"mlp", "down_proj", c.hidden_size, c.intermediate_size, false}};
  std::vector<Site> out;
  for (const Shape& s : shapes) {
    Site site;
    site.site.name = fmt::format("model.layers.{}.{}.{}", layer, s.module, s.name);
    site.site.short_name = s.name;
    site.site.layer_index = layer;
    site.site.out_features = s.out;
    site.site.in_features = s.in;
    site.bias = s.bias;
    out.push_back(std::move(site));
  }
  return out;
}

}  // namespace

std::string format_plan_bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (bytes >= (uint64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (bytes >= 1024) return fmt::format("{:.0f} KiB", b / 1024);
  return fmt::format("{} B", bytes);
}

namespace {

uint64_t u(int64_t v) { return v > 0 ? static_cast<uint64_t>(v) : 0; }
uint64_t u(double v) { return v > 0 ? static_cast<uint64_t>(std::llround(v)) : 0; }

// Bytes per element of config.json's torch_dtype (the checkpoint's weights), 2 when it does not say.
int64_t checkpoint_element_size(const std::string& torch_dtype) {
  if (torch_dtype == "float32") return 4;
  if (torch_dtype == "float64") return 8;
  return 2;
}

}  // namespace

uint64_t MemoryPrediction::term(const std::string& category, bool on_host) const {
  for (const auto& t : on_host ? host : gpu) {
    if (t.category == category) return t.bytes;
  }
  return 0;
}

std::vector<ModelUnit> model_units(const Qwen2Config& c, c10::ScalarType dtype, const std::set<std::string>& trainable) {
  const int64_t e = element_size(dtype);
  auto frozen = [&](const std::string& name, int64_t numel) { return trainable.count(name) ? 0 : numel * e; };
  std::vector<ModelUnit> units;
  units.push_back({UnitKind::kEmbedding, 0, "model.embed_tokens",
                   frozen("model.embed_tokens.weight", c.vocab_size * c.hidden_size)});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    int64_t bytes = frozen(fmt::format("model.layers.{}.input_layernorm.weight", i), c.hidden_size) +
                    frozen(fmt::format("model.layers.{}.post_attention_layernorm.weight", i), c.hidden_size);
    for (const Site& s : block_sites(c, i)) {
      bytes += s.site.out_features * s.site.in_features * e + (s.bias ? s.site.out_features * e : 0);
    }
    units.push_back({UnitKind::kBlock, i, fmt::format("model.layers.{}", i), bytes});
  }
  units.push_back({UnitKind::kFinalNorm, 0, "model.norm", frozen("model.norm.weight", c.hidden_size)});
  if (!c.tie_word_embeddings) {
    units.push_back({UnitKind::kLmHead, 0, "lm_head", frozen("lm_head.weight", c.vocab_size * c.hidden_size)});
  }
  return units;
}

MemoryPrediction predict_memory(const PlanSetup& setup) {
  const auto units = model_units(setup.config, setup.dtype, setup.trainable_params);
  if (setup.offload != nullptr) return predict_memory(setup, units, setup.offload->layout(units));
  OffloadMemoryLayout resident;
  resident.homes.assign(units.size(), Home::kRunDevice);
  resident.execution.assign(static_cast<size_t>(setup.config.num_hidden_layers), BlockExecution::kPlain);
  PlanSetup noted = setup;
  noted.notes.push_back("the offload plugin declares no memory plan (loft.offload.memory_plan/1): assumed "
                        "everything resident, no recompute");
  return predict_memory(noted, units, resident);
}

MemoryPrediction predict_memory(const PlanSetup& s, const std::vector<ModelUnit>& units,
                                const OffloadMemoryLayout& layout) {
  const Qwen2Config& c = s.config;
  const int64_t e = element_size(s.dtype);
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t Hq = c.num_attention_heads, Dq = c.num_attention_heads * c.head_dim;
  const int64_t Dkv = c.num_key_value_heads * c.head_dim;
  MemoryPrediction p;
  p.device = s.cuda ? "cuda" : "cpu";
  p.notes = s.notes;
  TORCH_CHECK(layout.homes.size() == units.size(), "loft plan: the offload plan gave ", layout.homes.size(),
              " homes for ", units.size(), " units");
  TORCH_CHECK(static_cast<int64_t>(layout.execution.size()) == L, "loft plan: the offload plan gave ",
              layout.execution.size(), " block executions for ", L, " blocks");

  // ---- tokens of one micro-batch (the worst case: every example at max_length) ----
  int64_t rows = s.batch_size, row_tokens = s.max_length;
  if (s.pack_length > 0) {
    const int64_t per_row = std::max<int64_t>(1, s.pack_length / s.max_length);
    rows = (s.batch_size + per_row - 1) / per_row;
    row_tokens = s.pack_length;
  }
  const int64_t T = rows * row_tokens, T_loss = rows * (row_tokens - 1);
  p.tokens_per_micro_batch = T;

  // ---- frozen storage per unit, after quantization ----
  std::vector<int64_t> storage(units.size(), 0);
  int64_t max_transient = 0;
  bool quantizer_noted = false;
  for (size_t u_i = 0; u_i < units.size(); ++u_i) {
    const ModelUnit& unit = units[u_i];
    if (unit.kind != UnitKind::kBlock) {
      storage[u_i] = unit.frozen_bytes;  // embedding, norms, lm_head: dense in the compute dtype
      continue;
    }
    const int64_t i = unit.index;
    int64_t bytes = 0;
    for (const char* norm : {"input_layernorm", "post_attention_layernorm"}) {
      if (!s.trainable_params.count(fmt::format("model.layers.{}.{}.weight", i, norm))) bytes += H * e;
    }
    for (const Site& site : block_sites(c, i)) {
      const int64_t out = site.site.out_features, in = site.site.in_features;
      if (site.bias) bytes += out * e;
      if (s.dense_sites.count(site.site.name) || s.quantizer == nullptr) {
        bytes += out * in * e;
        if (s.quantizer == nullptr && !quantizer_noted && !s.dense_sites.count(site.site.name)) {
          p.notes.push_back("the quantizer declares no storage cost (loft.quantizer.memory_cost/1): linears "
                            "counted dense in the compute dtype");
          quantizer_noted = true;
        }
      } else {
        bytes += s.quantizer->storage_bytes(out, in, s.dtype);
        max_transient = std::max(max_transient, s.quantizer->transient_bytes(out, in, s.dtype));
      }
    }
    storage[u_i] = bytes;
  }
  int64_t device_weights = 0, host_weights = 0, largest_host_block = 0;
  for (size_t u_i = 0; u_i < units.size(); ++u_i) {
    if (layout.homes[u_i] == Home::kRunDevice) {
      device_weights += storage[u_i];
    } else {
      host_weights += storage[u_i];
      if (units[u_i].kind == UnitKind::kBlock) largest_host_block = std::max(largest_host_block, storage[u_i]);
    }
  }
  const int64_t stream_buffers = layout.device_weight_buffers * largest_host_block;

  // ---- trainable tensors (fp32 masters) ----
  int64_t trainable = 0, tensors = 0;
  std::vector<int64_t> block_trainable(static_cast<size_t>(L), 0);  // per block: its adapters' elements
  if (s.peft != nullptr) {
    for (int64_t i = 0; i < L; ++i) {
      for (const Site& site : block_sites(c, i)) {
        if (!s.peft->targets(site.site)) continue;
        tensors += 2;
        if (s.peft_cost == nullptr) continue;
        const int64_t n = s.peft_cost->trainable_elements(site.site, site.bias);
        trainable += n;
        block_trainable[static_cast<size_t>(i)] += n;
      }
    }
    if (s.peft_cost == nullptr && tensors > 0) {
      p.notes.push_back("the PEFT method declares no memory cost (loft.peft.memory_cost/1): its adapters are not "
                        "counted");
    }
  }
  for (const auto& name : s.trainable_params) {
    tensors += 1;
    if (name == "model.embed_tokens.weight" || name == "lm_head.weight") {
      trainable += V * H;
    } else {
      trainable += H;  // norm weights
    }
  }
  OptimizerFootprint opt;
  if (s.optimizer != nullptr) {
    opt = s.optimizer->footprint(s.cuda, s.grad_accum);
  } else {
    opt.state_device_bytes = 8;
    opt.gradient_device_bytes = 4;
    opt.state_device_bytes_per_tensor = 4;
    p.notes.push_back("the optimizer declares no footprint (loft.optimizer.memory_cost/1): counted as adamw");
  }

  if (layout.optimizer_on_host && (opt.state_device_bytes > 0 || opt.gradient_device_bytes > 0)) {
    p.notes.push_back("the offload strategy expects the optimizer on the host, but the recipe's optimizer keeps state "
                      "or gradients on the run device: use [optimizer] type = \"adamw_cpu\"");
  }

  // ---- activations kept for backward, per block (qwen2_model.cpp block_forward, attention.cpp) ----
  // Autograd keeps an input of an op only when the gradient of another input that requires grad needs it: a frozen
  // norm weight or linear weight does not keep the tensor it multiplies. Per RMSNorm: ATen's fused kernel (CUDA, half
  // types) keeps x and an fp32 rstd; the unfused one keeps x (in fp32: a copy for half types) and rstd, and the
  // normalised product only when the norm's weight trains.
  const bool fused_norm = s.cuda && e == 2;
  auto norm_kept = [&](bool weight_trains) -> int64_t {
    int64_t bytes = 4;
    if (!fused_norm && e != 4) bytes += H * 4;
    if (weight_trains) bytes += fused_norm ? 0 : H * e;
    return bytes;
  };
  int64_t attention_kept = (Dq + 2 * Dkv + Dq) * e + Hq * 4;  // q, k, v after RoPE, the output, fp32 logsumexp
  if (s.cuda && e == 4 && Dkv != Dq) attention_kept = (Dq + 2 * Dq + Dq) * e + Hq * 4;  // efficient: K/V expanded
  // Always: x, the residual, gate, silu(gate), up (the nonlinearity and the product need them) and the attention.
  const int64_t per_token = e * (2 * H + 3 * I) + attention_kept;
  const int64_t block_input = T * H * e;
  std::vector<int64_t> full(static_cast<size_t>(L), 0);  // what each block keeps when it runs plainly
  int64_t recomputed = 0;
  for (int64_t i = 0; i < L; ++i) {
    int64_t block = T * per_token;
    for (const char* norm : {"input_layernorm", "post_attention_layernorm"}) {
      block += T * norm_kept(s.trainable_params.count(fmt::format("model.layers.{}.{}.weight", i, norm)) != 0);
    }
    // A linear's input is kept when its adapter trains on it: the norm outputs (q/k/v, gate/up) and silu(gate) * up
    // (down); o_proj's input is the attention output, kept anyway.
    bool qkv = false, gate_up = false, down = false;
    if (s.peft != nullptr) {
      for (const Site& site : block_sites(c, i)) {
        if (!s.peft->targets(site.site)) continue;
        const std::string& n = site.site.short_name;
        qkv = qkv || n == "q_proj" || n == "k_proj" || n == "v_proj";
        gate_up = gate_up || n == "gate_proj" || n == "up_proj";
        down = down || n == "down_proj";
        if (s.peft_cost != nullptr) block += s.peft_cost->saved_bytes(site.site, site.bias, T, s.dtype);
      }
    }
    block += T * e * ((qkv ? H : 0) + (gate_up ? H : 0) + (down ? I : 0));
    full[static_cast<size_t>(i)] = block;
    if (layout.execution[static_cast<size_t>(i)] == BlockExecution::kRecompute) ++recomputed;
  }
  p.recomputed_blocks = recomputed;
  const int64_t inputs_on_host = layout.saved_inputs_on_host ? recomputed : 0;
  // Packed rows off the flash path carry a [rows, 1, S, S] bool mask.
  const bool packed_mask = s.pack_length > 0 && !(s.cuda && e == 2);
  const int64_t mask = packed_mask ? rows * row_tokens * row_tokens : 0;
  // Kept through backward by the training loop: the final norm's output and, for rows > 1, the shifted copy; the
  // final norm keeps the last block's output and its rstd until its own backward. RoPE's cos and sin for the pass.
  const int64_t held = T * H * e + (rows > 1 ? T_loss * H * e : 0) + mask + 2 * row_tokens * c.head_dim * e;
  const int64_t final_norm = T * H * e + T * norm_kept(s.trainable_params.count("model.norm.weight") != 0);
  // What blocks below `j` keep (a recomputed block its input; with inputs on the host at most device_saved_inputs of
  // those on the device).
  auto kept_below = [&](int64_t j) {
    int64_t bytes = 0, inputs = 0;
    for (int64_t i = 0; i < j; ++i) {
      if (layout.execution[static_cast<size_t>(i)] == BlockExecution::kRecompute) {
        ++inputs;
      } else {
        bytes += full[static_cast<size_t>(i)];
      }
    }
    if (layout.saved_inputs_on_host) inputs = std::min(inputs, layout.device_saved_inputs);
    return bytes + inputs * block_input;
  };
  const int64_t activations_start = kept_below(L) + final_norm + held;
  // ---- the chunked loss (chunked_loss.cpp) ----
  const bool head_trains = s.trainable_params.count(c.tie_word_embeddings ? "model.embed_tokens.weight"
                                                                          : "lm_head.weight") != 0;
  const int64_t chunk_rows = std::min<int64_t>(std::max<int64_t>(1, kPlanLossChunkBytes / (V * 4)), T_loss);
  const int64_t chunk = chunk_rows * V * (4 + (e == 4 ? 0 : e));
  const int64_t backward_transient = T_loss * H * (4 + (e == 4 ? 0 : e));
  const int64_t loss_transient = std::max(chunk, backward_transient);
  const int64_t loss_chunk = T_loss * H * 4 + (head_trains ? V * H * (4 + (e == 4 ? 0 : e)) : 0) + loss_transient;

  // ---- workspace: one block's backward (MLP gradients, a dequantized weight), cuBLAS ----
  const int64_t workspace_alone = T * (3 * I + 2 * H) * e + max_transient;
  const int64_t cublas = s.cuda ? int64_t(kPlanCublasWorkspaceBytes) : 0;

  // ---- the peak: the start of backward, or the backward of block j (descending), whichever holds more ----
  // At the start: every block's kept tensors, the loss, and workspace beyond the loss's freed temporaries. In block
  // j's backward: the blocks below keep theirs, block j is whole (recomputed if it was), the loss is done, the
  // gradients of the blocks from j up exist (all of them with accumulation: earlier micro-batches'), and the
  // workspace. The categories reported are those of the moment with the larger total.
  const double grad_bytes = s.optimizer != nullptr ? opt.gradient_device_bytes : 4.0;
  const int64_t gradients_all = static_cast<int64_t>(static_cast<double>(trainable) * grad_bytes);
  int64_t block_gradients_all = 0;
  for (int64_t n : block_trainable) block_gradients_all += static_cast<int64_t>(static_cast<double>(n) * grad_bytes);
  const int64_t other_gradients = gradients_all - block_gradients_all;  // embedding, norms, lm_head
  int64_t peak_activations = activations_start, peak_loss = loss_chunk;
  int64_t peak_workspace = std::max<int64_t>(0, workspace_alone - loss_transient);
  int64_t peak_gradients = s.grad_accum > 1 ? gradients_all : 0;
  int64_t best = peak_activations + peak_loss + peak_workspace + peak_gradients;
  int64_t grads_above = 0;
  for (int64_t j = L - 1; j >= 0; --j) {
    grads_above += static_cast<int64_t>(static_cast<double>(block_trainable[static_cast<size_t>(j)]) * grad_bytes);
    const int64_t acts = kept_below(j) + full[static_cast<size_t>(j)] + held;
    const int64_t grads = s.grad_accum > 1 ? gradients_all : other_gradients + grads_above;
    if (acts + grads + workspace_alone > best) {
      best = acts + grads + workspace_alone;
      peak_activations = acts;
      peak_loss = 0;
      peak_workspace = workspace_alone;
      peak_gradients = grads;
    }
  }

  const double elems = static_cast<double>(trainable);
  p.trainable_elements = trainable;
  auto add = [](std::vector<MemoryTerm>& v, const char* category, uint64_t bytes, std::string detail) {
    v.push_back({category, bytes, std::move(detail)});
  };
  add(p.gpu, "context", s.cuda ? kPlanCudaContextBytes : 0, s.cuda ? "CUDA context and library handles (estimate)"
                                                                     : "none on the CPU");
  add(p.gpu, "weights", u(device_weights + stream_buffers),
      stream_buffers > 0 ? fmt::format("resident units + {} streaming buffer(s) of {}", layout.device_weight_buffers,
                                       format_plan_bytes(u(largest_host_block)))
                         : "frozen weights of the resident units, as the quantizer stores them");
  add(p.gpu, "adapters", u(trainable * 4), fmt::format("{} trainable elements, fp32 masters", trainable));
  add(p.gpu, "gradients", u(peak_gradients),
      grad_bytes == 0    ? "none kept: each leaves for the host"
      : s.grad_accum > 1 ? "fp32 .grad, accumulated over the step"
                         : "fp32 .grad produced by the peak (one micro-batch per step)");
  add(p.gpu, "optimizer", u(elems * opt.state_device_bytes) + u(tensors * opt.state_device_bytes_per_tensor),
      opt.state_device_bytes > 0 ? "optimizer state beside the tensors" : "none: state on the host");
  add(p.gpu, "activations", u(peak_activations),
      fmt::format("{} tokens x {} blocks ({} recomputed{}), at the {}", T, L, recomputed,
                  inputs_on_host ? ", their inputs on the host" : "",
                  peak_loss > 0 ? "start of backward" : "peak inside backward"));
  add(p.gpu, "loss chunk", u(peak_loss), fmt::format("fp32 logits of {} rows + the hidden gradient", chunk_rows));
  add(p.gpu, "workspace", u(peak_workspace + cublas), "one block's backward temporaries, dequantized weight, cuBLAS");
  for (const auto& t : p.gpu) p.gpu_total_bytes += t.bytes;

  const uint64_t runtime = s.cuda ? kPlanHostRuntimeCudaBytes : kPlanHostRuntimeCpuBytes;
  int64_t data = 0;
  if (s.dataset_examples >= 0) {
    data = s.dataset_examples * s.max_length * (4 + 8) + s.grad_accum * T * 8 * 3;
  } else {
    p.notes.push_back("the dataset could not be opened: data not counted");
  }
  add(p.host, "weights", u(host_weights), "offloaded units in pinned arenas");
  add(p.host, "optimizer", u(elems * (opt.state_host_bytes + opt.gradient_host_bytes)),
      "host optimizer state and gradient buffers");
  add(p.host, "activations", u(inputs_on_host * block_input), "offloaded block inputs");
  add(p.host, "data", u(data), "tokenized examples (at most max_length each) and the step's micro-batches");
  add(p.host, "other", runtime, "libraries and runtime (estimate)");
  uint64_t host_train = 0;
  for (const auto& t : p.host) host_train += t.bytes;
  if (!s.cuda) host_train += p.gpu_total_bytes;
  // Loading: the checkpoint's pages are mapped while units are built (the reader is dropped afterwards).
  int64_t checkpoint = 0;
  if (s.pretrained) {
    int64_t numel = 0;
    for (const auto& unit : model_units(c, c10::kByte, {})) numel += unit.frozen_bytes;
    checkpoint = numel * checkpoint_element_size(c.torch_dtype);
  }
  p.host_load_bytes = runtime + u(checkpoint + host_weights) +
                      (s.cuda ? 0 : u(device_weights + trainable * 4));
  p.host_total_bytes = std::max(host_train, p.host_load_bytes);
  return p;
}

double predict_tokens_per_second(const PlanSetup& s, const OffloadMemoryLayout& layout, const MemoryPrediction& m) {
  // Constants of the model (README): a scale only; ratios between configurations are what --fit uses.
  const double peak_flops = s.cuda ? 400e12 : 100e9;
  const double half_busy_tokens = s.cuda ? 1024 : 1;   // micro-batch tokens at which the device is half efficient
  const double link_bytes_per_s = s.cuda ? 25e9 : 10e9;  // PCIe (pinned) / memcpy
  const double overlap_cost = 0.05;                    // a copy beside a GEMM slows it by ~5%
  const double launch_s_per_block = 2e-4;
  const Qwen2Config& c = s.config;
  const double L = static_cast<double>(c.num_hidden_layers);
  double block_params = 0;
  for (const auto& site : block_sites(c, 0)) {
    block_params += static_cast<double>(site.site.out_features * site.site.in_features);
  }
  const double T = static_cast<double>(m.tokens_per_micro_batch);
  const double attention = 6.0 * static_cast<double>(s.max_length) * static_cast<double>(c.num_attention_heads * c.head_dim);
  const double rc = static_cast<double>(m.recomputed_blocks);
  const double flops = T * (6.0 * (L * block_params + static_cast<double>(c.vocab_size * c.hidden_size)) + L * attention) +
                       T * rc * (2.0 * block_params + attention / 3.0);
  const double compute_s = flops / (peak_flops * T / (T + half_busy_tokens));
  const double streamed = 2.0 * static_cast<double>(m.term("weights", true)) +
                          2.0 * static_cast<double>(m.term("activations", true));
  (void)layout;
  const double transfer_s = streamed / link_bytes_per_s;
  const double exposed_s = std::max(0.0, transfer_s - compute_s) + overlap_cost * std::min(transfer_s, compute_s);
  const double micro_s = compute_s + exposed_s + launch_s_per_block * L;
  // A host AdamW step: ~0.25 ns per element (18.5M LoRA elements in 4.6 ms on the H200 host); a device step is ~free.
  const double host_optimizer_s = m.term("optimizer", true) > 0 ? static_cast<double>(m.trainable_elements) * 0.25e-9 : 0;
  const double step_s = static_cast<double>(s.grad_accum) * micro_s + host_optimizer_s;
  return static_cast<double>(s.grad_accum * s.batch_size * s.max_length) / step_s;
}

std::string format_prediction(const MemoryPrediction& p, uint64_t gpu_budget, uint64_t host_budget) {
  std::string out;
  auto table = [&](const std::string& title, const std::vector<MemoryTerm>& terms, uint64_t total, uint64_t budget,
                   const std::string& extra) {
    out += title + "\n";
    for (const auto& t : terms) out += fmt::format("  {:<12} {:>11}  {}\n", t.category, format_plan_bytes(t.bytes), t.detail);
    std::string verdict;
    if (budget > 0) verdict = fmt::format("  budget {}: {}", format_plan_bytes(budget), total <= budget ? "fits" : "OVER");
    out += fmt::format("  {:<12} {:>11}{}{}\n", "total", format_plan_bytes(total), verdict, extra);
  };
  if (p.device == "cuda") {
    table("GPU (run device)", p.gpu, p.gpu_total_bytes, gpu_budget, "");
  } else {
    table("CPU (run device: these bytes are host memory)", p.gpu, p.gpu_total_bytes, 0, "");
  }
  table(p.device == "cuda" ? "host" : "host (run device included in the total)", p.host, p.host_total_bytes,
        host_budget, fmt::format("  (while loading: {})", format_plan_bytes(p.host_load_bytes)));
  for (const auto& n : p.notes) out += "note: " + n + "\n";
  return out;
}

std::string prediction_json(const MemoryPrediction& p, uint64_t gpu_budget, uint64_t host_budget,
                            double tokens_per_second) {
  nlohmann::ordered_json j;
  j["device"] = p.device;
  j["tokens_per_micro_batch"] = p.tokens_per_micro_batch;
  j["recomputed_blocks"] = p.recomputed_blocks;
  auto side = [](const std::vector<MemoryTerm>& terms, uint64_t total, uint64_t budget) {
    nlohmann::ordered_json s;
    nlohmann::ordered_json categories = nlohmann::ordered_json::object();
    for (const auto& t : terms) categories[t.category] = t.bytes;
    s["categories_bytes"] = categories;
    s["total_bytes"] = total;
    s["budget_bytes"] = budget;
    s["fits"] = budget == 0 || total <= budget;
    return s;
  };
  j["gpu"] = side(p.gpu, p.gpu_total_bytes, p.device == "cuda" ? gpu_budget : 0);
  j["host"] = side(p.host, p.host_total_bytes, host_budget);
  j["host"]["load_bytes"] = p.host_load_bytes;
  j["predicted_tokens_per_s"] = tokens_per_second;
  j["notes"] = p.notes;
  return j.dump(2);
}

}  // namespace loft
