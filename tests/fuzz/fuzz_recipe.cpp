// Fuzzes the recipe parser and validator: any bytes as a recipe give a Status or diagnostics, never a crash or an
// escaping exception; a recipe that validates survives its own to_toml() round trip and validates again.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "loft/framework/plugin_registry.h"
#include "loft/framework/recipe.h"

namespace {

// The shipped plugins' manifests (read only; nothing is loaded), so plugin sections validate as they do in `loft`.
const loft::PluginRegistry& registry() {
  static const loft::PluginRegistry* r = [] {
    auto* made = new loft::PluginRegistry();
    made->discover({LOFT_SOURCE_DIR "/plugins"});
    return made;
  }();
  return *r;
}

// Relative paths resolve against recipes/, so the shipped recipes in the corpus reach the deep checks.
constexpr const char* kSourceName = LOFT_SOURCE_DIR "/recipes/fuzz_input.toml";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto recipe = loft::parse_recipe_text(text, kSourceName);
  if (!recipe.ok()) return 0;
  loft::ResolvedRecipe resolved;
  const auto diagnostics = loft::validate_recipe(recipe.value(), registry(), &resolved);
  for (const auto& d : diagnostics) (void)d.str();
  if (!diagnostics.empty()) return 0;

  const std::string again = resolved.to_toml();
  auto reparsed = loft::parse_recipe_text(again, kSourceName);
  if (!reparsed.ok()) {
    std::fprintf(stderr, "a valid recipe's to_toml() does not parse: %s\n---\n%s\n", reparsed.status().message().c_str(),
                 again.c_str());
    std::abort();
  }
  const auto second = loft::validate_recipe(reparsed.value(), registry(), nullptr);
  if (!second.empty()) {
    std::fprintf(stderr, "a valid recipe's to_toml() does not validate: %s\n---\n%s\n", second.front().str().c_str(),
                 again.c_str());
    std::abort();
  }
  return 0;
}
