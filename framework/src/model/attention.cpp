// Attention kernels: which SDPA backend runs, chosen explicitly on CUDA (2.11 prefers cuDNN on sm90, which has open
// NaN/corruption bugs with masks and few KV heads: notes/libtorch-facts.md §2) and logged once.
#include "attention.h"

#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/_flash_attention_forward.h>
#include <ATen/ops/_fused_sdp_choice.h>
#include <ATen/ops/repeat_interleave.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

namespace loft::model {
namespace {

// Enables exactly one SDPA backend for its lifetime, then restores the user's flags (what Python's
// torch.nn.attention.sdpa_kernel does). The flags are process state; the model is driven by one thread.
class OnlyBackend {
 public:
  explicit OnlyBackend(AttentionBackend backend) {
    auto& ctx = at::globalContext();
    flash_ = ctx.userEnabledFlashSDP();
    efficient_ = ctx.userEnabledMemEfficientSDP();
    math_ = ctx.userEnabledMathSDP();
    cudnn_ = ctx.userEnabledCuDNNSDP();
    ctx.setSDPUseFlash(backend == AttentionBackend::kFlash);
    ctx.setSDPUseMemEfficient(backend == AttentionBackend::kEfficient);
    ctx.setSDPUseMath(backend == AttentionBackend::kMath);
    ctx.setSDPUseCuDNN(backend == AttentionBackend::kCudnn);
  }
  ~OnlyBackend() {
    auto& ctx = at::globalContext();
    ctx.setSDPUseFlash(flash_);
    ctx.setSDPUseMemEfficient(efficient_);
    ctx.setSDPUseMath(math_);
    ctx.setSDPUseCuDNN(cudnn_);
  }
  OnlyBackend(const OnlyBackend&) = delete;
  OnlyBackend& operator=(const OnlyBackend&) = delete;

 private:
  bool flash_, efficient_, math_, cudnn_;
};

// The SDPBackend number _fused_sdp_choice reports for each of ours.
int64_t sdp_index(AttentionBackend backend) {
  switch (backend) {
    case AttentionBackend::kMath: return static_cast<int64_t>(at::SDPBackend::math);
    case AttentionBackend::kFlash: return static_cast<int64_t>(at::SDPBackend::flash_attention);
    case AttentionBackend::kEfficient: return static_cast<int64_t>(at::SDPBackend::efficient_attention);
    case AttentionBackend::kCudnn: return static_cast<int64_t>(at::SDPBackend::cudnn_attention);
    case AttentionBackend::kAuto: break;
  }
  return -1;
}

const char* sdp_name(int64_t index) {
  switch (index) {
    case 0: return "math";
    case 1: return "flash";
    case 2: return "efficient";
    case 3: return "cudnn";
    default: return "other";
  }
}

// The memory-efficient kernel has no GQA: give it K/V repeated to every query head (HF's repeat_kv).
bool needs_expanded_kv(AttentionBackend backend) { return backend == AttentionBackend::kEfficient; }

at::Tensor expand_kv(const at::Tensor& kv, int64_t groups) {
  return groups == 1 ? kv : at::repeat_interleave(kv, groups, /*dim=*/1);
}

}  // namespace

AttentionBackend Attention::resolve(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  if (resolved_) return *resolved_;
  const int64_t groups = q.size(1) / k.size(1);
  std::vector<AttentionBackend> candidates;
  if (requested_ != AttentionBackend::kAuto) {
    candidates = {requested_};
  } else {
    const bool half = q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16;
    if (half) candidates.push_back(AttentionBackend::kFlash);
    candidates.push_back(AttentionBackend::kEfficient);
    candidates.push_back(AttentionBackend::kMath);
  }
  std::string rejected;
  for (AttentionBackend candidate : candidates) {
    try {
      OnlyBackend only(candidate);
      const bool expand = needs_expanded_kv(candidate) && groups > 1;
      const int64_t choice = at::_fused_sdp_choice(q, expand ? expand_kv(k, groups) : k, expand ? expand_kv(v, groups) : v,
                                                   {}, 0.0, /*is_causal=*/true, scale, /*enable_gqa=*/!expand && groups > 1);
      if (choice == sdp_index(candidate)) {
        resolved_ = candidate;
        break;
      }
      rejected += fmt::format(" {} (dispatcher chose {});", attention_backend_name(candidate), sdp_name(choice));
    } catch (const c10::Error&) {
      rejected += fmt::format(" {} (not available for these inputs);", attention_backend_name(candidate));
    }
  }
  TORCH_CHECK(resolved_.has_value(), "attention: no usable scaled_dot_product_attention kernel on ", q.device(),
              " for dtype ", q.scalar_type(), ", head_dim ", q.size(-1), ":", rejected,
              " choose another [model] attention backend");
  description_ = fmt::format("{} ({}, {}{})", attention_backend_name(*resolved_), q.device().str(),
                             c10::toString(q.scalar_type()),
                             needs_expanded_kv(*resolved_) && groups > 1 ? ", K/V expanded to all heads" : "");
  if (log_ != nullptr) {
    log_->info("attention: causal pass on {}; cached decoding on math with a key mask{}", description_,
               rejected.empty() ? "" : fmt::format("; passed over:{}", rejected));
  }
  return *resolved_;
}

at::Tensor Attention::causal(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const int64_t groups = q.size(1) / k.size(1);
  if (q.device().is_cpu() && requested_ == AttentionBackend::kAuto) {
    // CPU: the dispatcher's own choice (its flash CPU kernel or math) is correct and well tested.
    if (description_.empty()) {
      const int64_t choice = at::_fused_sdp_choice(q, k, v, {}, 0.0, true, scale, groups > 1);
      description_ = fmt::format("{} (cpu, {})", sdp_name(choice), c10::toString(q.scalar_type()));
      if (log_ != nullptr) log_->info("attention: causal pass on {}", description_);
    }
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, scale, /*enable_gqa=*/groups > 1);
  }
  const AttentionBackend backend = resolve(q, k, v, scale);
  OnlyBackend only(backend);
  if (needs_expanded_kv(backend) && groups > 1) {
    return at::scaled_dot_product_attention(q, expand_kv(k, groups), expand_kv(v, groups), {}, 0.0, true, scale, false);
  }
  return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, scale, /*enable_gqa=*/groups > 1);
}

