// What plugins declare about the memory they will use, so `loft plan` can predict a run's peak GPU and host memory
// from config.json and the recipe alone, before any weight is read. Each is an extension (loft/extension.h): a plugin
// that does not answer gets a documented fallback in the planner (and the plan says which terms were estimated).
//
// Every method here is host-side arithmetic: never throws, never blocks, touches no device; thread-safe (const).
// The object answering owns the returned extension object for its own lifetime.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <c10/core/ScalarType.h>

#include "loft/offload.h"
#include "loft/peft.h"

namespace loft {

// ---- quantizer ---------------------------------------------------------------------------------------------------

// Quantizer::extension(kQuantizerMemoryCostId) -> const QuantizerMemoryCost*.
inline constexpr std::string_view kQuantizerMemoryCostId = "loft.quantizer.memory_cost/1";

class QuantizerMemoryCost {
 public:
  virtual ~QuantizerMemoryCost();
  // Bytes of quantize()'s storage for a weight of [out_features, in_features] built for `compute_dtype`: exactly what
  // the resulting QuantizedLinear::storage_bytes() will return.
  virtual int64_t storage_bytes(int64_t out_features, int64_t in_features, c10::ScalarType compute_dtype) const = 0;
  // Bytes of the transient dense weight one forward or backward materialises on the storage's device for such a
  // weight (dequantize-then-GEMM: out * in * element size; 0 when the kernel reads the storage directly).
  virtual int64_t transient_bytes(int64_t out_features, int64_t in_features, c10::ScalarType compute_dtype) const = 0;
};

// ---- peft ----------------------------------------------------------------------------------------------------------

// PeftMethod::extension(kPeftMemoryCostId) -> const PeftMemoryCost*.
inline constexpr std::string_view kPeftMemoryCostId = "loft.peft.memory_cost/1";

class PeftMemoryCost {
 public:
  virtual ~PeftMemoryCost();
  // Trainable elements (all fp32 masters) the adapter attach(site) would create, for a site targets() accepts.
  // `site.base` may be null and `site.bias` undefined: the planner describes a site that is not built (it sets
  // `site_has_bias` instead).
  virtual int64_t trainable_elements(const LinearSite& site, bool site_has_bias) const = 0;
  // Bytes the adapter's forward on `tokens` tokens keeps for backward beyond the site's input (which the base keeps
  // anyway): e.g. LoRA's rank-r intermediate, a dropout mask and the dropped-out input, a weight cast to the compute
  // dtype. Under grad mode, training.
  virtual int64_t saved_bytes(const LinearSite& site, bool site_has_bias, int64_t tokens,
                              c10::ScalarType compute_dtype) const = 0;
};

// ---- optimizer ----------------------------------------------------------------------------------------------------

// Optimizer::extension(kOptimizerMemoryCostId) -> const OptimizerMemoryCost*. Per fp32 trainable element.
inline constexpr std::string_view kOptimizerMemoryCostId = "loft.optimizer.memory_cost/1";

struct OptimizerFootprint {
  double state_device_bytes = 0;     // optimizer state on the tensors' device (adamw: exp_avg + exp_avg_sq = 8)
  double state_host_bytes = 0;       // optimizer state on the host (a host optimizer's moments, copies of the tensor)
  double gradient_device_bytes = 0;  // gradients held on the tensors' device across the step (adamw: 4; 0 when each
                                     // gradient leaves as backward produces it)
  double gradient_host_bytes = 0;    // gradients held on the host (accumulation and staging buffers)
  int64_t state_device_bytes_per_tensor = 0;  // per trainable tensor on its device (adamw's step counter: 4)
};

class OptimizerMemoryCost {
 public:
  virtual ~OptimizerMemoryCost();
  // The footprint when the trainable tensors live on a CUDA device (`tensors_on_cuda`) or on the CPU, with
  // `grad_accum` micro-batches per step.
  virtual OptimizerFootprint footprint(bool tensors_on_cuda, int64_t grad_accum) const = 0;
};

// ---- offload -------------------------------------------------------------------------------------------------------

// OffloadStrategy::extension(kOffloadMemoryPlanId) -> const OffloadMemoryPlan*.
inline constexpr std::string_view kOffloadMemoryPlanId = "loft.offload.memory_plan/1";

// Where a strategy will keep things, predicted from its options before plan() runs. For example a ZeRO-3-style
// strategy with parameters on the host homes every block at kPinnedHost and streams through prefetch + 1 device
// buffers (device_weight_buffers); with activations offloaded it sets saved_inputs_on_host and keeps two inputs on the
// device while prefetching (double-buffered); with recompute every block's execution is kRecompute.
struct OffloadMemoryLayout {
  std::vector<Home> homes;                    // one per unit, as plan(units) will answer
  std::vector<BlockExecution> execution;      // one per decoder block (in index order), as execution(i) will answer
  // Host-homed blocks are streamed: this many reusable run-device buffers, each as large as the largest host-homed
  // block's frozen storage (0 when nothing is streamed).
  int64_t device_weight_buffers = 0;
  // kRecompute blocks' saved inputs go to pinned host memory after their forward and come back before their
  // recompute; at most `device_saved_inputs` of them are on the run device at once then.
  bool saved_inputs_on_host = false;
  int64_t device_saved_inputs = 0;
  // The strategy runs with the optimizer's state and step on the host (it expects a host optimizer such as
  // optimizer/adamw_cpu; the optimizer's own footprint says what that costs).
  bool optimizer_on_host = false;
};

class OffloadMemoryPlan {
 public:
  virtual ~OffloadMemoryPlan();
  // `units` as plan() will get them (ModelUnit::frozen_bytes in the compute dtype before quantization).
  virtual OffloadMemoryLayout layout(const std::vector<ModelUnit>& units) const = 0;
};

}  // namespace loft
