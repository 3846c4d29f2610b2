// The loader's CUDA architecture check against the real GPU: a plugin whose only CUDA code is sm_35 is refused at
// load, naming both. Skips with a printed reason where no CUDA device is visible.
#include <gtest/gtest.h>

#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include "loft/framework/plugin_registry.h"

namespace loft {
namespace {

TEST(PluginLoaderGpu, APluginWithoutCodeForThisGpuIsRefusedAtLoadNamingBoth) {
  if (c10::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible: nothing to check architectures against";
  int major = 0, minor = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0), cudaSuccess);
  PluginRegistry registry;
  registry.discover({LOFT_TESTING_PLUGIN_DIR});
  auto st = registry.load("dataset", "cuda_sm35");
  ASSERT_FALSE(st.ok());
  const std::string expected = "libloft_testing_cuda_sm35.so has no CUDA code for GPU cuda:0: built for sm_35; this "
                               "GPU is sm_" + std::to_string(major) + std::to_string(minor);
  EXPECT_NE(st.message().find(expected), std::string::npos) << st.message();
}

}  // namespace
}  // namespace loft
