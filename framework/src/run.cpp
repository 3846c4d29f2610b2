// run_recipe: from a validated recipe to a run.
#include "loft/framework/run.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace loft {

StatusOr<RunComponents> instantiate(const ResolvedRecipe& recipe, PluginRegistry& registry) {
  RunComponents c;
  auto ctx = make_run_context(recipe.sections.at("model"), recipe.sections.at("train"));
  if (!ctx.ok()) return ctx.status();
  c.context = std::move(ctx).value();
  const auto& t = recipe.plugin_types;
  auto q = registry.create_quantizer(t.at("quantizer"), *c.context, recipe.sections.at("quantizer"));
  if (!q.ok()) return Status::FailedPrecondition("[quantizer] " + q.status().message());
  auto p = registry.create_peft(t.at("peft"), *c.context, recipe.sections.at("peft"));
  if (!p.ok()) return Status::FailedPrecondition("[peft] " + p.status().message());
  auto o = registry.create_offload(t.at("offload"), *c.context, recipe.sections.at("offload"));
  if (!o.ok()) return Status::FailedPrecondition("[offload] " + o.status().message());
  auto d = registry.create_dataset(t.at("dataset"), *c.context, recipe.sections.at("dataset"));
  if (!d.ok()) return Status::FailedPrecondition("[dataset] " + d.status().message());
  c.quantizer = std::move(q).value();
  c.peft = std::move(p).value();
  c.offload = std::move(o).value();
  c.dataset = std::move(d).value();
  return c;
}

int run_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry) {
  auto components = instantiate(recipe, registry);
  if (!components.ok()) {
    spdlog::error("{}", components.status().message());
    return 1;
  }
  const auto& c = components.value();
  spdlog::info("device {}, dtype {}, seed {}", c.context->device().str(), c10::toString(c.context->compute_dtype()),
               c.context->seed());
  for (const auto& [kind, name] : recipe.plugin_types) spdlog::info("{}: {}", kind, name);
  spdlog::info("dataset: {} samples", c.dataset->size());
  spdlog::error("this build of loft has no trainer yet: the model and training loop are not built in");
  return 1;
}

}  // namespace loft
