// run_recipe: from a validated recipe to a trained run folder.
#include "loft/framework/run.h"

#include "loft/error_message.h"
#include "loft/framework/files.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <ctime>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include "fault_point.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/checkpoint_folder.h"
#include "loft/framework/evaluate.h"
#include "loft/framework/examples.h"
#include "loft/framework/memory_plan.h"
#include "loft/framework/param_groups.h"
#include "loft/framework/peft_adapter.h"
#include "loft/framework/quantizer_host.h"
#include "loft/framework/run_folder.h"
#include "loft/framework/run_summary.h"
#include "loft/framework/safetensors.h"
#include "loft/framework/stop_signals.h"
#include "loft/framework/qwen2.h"
#include "loft/framework/tokenizer.h"
#include "loft/framework/trainer.h"

namespace fs = std::filesystem;

namespace loft {

StatusOr<RunComponents> instantiate(const ResolvedRecipe& recipe, PluginRegistry& registry) {
  RunComponents c;
  auto ctx = make_run_context(recipe.sections.at("model"), recipe.sections.at("train"));
  if (!ctx.ok()) return ctx.status();
  c.context = std::move(ctx).value();
  const auto& t = recipe.plugin_types;
#define LOFT_CREATE_COMPONENT(Interface, kind, default_type, doc)                                   \
  {                                                                                                  \
    auto made = registry.create<Interface>(t.at(#kind), *c.context, recipe.sections.at(#kind));     \
    if (!made.ok()) return Status::Error(made.status().code(), "[" #kind "] " + made.status().message()); \
    c.kind = std::move(made).value();                                                              \
  }
  LOFT_PLUGIN_KINDS(LOFT_CREATE_COMPONENT)
#undef LOFT_CREATE_COMPONENT
  if (const PluginManifest* m = registry.find("quantizer", t.at("quantizer"))) c.quantizer_build = plugin_build_identity(*m);
  return c;
}

StatusOr<std::unique_ptr<Dataset>> create_eval_dataset(const ResolvedRecipe& recipe, PluginRegistry& registry,
                                                       const HostContext& context) {
  auto type = recipe.plugin_types.find(kEvalDatasetSection);
  if (type == recipe.plugin_types.end()) return std::unique_ptr<Dataset>();
  auto made = registry.create<Dataset>(type->second, context, recipe.sections.at(kEvalDatasetSection));
  if (!made.ok()) return Status::Error(made.status().code(), "[eval.dataset] " + made.status().message());
  return std::move(made).value();
}

namespace {

// The session layer says which errors are the user's input (kInvalidArgument: exit 2 at the CLI) and which are
// failures of the run (exit 1), whatever code the layer below chose.
Status input_error(const Status& st) { return st.ok() ? st : Status::InvalidArgument(st.message()); }
Status runtime_error(const Status& st) {
  if (st.code() == StatusCode::kInvalidArgument || st.code() == StatusCode::kNotFound) return Status::Internal(st.message());
  return st;
}

// Prompts generated together by eval.accuracy, as `loft eval`'s --batch-size default.
constexpr int64_t kEvalBatchSize = 8;

std::string gib(double bytes) { return fmt::format("{:.2f}GiB", bytes / (1024.0 * 1024 * 1024)); }

// A new run's folder, created and locked. Without output.name: the recipe's name and a timestamp, made unique by
// create_unique_run_folder.
StatusOr<RunFolderLock> open_new_run_folder(const ResolvedRecipe& recipe, const RunOptions& options) {
  const fs::path parent = recipe.sections.at("output").string("dir");
  const std::string& name = recipe.sections.at("output").string("name");
  if (!name.empty()) {
    return open_run_folder(parent / name, options.overwrite ? RunFolderMode::kOverwrite : RunFolderMode::kNew);
  }
  std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &local);
  return create_unique_run_folder(parent, recipe.path.stem().string() + "-" + stamp);
}

// Whether `inner` is `outer` or lies below it (both canonical).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin(), o = outer.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

// Deletes the folders `prefix`<pid> in `dir` left by merges that were killed (their process is gone).
void remove_abandoned_merges(const fs::path& dir, const std::string& prefix) {
  for (const auto& entry : fs::list_directory(dir)) {
    const std::string name = entry.filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) (void)remove_tree(entry);
  }
}

// Where `loft merge` may write: refusals as merge_recipe documents them. Returns the canonical target folder.
StatusOr<fs::path> check_merge_out(const fs::path& out, const fs::path& model_dir, const fs::path& run_dir,
                                   bool overwrite) {
  fs::path target = fs::weakly_canonical(out);
  if (target.filename().empty()) target = target.parent_path();
  const fs::path model = fs::weakly_canonical(model_dir);
  if (is_within(model, target)) {
    return Status::InvalidArgument(fmt::format(
        "loft merge: --out {} {} the base model's folder {} (model.path), which the merge reads; choose another folder",
        out.string(), model == target ? "is" : "contains", model_dir.string()));
  }
  if (!run_dir.empty() && is_within(fs::weakly_canonical(run_dir), target)) {
    return Status::InvalidArgument(fmt::format("loft merge: --out {} {} the run folder {}; choose another folder",
                                               out.string(), fs::weakly_canonical(run_dir) == target ? "is" : "contains",
                                               run_dir.string()));
  }
  if (fs::exists(target) && !fs::is_directory(target)) {
    return Status::InvalidArgument(fmt::format("loft merge: --out {} is a file, not a folder", out.string()));
  }
  if (!fs::list_directory(target).empty()) {
    if (!overwrite) {
      return Status::InvalidArgument(fmt::format("loft merge: --out {} exists and is not empty; add --overwrite to "
                                                 "replace it, or choose another folder", out.string()));
    }
    if (!fs::is_regular_file(target / "config.json")) {
      return Status::InvalidArgument(fmt::format(
          "loft merge: --out {} is not a model folder (no config.json): --overwrite replaces only a model folder; "
          "empty it yourself or choose another folder", out.string()));
    }
  }
  return target;
}

// One line per logged step; on a terminal the line rewrites itself as a progress bar.
void report(const StepMetrics& m, int64_t total, double elapsed_s) {
  const double eta = m.step > 0 ? elapsed_s / static_cast<double>(m.step) * static_cast<double>(total - m.step) : 0;
  std::string line = fmt::format("step {}/{} loss {:.4f} lr {:.2e} grad {:.3f} tok/s {:.0f} eta {}:{:02d} gpu {} host {}{}",
                                 m.step, total, m.loss, m.lr, m.grad_norm, m.tokens_per_second,
                                 static_cast<int>(eta) / 60, static_cast<int>(eta) % 60, gib(m.peak_gpu_bytes),
                                 gib(m.peak_host_bytes),
                                 m.nonfinite ? " (non-finite: step skipped)" : m.skipped ? " (fp16 overflow: step skipped)" : "");
  if (isatty(STDOUT_FILENO)) {
    const int width = 24, filled = static_cast<int>(width * m.step / std::max<int64_t>(total, 1));
    std::printf("\r[%s%s] %s\033[K%s", std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                line.c_str(), m.step == total ? "\n" : "");
  } else {
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

// What a run leaves for users of the Hugging Face stack: a PEFT adapter folder (adapter_config.json +
// adapter_model.safetensors with PEFT's key names) when the method has one, else the whole model as an HF folder.
StatusOr<fs::path> save_trained(Qwen2Model& lm, const PeftMethod& peft, const fs::path& model_dir,
                                const fs::path& run_dir) {
  if (std::string bad = first_nonfinite_tensor(lm.trainable_parameters()); !bad.empty()) {
    return Status::Internal(fmt::format("trainable tensor '{}' holds NaN or Inf values: not writing the trained "
                                        "adapter or model into {}", bad, run_dir.string()));
  }
  if (!peft.adapter_config_json(model_dir.string()).empty()) {
    if (auto st = save_peft_adapter(lm, peft, model_dir.string(), run_dir / "adapter"); !st.ok()) return st;
    return run_dir / "adapter";
  }
  if (auto st = save_merged_model(lm, model_dir, run_dir / "model"); !st.ok()) return st;
  return run_dir / "model";
}

// The frozen-linear policy of the recipe: quantizer.skip resolved against config.json, quantizer.cache_dir keyed by
// everything that decides the quantized states (see quantizer_host.h).
StatusOr<std::shared_ptr<FrozenLinearBuilder>> make_frozen_linear_builder(const ResolvedRecipe& recipe,
                                                                         const Qwen2Config& config,
                                                                         RunComponents& c) {
  const Options& model_opts = recipe.sections.at("model");
  const Options& quantizer_opts = recipe.sections.at("quantizer");
  const fs::path model_dir = model_opts.string("path");
  const std::string quantizer = recipe.plugin_types.at("quantizer");
  SkipResolution skip = resolve_quantizer_skip(quantizer_opts.strings("skip"), config);
  if (!skip.problems.empty()) {
    std::string why;
    for (const auto& [index, message] : skip.problems) why += (why.empty() ? "" : "; ") + message;
    return Status::InvalidArgument(fmt::format("{} ({})", why, (model_dir / "config.json").string()));
  }
  auto builder = std::make_shared<FrozenLinearBuilder>(*c.quantizer, quantizer, c.context->compute_dtype(),
                                                       c.context->device(), skip.sites);
  const std::string& cache_dir = quantizer_opts.string("cache_dir");
  if (cache_dir.empty()) return builder;
  if (model_opts.string("init") == "random") {
    spdlog::info("quantizer.cache_dir is not used with model.init = \"random\" (random weights are drawn, not read)");
    return builder;
  }
  auto checkpoint = checkpoint_fingerprint(model_dir);
  if (!checkpoint.ok()) {
    spdlog::warn("quantizer cache: {}; quantizing without it", checkpoint.status().message());
    return builder;
  }
  QuantizedCacheInputs inputs;
  inputs.checkpoint = checkpoint.value();
  inputs.quantizer = c.quantizer_build.empty() ? "quantizer/" + quantizer : c.quantizer_build;
  const OptionSchema& host_keys = framework_schema().at("quantizer");
  for (const auto& [key, value] : quantizer_opts.values()) {
    if (find_option(host_keys, key) == nullptr) inputs.options[key] = format_option_value(value);
  }
  inputs.dtype = c10::toString(c.context->compute_dtype());
  inputs.device_type = c10::DeviceTypeName(c.context->device().type(), /*lower_case=*/true);
  inputs.skipped_sites.assign(skip.sites.begin(), skip.sites.end());
  std::set<std::string> quantized;
  for (const auto& name : skippable_module_names(config)) {
    if (name != "lm_head" && !skip.sites.count(name)) quantized.insert(name);
  }
  QuantizedCacheKey key = make_quantized_cache_key(inputs);
  const fs::path file = quantized_cache_file(cache_dir, model_dir, quantizer, key);
  builder->use_cache(file, std::move(key), std::move(quantized));
  return builder;
}

// The [budget] ledger's sources: bytes of the trainable tensors, their gradients and (when given) the optimizer's
// state on a device type. The model and optimizer must outlive the guard that holds these.
MemoryLedgerSources model_ledger(Qwen2Model* model, const Optimizer* optimizer) {
  auto on = [](const at::Tensor& t, c10::Device d) -> uint64_t {
    return t.defined() && t.device().type() == d.type() ? t.nbytes() : 0;
  };
  MemoryLedgerSources sources;
  sources.adapters = [model, on](c10::Device d) {
    uint64_t bytes = 0;
    for (const auto& [name, t] : model->trainable_parameters()) bytes += on(t, d);
    return bytes;
  };
  sources.gradients = [model, on](c10::Device d) {
    uint64_t bytes = 0;
    for (const auto& [name, t] : model->trainable_parameters()) bytes += on(t.grad(), d);
    return bytes;
  };
  if (optimizer != nullptr) {
    sources.optimizer = [optimizer, on](c10::Device d) {
      uint64_t bytes = 0;
      for (const auto& [key, t] : optimizer->state_dict()) bytes += on(t, d);
      return bytes;
    };
  }
  return sources;
}

// A command line the shell reads back as these words.
std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") ==
                           std::string::npos) {
    return word;
  }
  std::string out = "'";
  for (char ch : word) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// The command that continues `run_dir`: this executable, the run's own resolved recipe, the flags the CLI passed on.
std::string resume_command(const fs::path& run_dir, const std::vector<std::string>& flags) {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string cmd = shell_quote(n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string("loft"));
  const fs::path dir = fs::absolute(run_dir);
  cmd += " run " + shell_quote((dir / "recipe.toml").string()) + " --resume " + shell_quote(dir.string());
  for (const auto& f : flags) cmd += " " + shell_quote(f);
  return cmd;
}

}  // namespace

Status save_merged_model(const Qwen2Model& lm, const fs::path& model_dir, const fs::path& out) {
  if (auto st = fs::create_directories(out); !st.ok()) return st;
  if (auto st = write_sharded_checkpoint(out, lm.state_dict(lm.dtype()), uint64_t{5} << 30); !st.ok()) return st;
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    std::ifstream in(model_dir / f, std::ios::binary);
    if (!in) continue;
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (auto st = write_file_atomically(out / f, bytes); !st.ok()) return st;
  }
  return Status::Ok();
}

StatusOr<Session> open_session(const ResolvedRecipe& recipe, PluginRegistry& registry, const SessionOptions& options) {
  Session s;
  auto components = instantiate(recipe, registry);
  if (!components.ok()) return components.status();  // a factory's std::invalid_argument is the user's input
  s.components = std::move(components).value();
  const RunComponents& c = s.components;
  std::string plugins;
  for (const char* kind : kPluginKinds) plugins += fmt::format(" {}/{}", kind, recipe.plugin_types.at(kind));
  spdlog::info("device {}, dtype {}, seed {}; plugins:{}", c.context->device().str(),
               c10::toString(c.context->compute_dtype()), c.context->seed(), plugins);
  s.model_dir = recipe.sections.at("model").string("path");
  if (options.tokenizer) {
    auto tokenizer = Tokenizer::from_file(s.model_dir / "tokenizer.json");
    if (!tokenizer.ok()) return input_error(tokenizer.status());
    s.tokenizer.emplace(std::move(tokenizer).value());
  }
  auto budget = MemoryBudget::from_options(recipe.sections.at("budget"));
  if (!budget.ok()) return input_error(budget.status());
  s.memory = std::make_unique<MemoryGuard>(budget.value(), c.context->device());
  if (auto st = s.memory->arm(recipe.sections.at("model").string("device") == "cpu"); !st.ok()) return st;
  StatusOr<std::unique_ptr<Qwen2Model>> model = Status::Internal("unset");
  try {
    model = build_model(recipe, s.components);
  } catch (const c10::OutOfMemoryError& e) {
    return Status::FailedPrecondition("while loading the model: " + s.memory->describe_gpu_oom(error_message(e)));
  }
  if (!model.ok()) return input_error(model.status());
  s.model = std::move(model).value();
  s.memory->note_model_built(model_ledger(s.model.get(), nullptr));
  if (auto st = s.memory->check_host("after loading the model"); !st.ok()) return st;
  if (!options.trained_run.empty()) {
    auto checkpoint = latest_checkpoint(options.trained_run);
    if (!checkpoint.ok()) return Status::InvalidArgument(options.trained_run_flag + " " + checkpoint.status().message());
    s.trained_file = checkpoint.value() / "trainable.pt";
    if (auto st = load_trainable_tensors(s.model->trainable_parameters(), s.trained_file); !st.ok()) {
      return input_error(st);
    }
  }
  return s;
}

Status merge_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const fs::path& run_dir, const fs::path& out,
                    bool overwrite) {
  auto target = check_merge_out(out, recipe.sections.at("model").string("path"), run_dir, overwrite);
  if (!target.ok()) return target.status();
  SessionOptions options;
  options.tokenizer = false;
  options.trained_run = run_dir;
  // Merging reads every frozen weight at once, outside any block's forward: a strategy that streams weights from the
  // host (offload/zero3) leaves them unreadable there, so a merge always builds the model resident. Offloading changes
  // no numerics, so the merged weights are the same.
  ResolvedRecipe resident = recipe;
  if (resident.plugin_types.at("offload") != "none") {
    spdlog::info("merge: [offload] type = \"{}\" does not apply to merging; the model is built resident (offload/none)",
                 resident.plugin_types.at("offload"));
    resident.plugin_types["offload"] = "none";
    resident.sections["offload"] = Options("offload", {});  // offload/none has no options
  }
  auto session = open_session(resident, registry, options);
  if (!session.ok()) return session.status();
  const Session& s = session.value();
  std::string source = s.trained_file.empty() ? recipe.sections.at("peft").string("adapter_path") : s.trained_file.string();
  if (source.empty()) {
    return Status::InvalidArgument("loft merge: nothing to merge: name a run folder, or a recipe with peft.adapter_path set");
  }
  // Written beside the target, then put in place whole: an earlier folder stays intact until the new one is complete.
  const std::string partial_prefix = fmt::format(".{}.partial-", target.value().filename().string());
  const fs::path staged = target.value().parent_path() / fmt::format("{}{}", partial_prefix, ::getpid());
  remove_abandoned_merges(target.value().parent_path(), partial_prefix);
  if (auto st = remove_tree(staged); !st.ok()) return runtime_error(st);
  if (auto st = save_merged_model(*s.model, s.model_dir, staged); !st.ok()) {
    (void)remove_tree(staged);
    return runtime_error(st);
  }
  fault_point("merge.staged");
  if (auto st = fs::replace_directory(staged, target.value()); !st.ok()) return runtime_error(st);
  spdlog::info("merged {} into {}", source, out.string());
  return Status::Ok();
}

Status merge_run(const fs::path& run_dir, PluginRegistry& registry, const fs::path& out, bool overwrite) {
  auto parsed = parse_recipe_file(run_dir / "recipe.toml");
  if (!parsed.ok()) {
    return Status::InvalidArgument(
        fmt::format("{} (is {} a loft run folder?)", parsed.status().message(), run_dir.string()));
  }
  ResolvedRecipe recipe;
  auto diags = validate_recipe(parsed.value(), registry, &recipe);
  if (!diags.empty()) {
    std::string all;
    for (const auto& d : diags) all += (all.empty() ? "" : "\n") + d.str();
    return Status::InvalidArgument(all);
  }
  return merge_recipe(recipe, registry, run_dir, out, overwrite);
}

StatusOr<std::unique_ptr<Qwen2Model>> build_model(const ResolvedRecipe& recipe, RunComponents& c) {
  const Options& model_opts = recipe.sections.at("model");
  const fs::path model_dir = model_opts.string("path");
  const auto load_start = std::chrono::steady_clock::now();
  // config.json as validation read it (once per run); read here only for a recipe that did not come from validation.
  std::shared_ptr<const Qwen2Config> config = recipe.model_config;
  if (!config) {
    auto read = read_qwen2_config(model_dir / "config.json");
    if (!read.ok()) return read.status();
    config = std::make_shared<const Qwen2Config>(std::move(read).value());
  }
  auto frozen = make_frozen_linear_builder(recipe, *config, c);
  if (!frozen.ok()) return frozen.status();
  std::shared_ptr<FrozenLinearBuilder> linears = std::move(frozen).value();
  ModelOptions mo;
  mo.dtype = c.context->compute_dtype();
  mo.device = c.context->device();
  mo.make_linear = [linears](const at::Tensor& w, const std::string& site) { return linears->make(w, site); };
  mo.stored_linear = [linears](const std::string& site, int64_t out, int64_t in) {
    return linears->stored(site, out, in);
  };
  mo.peft = c.peft.get();
  mo.offload = c.offload.get();
  mo.log = &c.context->log();
  StatusOr<std::unique_ptr<Qwen2Model>> model = Status::Internal("unset");
  if (model_opts.string("init") == "random") {
    model = Qwen2Model::create_random(*config, c.context->seed(), mo);
  } else {
    model = Qwen2Model::load(model_dir, *config, mo);
  }
  if (!model.ok()) return model.status();
  auto& lm = *model.value();
  linears->finish(lm.linear_sites());
  if (const std::string& adapter = recipe.sections.at("peft").string("adapter_path"); !adapter.empty()) {
    if (auto st = load_peft_adapter(lm, *c.peft, adapter); !st.ok()) return st;
    spdlog::info("peft: adapter weights loaded from {}", adapter);
  }
  int64_t trainable = 0;
  for (auto& [name, t] : lm.trainable_parameters()) trainable += t.numel();
  if (c.context->device().is_cuda()) torch::cuda::synchronize();
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  spdlog::info("model: {} layers, hidden {}, vocab {}; {} trainable parameters; built in {:.2f} s ({})",
               lm.config().num_hidden_layers, lm.config().hidden_size, lm.config().vocab_size, trainable, load_s,
               model_opts.string("init") == "random" ? "random init" : "loaded from " + model_dir.string());
  return model;
}

// summary.json of a finished run: this process's step timings, `loft plan`'s prediction, the trained tensors' size.
static Status write_summary(const ResolvedRecipe& recipe, PluginRegistry& registry, Qwen2Model& lm,
                            const fs::path& run_dir, const fs::path& saved, int64_t steps,
                            std::chrono::steady_clock::time_point process_start, RunSummaryFacts facts) {
  facts.steps = steps;
  facts.saved = saved;
  for (auto& [name, t] : lm.trainable_parameters()) facts.trainable_params += t.numel();
  if (auto plan = plan_recipe(recipe, registry); plan.ok()) {
    facts.planned = plan.value().memory;
  } else {
    spdlog::warn("summary.json: no planned memory ({})", plan.status().message());
  }
  facts.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - process_start).count();
  return write_run_summary(run_dir, facts);
}

