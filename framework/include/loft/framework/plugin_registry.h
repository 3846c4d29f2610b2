// The plugin registry: discovers manifests, loads only the plugins a recipe names, and never unloads them.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loft/framework/manifest.h"
#include "loft/plugin_kinds.h"
#include "loft/registrar.h"
#include "loft/status.h"

namespace loft {

// Where plugins are looked for, in order: `extra` (--plugin-path), then $LOFT_PLUGIN_PATH (':'-separated),
// then the built-in folder beside libloft_framework (lib/loft/plugins).
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& extra = {});

// Not thread-safe; one per process is typical. Loaded libraries stay loaded for the process lifetime, since
// objects made by plugin code (autograd nodes, tensors with plugin deleters) can outlive any owner.
class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  // Reads every plugin.toml below each folder (recursively). Unreadable manifests and duplicate names are kept as
  // problems(), not errors: they matter only when a recipe names that plugin.
  void discover(const std::vector<std::filesystem::path>& folders);

  const std::vector<PluginManifest>& plugins() const { return manifests_; }
  const std::vector<std::string>& problems() const { return problems_; }
  const PluginManifest* find(const std::string& kind, const std::string& name) const;
  // Why kind/name cannot be used although a manifest claims it: the manifest was refused (its message, naming the
  // file), or more than one manifest defines it (naming both). Ok otherwise, also for a name no manifest claims.
  // `loft validate` reports these for the plugins a recipe names; load() refuses them.
  Status check_usable(const std::string& kind, const std::string& name) const;
  std::vector<std::string> names(const std::string& kind) const;

  // Loads kind/name once: checks the manifest, the library's ABI version (before any other plugin code runs), its
  // build fingerprint, then lets it register. Errors name the file and what to do.
  Status load(const std::string& kind, const std::string& name);

  // Loads kind/name (the kind of T, from plugin_kinds.h) and runs its factory. Errors name the plugin; a factory that
  // throws is an error saying the plugin failed to start.
  template <typename T>
  StatusOr<std::unique_ptr<T>> create(const std::string& name, const HostContext& ctx, const Options& options) {
    auto made = create_erased(KindTraits<T>::name, name, ctx, options);
    if (!made.ok()) return made.status();
    return std::unique_ptr<T>(static_cast<T*>(made.value()));
  }

  // create_quantizer, create_peft, create_offload, create_dataset, create_optimizer: create<T> for each kind.
#define LOFT_REGISTRY_CREATE(Interface, kind, default_type, doc)                                         \
  template <typename T = Interface>                                                                   \
  StatusOr<std::unique_ptr<T>> create_##kind(const std::string& name, const HostContext& ctx, \
                                                     const Options& options) {                        \
    return create<T>(name, ctx, options);                                                              \
  }
  LOFT_PLUGIN_KINDS(LOFT_REGISTRY_CREATE)
#undef LOFT_REGISTRY_CREATE

 private:
  struct Factories;
  // The factory's result as a T* of the kind's interface (owned by the caller), or why there is none.
  StatusOr<void*> create_erased(const char* kind, const std::string& name, const HostContext& ctx,
                                const Options& options);
  std::vector<PluginManifest> manifests_;
  std::vector<std::string> problems_;
  std::map<std::string, std::vector<std::filesystem::path>> duplicates_;  // qualified name -> every manifest
  std::map<std::string, std::string> refused_;  // qualified name -> why its manifest was refused
  std::map<std::string, bool> loaded_;
  std::unique_ptr<Factories> factories_;
};

}  // namespace loft
