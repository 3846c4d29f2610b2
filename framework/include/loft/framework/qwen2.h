// The Qwen2 decoder in LibTorch (RMSNorm, RoPE, GQA attention with q/k/v bias, SwiGLU MLP, tied or untied
// embeddings), built from a Hugging Face config.json alone. The host owns the model; the quantizer (frozen linears),
// the PEFT method (adapters, trainable tensors) and the offload strategy (residency, block execution) are injected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "loft/framework/causal_lm.h"
#include "loft/log.h"
#include "loft/offload.h"
#include "loft/peft.h"
#include "loft/quantizer.h"
#include "loft/status.h"

namespace loft {

// The fields of a Hugging Face Qwen2 config.json that define the network. Plain data.
struct Qwen2Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA: each group of num_attention_heads / num_key_value_heads shares K and V
  int64_t head_dim = 0;             // hidden_size / num_attention_heads unless config.json says otherwise
  int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;  // top-level "rope_theta" or transformers 5.x "rope_parameters": {"rope_theta": ...}
  bool tie_word_embeddings = false;
  double initializer_range = 0.02;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // "eos_token_id" may be a number or a list
  std::string torch_dtype;             // as written ("bfloat16"); informative only

  // Invariants (positive sizes, heads divide evenly, even head_dim). The error names `source` and the field.
  Status validate(const std::string& source = "config") const;
};

// Reads and validates a Qwen2 config.json. Errors are one line naming the file and the field: missing, wrong type,
// inconsistent head dimensions, or what loft lacks (a layer that slides by transformers' rule, RoPE scaling, ...).
StatusOr<Qwen2Config> read_qwen2_config(const std::filesystem::path& config_json);
// The same from JSON text; `source` names it in errors.
StatusOr<Qwen2Config> parse_qwen2_config(const std::string& json_text, const std::string& source);

// Builds the frozen storage of one linear weight [out, in] (the quantizer's `quantize`). `weight` arrives in the
// checkpoint's dtype on the model's device; `site` is the module name ("model.layers.0.mlp.up_proj").
using LinearMaker = std::function<std::unique_ptr<QuantizedLinear>(const at::Tensor& weight, const std::string& site)>;
// Storage for a linear site built without its weight (quantized states saved by an earlier run), or null to read the
// weight and call the LinearMaker. Asked before the weight is read, so a hit never touches the checkpoint's bytes.
using StoredLinear =
    std::function<std::unique_ptr<QuantizedLinear>(const std::string& site, int64_t out_features, int64_t in_features)>;

// Which scaled_dot_product_attention kernel runs the causal (training and prefill) attention.
// kAuto: on CPU the dispatcher's choice; on CUDA flash (fp16/bf16, sm80+), else memory-efficient with K/V expanded
// to all heads (it has no GQA), else math. cuDNN only when asked for (open NaN bugs, see notes/libtorch-facts.md §2).
enum class AttentionBackend { kAuto, kMath, kFlash, kEfficient, kCudnn };
const char* attention_backend_name(AttentionBackend backend);

struct ModelOptions {
  c10::ScalarType dtype = c10::ScalarType::Float;  // activations and frozen non-linear tensors
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  LinearMaker make_linear;               // required
  StoredLinear stored_linear;            // optional; Qwen2Model::load only (random weights are drawn in order)
  PeftMethod* peft = nullptr;            // optional; must outlive the model
  OffloadStrategy* offload = nullptr;    // optional; must outlive the model. Null: blocks run in place
  AttentionBackend attention = AttentionBackend::kAuto;
  const LogSink* log = nullptr;          // optional; must outlive the model. Receives the attention backend choice
};

// Key/value cache for generation, one entry per layer: keys/values [B, num_key_value_heads, capacity, head_dim]
// after RoPE. Row b holds lengths[b] valid positions; entries past that are stale and masked out.
struct KvCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
  at::Tensor lengths;                 // [B] int64 on the model's device
  std::vector<int64_t> host_lengths;  // the same on the host
  int64_t capacity = 0;
};

