// LoRA and DoRA as in Hugging Face PEFT 0.21 (peft/tuners/lora/{layer,dora,variants}.py): the one implementation
// behind the peft/lora and peft/dora plugins, which differ only in `dora`.
#pragma once

#include <memory>

#include "loft/host_context.h"
#include "loft/options.h"
#include "loft/peft.h"

namespace loft::peft_lora {

// Builds the method from the plugin's resolved options (see plugins/peft/lora/plugin.toml). Throws
// std::invalid_argument naming the option when an option cannot be used (bad regex, bad layer list).
std::unique_ptr<PeftMethod> make_lora_method(const HostContext& ctx, const Options& options, bool dora);

}  // namespace loft::peft_lora
