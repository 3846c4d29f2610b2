// Plugin loading: discovery from manifests, and every loader error on the fixture plugins of plugins/testing.
#include <gtest/gtest.h>

#include "loft/framework/host.h"
#include "loft/framework/plugin_registry.h"
#include "loft/quantizer.h"

namespace loft {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(PluginLoader, DiscoversBuiltInPluginsFromManifestsWithoutLoadingThem) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  for (auto [kind, name] : {std::pair{"quantizer", "none"}, {"peft", "full"}, {"offload", "none"}, {"dataset", "synthetic"}}) {
    const PluginManifest* m = registry.find(kind, name);
    ASSERT_NE(m, nullptr) << kind << "/" << name;
    EXPECT_EQ(m->version, "0.1.0");
    EXPECT_TRUE(std::filesystem::exists(m->library_path)) << m->library_path;
  }
  EXPECT_TRUE(registry.problems().empty());
}

TEST(PluginLoader, SearchPathPutsExtraFoldersFirstAndEndsWithTheBuiltInFolder) {
  auto path = plugin_search_path({"/first"});
  ASSERT_GE(path.size(), 2u);
  EXPECT_EQ(path.front(), "/first");
  EXPECT_EQ(std::filesystem::weakly_canonical(path.back()), std::filesystem::weakly_canonical(LOFT_PLUGIN_DIR));
}

TEST(PluginLoader, WrongAbiNamesTheFileAndBothVersions) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  auto st = registry.load("quantizer", "wrong_abi");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "libloft_testing_wrong_abi.so")) << st.message();
  EXPECT_TRUE(contains(st.message(), "got version 9999, this loft supports version 2")) << st.message();
}

TEST(PluginLoader, MissingEntryPointIsExplained) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  auto st = registry.load("quantizer", "missing_entry");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "libloft_testing_missing_entry.so has no entry point")) << st.message();
  EXPECT_TRUE(contains(st.message(), "LOFT_PLUGIN")) << st.message();
}

TEST(PluginLoader, FactoryThatThrowsBecomesAnErrorNamingThePlugin) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  RunContext ctx(c10::Device(c10::kCPU), c10::kFloat, 1);
  auto q = registry.create_quantizer("throws_on_create", ctx, Options());
  ASSERT_FALSE(q.ok());
  EXPECT_TRUE(contains(q.status().message(), "plugin quantizer/throws_on_create failed to start: fixture refuses to start"))
      << q.status().message();
}

TEST(PluginLoader, DuplicateNamesAreRefusedNamingBothManifests) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR, LOFT_PLUGIN_DIR});
  ASSERT_FALSE(registry.problems().empty());
  auto st = registry.load("quantizer", "none");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "duplicate_none/plugin.toml")) << st.message();
  EXPECT_TRUE(contains(st.message(), "quantizer/none/plugin.toml")) << st.message();
}

TEST(PluginLoader, UnknownPluginSuggestsTheClosestName) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  auto st = registry.load("dataset", "synthetik");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), "did you mean 'synthetic'?")) << st.message();
}

TEST(PluginLoader, LoadsOnceAndCreatesComponents) {
  PluginRegistry registry;
  registry.discover({LOFT_PLUGIN_DIR});
  ASSERT_TRUE(registry.load("quantizer", "none").ok());
  ASSERT_TRUE(registry.load("quantizer", "none").ok());  // idempotent
  RunContext ctx(c10::Device(c10::kCPU), c10::kFloat, 1);
  auto q = registry.create_quantizer("none", ctx, Options("quantizer", {}));
  ASSERT_TRUE(q.ok()) << q.status().message();
}

}  // namespace
}  // namespace loft
