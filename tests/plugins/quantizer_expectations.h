// What the quantizer conformance tests (CPU and GPU) expect of each quantizer plugin: its dequantize error bound and
// the option sets to run. A discovered quantizer without an entry fails the tests, so a new plugin must state its bound.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "loft/options.h"

namespace loft::conformance {

struct QuantizerVariant {
  std::map<std::string, OptionValue> options;  // over the manifest defaults
  // forward(x) against x · dequantize()ᵀ: 0 means equal up to float32 GEMM rounding (the forward is that product);
  // otherwise the largest |difference| relative to max |x · dequantize()ᵀ| (forwards that quantize activations).
  double forward_rel_error = 0.0;
};

struct QuantizerExpectation {
  // max |dequantize() - W| / max |W| for a float32 W ~ N(0, 1) of [48, 64] (+ a zero row and outliers).
  double dequant_rel_error = 0.0;
  std::vector<QuantizerVariant> variants;
};

// Bounds from each format's worst case, not from a measurement:
// - none: the weight itself.
// - int8: per-row absmax, 127 levels: 0.5/127 = 0.0039 of the row's absmax, plus the float16 cast bitsandbytes
//   applies first (2^-11 relative): <= 0.0045 of max |W|. matmul = "int8" also rounds activations to 127 levels per
//   token (and keeps columns with |x| >= 6 exact): a few percent of the output's scale.
// - nf4: blocks of 64, 16 levels; the widest gap between NF4 levels is 1 - 0.7230 = 0.277, so half of it, 0.139 of
//   the block's absmax, plus the 8-bit double quantization of the absmax (< 1%): 0.15 of max |W|.
inline const std::map<std::string, QuantizerExpectation>& quantizer_expectations() {
  static const std::map<std::string, QuantizerExpectation> table = {
      {"none", {0.0, {{{}, 0.0}}}},
      {"int8", {0.0045, {{{}, 0.0}, {{{"matmul", std::string("int8")}}, 0.03}}}},
      {"nf4", {0.15, {{{}, 0.0}}}},
  };
  return table;
}

}  // namespace loft::conformance