// A Qwen2ForCausalLM. Parameter and site names follow Hugging Face ("model.layers.3.self_attn.q_proj").
// Not thread-safe: one thread drives forward/backward/generation.
class Qwen2Model final : public CausalLM {
 public:
  // Reads `hf_folder`/config.json and its safetensors (one file or a sharded index); every shape is checked against
  // the config first (the error names tensor, shapes, file). As transformers 5.x: a tied config with a different
  // lm_head.weight in the file loads untied (config() says so); unused tensors are ignored; each warns via options.log.
  static StatusOr<std::unique_ptr<Qwen2Model>> load(const std::filesystem::path& hf_folder, const ModelOptions& options);
  // The same with `config` already read from `hf_folder`/config.json (a run reads that file once).
  static StatusOr<std::unique_ptr<Qwen2Model>> load(const std::filesystem::path& hf_folder, const Qwen2Config& config,
                                                    const ModelOptions& options);
  // Random init like transformers' _init_weights (linear and embedding weights ~ N(0, initializer_range), biases 0,
  // norms 1, the pad_token_id row 0), drawn in fp32 on the CPU from `seed`: the same on CPU and CUDA (not torch's).
  static StatusOr<std::unique_ptr<Qwen2Model>> create_random(const Qwen2Config& config, uint64_t seed,
                                                             const ModelOptions& options);
  ~Qwen2Model() override;
  Qwen2Model(const Qwen2Model&) = delete;
  Qwen2Model& operator=(const Qwen2Model&) = delete;

  const Qwen2Config& config() const;
  c10::Device device() const;
  c10::ScalarType dtype() const;

  // Final-norm hidden states [B, S, hidden] in the compute dtype for right-padded input_ids [B, S] (int64, any
  // device). Attention is causal with no mask: real tokens never see the padding after them, so `lengths` ([B] or
  // undefined) is only checked, never used; outputs at padded positions are meaningless.
  at::Tensor hidden_states(const at::Tensor& input_ids, const at::Tensor& lengths, bool training) override;
  at::Tensor packed_hidden_states(const at::Tensor& input_ids, const at::Tensor& position_ids,
                                  const at::Tensor& cu_seqlens, int64_t max_seqlen, bool training) override;
  // [vocab, hidden] in the compute dtype: the embedding when tied. Differentiable when it trains.
  at::Tensor lm_head_weight() override;
  // fp32 logits [B, S, vocab] (evaluation and tests; training uses the chunked loss on hidden_states).
  at::Tensor logits(const at::Tensor& input_ids, const at::Tensor& lengths = {}, bool training = false);
  // Adapter tensors ("<site>.<name>", e.g. "model.layers.0.self_attn.q_proj.lora_A.weight") and the non-linear
  // parameters the PEFT method chose ("model.norm.weight"): fp32, requires_grad.
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() override;

  // Every linear site of the decoder, in layer order (q, k, v, o, gate, up, down).
  std::vector<const LinearSite*> linear_sites() const;
  // The sites that carry an adapter, with it (what PEFT saving iterates).
  std::vector<std::pair<const LinearSite*, Adapter*>> adapters() const;
  // Names of the parameters outside linear sites (embeddings, norms, untied lm_head), as offered to the PEFT method.
  std::vector<std::string> non_linear_parameter_names() const;

  // The dense network with adapters merged, Hugging Face key names, CPU contiguous tensors of `dtype` (what
  // `loft merge` writes). lm_head.weight is left out when tied.
  std::vector<std::pair<std::string, at::Tensor>> state_dict(c10::ScalarType dtype) const;

  // The kernel the causal attention last ran with, e.g. "flash (cuda, bf16)"; empty before the first forward.
  std::string attention_backend() const;

  // ---- incremental decoding (generation.h drives these) ----
  // An empty cache for `batch` rows of up to `capacity` positions.
  KvCache new_cache(int64_t batch, int64_t capacity) const;
  // Runs right-padded prompts [B, S] (lengths [B], S <= capacity) into an empty cache, causal and unmasked as in
  // training. Returns the final hidden state of each row's last real token [B, hidden]; cache lengths become `lengths`.
  at::Tensor prefill(const at::Tensor& input_ids, const at::Tensor& lengths, KvCache& cache);
  // One token per row ([B] int64) at position cache.lengths[b]; returns its final hidden state [B, hidden] and
  // advances every row by one. Attention over the cache uses a key mask (rows differ in length).
  at::Tensor decode(const at::Tensor& next_ids, KvCache& cache);

  struct Impl;

 private:
  explicit Qwen2Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace loft
