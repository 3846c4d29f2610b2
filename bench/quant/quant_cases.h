// The quantizer variants bench/quant compares (created through the plugin registry, as a run creates them), the
// linear shapes of the 1.5B model, and the checks every case passes before anything is timed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loft/framework/plugin_registry.h"
#include "loft/options.h"
#include "loft/quantizer.h"

namespace loft::bench {

// How a variant's dequantization error is bounded: exactly (the dense reference), per row of W (int8 absmax),
// per block of `blocksize` consecutive elements of W flattened row-major (4-bit absmax), or against max|W|.
enum class ErrorModel { kExact, kRowAbsmax, kBlockAbsmax, kWholeAbsmax };

struct Variant {
  std::string label;                           // "bf16", "int8-dequant", ... : what the tables print
  std::string plugin;                          // quantizer plugin name in the registry
  std::map<std::string, OptionValue> options;  // set on top of the manifest's defaults
  ErrorModel error_model = ErrorModel::kWholeAbsmax;
  double max_error = 0;         // bound on max |deq - W| / absmax of the element's row, block or W
  double rms_error = 0;         // bound on ||deq - W|| / ||W||
  double output_tolerance = 0;  // bound on ||y - x deq^T|| / ||x deq^T|| and the same for dx
};

// A variant whose plugin is installed, with its quantizer made.
struct QuantizerUnderTest {
  Variant variant;
  int64_t blocksize = 64;  // the plugin's `blocksize` option where it has one
  std::unique_ptr<Quantizer> quantizer;
};

struct LinearShape {
  std::string name;  // "q_proj/o_proj"
  int64_t out_features = 0;
  int64_t in_features = 0;
  int64_t per_layer = 0;  // how many linears of this shape one decoder layer holds
};

// The linears of DeepSeek-R1-Distill-Qwen-1.5B (hidden 1536, intermediate 8960, 2 KV heads of 128), or small
// stand-ins with the same roles for CPU checks (in_features still a multiple of 64, the 4-bit block).
std::vector<LinearShape> linear_shapes(bool small);

// bf16 (quantizer/none), int8 with matmul = dequant and = int8, nf4, fp4 (quantizer/nf4 with quant_type = fp4),
// then every other quantizer the registry knows with its defaults and a loose generic bound.
std::vector<Variant> known_variants(const std::vector<std::string>& registry_names);

// Makes each variant whose plugin is installed and declares the options it sets; prints a note for each one
// skipped. `only` (labels or plugin names) keeps a subset when not empty. A plugin that is installed but fails to
// create is an error, appended to `errors`.
std::vector<QuantizerUnderTest> make_quantizers(PluginRegistry& registry, const HostContext& ctx,
                                                const std::vector<std::string>& only,
                                                std::vector<std::string>* errors);

struct Validation {
  bool ok = true;
  std::string message;  // why it failed (empty when ok)
  double max_error = 0, rms_error = 0, output_error = 0, grad_error = 0;
  int64_t storage_bytes = 0;
  int64_t state_bytes = 0;  // sum of state() tensors' bytes: storage_bytes should equal it
};

// Checks one quantized weight: dequantize() against the original `weight` (as the variant bounds it),
// forward(x) against x·deq(W)ᵀ in fp32, and d(forward)/dx against dy·deq(W) in fp32.
Validation validate(const QuantizerUnderTest& q, const QuantizedLinear& stored, const at::Tensor& weight,
                    const at::Tensor& x);

// An exception's message without the C++ backtrace c10::Error appends.
std::string error_text(const std::exception& e);

// "1.23 MB" style, decimal units.
std::string format_bytes(double bytes);

// Comma-separated list -> items ("" -> {}).
std::vector<std::string> split_list(const std::string& text);

}  // namespace loft::bench
