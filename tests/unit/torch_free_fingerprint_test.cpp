// fingerprint.h, abi.h and extension.h compile without torch headers (this target has neither torch nor CUDA on
// its include path; CUDA headers may still sit in a default folder such as /usr/local/include): a torch-free
// plugin, such as a dataset, declares torch "none", and CUDA runtime 0 where no CUDA headers are found.
#include <gtest/gtest.h>

#include <string>

#include "loft/extension.h"
#include "loft/fingerprint.h"

#ifdef TORCH_VERSION
#error "this test must be compiled without torch headers"
#endif

namespace {

TEST(TorchFreeFingerprint, DeclaresTorchNone) {
  const loft_build_fingerprint fp = LOFT_BUILD_FINGERPRINT;
  EXPECT_EQ(std::string(fp.torch_version), LOFT_TORCH_VERSION_NONE);
#ifdef CUDART_VERSION
  EXPECT_EQ(fp.cuda_runtime, CUDART_VERSION);  // found on the compiler's default include path
#else
  EXPECT_EQ(fp.cuda_runtime, 0);
#endif
  EXPECT_EQ(fp.sdk_abi, LOFT_SDK_ABI_VERSION);
  EXPECT_GT(fp.fmt_major, 0) << "fmt is on the include path of every loft target";
  EXPECT_EQ(LOFT_BUILD_CUDA_ARCHITECTURES, nullptr);
}

}  // namespace
