// The quantized-weight cache file (quantizer.cache_dir): its key (checkpoint, plugin build, options, dtype, device,
// skip list), the file format with one XXH64 checksum per tensor, and reading it back with every check.
#include "loft/framework/quantizer_host.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "loft/error_message.h"
#include "loft/framework/files.h"
#include "loft/framework/safetensors.h"

namespace loft {

namespace {

constexpr const char* kCacheFormat = "loft quantized-weight cache 1";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

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

}  // namespace loft
