// Plugin discovery and loading (Boost.DLL), with the ABI handshake and build-fingerprint check.
#include "loft/framework/files.h"
#include "loft/error_message.h"
#include "loft/framework/plugin_registry.h"

#include <cstdlib>
#include <cstring>
#include <set>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <dlfcn.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "loft/abi.h"
#include "loft/fingerprint.h"
#include "recipe/suggest.h"

namespace fs = std::filesystem;

namespace loft {

struct PluginRegistry::Factories : Registrar {
  std::map<std::string, std::map<std::string, ErasedFactory>> by_kind;  // kind -> name -> factory
  std::vector<std::string> added;  // "kind/name" registered during the current load
  std::vector<std::string> clashes;

  void add_erased(const char* kind, const std::string& name, ErasedFactory f) override {
    std::string qualified = std::string(kind) + "/" + name;
    if (!by_kind[kind].emplace(name, std::move(f)).second) clashes.push_back(qualified);
    added.push_back(qualified);
  }
};

namespace {

// Loaded plugin libraries, deliberately never destroyed (see the class comment).
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}

std::string fingerprint_mismatch(const loft_build_fingerprint& host, const loft_build_fingerprint& plugin) {
  auto text = [](const char* s) { return std::string(s ? s : "(null)"); };
  auto major = [](const std::string& compiler) { return compiler.substr(0, compiler.find('.')); };
  std::vector<std::string> diffs;
  if (host.sdk_abi != plugin.sdk_abi) diffs.push_back(fmt::format("SDK ABI {} vs host {}", plugin.sdk_abi, host.sdk_abi));
  if (text(host.torch_version) != text(plugin.torch_version))
    diffs.push_back(fmt::format("torch {} vs host {}", text(plugin.torch_version), text(host.torch_version)));
  if (host.cuda_runtime / 1000 != plugin.cuda_runtime / 1000)
    diffs.push_back(fmt::format("CUDA runtime {} vs host {}", plugin.cuda_runtime, host.cuda_runtime));
  if (host.cxx11_abi != plugin.cxx11_abi)
    diffs.push_back(fmt::format("_GLIBCXX_USE_CXX11_ABI {} vs host {}", plugin.cxx11_abi, host.cxx11_abi));
  if (major(text(host.compiler)) != major(text(plugin.compiler)))
    diffs.push_back(fmt::format("compiler {} vs host {}", text(plugin.compiler), text(host.compiler)));
  std::string out;
  for (const auto& d : diffs) out += (out.empty() ? "" : "; ") + d;
  return out;
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
  const PluginManifest* m = find(kind, name);
  if (!m) {
    return Status::NotFound(fmt::format("unknown {} plugin '{}'{}; available: {}", kind, name,
                                        did_you_mean(name, names(kind)), fmt::join(names(kind), ", ")));
  }
  if (auto it = duplicates_.find(qualified); it != duplicates_.end() && it->second.size() > 1) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {} is defined by more than one manifest: {} and {}; remove one or rename it in its plugin.toml",
        qualified, it->second[0].string(), it->second[1].string()));
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
  const loft_plugin_descriptor* d = library.get<const loft_plugin_descriptor*()>(LOFT_PLUGIN_DESCRIBE_SYMBOL)();
  if (!d || d->abi_version != LOFT_SDK_ABI_VERSION || d->struct_size < sizeof(loft_plugin_descriptor)) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} returned an invalid descriptor", qualified, file));
  }
  const loft_build_fingerprint host = LOFT_BUILD_FINGERPRINT;
  if (std::string diff = fingerprint_mismatch(host, d->fingerprint); !diff.empty()) {
    return Status::FailedPrecondition(fmt::format(
        "plugin {}: {} was built differently from this loft ({}); rebuild it with the same toolchain", qualified,
        file, diff));
  }
  if (!d->name || qualified != d->name) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} calls itself '{}' but its manifest {} says '{}'",
                                                  qualified, file, d->name ? d->name : "", m->manifest_path.string(),
                                                  qualified));
  }
  factories_->added.clear();
  factories_->clashes.clear();
  const char* error = nullptr;
  if (d->register_plugin(factories_.get(), &error) != 0) {
    return Status::Internal(fmt::format("plugin {}: registration failed in {}: {}", qualified, file,
                                        error ? error : "no message"));
  }
  if (!factories_->clashes.empty()) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} registers {} which another plugin already registered",
                                                  qualified, file, fmt::join(factories_->clashes, ", ")));
  }
  if (std::find(factories_->added.begin(), factories_->added.end(), qualified) == factories_->added.end()) {
    return Status::FailedPrecondition(fmt::format("plugin {}: {} registered [{}] but not {}", qualified, file,
                                                  fmt::join(factories_->added, ", "), qualified));
  }
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
  } catch (const std::exception& e) {
    return Status::FailedPrecondition(fmt::format("plugin {}/{} failed to start: {}", kind, name, error_message(e)));
  }
}

}  // namespace loft
