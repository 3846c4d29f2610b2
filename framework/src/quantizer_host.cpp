// The host's [quantizer] keys: skip lists (matching, diagnostics, dense storage) and the quantized-weight cache (key,
// file format with checksums, the builder that serves model construction from it).
#include "loft/framework/files.h"
#include "loft/error_message.h"
#include "loft/framework/quantizer_host.h"

#include "loft/dense_linear.h"
#include "loft/module_pattern.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <regex>

#include <ATen/ops/linear.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "loft/framework/safetensors.h"
#include "suggest.h"

namespace fs = std::filesystem;

namespace loft {

namespace {

constexpr const char* kCacheFormat = "loft quantized-weight cache 1";
constexpr const char* kLinearNames[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

std::string mib(int64_t bytes) { return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1024.0 * 1024.0)); }

// The entry as a ModulePattern, or nothing with the regex error in *error.
std::optional<ModulePattern> compile_entry(const std::string& entry, std::string* error) {
  try {
    return ModulePattern(entry);
  } catch (const std::invalid_argument& e) {
    *error = e.what();
    return std::nullopt;
  }
}

// "model.layers.N." in an entry with N past the last layer: the likely mistake, said plainly.
std::string layer_hint(const std::string& entry, int64_t layers) {
  static const std::regex kLayer(R"((?:^|\.)layers\.(\d+)(?:\.|$))");
  std::smatch m;
  if (!std::regex_search(entry, m, kLayer)) return "";
  const std::string digits = m[1].str();
  if (digits.size() > 9 || std::stoll(digits) < layers) return "";
  return fmt::format("; the model has {} layers (0-{})", layers, layers - 1);
}

uint64_t hash_string(const std::string& s) { return xxh64(s.data(), s.size()); }

// Bytes of a CPU tensor as stored (contiguous copy when needed).
uint64_t hash_tensor(const at::Tensor& t) {
  const at::Tensor c = t.device().is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
  return xxh64(c.data_ptr(), c.nbytes());
}

// Up to `size` bytes at `offset`; fewer at the end of the file.
std::string read_at(std::ifstream& in, uint64_t offset, uint64_t size) {
  std::string bytes(size, '\0');
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  bytes.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return bytes;
}

}  // namespace

uint64_t xxh64(const void* data, std::size_t size_bytes, uint64_t seed) {
  return static_cast<uint64_t>(XXH64(data, size_bytes, static_cast<XXH64_hash_t>(seed)));
}

// ---- skip ----

bool skip_entry_matches(const std::string& entry, const std::string& module) {
  std::string error;
  const auto pattern = compile_entry(entry, &error);
  return pattern && pattern->matches(module);
}

std::vector<std::string> skippable_module_names(const Qwen2Config& config) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const char* linear : kLinearNames) names.push_back(fmt::format("model.layers.{}.{}", i, linear));
  }
  names.push_back("lm_head");
  return names;
}

SkipResolution resolve_quantizer_skip(const std::vector<std::string>& entries, const Qwen2Config& config) {
  SkipResolution out;
  const std::vector<std::string> names = skippable_module_names(config);
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& entry = entries[i];
    std::string error;
    const auto pattern = compile_entry(entry, &error);
    if (!pattern) {
      out.problems.emplace_back(i, fmt::format("quantizer.skip entry \"{}\" is not a valid regex ({}); after \"re:\" "
                                               "write an ECMAScript regex matched against the whole module name",
                                               entry, error));
      continue;
    }
    bool any = false;
    for (const auto& name : names) {
      if (!pattern->matches(name)) continue;
      any = true;
      if (name != "lm_head") out.sites.insert(name);
    }
    if (any) continue;
    const int64_t last = config.num_hidden_layers - 1;
    const std::string layers = fmt::format("model.layers.<0-{}>.self_attn.{{q,k,v,o}}_proj, "
                                           "model.layers.<0-{}>.mlp.{{gate,up,down}}_proj and lm_head", last, last);
    if (pattern->is_regex()) {
      out.problems.emplace_back(i, fmt::format("quantizer.skip entry \"{}\" matches no module of the model; the regex "
                                               "must match a whole name: {}", entry, layers));
      continue;
    }
    std::vector<std::string> candidates = names;
    for (const char* linear : kLinearNames) {
      candidates.push_back(linear);
      const std::string s(linear);
      candidates.push_back(s.substr(s.find('.') + 1));
    }
    out.problems.emplace_back(
        i, fmt::format("quantizer.skip entry \"{}\" names no module of the model{}{}; write a full name, a dotted suffix "
                       "(\"down_proj\", \"mlp.down_proj\") or \"re:<regex>\" of {}",
                       entry, did_you_mean(entry, candidates), layer_hint(entry, config.num_hidden_layers), layers));
  }
  return out;
}

