// Plugin discovery and loading (Boost.DLL), with the ABI handshake and build-fingerprint check.
#include "loft/framework/files.h"
#include "loft/error_message.h"
#include "loft/framework/plugin_registry.h"

#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>
#include <set>

#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <dlfcn.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "loft/abi.h"
#include "loft/fingerprint.h"
#include "plugin/plugin_checks.h"
#include "recipe/suggest.h"

namespace fs = std::filesystem;

namespace loft {

// Factories by kind. A load registers into a fresh staging Factories; the registry's own tables take its entries
// only once every check passed, so nothing of a refused plugin (whose library is then unloaded) stays behind.
struct PluginRegistry::Factories : Registrar {
  std::map<std::string, std::map<std::string, ErasedFactory>> by_kind;  // kind -> name -> factory
  std::vector<std::string> added;  // "kind/name" in registration order
  std::map<std::string, std::string> owner;  // "kind/name" -> "plugin kind/name (library file)" that registered it

  void add_erased(const char* kind, const std::string& name, ErasedFactory f) override {
    by_kind[kind][name] = std::move(f);
    added.push_back(std::string(kind) + "/" + name);
  }

  // One line per name of `staged` this registry already has ("quantizer/x, already registered by ... (file)"),
  // and per name `staged` registered twice.
  std::vector<std::string> clashes_with(const Factories& staged) const {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (const auto& q : staged.added) {
      if (auto it = owner.find(q); it != owner.end()) {
        out.push_back(fmt::format("{}, already registered by {}", q, it->second));
      } else if (!seen.insert(q).second) {
        out.push_back(fmt::format("{} twice", q));
      }
    }
    return out;
  }
  void take(Factories&& staged, const std::string& plugin) {
    for (const auto& q : staged.added) owner.emplace(q, plugin);
    for (auto& [kind, table] : staged.by_kind) {
      for (auto& e : table) by_kind[kind].emplace(e.first, std::move(e.second));
    }
  }
};

namespace {

// Loaded plugin libraries, deliberately never destroyed (see the class comment).
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}

// Compute capabilities (major, minor) of every visible CUDA device, queried once per process; empty without a
// driver or device. The first query initialises the CUDA driver (no context), only for plugins with CUDA code.
const std::vector<std::pair<int, int>>& visible_gpu_capabilities() {
  static const std::vector<std::pair<int, int>> capabilities = [] {
    std::vector<std::pair<int, int>> out;
    const int n = c10::cuda::device_count();  // noexcept: 0 without a driver or device
    for (int i = 0; i < n; ++i) {
      int major = 0, minor = 0;
      if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, i) != cudaSuccess ||
          cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, i) != cudaSuccess) {
        (void)cudaGetLastError();
        continue;
      }
      out.emplace_back(major, minor);
    }
    return out;
  }();
  return capabilities;
}

// "kind/name" as a manifest that read_manifest refused states it, when it states both: so that a recipe naming
// that plugin learns why it is missing.
std::optional<std::string> claimed_name(const fs::path& manifest_path) {
  try {
    const toml::table root = toml::parse_file(manifest_path.string());
    const auto kind = root["kind"].value<std::string>();
    const auto name = root["name"].value<std::string>();
    if (kind && name) return *kind + "/" + *name;
  } catch (const toml::parse_error&) {
  }
  return std::nullopt;
}

}  // namespace

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& extra) {
  std::vector<fs::path> dirs(extra.begin(), extra.end());
  if (const char* env = std::getenv("LOFT_PLUGIN_PATH")) {
    std::string s(env);
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) dirs.emplace_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  // libloft_framework.so sits in lib/; the built-in plugins in lib/loft/plugins.
  fs::path self = boost::dll::this_line_location().parent_path().string();
  dirs.push_back(self / "loft" / "plugins");
  return dirs;
}

PluginRegistry::PluginRegistry() : factories_(std::make_unique<Factories>()) {}
PluginRegistry::~PluginRegistry() = default;

