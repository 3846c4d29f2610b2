// fingerprint.h, abi.h and extension.h compile without torch and CUDA headers (this target has neither on its
// include path): a torch-free plugin, such as a dataset, declares torch "none" and CUDA runtime 0.
#include <gtest/gtest.h>

#include <string>

#include "loft/extension.h"
#include "loft/fingerprint.h"

#if defined(TORCH_VERSION) || defined(CUDART_VERSION)
#error "this test must be compiled without torch and CUDA headers"
#endif

namespace {

TEST(TorchFreeFingerprint, DeclaresNoTorchAndNoCudaRuntime) {
  const loft_build_fingerprint fp = LOFT_BUILD_FINGERPRINT;
  EXPECT_EQ(std::string(fp.torch_version), LOFT_TORCH_VERSION_NONE);
  EXPECT_EQ(fp.cuda_runtime, 0);
  EXPECT_EQ(fp.sdk_abi, LOFT_SDK_ABI_VERSION);
  EXPECT_GT(fp.fmt_major, 0) << "fmt is on the include path of every loft target";
  EXPECT_EQ(LOFT_BUILD_CUDA_ARCHITECTURES, nullptr);
}

}  // namespace
