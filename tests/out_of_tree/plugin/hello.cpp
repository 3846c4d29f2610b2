// The smallest useful plugin: a dataset of `count` identical greetings. It includes no torch header and links no
// LibTorch: the dataset interface carries only strings.
#include "loft/dataset.h"
#include "loft/plugin.h"

namespace {
class Hello final : public loft::Dataset {
 public:
  explicit Hello(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  loft::Sample get(int64_t) const override { return {{{"user", "Say hello."}, {"assistant", "Hello!"}}, {}}; }

 private:
  int64_t n_;
};
void register_plugin(loft::Registrar& r) {
  r.add_dataset("hello", [](const loft::HostContext&, const loft::Options& o) {
    return std::make_unique<Hello>(o.integer("count"));
  });
}
}  // namespace

LOFT_PLUGIN("dataset/hello", register_plugin)
