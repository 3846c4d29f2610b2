// peft/lora: LoRA adapters on the target linear layers, saved in Hugging Face PEFT's format.
#include "loft/plugin.h"
#include "lora_method.h"

namespace {

void register_plugin(loft::Registrar& registrar) {
  registrar.add_peft("lora", [](const loft::HostContext& ctx, const loft::Options& options) {
    return loft::peft_lora::make_lora_method(ctx, options, /*dora=*/false);
  });
}

}  // namespace

LOFT_PLUGIN("peft/lora", register_plugin)