std::vector<Diagnostic> check_quantizer_skip(const Recipe& recipe) {
  auto q = recipe.sections.find("quantizer");
  auto m = recipe.sections.find("model");
  if (q == recipe.sections.end() || m == recipe.sections.end()) return {};
  auto skip = q->second.entries.find("skip");
  auto path = m->second.entries.find("path");
  if (skip == q->second.entries.end() || path == m->second.entries.end()) return {};
  const auto* entries = std::get_if<std::vector<std::string>>(&skip->second.value);
  const auto* model_path = std::get_if<std::string>(&path->second.value);
  if (entries == nullptr || entries->empty() || model_path == nullptr || model_path->empty()) return {};
  fs::path model_dir = *model_path;
  if (model_dir.is_relative()) model_dir = (fs::absolute(recipe.path).parent_path() / model_dir).lexically_normal();
  const RecipeEntry& e = skip->second;
  auto where = [&](size_t index) { return index < e.item_where.size() ? e.item_where[index] : e.where; };
  std::vector<Diagnostic> out;
  StatusOr<Qwen2Config> config = Status::NotFound("");
  if (fs::is_regular_file(model_dir / "config.json")) config = read_qwen2_config(model_dir / "config.json");
  if (!config.ok()) {
    // Without the model only the regexes can be checked.
    for (size_t i = 0; i < entries->size(); ++i) {
      std::string error;
      if (!compile_entry((*entries)[i], &error)) {
        out.push_back({where(i), fmt::format("quantizer.skip entry \"{}\" is not a valid regex ({}); after \"re:\" write "
                                             "an ECMAScript regex", (*entries)[i], error)});
      }
    }
    return out;
  }
  for (const auto& [index, message] : resolve_quantizer_skip(*entries, config.value()).problems) {
    out.push_back({where(index), fmt::format("{} ({})", message, (model_dir / "config.json").string())});
  }
  return out;
}

std::unique_ptr<QuantizedLinear> make_dense_frozen_linear(const at::Tensor& weight, c10::ScalarType dtype) {
  TORCH_CHECK(weight.dim() == 2, "quantizer.skip: a linear weight must be 2-D [out, in], got ", weight.sizes());
  return std::make_unique<DenseLinear>(weight.detach().to(dtype).contiguous());
}

bool is_dense_frozen_linear(const QuantizedLinear* linear) {
  return dynamic_cast<const DenseLinear*>(linear) != nullptr;
}

// ---- cache key ----

