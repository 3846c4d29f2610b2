// Fixture: a well-formed plugin whose factory throws, as a plugin with a bad option combination would.
#include <stdexcept>

#include "loft/plugin.h"
#include "loft/quantizer.h"

namespace {
void register_plugin(loft::Registrar& registrar) {
  registrar.add_quantizer("throws_on_create", [](const loft::HostContext&, const loft::Options&) -> std::unique_ptr<loft::Quantizer> {
    throw std::runtime_error("fixture refuses to start: no GPU kernels for this device");
  });
}
}  // namespace

LOFT_PLUGIN("quantizer/throws_on_create", register_plugin)
