// The plugin registry: discovers manifests, loads only the plugins a recipe names, and never unloads them.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "loft/framework/manifest.h"
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
  std::vector<std::string> names(const std::string& kind) const;

  // Loads kind/name once: checks the manifest, the library's ABI version (before any other plugin code runs), its
  // build fingerprint, then lets it register. Errors name the file and what to do.
  Status load(const std::string& kind, const std::string& name);

  StatusOr<std::unique_ptr<Quantizer>> create_quantizer(const std::string& name, const HostContext& ctx, const Options& options);
  StatusOr<std::unique_ptr<PeftMethod>> create_peft(const std::string& name, const HostContext& ctx, const Options& options);
  StatusOr<std::unique_ptr<OffloadStrategy>> create_offload(const std::string& name, const HostContext& ctx, const Options& options);
  StatusOr<std::unique_ptr<Dataset>> create_dataset(const std::string& name, const HostContext& ctx, const Options& options);

 private:
  struct Factories;
  template <typename T>
  StatusOr<std::unique_ptr<T>> create(const std::string& kind, const std::string& name,
                                      const std::map<std::string, Factory<T>>& table, const HostContext& ctx,
                                      const Options& options);
  std::vector<PluginManifest> manifests_;
  std::vector<std::string> problems_;
  std::map<std::string, std::vector<std::filesystem::path>> duplicates_;  // qualified name -> every manifest
  std::map<std::string, bool> loaded_;
  std::unique_ptr<Factories> factories_;
};

}  // namespace loft
