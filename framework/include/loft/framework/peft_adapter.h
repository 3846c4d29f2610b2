// PEFT adapter folders in and out: adapter_config.json + adapter_model.safetensors with Hugging Face PEFT's key
// names ("base_model.model.<module>.lora_A.weight", modules_to_save as "base_model.model.<module>.<param>").
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loft/framework/qwen2.h"
#include "loft/peft.h"
#include "loft/status.h"

namespace loft {

// The tensors of the model's PEFT adapter under PEFT's saved names, as CPU tensors: every adapter's state_dict()
// and every trainable parameter outside the adapters (modules_to_save), in the model's order.
std::vector<std::pair<std::string, at::Tensor>> peft_adapter_tensors(Qwen2Model& model);

// Writes `out`/adapter_config.json (method.adapter_config_json) and `out`/adapter_model.safetensors. Fails when the
// method saves whole weights (no adapter config).
Status save_peft_adapter(Qwen2Model& model, const PeftMethod& method, const std::string& base_model_name_or_path,
                         const std::filesystem::path& out);

// Loads a PEFT adapter folder into the model's attached adapters and modules_to_save parameters. Before any tensor is
// touched, the folder's adapter_config.json must agree with the method's own (peft_type, r, lora_alpha,
// target_modules, use_rslora, use_dora, layers_to_transform, modules_to_save; no rank/alpha patterns, bias "none"):
// every disagreement is reported at once with the recipe key to change. Then every tensor the model expects must be
// in the file with its shape, and the file may hold nothing else; errors name the file and the key.
Status load_peft_adapter(Qwen2Model& model, const PeftMethod& method, const std::filesystem::path& folder);

}  // namespace loft