bool Attention::packed_needs_mask(c10::ScalarType dtype, c10::Device device) const {
  const bool half = dtype == at::kHalf || dtype == at::kBFloat16;
  const bool flash_allowed = requested_ == AttentionBackend::kAuto || requested_ == AttentionBackend::kFlash;
  return !(device.is_cuda() && half && flash_allowed);
}

at::Tensor Attention::packed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                             int64_t max_seqlen, const at::Tensor& mask, double scale) {
  const int64_t B = q.size(0), Hq = q.size(1), S = q.size(2), D = q.size(3), Hkv = k.size(1);
  if (!packed_needs_mask(q.scalar_type(), q.device())) {
    if (packed_description_.empty()) {
      packed_description_ = fmt::format("flash varlen ({}, {})", q.device().str(), c10::toString(q.scalar_type()));
      if (log_ != nullptr) log_->info("attention: packed rows on {}", packed_description_);
    }
    // [B, H, S, D] -> [B*S, H, D]: the varlen kernel takes every row's tokens as one stream split at cu_seqlens.
    auto tokens = [&](const at::Tensor& t, int64_t heads) { return t.transpose(1, 2).reshape({B * S, heads, D}); };
    auto out = std::get<0>(at::_flash_attention_forward(tokens(q, Hq), tokens(k, Hkv), tokens(v, Hkv), cu_seqlens,
                                                        cu_seqlens, max_seqlen, max_seqlen, 0.0, /*is_causal=*/true,
                                                        /*return_debug_mask=*/false, scale));
    return out.view({B, S, Hq, D}).transpose(1, 2);
  }
  TORCH_CHECK(mask.defined(), "attention: packed rows need a mask off the flash path");
  const int64_t groups = Hq / Hkv;
  if (q.device().is_cpu()) {
    return at::scaled_dot_product_attention(q, k, v, mask, 0.0, /*is_causal=*/false, scale, groups > 1);
  }
  // CUDA fp32 (or a backend other than flash requested): the efficient kernel takes a mask but no GQA.
  OnlyBackend only(AttentionBackend::kEfficient);
  return at::scaled_dot_product_attention(q, expand_kv(k, groups), expand_kv(v, groups), mask, 0.0, false, scale, false);
}

at::Tensor Attention::masked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                             double scale) {
  const bool gqa = q.size(1) != k.size(1);
  if (q.device().is_cpu()) {
    return at::scaled_dot_product_attention(q, k, v, key_mask, 0.0, /*is_causal=*/false, scale, gqa);
  }
  OnlyBackend only(AttentionBackend::kMath);
  return at::scaled_dot_product_attention(q, k, v, key_mask, 0.0, /*is_causal=*/false, scale, gqa);
}

}  // namespace loft::model