void PluginRegistry::discover(const std::vector<fs::path>& folders) {
  std::set<fs::path> seen;
  for (const auto& folder : folders) {
    for (const auto& file : fs::find_files_named(folder, "plugin.toml")) {
      const fs::path canonical = fs::weakly_canonical(file);
      if (!seen.insert(canonical).second) continue;  // the same folder reached twice
      auto manifest = read_manifest(canonical);
      if (!manifest.ok()) {
        problems_.push_back(manifest.status().message());
        if (auto claimed = claimed_name(canonical)) refused_.emplace(*claimed, manifest.status().message());
        continue;
      }
      auto& paths = duplicates_[manifest.value().qualified_name()];
      paths.push_back(canonical);
      if (paths.size() > 1) {
        problems_.push_back(fmt::format("plugin {} is defined twice: {} and {}", manifest.value().qualified_name(),
                                        paths.front().string(), canonical.string()));
        continue;
      }
      manifests_.push_back(std::move(manifest).value());
    }
  }
}

const PluginManifest* PluginRegistry::find(const std::string& kind, const std::string& name) const {
  for (const auto& m : manifests_) {
    if (m.kind == kind && m.name == name) return &m;
  }
  return nullptr;
}

Status PluginRegistry::check_usable(const std::string& kind, const std::string& name) const {
  const std::string qualified = kind + "/" + name;
  if (auto it = duplicates_.find(qualified); it != duplicates_.end() && it->second.size() > 1) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {} is defined by more than one manifest: {} and {}; remove one or rename it in its plugin.toml",
        qualified, it->second[0].string(), it->second[1].string()));
  }
  if (auto it = refused_.find(qualified); it != refused_.end() && find(kind, name) == nullptr) {
    return Status::FailedPrecondition(fmt::format("plugin {} cannot be used: {}", qualified, it->second));
  }
  return Status::Ok();
}

std::vector<std::string> PluginRegistry::names(const std::string& kind) const {
  std::vector<std::string> out;
  for (const auto& m : manifests_) {
    if (m.kind == kind) out.push_back(m.name);
  }
  return out;
}

