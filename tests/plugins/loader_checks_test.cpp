// The loader's pure decisions (framework/src/plugin_checks.h): the descriptor growth rule, fingerprint comparison
// and the CUDA architecture table. The loader tests in loader_test.cpp drive the same code through fixture plugins.
#include <gtest/gtest.h>

#include <cstring>

#include "loft/fingerprint.h"
#include "plugin/plugin_checks.h"

namespace loft {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

int32_t no_registration(void*, const char**) { return 0; }

TEST(LoaderChecks, DescriptorOfTheFirstLayoutReadsItsOptionalFieldsAsNull) {
  // A buffer holding the first layout followed by garbage where a newer field would be: only struct_size counts.
  alignas(loft_plugin_descriptor) unsigned char bytes[sizeof(loft_plugin_descriptor)];
  std::memset(bytes, 0xAB, sizeof(bytes));
  auto* d = reinterpret_cast<loft_plugin_descriptor*>(bytes);
  d->abi_version = LOFT_SDK_ABI_VERSION;
  d->struct_size = LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE;
  d->name = "dataset/x";
  d->fingerprint = LOFT_BUILD_FINGERPRINT;
  d->register_plugin = &no_registration;
  EXPECT_TRUE(LOFT_DESCRIPTOR_HAS(d, register_plugin));
  EXPECT_FALSE(LOFT_DESCRIPTOR_HAS(d, cuda_architectures));
  auto read = read_descriptor(d);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_STREQ(read.value().name, "dataset/x");
  EXPECT_EQ(read.value().register_plugin, &no_registration);
  EXPECT_EQ(read.value().cuda_architectures, nullptr);
}

TEST(LoaderChecks, DescriptorWithTheOptionalFieldKeepsIt) {
  loft_plugin_descriptor d{LOFT_SDK_ABI_VERSION, sizeof(loft_plugin_descriptor), "quantizer/x", LOFT_BUILD_FINGERPRINT,
                           &no_registration, "sm_90"};
  EXPECT_TRUE(LOFT_DESCRIPTOR_HAS(&d, cuda_architectures));
  auto read = read_descriptor(&d);
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_STREQ(read.value().cuda_architectures, "sm_90");
}

TEST(LoaderChecks, DescriptorRefusals) {
  EXPECT_TRUE(contains(read_descriptor(nullptr).status().message(), "returned no descriptor"));
  loft_plugin_descriptor d{LOFT_SDK_ABI_VERSION, sizeof(loft_plugin_descriptor), "quantizer/x", LOFT_BUILD_FINGERPRINT,
                           &no_registration, nullptr};
  d.abi_version = 1;
  EXPECT_TRUE(contains(read_descriptor(&d).status().message(), "declares SDK ABI version 1, this loft supports version 2"));
  d.abi_version = LOFT_SDK_ABI_VERSION;
  d.struct_size = 8;
  auto st = read_descriptor(&d).status();
  EXPECT_TRUE(contains(st.message(), "is 8 bytes, shorter than the " + std::to_string(LOFT_PLUGIN_DESCRIPTOR_V2_MIN_SIZE) +
                                         " bytes"))
      << st.message();
}

TEST(LoaderChecks, FingerprintComparesMajorsAndSkipsTorchOnlyForTorchFreeDatasets) {
  const loft_build_fingerprint host{2, "2.11.0", 13000, 1, "gcc 12.2", 9, 0, 0};
  EXPECT_EQ(fingerprint_mismatch(host, host, "quantizer"), "");
  loft_build_fingerprint p = host;
  p.cuda_runtime = 13020;
  p.compiler = "gcc 12.4";
  EXPECT_EQ(fingerprint_mismatch(host, p, "quantizer"), "");  // same majors
  p.cuda_runtime = 12080;
  p.compiler = "gcc 13.1";
  p.fmt_major = 11;
  EXPECT_EQ(fingerprint_mismatch(host, p, "quantizer"),
            "CUDA runtime 12080 vs host 13000; compiler gcc 13.1 vs host gcc 12.2; fmt major 11 vs host 9");

  loft_build_fingerprint torch_free = host;
  torch_free.torch_version = LOFT_TORCH_VERSION_NONE;
  torch_free.cuda_runtime = 0;
  EXPECT_EQ(fingerprint_mismatch(host, torch_free, "dataset"), "");
  EXPECT_EQ(fingerprint_mismatch(host, torch_free, "peft"),
            "torch none vs host 2.11.0 (built without torch headers, which only a dataset plugin may be); CUDA runtime "
            "0 vs host 13000");
  torch_free.glibcxx_debug = 1;  // libstdc++ layouts still matter without torch
  EXPECT_EQ(fingerprint_mismatch(host, torch_free, "dataset"), "_GLIBCXX_DEBUG on vs host off");
  loft_build_fingerprint other_torch = host;
  other_torch.torch_version = "2.10.0";
  EXPECT_EQ(fingerprint_mismatch(host, other_torch, "dataset"), "torch 2.10.0 vs host 2.11.0");
}

TEST(LoaderChecks, CudaArchitectureListsParse) {
  auto codes = parse_cuda_architectures("sm_75, sm_90a,compute_100f,compute_86");
  ASSERT_TRUE(codes.ok()) << codes.status().message();
  ASSERT_EQ(codes.value().size(), 4u);
  const auto& c = codes.value();
  EXPECT_EQ(c[0].text, "sm_75");
  EXPECT_EQ(std::make_pair(c[0].major, c[0].minor), std::make_pair(7, 5));
  EXPECT_TRUE(c[1].arch_specific);
  EXPECT_EQ(std::make_pair(c[2].major, c[2].minor), std::make_pair(10, 0));
  EXPECT_TRUE(c[2].ptx && c[2].family);
  EXPECT_TRUE(c[3].ptx && !c[3].family && !c[3].arch_specific);
  for (const char* bad : {"", "sm_75,", "sm_9", "sm_nine", "gfx90a", "compute_1234", "sm_05"}) {
    auto st = parse_cuda_architectures(bad);
    EXPECT_FALSE(st.ok()) << "'" << bad << "' should not parse";
    EXPECT_TRUE(contains(st.status().message(), "CUDA architecture")) << st.status().message();
  }
}

TEST(LoaderChecks, CudaCodeRunsOnTable) {
  struct Row {
    const char* code;
    int major, minor;
    bool runs;
  };
  const Row table[] = {
      {"sm_75", 7, 5, true},        {"sm_75", 7, 0, false},  // SASS: same major, minor at or above
      {"sm_70", 7, 5, true},        {"sm_75", 8, 0, false},  // not across majors
      {"sm_80", 8, 6, true},        {"sm_86", 8, 0, false},  {"sm_90", 10, 0, false},
      {"compute_75", 8, 0, true},   {"compute_75", 12, 0, true},  // PTX: JIT on anything at or above
      {"compute_90", 8, 9, false},  {"compute_80", 8, 0, true},
      {"sm_90a", 9, 0, true},       {"sm_90a", 9, 1, false},  {"compute_90a", 10, 0, false},  // a: exactly
      {"sm_100f", 10, 3, true},     {"compute_100f", 12, 0, false},                           // f: same major
  };
  for (const auto& r : table) {
    auto codes = parse_cuda_architectures(r.code);
    ASSERT_TRUE(codes.ok()) << codes.status().message();
    EXPECT_EQ(cuda_code_runs_on(codes.value()[0], r.major, r.minor), r.runs)
        << r.code << " on " << r.major << "." << r.minor;
  }
}

TEST(LoaderChecks, RefusalNamesWhatThePluginHasAndWhatTheGpuIs) {
  auto codes = parse_cuda_architectures("sm_75,sm_90");
  ASSERT_TRUE(codes.ok());
  EXPECT_EQ(cuda_architecture_refusal(codes.value(), 8, 0), "built for sm_75, sm_90; this GPU is sm_80");
  EXPECT_EQ(cuda_architecture_refusal(codes.value(), 9, 0), "");
  EXPECT_EQ(cuda_architecture_refusal(codes.value(), 7, 5), "");
  EXPECT_EQ(cuda_architecture_refusal(parse_cuda_architectures("sm_75,compute_75").value(), 8, 0), "");
}

}  // namespace
}  // namespace loft
