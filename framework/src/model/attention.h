// scaled_dot_product_attention with an explicitly chosen kernel: the causal pass (training, prefill) and the masked
// single-token pass over a KV cache (decoding).
#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "loft/framework/qwen2.h"
#include "loft/log.h"

namespace loft::model {

class Attention {
 public:
  Attention(AttentionBackend requested, const LogSink* log) : requested_(requested), log_(log) {}

  // q [B, Hq, S, D], k/v [B, Hkv, S, D] (Hq a multiple of Hkv): causal, no mask tensor. Right padding is harmless
  // because padding only ever follows the real tokens.
  at::Tensor causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);
  // q [B, Hq, 1, D] against cached k/v [B, Hkv, T, D] with key_mask [B, 1, 1, T] (bool, true = attend). Rows have
  // different lengths, so a mask is unavoidable here; it runs on the math kernel on CUDA (flash takes no mask, the
  // efficient kernel no GQA, and cuDNN has open bugs with explicit masks). One query row per sequence: cheap.
  at::Tensor masked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                    double scale);
  // Packed rows: q [B, Hq, S, D], k/v [B, Hkv, S, D] whose flattened B*S tokens form sequences at cu_seqlens [N+1]
  // int32 (on q's device); causal within each sequence, nothing across. bf16/fp16 on CUDA: flash attention's
  // variable-length kernel (no mask, GQA native). Otherwise SDPA with `mask` [B, 1, S, S] bool, which the caller
  // builds when packed_needs_mask() says so.
  at::Tensor packed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                    int64_t max_seqlen, const at::Tensor& mask, double scale);
  bool packed_needs_mask(c10::ScalarType dtype, c10::Device device) const;
  // The kernel the causal pass uses, e.g. "flash (cuda, BFloat16)"; empty before the first call.
  const std::string& description() const { return description_; }

 private:
  AttentionBackend resolve(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

  AttentionBackend requested_;
  const LogSink* log_;
  std::optional<AttentionBackend> resolved_;  // CUDA: fixed at the first call
  std::string description_;
  std::string packed_description_;
};

}  // namespace loft::model