Status run_recipe(const ResolvedRecipe& recipe, PluginRegistry& registry, const RunOptions& options) {
  const auto process_start = std::chrono::steady_clock::now();
  // Refusals of the run folder come before the model is built. A resumed folder is locked from here to the end; a
  // new one is only checked here, and created and locked once the setup has worked (a run that cannot start leaves
  // no folder behind).
  const bool resuming = !options.resume_dir.empty();
  const std::string& output_name = recipe.sections.at("output").string("name");
  std::optional<RunFolderLock> folder;
  ResolvedRecipe saved_recipe;
  std::vector<RecipeChange> recipe_changes;
  if (resuming) {
    auto opened = open_run_folder(options.resume_dir, RunFolderMode::kResume);
    if (!opened.ok()) return opened.status();
    folder.emplace(std::move(opened).value());
    auto changes = check_resume_recipe(folder->folder(), recipe, registry, &saved_recipe);
    if (!changes.ok()) return changes.status();
    recipe_changes = std::move(changes).value();
  } else if (!output_name.empty()) {
    const fs::path dir = fs::path(recipe.sections.at("output").string("dir")) / output_name;
    if (auto st = check_new_run_folder(dir, options.overwrite ? RunFolderMode::kOverwrite : RunFolderMode::kNew);
        !st.ok()) {
      return st;
    }
  }

  auto session = open_session(recipe, registry, SessionOptions{});
  if (!session.ok()) return session.status();
  Session& s = session.value();
  RunComponents& c = s.components;
  const fs::path& model_dir = s.model_dir;
  const Tokenizer& tokenizer = *s.tokenizer;
  auto& lm = *s.model;

  TokenizeStats stats;
  auto examples = tokenize_dataset(tokenizer, *c.dataset, recipe.sections.at("dataset").integer("max_length"), &stats);
  if (!examples.ok()) return examples.status();  // the dataset's samples: the user's input
  spdlog::info("dataset: {} samples -> {} examples, {} label tokens ({} truncated, {} dropped: prompt too long)",
               c.dataset->size(), stats.examples, stats.label_tokens, stats.truncated, stats.dropped);

  // [eval]: the held-out examples, tokenized as the training ones; with accuracy, problems the grader can score.
  auto held_out = create_eval_dataset(recipe, registry, *c.context);
  if (!held_out.ok()) return held_out.status();
  std::vector<TokenizedExample> eval_examples;
  if (const std::unique_ptr<Dataset>& eval_dataset = held_out.value()) {
    if (std::string warning = eval_not_held_out_warning(recipe); !warning.empty()) spdlog::warn("{}", warning);
    TokenizeStats eval_stats;
    auto tokenized = tokenize_dataset(tokenizer, *eval_dataset, recipe.sections.at("dataset").integer("max_length"),
                                      &eval_stats);
    if (!tokenized.ok()) return Status::InvalidArgument("[eval.dataset] " + tokenized.status().message());
    eval_examples = std::move(tokenized).value();
    spdlog::info("eval dataset: {} samples -> {} examples, {} label tokens ({} truncated, {} dropped)",
                 eval_dataset->size(), eval_stats.examples, eval_stats.label_tokens, eval_stats.truncated,
                 eval_stats.dropped);
    if (recipe.sections.at("eval").boolean("accuracy") && !has_reference_answer(eval_dataset->get(0))) {
      return Status::InvalidArgument(fmt::format(
          "eval.accuracy = true, but the first sample of [eval.dataset] (dataset/{}) has no reference answer (no "
          "\"answer\" field, no \\boxed{{}} in its last message) to grade against; use a MATH-style dataset or set "
          "eval.accuracy = false", recipe.plugin_types.at(kEvalDatasetSection)));
    }
  }

  auto train_config = TrainConfig::from_options(recipe.sections.at("train"));
  if (!train_config.ok()) return input_error(train_config.status());
  TrainConfig tc = train_config.value();
  tc.pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  tc.fp16_loss_scaling = c.context->compute_dtype() == c10::kHalf;
  if (recipe.sections.at("train").boolean("packing")) {
    const int64_t max_length = recipe.sections.at("dataset").integer("max_length");
    if (tc.pack_length == 0) tc.pack_length = max_length;
    if (tc.pack_length < max_length) {
      return Status::InvalidArgument(
          fmt::format("train.pack_length = {} is shorter than dataset.max_length = {}: an example may not fit a packed "
                      "row; raise pack_length or lower max_length", tc.pack_length, max_length));
    }
  }

  if (!folder) {
    auto opened = open_new_run_folder(recipe, options);
    if (!opened.ok()) return opened.status();
    folder.emplace(std::move(opened).value());
    if (auto written = write_file_atomically(folder->folder() / "recipe.toml", recipe.to_toml()); !written.ok()) {
      return runtime_error(written);
    }
  }
  const fs::path run_dir = folder->folder();
  fault_point("run.locked");
  // Dropout draws from the default generators: seed them from train.seed (a resumed run restores their state).
  at::manual_seed(c.context->seed());
  // The PEFT method's parameter groups, resolved with train.weight_decay, for the recipe's optimizer.
  const std::string peft_name = "peft/" + recipe.plugin_types.at("peft");
  StatusOr<std::vector<ParamGroup>> groups = Status::Internal("unset");
  try {
    auto trainable = lm.trainable_parameters();
    groups = resolve_param_groups(trainable, c.peft->param_groups(trainable), tc.weight_decay, peft_name);
  } catch (const std::exception& e) {
    groups = Status::Internal(fmt::format("{}: cannot group the trainable tensors: {}", peft_name, error_message(e)));
  }
  if (!groups.ok()) return runtime_error(groups.status());
  for (const auto& g : groups.value()) {
    spdlog::info("parameter group {}: {} tensors, lr x {}, weight decay {}", g.name, g.tensors.size(), g.lr_scale,
                 g.weight_decay);
  }
  const Optimizer* optimizer = c.optimizer.get();  // the trainer owns it from here on
  std::unique_ptr<Trainer> made;
  try {
    made = std::make_unique<Trainer>(tc, lm, examples.value(), run_dir, c.context->device(), std::move(c.optimizer),
                                     std::move(groups).value());
  } catch (const std::exception& e) {
    return Status::Internal("cannot start training: " + error_message(e));
  }
  Trainer& trainer = *made;
  if (held_out.value()) trainer.set_validation(&eval_examples, recipe.sections.at("eval").integer("every"));
  // [budget]: the optimizer's state joins the ledger; the whole GPU and host use are checked after every step.
  s.memory->set_sources(model_ledger(&lm, optimizer));
  MemoryGuard* memory = s.memory.get();
  trainer.set_step_check([memory](int64_t step) {
    const std::string where = fmt::format("after step {}", step);
    if (auto st = memory->check_gpu(where); !st.ok()) return st;
    return memory->check_host(where);
  });
  if (resuming) {
    auto checkpoint = latest_checkpoint(run_dir);
    if (!checkpoint.ok()) return Status::InvalidArgument("--resume " + checkpoint.status().message());
    if (auto st = trainer.load_checkpoint(checkpoint.value()); !st.ok()) return input_error(st);
    if (trainer.step() > trainer.total_steps()) {
      return Status::InvalidArgument(fmt::format(
          "--resume {}: the checkpoint is at step {} but the recipe now runs {} steps (train.max_steps, train.epochs); "
          "a run cannot be shortened below its checkpoint", run_dir.string(), trainer.step(), trainer.total_steps()));
    }
    if (auto st = record_resume(run_dir, trainer.step(), recipe_changes, saved_recipe, recipe); !st.ok()) {
      return runtime_error(st);
    }
    if (auto st = adopt_checkpoint(checkpoint.value(), tc.keep_last); !st.ok()) return runtime_error(st);
    // A finished run that is extended is no longer finished: its summary comes back when it is.
    if (auto st = remove_run_summary(run_dir); !st.ok()) return runtime_error(st);
    spdlog::info("resumed from {} at step {}", checkpoint.value().string(), trainer.step());
  }
  spdlog::info("run folder {}: {} steps of {} x {} sequences", run_dir.string(), trainer.total_steps(), tc.batch_size,
               tc.grad_accum);
  const auto start = std::chrono::steady_clock::now();
  const int64_t last_step = options.stop_after_step > 0 ? options.stop_after_step : trainer.total_steps();
  Status st = Status::Ok();
  RunSummaryFacts summary;
  try {
    // SIGINT/SIGTERM while training: finish the step, write a checkpoint, say how to continue (exit 130/143 at the CLI).
    StopOnSignals stop_on_signals;
    trainer.set_stop_check([] { return stop_signal() != 0; });
    st = trainer.train_until(last_step, [&](const StepMetrics& m) {
      report(m, trainer.total_steps(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      summary.tokens_per_s.push_back(m.tokens_per_second);
      summary.step_time_s.push_back(m.step_time_s);
      if (!m.profile.empty()) spdlog::info("profile of step {} (trace in {}):\n{}", m.step, (run_dir / "profile").string(), m.profile);
    });
  } catch (const c10::OutOfMemoryError& e) {
    return Status::FailedPrecondition(fmt::format("step {}: {}", trainer.step() + 1, s.memory->describe_gpu_oom(error_message(e))));
  }
  if (!st.ok()) return runtime_error(st);
  if (const int signal = stop_signal(); signal != 0) {
    spdlog::warn("stopped by {} after step {} of {} with a checkpoint in {}; continue with:\n  {}",
                 signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "a signal", trainer.step(),
                 trainer.total_steps(), (run_dir / "checkpoints" / fmt::format("step-{:06d}", trainer.step())).string(),
                 resume_command(run_dir, options.resume_flags));
    return Status::Ok();
  }
  auto saved = save_trained(lm, *c.peft, model_dir, run_dir);
  if (!saved.ok()) return runtime_error(saved.status());
  if (trainer.step() < trainer.total_steps()) {
    spdlog::info("stopped after step {} of {} (--stop-after); continue with --resume {}", trainer.step(),
                 trainer.total_steps(), run_dir.string());
  } else {
    if (held_out.value() && recipe.sections.at("eval").boolean("accuracy")) {
      const Options& eval = recipe.sections.at("eval");
      spdlog::info("eval.accuracy: generating for {} problems of [eval.dataset]", eval.integer("limit") > 0
                   ? std::min(eval.integer("limit"), held_out.value()->size()) : held_out.value()->size());
      auto items = generate_and_grade(lm, tokenizer, *held_out.value(), eval.integer("limit"),
                                      eval.integer("max_new_tokens"), kEvalBatchSize);
      if (!items.ok()) return runtime_error(items.status());
      std::printf("%s", summarize(items.value()).table().c_str());
      if (auto st = write_eval_files(run_dir, items.value()); !st.ok()) return runtime_error(st);
    }
    // After the evaluation: the summary carries its accuracy and the last validation loss.
    if (auto written = write_summary(recipe, registry, lm, run_dir, saved.value(), trainer.step(), process_start,
                                     std::move(summary));
        !written.ok()) {
      return runtime_error(written);
    }
  }
  spdlog::info("done: {} steps; metrics in {}, {} in {}", trainer.step(), (run_dir / "metrics.jsonl").string(),
               saved.value().filename().string(), saved.value().string());
  return Status::Ok();
}

}  // namespace loft
