// Plugin loading: discovery from manifests, and every loader error on the fixture plugins of plugins/testing.
#include <gtest/gtest.h>

#include <c10/cuda/CUDAFunctions.h>
#include <fmt/format.h>

#include "loft/dataset.h"
#include "loft/fingerprint.h"
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

// ---- The growth rule (loft/abi.h): a descriptor of ABI 2's first layout still loads; a shorter one does not ----

std::string lib(const std::string& fixture) { return "libloft_testing_" + fixture + ".so"; }

// Loads testing fixture kind/name in a fresh registry and returns the status.
Status load_fixture(const std::string& kind, const std::string& name) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  return registry.load(kind, name);
}

TEST(PluginLoader, APluginBuiltBeforeTheOptionalDescriptorFieldsLoadsAndRegisters) {
  static_assert(LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE < sizeof(loft_plugin_descriptor),
                "ABI 2 must have at least one appended optional field for this test to mean anything");
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  RunContext ctx(c10::Device(c10::kCPU), c10::kFloat, 1);
  auto dataset = registry.create_dataset("min_layout", ctx, Options("dataset", {}));
  ASSERT_TRUE(dataset.ok()) << dataset.status().message();
  ASSERT_EQ(dataset.value()->size(), 1);
  EXPECT_EQ(dataset.value()->get(0).fields.at("fixture"), "dataset/min_layout");
}

TEST(PluginLoader, ShortDescriptorIsRefusedNamingBothSizes) {
  auto st = load_fixture("dataset", "short_descriptor");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("short_descriptor"))) << st.message();
  const size_t short_size = offsetof(loft_plugin_descriptor, register_plugin);
  EXPECT_TRUE(contains(st.message(), fmt::format("descriptor is {} bytes, shorter than the {} bytes", short_size,
                                                 LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE)))
      << st.message();
}

// ---- Fingerprint: one fixture per field, each message naming the file and both values ----

struct FingerprintCase {
  const char* fixture;
  std::string expected;  // "<field> <plugin's> vs host <host's>"
};

TEST(PluginLoader, EachFingerprintFieldThatDiffersIsRefusedNamingBothValues) {
  const loft_build_fingerprint host = LOFT_BUILD_FINGERPRINT;
  auto on_off = [](int v) { return v ? "on" : "off"; };
  const FingerprintCase cases[] = {
      {"fp_sdk_abi", fmt::format("SDK ABI 9998 vs host {}", host.sdk_abi)},
      {"fp_torch", fmt::format("torch 1.0.0 vs host {}", host.torch_version)},
      {"fp_cuda_runtime", fmt::format("CUDA runtime {} vs host {}", host.cuda_runtime + 1000, host.cuda_runtime)},
      {"fp_cxx11_abi", fmt::format("_GLIBCXX_USE_CXX11_ABI {} vs host {}", 1 - host.cxx11_abi, host.cxx11_abi)},
      {"fp_compiler", fmt::format("compiler gcc 1.0 vs host {}", host.compiler)},
      {"fp_fmt", fmt::format("fmt major {} vs host {}", host.fmt_major + 1, host.fmt_major)},
      {"fp_glibcxx_assertions", fmt::format("_GLIBCXX_ASSERTIONS {} vs host {}", on_off(!host.glibcxx_assertions),
                                            on_off(host.glibcxx_assertions))},
      {"fp_glibcxx_debug",
       fmt::format("_GLIBCXX_DEBUG {} vs host {}", on_off(!host.glibcxx_debug), on_off(host.glibcxx_debug))},
  };
  for (const auto& c : cases) {
    auto st = load_fixture("dataset", c.fixture);
    ASSERT_FALSE(st.ok()) << c.fixture;
    EXPECT_TRUE(contains(st.message(), lib(c.fixture) + " was built differently from this loft")) << st.message();
    EXPECT_TRUE(contains(st.message(), c.expected)) << c.fixture << ": " << st.message();
    // Only the field that differs is named.
    EXPECT_EQ(st.message().find(" vs host "), st.message().rfind(" vs host ")) << st.message();
  }
}

TEST(PluginLoader, ATorchFreeBuildIsAcceptedForADatasetOnly) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  RunContext ctx(c10::Device(c10::kCPU), c10::kFloat, 1);
  auto dataset = registry.create_dataset("torch_free", ctx, Options("dataset", {}));
  ASSERT_TRUE(dataset.ok()) << dataset.status().message();
  EXPECT_EQ(dataset.value()->get(0).messages.back().content, "pong");

  const loft_build_fingerprint host = LOFT_BUILD_FINGERPRINT;
  auto st = load_fixture("quantizer", "fp_torch_free_quantizer");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("fp_torch_free_quantizer"))) << st.message();
  EXPECT_TRUE(contains(st.message(), fmt::format("torch none vs host {} (built without torch headers, which only a "
                                                 "dataset plugin may be)",
                                                 host.torch_version)))
      << st.message();
}

// ---- Identity and registration ----

TEST(PluginLoader, DescriptorNameThatDiffersFromTheManifestIsRefused) {
  auto st = load_fixture("dataset", "name_mismatch");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("name_mismatch") + " calls itself 'dataset/someone_else'")) << st.message();
  EXPECT_TRUE(contains(st.message(), "name_mismatch/plugin.toml says 'dataset/name_mismatch'")) << st.message();
}

TEST(PluginLoader, RegistrationClashNamesTheNameAndBothPlugins) {
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  ASSERT_TRUE(registry.load("dataset", "clash_first").ok());
  auto st = registry.load("dataset", "clash_second");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("clash_second") +
                                         " registers dataset/clash_shared, already registered by dataset/clash_first"))
      << st.message();
  EXPECT_TRUE(contains(st.message(), lib("clash_first"))) << st.message();
  // The first plugin still works; the refused one stays refused.
  RunContext ctx(c10::Device(c10::kCPU), c10::kFloat, 1);
  EXPECT_TRUE(registry.create_dataset("clash_first", ctx, Options("dataset", {})).ok());
  auto second = registry.create_dataset("clash_second", ctx, Options("dataset", {}));
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(contains(second.status().message(), "already registered by dataset/clash_first"))
      << second.status().message();
}

TEST(PluginLoader, RegisteringUnderAnotherKindIsRefusedNamingBoth) {
  auto st = load_fixture("quantizer", "wrong_kind");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("wrong_kind") + " registered [dataset/wrong_kind] but not quantizer/wrong_kind"))
      << st.message();
  EXPECT_TRUE(contains(st.message(), "says it is a quantizer named 'wrong_kind'")) << st.message();
}

TEST(PluginLoader, RegisteringNothingIsRefused) {
  auto st = load_fixture("dataset", "registers_nothing");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("registers_nothing") + " registered nothing")) << st.message();
  EXPECT_TRUE(contains(st.message(), "registrar.add_dataset(\"registers_nothing\", ...)")) << st.message();
}

// ---- CUDA architectures ----

TEST(PluginLoader, MalformedCudaArchitecturesAreRefusedNamingTheEntry) {
  auto st = load_fixture("dataset", "cuda_malformed");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st.message(), lib("cuda_malformed") + " declares unusable CUDA architectures")) << st.message();
  EXPECT_TRUE(contains(st.message(), "CUDA architecture 'sm_nine'")) << st.message();
}

TEST(PluginLoader, DeclaredCudaArchitecturesDoNotMatterWithoutAGpu) {
  if (c10::cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is visible; loft_plugin_loader_gpu_tests covers it";
  EXPECT_TRUE(load_fixture("dataset", "cuda_sm35").ok());
}

}  // namespace
}  // namespace loft
