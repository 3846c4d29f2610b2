// peft/dora: DoRA (weight-decomposed LoRA, PEFT's use_dora=True): LoRA plus a trainable per-row magnitude.
#include "loft/plugin.h"
#include "lora_method.h"

namespace {

void register_plugin(loft::Registrar& registrar) {
  registrar.add_peft("dora", [](const loft::HostContext& ctx, const loft::Options& options) {
    return loft::peft_lora::make_lora_method(ctx, options, /*dora=*/true);
  });
}

}  // namespace

LOFT_PLUGIN("peft/dora", register_plugin)
