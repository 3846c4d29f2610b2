// Quantizer variants, shapes and pre-timing validation shared by bench/quant's two executables.
#include "quant_cases.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

namespace loft::bench {

std::vector<LinearShape> linear_shapes(bool small) {
  if (small) return {{"q_proj/o_proj", 96, 96, 2}, {"k_proj/v_proj", 32, 96, 2}, {"gate_proj/up_proj", 192, 96, 2},
                     {"down_proj", 96, 192, 1}};
  return {{"q_proj/o_proj", 1536, 1536, 2}, {"k_proj/v_proj", 256, 1536, 2}, {"gate_proj/up_proj", 8960, 1536, 2},
          {"down_proj", 1536, 8960, 1}};
}

std::vector<Variant> known_variants(const std::vector<std::string>& registry_names) {
  // Bounds: int8 absmax rounds to the nearest of 127 steps per row (max error half a step; one step allowed for
  // a dequantize that rounds through bf16); NF4/FP4 levels leave at most 0.139/0.167 of a block's absmax between
  // neighbours, measured 0.153/0.167 with bitsandbytes 0.50.2 in bf16 (gaussian weights, relative RMS 0.092/0.122).
  // The int8 matmul also quantizes x per row, so its output is further from x·deq(W)ᵀ.
  std::vector<Variant> v = {
      {"bf16", "none", {}, ErrorModel::kExact, 0.0, 0.0, 1e-2},
      {"int8-dequant", "int8", {{"matmul", std::string("dequant")}}, ErrorModel::kRowAbsmax, 1.0 / 127, 0.015, 1e-2},
      {"int8-int8", "int8", {{"matmul", std::string("int8")}}, ErrorModel::kRowAbsmax, 1.0 / 127, 0.015, 3e-2},
      {"nf4", "nf4", {{"quant_type", std::string("nf4")}}, ErrorModel::kBlockAbsmax, 0.18, 0.11, 1e-2},
      {"fp4", "nf4", {{"quant_type", std::string("fp4")}}, ErrorModel::kBlockAbsmax, 0.20, 0.14, 1e-2},
  };
  for (const auto& name : registry_names) {
    const bool known = std::any_of(v.begin(), v.end(), [&](const Variant& k) { return k.plugin == name; });
    if (!known) v.push_back({name, name, {}, ErrorModel::kWholeAbsmax, 0.25, 0.2, 5e-2});
  }
  return v;
}

namespace {

// `only` names variants by label, or by plugin name where that is not also a label ("int8": both int8 variants;
// "nf4": the nf4 variant only, fp4 being quantizer/nf4 too).
bool wanted(const Variant& v, const std::vector<Variant>& all, const std::vector<std::string>& only) {
  if (only.empty()) return true;
  for (const auto& name : only) {
    if (name == v.label) return true;
    const bool is_label = std::any_of(all.begin(), all.end(), [&](const Variant& o) { return o.label == name; });
    if (!is_label && name == v.plugin) return true;
  }
  return false;
}

void note(const std::string& text) {
  std::printf("note: %s\n", text.c_str());
  std::fflush(stdout);
}

}  // namespace

std::vector<QuantizerUnderTest> make_quantizers(PluginRegistry& registry, const HostContext& ctx,
                                                const std::vector<std::string>& only, std::vector<std::string>* errors) {
  std::vector<QuantizerUnderTest> out;
  auto variants = known_variants(registry.names("quantizer"));
  for (auto& v : variants) {
    if (!wanted(v, variants, only)) continue;
    const PluginManifest* m = registry.find("quantizer", v.plugin);
    if (m == nullptr) {
      note(fmt::format("{} skipped: quantizer/{} is not installed (no plugin.toml for it on the plugin path)", v.label,
                       v.plugin));
      continue;
    }
    std::map<std::string, OptionValue> values;
    for (const auto& spec : m->options) {
      if (spec.default_value) values[spec.name] = *spec.default_value;
    }
    std::string missing;
    for (const auto& [key, value] : v.options) {
      const OptionSpec* spec = find_option(m->options, key);
      if (spec == nullptr) {
        missing = fmt::format("quantizer/{} declares no option '{}'", v.plugin, key);
        break;
      }
      const auto* text = std::get_if<std::string>(&value);
      if (text && !spec->choices.empty() &&
          std::find(spec->choices.begin(), spec->choices.end(), *text) == spec->choices.end()) {
        missing = fmt::format("quantizer/{} option '{}' does not accept \"{}\"", v.plugin, key, *text);
        break;
      }
      values[key] = value;
    }
    if (!missing.empty()) {
      note(fmt::format("{} skipped: {}", v.label, missing));
      continue;
    }
    QuantizerUnderTest q;
    if (auto it = values.find("blocksize"); it != values.end()) {
      if (const auto* b = std::get_if<int64_t>(&it->second)) q.blocksize = *b;
    }
    auto made = registry.create_quantizer(v.plugin, ctx, Options("quantizer", values));
    if (!made.ok()) {
      const std::string e = fmt::format("{}: quantizer/{} could not be created: {}", v.label, v.plugin,
                                        made.status().message());
      std::printf("error: %s\n", e.c_str());
      if (errors) errors->push_back(e);
      continue;
    }
    q.quantizer = std::move(made).value();
    q.variant = v;
    out.push_back(std::move(q));
  }
  return out;
}

std::string error_text(const std::exception& e) {
  // c10::Error's what() carries a C++ backtrace; the first line is the message.
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

namespace {

double rel_norm(const at::Tensor& a, const at::Tensor& ref) {
  const double denom = ref.norm().item<double>();
  return (a - ref).norm().item<double>() / std::max(denom, 1e-30);
}

}  // namespace

Validation validate(const QuantizerUnderTest& q, const QuantizedLinear& stored, const at::Tensor& weight,
                    const at::Tensor& x) {
  Validation v;
  auto fail = [&v](const std::string& message) {
    if (v.ok) v.message = message;
    v.ok = false;
  };
  try {
    const Variant& var = q.variant;
    v.storage_bytes = stored.storage_bytes();
    for (const auto& [name, t] : stored.state()) v.state_bytes += static_cast<int64_t>(t.nbytes());
    if (v.storage_bytes <= 0) fail("storage_bytes() is not positive");
    if (stored.out_features() != weight.size(0) || stored.in_features() != weight.size(1)) {
      fail(fmt::format("out/in features {}x{}, expected {}x{}", stored.out_features(), stored.in_features(),
                       weight.size(0), weight.size(1)));
      return v;
    }
    const at::Tensor w = weight.to(at::kFloat);
    const at::Tensor deq = stored.dequantize(at::kFloat);
    if (deq.sizes() != w.sizes() || deq.scalar_type() != at::kFloat || deq.device() != w.device()) {
      fail(fmt::format("dequantize(float) gave {} {} on {}, expected {} float on {}", c10::toString(deq.scalar_type()),
                       fmt::to_string(fmt::join(deq.sizes(), "x")), deq.device().str(),
                       fmt::to_string(fmt::join(w.sizes(), "x")), w.device().str()));
      return v;
    }
    const at::Tensor err = (deq - w).abs();
    switch (var.error_model) {
      case ErrorModel::kExact:
        v.max_error = err.max().item<double>();
        break;
      case ErrorModel::kRowAbsmax:
        v.max_error = (err / w.abs().amax({1}, true).clamp_min(1e-30)).max().item<double>();
        break;
      case ErrorModel::kBlockAbsmax:
        if (w.numel() % q.blocksize == 0) {
          const auto wb = w.reshape({-1, q.blocksize});
          v.max_error = (err.reshape({-1, q.blocksize}) / wb.abs().amax({1}, true).clamp_min(1e-30)).max().item<double>();
          break;
        }
        [[fallthrough]];
      case ErrorModel::kWholeAbsmax:
        v.max_error = err.max().item<double>() / std::max(w.abs().max().item<double>(), 1e-30);
        break;
    }
    v.rms_error = rel_norm(deq, w);
    if (v.max_error > var.max_error) {
      fail(fmt::format("dequantize() max error {:.4g} of the {} absmax exceeds {:.4g}", v.max_error,
                       var.error_model == ErrorModel::kRowAbsmax     ? "row's"
                       : var.error_model == ErrorModel::kBlockAbsmax ? "block's"
                                                                     : "weight's",
                       var.max_error));
    }
    if (v.rms_error > var.rms_error && var.error_model != ErrorModel::kExact) {
      fail(fmt::format("dequantize() relative RMS error {:.4g} exceeds {:.4g}", v.rms_error, var.rms_error));
    }

    at::Tensor y;
    {
      torch::NoGradGuard no_grad;
      y = stored.forward(x);
    }
    const std::vector<int64_t> want{x.size(0), weight.size(0)};
    if (y.sizes() != c10::IntArrayRef(want) || y.scalar_type() != x.scalar_type()) {
      fail(fmt::format("forward gave {} {}, expected {}x{} {}", c10::toString(y.scalar_type()),
                       fmt::to_string(fmt::join(y.sizes(), "x")), want[0], want[1], c10::toString(x.scalar_type())));
      return v;
    }
    const at::Tensor xf = x.to(at::kFloat);
    v.output_error = rel_norm(y.to(at::kFloat), at::matmul(xf, deq.t()));
    if (!(v.output_error <= var.output_tolerance)) {
      fail(fmt::format("forward differs from x·deq(W)ᵀ in fp32 by {:.4g} (relative norm), tolerance {:.4g}",
                       v.output_error, var.output_tolerance));
    }

    const at::Tensor xg = x.detach().requires_grad_(true);
    const at::Tensor yg = stored.forward(xg);
    const at::Tensor dy = at::randn(yg.sizes(), yg.options().requires_grad(false));
    const at::Tensor dx = torch::autograd::grad({yg}, {xg}, {dy})[0];
    v.grad_error = rel_norm(dx.to(at::kFloat), at::matmul(dy.to(at::kFloat), deq));
    if (!(v.grad_error <= var.output_tolerance)) {
      fail(fmt::format("d forward/dx differs from dy·deq(W) in fp32 by {:.4g} (relative norm), tolerance {:.4g}",
                       v.grad_error, var.output_tolerance));
    }
  } catch (const std::exception& e) {
    fail("threw: " + error_text(e));
  }
  return v;
}

std::string format_bytes(double bytes) {
  if (bytes >= 1e9) return fmt::format("{:.3f} GB", bytes / 1e9);
  if (bytes >= 1e6) return fmt::format("{:.2f} MB", bytes / 1e6);
  if (bytes >= 1e3) return fmt::format("{:.1f} kB", bytes / 1e3);
  return fmt::format("{:.0f} B", bytes);
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace loft::bench