StatusOr<std::string> checkpoint_fingerprint(const fs::path& model_dir) {
  nlohmann::ordered_json j;
  {
    std::ifstream in(model_dir / "config.json", std::ios::binary);
    if (!in) return Status::NotFound(fmt::format("{}: cannot read config.json", model_dir.string()));
    std::string text((std::istreambuf_iterator<char>(in)), {});
    j["config.json"] = hex64(hash_string(text));
  }
  std::vector<std::string> names;
  if (!fs::is_directory(model_dir)) {
    return Status::IoError(fmt::format("{}: cannot list the folder (not a readable folder)", model_dir.string()));
  }
  for (const auto& entry : fs::list_directory(model_dir)) {
    const std::string name = entry.filename().string();
    if (ends_with(name, ".safetensors") || name == "model.safetensors.index.json") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  j["files"] = nlohmann::ordered_json::array();
  for (const auto& name : names) {
    const fs::path file = model_dir / name;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return Status::IoError(fmt::format("{}: cannot stat: {}", file.string(), std::strerror(errno)));
    std::ifstream in(file, std::ios::binary);
    if (!in) return Status::IoError(fmt::format("{}: cannot open", file.string()));
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    std::string header = read_at(in, 0, 8);
    if (header.size() == 8 && ends_with(name, ".safetensors")) {
      uint64_t n = 0;
      std::memcpy(&n, header.data(), 8);
      header += read_at(in, 8, std::min<uint64_t>(n, uint64_t{100} << 20));
    }
    std::string samples;
    constexpr uint64_t kSample = 4096, kSamples = 16;
    for (uint64_t i = 0; i < kSamples && size > 0; ++i) {
      const uint64_t offset = size > kSample ? i * (size - kSample) / (kSamples - 1) : 0;
      samples += read_at(in, offset, kSample);
    }
    nlohmann::ordered_json f;
    f["name"] = name;
    f["size"] = size;
    f["mtime_ns"] = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    f["header"] = hex64(hash_string(header));
    f["samples"] = hex64(hash_string(samples));
    j["files"].push_back(std::move(f));
  }
  return j.dump();
}

std::string plugin_build_identity(const PluginManifest& manifest) {
  struct stat st {};
  std::string id = fmt::format("{} {} {}", manifest.qualified_name(), manifest.version,
                               manifest.library_path.filename().string());
  if (::stat(manifest.library_path.c_str(), &st) == 0) {
    id += fmt::format(" size {} mtime_ns {}", static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
  }
  return id;
}

QuantizedCacheKey make_quantized_cache_key(const QuantizedCacheInputs& inputs) {
  nlohmann::ordered_json j;
  j["format"] = kCacheFormat;
  j["quantizer"] = inputs.quantizer;
  j["options"] = inputs.options;
  j["dtype"] = inputs.dtype;
  j["device_type"] = inputs.device_type;
  std::vector<std::string> skipped = inputs.skipped_sites;
  std::sort(skipped.begin(), skipped.end());
  j["skipped_sites"] = skipped;
  try {
    j["checkpoint"] = nlohmann::ordered_json::parse(inputs.checkpoint);
  } catch (const nlohmann::json::exception&) {
    j["checkpoint"] = inputs.checkpoint;
  }
  QuantizedCacheKey key;
  key.description = j.dump();
  key.digest = hex64(hash_string(key.description));
  return key;
}

fs::path quantized_cache_file(const fs::path& cache_dir, const fs::path& model_dir, const std::string& quantizer_name,
                              const QuantizedCacheKey& key) {
  fs::path folder = model_dir.lexically_normal();
  std::string model = folder.filename().string();
  if (model.empty()) model = folder.parent_path().filename().string();
  if (model.empty()) model = "model";
  return cache_dir / fmt::format("{}.{}.{}.safetensors", model, quantizer_name, key.digest);
}

// ---- cache file ----

Status write_quantized_cache(const fs::path& file, const QuantizedCacheKey& key,
                             const std::vector<std::pair<std::string, const QuantizedLinear*>>& sites) {
  if (auto st = fs::create_directories(file.parent_path()); !st.ok()) return st;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  nlohmann::ordered_json site_list = nlohmann::ordered_json::array();
  nlohmann::ordered_json checksums = nlohmann::ordered_json::object();
  try {
    for (const auto& [site, linear] : sites) {
      site_list.push_back(site);
      for (const auto& [name, tensor] : linear->state()) {
        const std::string full = site + "." + name;
        const at::Tensor t = tensor.detach();
        checksums[full] = hex64(hash_tensor(t));
        tensors.emplace_back(full, t);
      }
    }
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("{}: reading the quantized states failed: {}", file.string(), error_message(e)));
  }
  std::map<std::string, std::string> metadata{{"loft.format", kCacheFormat},
                                              {"loft.key", key.description},
                                              {"loft.sites", site_list.dump()},
                                              {"loft.checksums", checksums.dump()}};
  return write_safetensors(file, tensors, metadata);
}

StatusOr<QuantizedStates> read_quantized_cache(const fs::path& file, const QuantizedCacheKey& key,
                                               const std::set<std::string>& sites) {
  auto opened = SafetensorsFile::open(file);
  if (!opened.ok()) return opened.status();
  const SafetensorsFile& f = *opened.value();
  const auto& meta = f.metadata();
  auto field = [&](const char* name) -> const std::string* {
    auto it = meta.find(name);
    return it == meta.end() ? nullptr : &it->second;
  };
  const std::string* format = field("loft.format");
  if (format == nullptr || *format != kCacheFormat) {
    return Status::InvalidArgument(fmt::format("not a \"{}\" file (its loft.format is {})", kCacheFormat,
                                               format ? "\"" + *format + "\"" : std::string("missing")));
  }
  const std::string* written_key = field("loft.key");
  if (written_key == nullptr || *written_key != key.description) {
    return Status::InvalidArgument("written for another checkpoint, quantizer build, options, dtype, device or skip "
                                   "list (its loft.key differs from this run's)");
  }
  std::set<std::string> written_sites;
  nlohmann::json checksums;
  try {
    const std::string* list = field("loft.sites");
    const std::string* sums = field("loft.checksums");
    if (list == nullptr || sums == nullptr) return Status::InvalidArgument("loft.sites or loft.checksums is missing");
    for (const auto& s : nlohmann::json::parse(*list)) written_sites.insert(s.get<std::string>());
    checksums = nlohmann::json::parse(*sums);
    if (!checksums.is_object()) return Status::InvalidArgument("loft.checksums is not an object");
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(fmt::format("unreadable metadata: {}", e.what()));
  }
  if (written_sites != sites) {
    for (const auto& s : sites) {
      if (!written_sites.count(s)) return Status::InvalidArgument(fmt::format("site {} is missing", s));
    }
    for (const auto& s : written_sites) {
      if (!sites.count(s)) return Status::InvalidArgument(fmt::format("site {} is not a quantized site of this run", s));
    }
  }
  if (checksums.size() != f.tensors().size()) {
    return Status::InvalidArgument(fmt::format("{} checksums for {} tensors", checksums.size(), f.tensors().size()));
  }
  QuantizedStates out;
  for (const auto& s : sites) out[s];
  for (const TensorInfo& info : f.tensors()) {
    auto sum = checksums.find(info.name);
    if (sum == checksums.end() || !sum->is_string()) {
      return Status::InvalidArgument(fmt::format("tensor {} has no checksum", info.name));
    }
    at::Tensor t = f.tensor(info.name);
    if (hex64(hash_tensor(t)) != sum->get<std::string>()) {
      return Status::InvalidArgument(fmt::format("tensor {} fails its checksum: the file is corrupt", info.name));
    }
    bool placed = false;
    for (size_t dot = info.name.rfind('.'); dot != std::string::npos && dot > 0; dot = info.name.rfind('.', dot - 1)) {
      const std::string site = info.name.substr(0, dot);
      if (sites.count(site)) {
        out[site][info.name.substr(dot + 1)] = t;
        placed = true;
        break;
      }
    }
    if (!placed) return Status::InvalidArgument(fmt::format("tensor {} belongs to no quantized site", info.name));
  }
  return out;
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
