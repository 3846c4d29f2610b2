// `loft plan` on a recipe: the recipe's plugins instantiated without a model (their memory extensions answer from
// their options), the prediction, and --fit's search over the knobs that change no numerics.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <torch/cuda.h>

#include "loft/error_message.h"
#include "loft/framework/host.h"
#include "loft/framework/memory_plan.h"
#include "loft/framework/plugin_registry.h"
#include "loft/framework/quantizer_host.h"
#include "loft/plugin_interfaces.h"

namespace loft {

namespace {

// The non-linear parameter names of the model, as Qwen2Model::non_linear_parameter_names gives them.
std::vector<std::string> non_linear_names(const Qwen2Config& c) {
  std::vector<std::string> names{"model.embed_tokens.weight"};
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    names.push_back(fmt::format("model.layers.{}.input_layernorm.weight", i));
    names.push_back(fmt::format("model.layers.{}.post_attention_layernorm.weight", i));
  }
  names.push_back("model.norm.weight");
  if (!c.tie_word_embeddings) names.push_back("lm_head.weight");
  return names;
}

// The recipe's plugins (no dataset), owned while a setup borrows their extensions.
struct PlanComponents {
  std::unique_ptr<RunContext> context;
  std::unique_ptr<Quantizer> quantizer;
  std::unique_ptr<PeftMethod> peft;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<OffloadStrategy> offload;
  PlanSetup setup;
  uint64_t gpu_budget = 0, host_budget = 0;
};

// The device the run would use, without requiring it here: model.device = "cuda" plans for a GPU on any machine.
c10::Device planned_device(const Options& model) {
  const std::string& want = model.string("device");
  if (want == "cuda" || (want == "auto" && torch::cuda::is_available())) return c10::Device(c10::kCUDA, 0);
  return c10::Device(c10::kCPU);
}

template <typename T>
StatusOr<std::unique_ptr<T>> make(PluginRegistry& registry, const ResolvedRecipe& r, const char* kind,
                                  const RunContext& ctx) {
  auto made = registry.create<T>(r.plugin_types.at(kind), ctx, r.sections.at(kind));
  if (!made.ok()) return Status::InvalidArgument(fmt::format("[{}] {}", kind, made.status().message()));
  return made;
}

// budget.gpu_memory and budget.host_memory in bytes (0: no cap).
StatusOr<std::pair<uint64_t, uint64_t>> plan_budget(const ResolvedRecipe& r) {
  uint64_t bytes[2] = {0, 0};
  const char* keys[2] = {"gpu_memory", "host_memory"};
  for (int i = 0; i < 2; ++i) {
    const std::string& text = r.sections.at("budget").string(keys[i]);
    if (text.empty()) continue;
    auto parsed = parse_byte_size(text);
    if (!parsed.ok()) return Status::InvalidArgument(fmt::format("budget.{}: {}", keys[i], parsed.status().message()));
    bytes[i] = parsed.value();
  }
  return std::make_pair(bytes[0], bytes[1]);
}

StatusOr<std::shared_ptr<PlanComponents>> components_for(const ResolvedRecipe& r, PluginRegistry& registry,
                                                         int64_t dataset_examples) {
  auto pc = std::make_shared<PlanComponents>();
  const Options& model = r.sections.at("model");
  const Options& train = r.sections.at("train");
  std::shared_ptr<const Qwen2Config> config = r.model_config;
  if (!config) {
    auto read = read_qwen2_config(std::filesystem::path(model.string("path")) / "config.json");
    if (!read.ok()) return Status::InvalidArgument(read.status().message());
    config = std::make_shared<const Qwen2Config>(std::move(read).value());
  }
  const std::string& dtype_name = model.string("dtype");
  const c10::ScalarType dtype = dtype_name == "bf16" ? c10::kBFloat16 : dtype_name == "fp16" ? c10::kHalf : c10::kFloat;
  pc->context = std::make_unique<RunContext>(planned_device(model), dtype, static_cast<uint64_t>(train.integer("seed")));
  const RunContext& ctx = *pc->context;
  {
    auto q = make<Quantizer>(registry, r, "quantizer", ctx);
    if (!q.ok()) return q.status();
    pc->quantizer = std::move(q).value();
    auto p = make<PeftMethod>(registry, r, "peft", ctx);
    if (!p.ok()) return p.status();
    pc->peft = std::move(p).value();
    auto o = make<Optimizer>(registry, r, "optimizer", ctx);
    if (!o.ok()) return o.status();
    pc->optimizer = std::move(o).value();
    auto f = make<OffloadStrategy>(registry, r, "offload", ctx);
    if (!f.ok()) return f.status();
    pc->offload = std::move(f).value();
  }
  PlanSetup& s = pc->setup;
  s.config = *config;
  s.dtype = dtype;
  s.cuda = ctx.device().is_cuda();
  s.batch_size = train.integer("batch_size");
  s.grad_accum = train.integer("grad_accum");
  s.max_length = r.sections.at("dataset").integer("max_length");
  s.pack_length = train.boolean("packing") ? (train.integer("pack_length") > 0 ? train.integer("pack_length")
                                                                                 : s.max_length)
                                           : 0;
  SkipResolution skip = resolve_quantizer_skip(r.sections.at("quantizer").strings("skip"), *config);
  if (!skip.problems.empty()) return Status::InvalidArgument("quantizer.skip: " + skip.problems.front().second);
  s.dense_sites = skip.sites;
  for (auto& name : pc->peft->trainable_parameters(non_linear_names(*config))) s.trainable_params.insert(name);
  s.dataset_examples = dataset_examples;
  s.pretrained = model.string("init") == "pretrained";
  s.quantizer = find_extension<QuantizerMemoryCost>(*pc->quantizer, kQuantizerMemoryCostId);
  s.peft = pc->peft.get();
  s.peft_cost = find_extension<PeftMemoryCost>(*pc->peft, kPeftMemoryCostId);
  s.optimizer = find_extension<OptimizerMemoryCost>(*pc->optimizer, kOptimizerMemoryCostId);
  s.offload = find_extension<OffloadMemoryPlan>(*pc->offload, kOffloadMemoryPlanId);
  if (s.cuda && !torch::cuda::is_available()) {
    s.notes.push_back("planned for a CUDA device (model.device = \"cuda\"); none is visible here");
  }
  auto budget = plan_budget(r);
  if (!budget.ok()) return budget.status();
  pc->gpu_budget = budget.value().first;
  pc->host_budget = budget.value().second;
  return pc;
}

// The dataset's size, or -1 when its plugin cannot open it (the plan then notes that data is not counted).
int64_t dataset_size(const ResolvedRecipe& r, PluginRegistry& registry) {
  RunContext ctx(c10::Device(c10::kCPU), c10::kFloat, 0);
  auto dataset = registry.create<Dataset>(r.plugin_types.at("dataset"), ctx, r.sections.at("dataset"));
  if (!dataset.ok()) return -1;
  try {
    return dataset.value()->size();
  } catch (const std::exception&) {
    return -1;
  }
}

RecipePlan plan_with(const PlanComponents& pc, const PlanSetup& setup) {
  const auto units = model_units(setup.config, setup.dtype, setup.trainable_params);
  OffloadMemoryLayout layout;
  PlanSetup s = setup;
  if (s.offload != nullptr) {
    layout = s.offload->layout(units);
  } else {
    layout.homes.assign(units.size(), Home::kRunDevice);
    layout.execution.assign(static_cast<size_t>(s.config.num_hidden_layers), BlockExecution::kPlain);
    s.notes.push_back("the offload plugin declares no memory plan (loft.offload.memory_plan/1): assumed everything "
                      "resident, no recompute");
  }
  RecipePlan plan;
  plan.memory = predict_memory(s, units, layout);
  plan.tokens_per_second = predict_tokens_per_second(s, layout, plan.memory);
  plan.gpu_budget = pc.gpu_budget;
  plan.host_budget = pc.host_budget;
  return plan;
}

// --fit keeps 5% of each budget as a margin for the prediction's error: [budget] is enforced, so a choice predicted
// to use 99% of it would stop the run as soon as the real peak came out a little higher (the demo's host RSS came
// out 3.3% above its prediction: `ctest -R cli.plan`).
constexpr double kFitMargin = 0.95;

bool fits(const RecipePlan& p) {
  const auto within = [](uint64_t bytes, uint64_t budget) {
    return static_cast<double>(bytes) <= kFitMargin * static_cast<double>(budget);
  };
  const bool gpu_ok = p.gpu_budget == 0 || p.memory.device != "cuda" || within(p.memory.gpu_total_bytes, p.gpu_budget);
  const bool host_ok = p.host_budget == 0 || within(p.memory.host_total_bytes, p.host_budget);
  return gpu_ok && host_ok;
}

// One way to set [offload]: its section's entries replaced by these.
struct OffloadChoice {
  std::vector<std::string> overrides;  // "offload.type=...", "offload.<option>=..."
  std::string description;
};

std::vector<OffloadChoice> offload_choices(const ResolvedRecipe& r, const PluginRegistry& registry, int64_t layers) {
  std::vector<OffloadChoice> out;
  const std::string& type = r.plugin_types.at("offload");
  if (type == "none" || type == "checkpoint" || type == "zero3") {
    if (registry.find("offload", "none")) out.push_back({{"offload.type=\"none\""}, "no recompute"});
    if (registry.find("offload", "checkpoint")) {
      for (int64_t k = 1; k <= layers; ++k) {
        std::string blocks = "all";
        if (k < layers) {
          blocks.clear();
          for (int64_t i = 0; i < k; ++i) blocks += (i ? "," : "") + std::to_string(i);
        }
        out.push_back({{"offload.type=\"checkpoint\"", fmt::format("offload.blocks=\"{}\"", blocks)},
                       fmt::format("recompute {} of {} blocks", k, layers)});
      }
    }
    if (registry.find("offload", "zero3")) {
      // The optimizer part needs a host optimizer; switching optimizers would change numerics, so it follows the
      // recipe's [optimizer].
      const bool host_optimizer = r.plugin_types.at("optimizer") == "adamw_cpu";
      for (int params = 0; params < 2; ++params) {
        for (int recompute = 0; recompute < 2; ++recompute) {
          for (int activations = 0; activations <= recompute; ++activations) {
            out.push_back({{"offload.type=\"zero3\"", fmt::format("offload.params={}", params ? "true" : "false"),
                            fmt::format("offload.recompute={}", recompute ? "true" : "false"),
                            fmt::format("offload.activations={}", activations ? "true" : "false"),
                            fmt::format("offload.optimizer={}", host_optimizer ? "true" : "false")},
                           fmt::format("zero3 (params {}, recompute {}, activations {}, optimizer {})",
                                       params ? "on" : "off", recompute ? "on" : "off", activations ? "on" : "off",
                                       host_optimizer ? "on" : "off")});
          }
        }
      }
    }
  }
  if (out.empty()) out.push_back({{}, "[offload] as in the recipe"});
  return out;
}

// The recipe with [offload]'s entries replaced (when `choice` sets them) and `overrides` applied, validated.
StatusOr<ResolvedRecipe> resolve_with(const Recipe& recipe, const PluginRegistry& registry,
                                      const std::vector<std::string>& overrides, bool replace_offload) {
  Recipe changed = recipe;
  if (replace_offload) {
    auto it = changed.sections.find("offload");
    if (it != changed.sections.end()) it->second.entries.clear();
  }
  int position = 1000;
  for (const auto& o : overrides) {
    if (auto st = apply_override(changed, o, ++position); !st.ok()) return st;
  }
  ResolvedRecipe resolved;
  auto diags = validate_recipe(changed, registry, &resolved);
  if (!diags.empty()) return Status::InvalidArgument(diags.front().str());
  return resolved;
}

}  // namespace

