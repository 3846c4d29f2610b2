// How model construction gets each frozen linear: dense for skipped sites, from the quantized-weight cache when it
// holds the site, else through the quantizer (and then written to the cache once the model is built).
#include "loft/framework/quantizer_host.h"

#include <stdexcept>

#include <ATen/ops/isfinite.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "loft/dense_linear.h"
#include "loft/error_message.h"
#include "loft/framework/files.h"

namespace loft {

namespace {

std::string mib(int64_t bytes) { return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0)); }

}  // namespace

std::unique_ptr<QuantizedLinear> make_dense_frozen_linear(const at::Tensor& weight, c10::ScalarType dtype) {
  TORCH_CHECK(weight.dim() == 2, "quantizer.skip: a linear weight must be 2-D [out, in], got ", weight.sizes());
  return std::make_unique<DenseLinear>(weight.detach().to(dtype).contiguous());
}

bool is_dense_frozen_linear(const QuantizedLinear* linear) {
  return dynamic_cast<const DenseLinear*>(linear) != nullptr;
}

// ---- builder ----

FrozenLinearBuilder::FrozenLinearBuilder(const Quantizer& quantizer, std::string quantizer_name, c10::ScalarType dtype,
                                         c10::Device device, std::set<std::string> skipped_sites)
    : quantizer_(quantizer),
      quantizer_name_(std::move(quantizer_name)),
      dtype_(dtype),
      device_(device),
      skipped_(std::move(skipped_sites)) {}

void FrozenLinearBuilder::use_cache(const fs::path& file, QuantizedCacheKey key, std::set<std::string> quantized_sites) {
  cache_file_ = file;
  key_ = std::move(key);
  if (!fs::exists(file)) {
    spdlog::info("quantizer cache: no entry for this checkpoint, quantizer and options yet; will write {}", file.string());
    write_cache_ = true;
    return;
  }
  auto states = read_quantized_cache(file, key_, quantized_sites);
  if (!states.ok()) {
    const std::string& why = states.status().message();
    const bool names_file = why.rfind(file.string(), 0) == 0;
    spdlog::warn("quantizer cache unusable ({}{}); quantizing again and rewriting it",
                 names_file ? "" : file.string() + ": ", why);
    write_cache_ = true;
    return;
  }
  cached_ = std::move(states).value();
  spdlog::info("quantizer cache: loading {} quantized layers from {}", cached_.size(), file.string());
}

std::unique_ptr<QuantizedLinear> FrozenLinearBuilder::stored(const std::string& site, int64_t out_features,
                                                             int64_t in_features) {
  auto it = cached_.find(site);
  if (it == cached_.end()) return nullptr;
  const auto start = std::chrono::steady_clock::now();
  std::map<std::string, at::Tensor> state;
  std::unique_ptr<QuantizedLinear> linear;
  std::string why;
  try {
    // Owned device copies: never keep a view into the mapped file.
    for (const auto& [name, t] : it->second) state[name] = t.to(device_, /*non_blocking=*/false, /*copy=*/true);
    linear = quantizer_.load(state, out_features, in_features);
    if (linear == nullptr) {
      why = "load() returned nothing";
    } else if (linear->out_features() != out_features || linear->in_features() != in_features) {
      why = fmt::format("load() built [{}, {}], expected [{}, {}]", linear->out_features(), linear->in_features(),
                        out_features, in_features);
      linear.reset();
    }
  } catch (const c10::Error& e) {
    why = e.what_without_backtrace();
  } catch (const std::exception& e) {
    why = error_message(e);
  }
  cached_.erase(it);
  if (!linear) {
    spdlog::warn("quantizer cache {}: quantizer/{} cannot load {} ({}); quantizing it again and rewriting the file",
                 cache_file_.string(), quantizer_name_, site, why);
    write_cache_ = true;
    return nullptr;
  }
  ++loaded_;
  load_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return linear;
}

std::unique_ptr<QuantizedLinear> FrozenLinearBuilder::make(const at::Tensor& weight, const std::string& site) {
  if (skipped_.count(site)) {
    ++dense_;
    return make_dense_frozen_linear(weight, dtype_);
  }
  // No quantizer sees a non-finite weight: a format may turn NaN or Inf into finite codes (NF4 did), and the model
  // would then silently compute something else. Checked here once, so third-party quantizers are covered too.
  if (!at::isfinite(weight).all().item<bool>()) {
    const int64_t bad = weight.numel() - at::isfinite(weight).sum().item<int64_t>();
    throw std::invalid_argument(fmt::format(
        "{}.weight holds {} non-finite value{} (NaN or Inf), which quantizer/{} cannot store; fix the checkpoint, or "
        "keep this module dense with [quantizer] skip = [\"{}\"]",
        site, bad, bad == 1 ? "" : "s", quantizer_name_, site));
  }
  const auto start = std::chrono::steady_clock::now();
  auto linear = quantizer_.quantize(weight, site);
  ++quantized_;
  quantize_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return linear;
}

void FrozenLinearBuilder::finish(const std::vector<const LinearSite*>& sites) {
  cached_.clear();
  int64_t quantized_bytes = 0, dense_bytes = 0;
  std::vector<std::string> dense_names;
  std::vector<std::pair<std::string, const QuantizedLinear*>> to_save;
  for (const LinearSite* s : sites) {
    if (s->base == nullptr) continue;
    if (skipped_.count(s->name)) {
      dense_bytes += s->base->storage_bytes();
      dense_names.push_back(s->name);
    } else {
      quantized_bytes += s->base->storage_bytes();
      to_save.emplace_back(s->name, s->base);
    }
  }
  std::string dense;
  if (!dense_names.empty()) {
    constexpr size_t kListed = 8;
    std::vector<std::string> listed(dense_names.begin(), dense_names.begin() + std::min(kListed, dense_names.size()));
    dense = fmt::format(" ({}{})", fmt::join(listed, ", "),
                        dense_names.size() > kListed ? fmt::format(", ... {} more", dense_names.size() - kListed) : "");
  }
  spdlog::info("quantizer/{}: {} layers quantized in {:.2f} s, {} loaded from cache in {:.2f} s ({}); {} kept dense by "
               "quantizer.skip{} ({}); lm_head dense",
               quantizer_name_, quantized_, quantize_s_, loaded_, load_s_, mib(quantized_bytes), dense_names.size(),
               dense, mib(dense_bytes));
  if (!write_cache_ || cache_file_.empty()) return;
  const auto start = std::chrono::steady_clock::now();
  if (auto st = write_quantized_cache(cache_file_, key_, to_save); !st.ok()) {
    spdlog::warn("quantizer cache: could not write {}: {} (the run goes on without it)", cache_file_.string(),
                 st.message());
    return;
  }
  spdlog::info("quantizer cache: wrote {} quantized layers ({}) to {} in {:.2f} s", to_save.size(),
               mib(quantized_bytes), cache_file_.string(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace loft