Status PluginRegistry::load(const std::string& kind, const std::string& name) {
  const std::string qualified = kind + "/" + name;
  if (loaded_.count(qualified)) return Status::Ok();
  if (auto st = check_usable(kind, name); !st.ok()) return st;
  const PluginManifest* m = find(kind, name);
  if (!m) {
    return Status::NotFound(fmt::format("unknown {} plugin '{}'{}; available: {}", kind, name,
                                        did_you_mean(name, names(kind)), fmt::join(names(kind), ", ")));
  }
  const std::string file = m->library_path.string();
  if (m->sdk_abi != LOFT_SDK_ABI_VERSION) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {} ({}): manifest declares SDK ABI version {}, this loft supports version {}; rebuild the plugin "
        "against this loft SDK",
        qualified, m->manifest_path.string(), m->sdk_abi, LOFT_SDK_ABI_VERSION));
  }
  if (!fs::exists(m->library_path)) {
    return Status::NotFound(fmt::format("plugin {}: library {} named by {} does not exist; build the plugin or fix "
                                        "`library` in its manifest",
                                        qualified, file, m->manifest_path.string()));
  }
  boost::dll::shared_library library;
  boost::dll::fs::error_code ec;
  library.load(boost::dll::fs::path(file), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    const char* why = dlerror();
    return Status::FailedPrecondition(
        fmt::format("plugin {}: cannot load {}: {}", qualified, file, why ? why : ec.message()));
  }
  if (!library.has(LOFT_PLUGIN_ABI_SYMBOL) || !library.has(LOFT_PLUGIN_DESCRIBE_SYMBOL)) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {}: {} has no entry point `{}`/`{}`; a plugin's main source must use LOFT_PLUGIN(...) from "
        "<loft/plugin.h>",
        qualified, file, LOFT_PLUGIN_ABI_SYMBOL, LOFT_PLUGIN_DESCRIBE_SYMBOL));
  }
  const uint32_t abi = library.get<uint32_t()>(LOFT_PLUGIN_ABI_SYMBOL)();
  if (abi != LOFT_SDK_ABI_VERSION) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {}: wrong SDK ABI version in {}: got version {}, this loft supports version {}; rebuild the plugin "
        "against this loft SDK",
        qualified, file, abi, LOFT_SDK_ABI_VERSION));
  }
  auto descriptor = read_descriptor(library.get<const loft_plugin_descriptor*()>(LOFT_PLUGIN_DESCRIBE_SYMBOL)());
  if (!descriptor.ok()) {
    return Status::FailedPrecondition(fmt::format("plugin {}: invalid descriptor in {}: {}; rebuild the plugin "
                                                  "against this loft SDK",
                                                  qualified, file, descriptor.status().message()));
  }
  const loft_plugin_descriptor& d = descriptor.value();
  const loft_build_fingerprint host = LOFT_BUILD_FINGERPRINT;
  if (std::string diff = fingerprint_mismatch(host, d.fingerprint, kind); !diff.empty()) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {}: {} was built differently from this loft ({}); rebuild it with the same toolchain", qualified,
        file, diff));
  }
  if (!d.name || qualified != d.name) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} calls itself '{}' but its manifest {} says '{}'",
                                                  qualified, file, d.name ? d.name : "", m->manifest_path.string(),
                                                  qualified));
  }
  if (d.cuda_architectures) {  // absent (an older layout) or null: the plugin declares no CUDA code
    auto codes = parse_cuda_architectures(d.cuda_architectures);
    if (!codes.ok()) {
      return Status::FailedPrecondition(fmt::format("plugin {}: {} declares unusable CUDA architectures: {}; rebuild "
                                                    "it with loft_add_plugin",
                                                    qualified, file, codes.status().message()));
    }
    const auto& gpus = visible_gpu_capabilities();
    for (size_t i = 0; i < gpus.size(); ++i) {
      if (std::string why = cuda_architecture_refusal(codes.value(), gpus[i].first, gpus[i].second); !why.empty()) {
        return Status::FailedPrecondition(fmt::format(
            "plugin {}: {} has no CUDA code for GPU cuda:{}: {}; rebuild it with TORCH_CUDA_ARCH_LIST including "
            "{}.{}",
            qualified, file, i, why, gpus[i].first, gpus[i].second));
      }
    }
  }
  // Registration goes into a staging table; the registry takes it only if every check below passes.
  Factories staged;
  const char* error = nullptr;
  if (d.register_plugin(&staged, &error) != 0) {
    return Status::Internal(fmt::format("plugin {}: registration failed in {}: {}", qualified, file,
                                        error ? error : "no message"));
  }
  if (staged.added.empty()) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} registered nothing; its register function must call "
                                                  "registrar.add_{}(\"{}\", ...)",
                                                  qualified, file, kind, name));
  }
  if (auto clashes = factories_->clashes_with(staged); !clashes.empty()) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} registers {}; names are unique per kind, rename one "
                                                  "of them",
                                                  qualified, file, fmt::join(clashes, "; ")));
  }
  if (std::find(staged.added.begin(), staged.added.end(), qualified) == staged.added.end()) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} registered [{}] but not {}; its manifest {} says it "
                                                  "is a {} named '{}'",
                                                  qualified, file, fmt::join(staged.added, ", "), qualified,
                                                  m->manifest_path.string(), kind, name));
  }
  factories_->take(std::move(staged), fmt::format("{} ({})", qualified, file));
  loaded_libraries().push_back(std::move(library));
  loaded_[qualified] = true;
  return Status::Ok();
}

StatusOr<void*> PluginRegistry::create_erased(const char* kind_name, const std::string& name, const HostContext& ctx,
                                              const Options& options) {
  const std::string kind = kind_name;
  if (auto st = load(kind, name); !st.ok()) return st;
  const auto& table = factories_->by_kind[kind];
  auto it = table.find(name);
  if (it == table.end()) return Status::Internal(fmt::format("plugin {}/{} has no factory", kind, name));
  try {
    void* component = it->second(ctx, options);
    if (!component) return Status::Internal(fmt::format("plugin {}/{}: factory returned nothing", kind, name));
    return component;
  } catch (const std::invalid_argument& e) {
    // The SDK's convention (registrar.h): the options, or the files they name, are at fault: the user's input.
    return Status::InvalidArgument(fmt::format("plugin {}/{} failed to start: {}", kind, name, error_message(e)));
  } catch (const std::exception& e) {
    return Status::FailedPrecondition(fmt::format("plugin {}/{} failed to start: {}", kind, name, error_message(e)));
  }
}

}  // namespace loft
