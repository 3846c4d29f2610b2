// optimizer/adamw: the SDK's fused multi-tensor AdamW (loft/adamw.h) as a plugin, the default of [optimizer].
#include "loft/adamw.h"
#include "loft/plugin.h"

namespace {

void register_plugin(loft::Registrar& registrar) {
  registrar.add_optimizer("adamw", [](const loft::HostContext&, const loft::Options&) {
    return std::make_unique<loft::AdamW>();
  });
}

}  // namespace

LOFT_PLUGIN("optimizer/adamw", register_plugin)