StatusOr<RecipePlan> plan_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry) {
  try {
    auto pc = components_for(recipe, registry, dataset_size(recipe, registry));
    if (!pc.ok()) return pc.status();
    return plan_with(*pc.value(), pc.value()->setup);
  } catch (const std::exception& e) {
    return Status::Internal("loft plan: " + error_message(e));
  }
}

StatusOr<FitResult> fit_recipe(const Recipe& recipe, const ResolvedRecipe& resolved, PluginRegistry& registry) {
  auto budget = plan_budget(resolved);
  if (!budget.ok()) return budget.status();
  const uint64_t gpu_budget = budget.value().first, host_budget = budget.value().second;
  if (gpu_budget == 0 && host_budget == 0) {
    return Status::InvalidArgument(fmt::format(
        "loft plan --fit: {} has no [budget]: set budget.gpu_memory and/or budget.host_memory (e.g. \"15GiB\") to fit "
        "within", recipe.path.string()));
  }
  try {
    const int64_t examples = dataset_size(resolved, registry);
    auto base = components_for(resolved, registry, examples);
    if (!base.ok()) return base.status();
    const PlanSetup& base_setup = base.value()->setup;
    const int64_t effective = base_setup.batch_size * base_setup.grad_accum;
    const int64_t layers = base_setup.config.num_hidden_layers;

    FitResult best;
    bool found = false;
    RecipePlan smallest;
    bool have_smallest = false;
    std::vector<std::string> best_offload;
    std::string best_offload_description;
    for (const OffloadChoice& choice : offload_choices(resolved, registry, layers)) {
      auto variant = resolve_with(recipe, registry, choice.overrides, !choice.overrides.empty());
      if (!variant.ok()) continue;  // e.g. a combination the plugin's validation refuses
      auto pc = components_for(variant.value(), registry, examples);
      if (!pc.ok()) continue;
      for (int64_t batch = 1; batch <= effective; ++batch) {
        if (effective % batch != 0) continue;
        std::vector<int64_t> packs = {0};
        if (base_setup.pack_length > 0) {
          packs.clear();
          for (int64_t k = 1; k <= batch; ++k) packs.push_back(base_setup.max_length * k);
        }
        for (int64_t pack : packs) {
          PlanSetup s = pc.value()->setup;
          s.batch_size = batch;
          s.grad_accum = effective / batch;
          s.pack_length = pack;
          RecipePlan plan = plan_with(*pc.value(), s);
          ++best.candidates;
          const uint64_t size = plan.memory.device == "cuda" ? plan.memory.gpu_total_bytes : plan.memory.host_total_bytes;
          const uint64_t smallest_size = smallest.memory.device == "cuda" ? smallest.memory.gpu_total_bytes
                                                                           : smallest.memory.host_total_bytes;
          if (!have_smallest || size < smallest_size) {
            smallest = plan;
            have_smallest = true;
          }
          if (!fits(plan) || (found && plan.tokens_per_second <= best.plan.tokens_per_second)) continue;
          found = true;
          best.plan = plan;
          best.overrides = choice.overrides;
          best.overrides.push_back(fmt::format("train.batch_size={}", batch));
          best.overrides.push_back(fmt::format("train.grad_accum={}", effective / batch));
          if (pack > 0) best.overrides.push_back(fmt::format("train.pack_length={}", pack));
          best.choice = fmt::format("micro-batch {} x grad_accum {}{}; {}", batch, effective / batch,
                                    pack > 0 ? fmt::format(", packed rows of {} tokens", pack) : "",
                                    choice.description);
          best_offload = choice.overrides;
        }
      }
    }
    if (!found) {
      return Status::InvalidArgument(fmt::format(
          "loft plan --fit: nothing fits {}'s budget (gpu_memory {}, host_memory {}) among {} configurations; the "
          "smallest predicts {} on the run device and {} on the host. Raise the budget, lower dataset.max_length, or quantize the base "
          "weights ([quantizer] type = \"int8\" or \"nf4\")",
          recipe.path.string(), gpu_budget ? format_plan_bytes(gpu_budget) : "none",
          host_budget ? format_plan_bytes(host_budget) : "none", best.candidates,
          format_plan_bytes(smallest.memory.gpu_total_bytes), format_plan_bytes(smallest.memory.host_total_bytes)));
    }
    auto chosen = resolve_with(recipe, registry, best.overrides, !best_offload.empty());
    if (!chosen.ok()) return chosen.status();
    best.resolved = std::move(chosen).value();
    return best;
  } catch (const std::exception& e) {
    return Status::Internal("loft plan --fit: " + error_message(e));
  }
}

}  // namespace loft
