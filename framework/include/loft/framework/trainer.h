// The training loop: an optimizer plugin (AdamW by default) on the trainable tensors' parameter groups, schedules, gradient accumulation normalised by label tokens,
// clipping, fp16 loss scaling, metrics, checkpoints and exact resume. One readable loop in trainer.cpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "loft/framework/batching.h"
#include "loft/framework/causal_lm.h"
#include "loft/framework/schedule.h"
#include "loft/optimizer.h"
#include "loft/options.h"
#include "loft/status.h"

namespace loft {

struct TrainConfig {
  int64_t batch_size = 4;
  int64_t grad_accum = 1;
  double lr = 2e-4;
  ScheduleKind schedule = ScheduleKind::kCosine;
  int64_t warmup_steps = 0;
  int64_t max_steps = -1;  // -1: epochs over the data
  int64_t epochs = 1;
  double max_grad_norm = 1.0;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_eps = 1e-8;
  uint64_t seed = 42;
  int64_t log_every = 1;
  int64_t save_every = 0;
  bool fp16_loss_scaling = false;  // dynamic loss scaling, for fp16 compute (GPUs without bf16)
  int64_t pad_id = 0;
  int64_t profile_step = 0;  // > 0: this step runs under the profiler (trace in <run>/profile/)
  int64_t pack_length = 0;  // > 0: each micro-batch's examples packed into rows of at most this many tokens
  int64_t keep_last = 2;  // checkpoints kept in <run>/checkpoints (>= 1): the newest, including the last one written
  // Steps in a row whose loss or gradient norm is NaN/Inf that are skipped (no update: weights, optimizer state and
  // its step count untouched); the next one in a row stops the run with a checkpoint. 0: stop at the first.
  int64_t max_nonfinite_steps = 3;

  static StatusOr<TrainConfig> from_options(const Options& train);
};

// One step's record, as written to metrics.jsonl.
struct StepMetrics {
  int64_t step = 0;  // 1-based optimizer step
  double loss = 0;   // mean over the step's label tokens
  double lr = 0;
  double grad_norm = 0;
  double tokens_per_second = 0;
  double step_time_s = 0;  // wall time of the step (not in metrics.jsonl; summary.json reports its median)
  int64_t label_tokens = 0;
  double peak_gpu_bytes = 0;
  double peak_host_bytes = 0;
  bool skipped = false;    // no update this step: fp16 overflow (loss scale halved) or a non-finite step
  bool nonfinite = false;  // the loss or the gradient norm was NaN/Inf (the update was skipped)
  std::string profile;   // the profiled step only: the table of where its time went (see train.profile_step)
};

// Copies the tensors of a checkpoint's trainable.pt into `params` (same names and shapes, as
// CausalLM::trainable_parameters() returns them). Errors name the file and the tensor.
Status load_trainable_tensors(const std::vector<std::pair<std::string, at::Tensor>>& params,
                              const std::filesystem::path& file);

// The summed token loss of one batch (position t predicts token t+1) through the chunked loss against `head`: what
// a training step and the validation loss both compute.
at::Tensor batch_loss_sum(CausalLM& model, const Batch& batch, c10::Device device, const at::Tensor& head,
                          bool training);

// The name of the first floating-point tensor of `tensors` that holds a NaN or an infinity, or "" when all are finite.
// One copy to the host per device the tensors live on.
std::string first_nonfinite_tensor(const std::vector<std::pair<std::string, at::Tensor>>& tensors);

// Rewrites `file` (a metrics.jsonl) atomically without the records of steps after `step` and without a torn last line
// (one a crash cut short); the number of records dropped. Nothing is written when nothing is dropped, nor when `file`
// is absent or not a regular file.
StatusOr<int64_t> truncate_metrics(const std::filesystem::path& file, int64_t step);

// The checkpoint folder named by `run_dir`/checkpoints/latest (what Trainer::save_checkpoint publishes); when that
// is missing or names a missing or incomplete folder, the newest complete checkpoint, with a warning
// (checkpoint_folder.cpp). kNotFound when there is none: the message says whether the folder is a run folder.
StatusOr<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);

// Fault injection for tests, read from the environment when a Trainer is made (unset: no effect):
//   LOFT_FAULT_NONFINITE_STEPS=3,5  the loss of these (1-based) optimizer steps is multiplied by NaN before backward
//   LOFT_FAULT_HOLD_AFTER_STEP=N    after step N, train_until waits until the stop check returns true
//   LOFT_FAULT_HANG_AFTER_STEP=N    after step N, train_until never returns (a step that does not end)
class Trainer {
 public:
  // `run_dir` receives metrics.jsonl and checkpoints/. `device` is where batches go. Trains `groups` (resolved by
  // resolve_param_groups: a partition of model.trainable_parameters()) with `optimizer`, which this constructor
  // attaches to them (config's adam_beta1/2, adam_eps as its OptimizerSettings). Throws c10::Error when there is
  // nothing to train or the optimizer refuses a tensor.
  Trainer(TrainConfig config, CausalLM& model, const std::vector<TokenizedExample>& data, std::filesystem::path run_dir,
          c10::Device device, std::unique_ptr<Optimizer> optimizer, std::vector<ParamGroup> groups);
  // loft's AdamW (adamw.h) over the host's default groups: every trainable tensor, config.weight_decay except for
  // biases and norm weights.
  Trainer(TrainConfig config, CausalLM& model, const std::vector<TokenizedExample>& data, std::filesystem::path run_dir,
          c10::Device device);
  ~Trainer();

  int64_t total_steps() const { return total_steps_; }
  int64_t step() const { return step_; }

  // Trains until total_steps(); calls `on_step` after each logged step. Writes a checkpoint every save_every steps
  // and at the end (once: not again when the last step was just saved or loaded). metrics.jsonl first loses any
  // record after step() (see truncate_metrics), then gets one line per logged step and per non-finite step; a failed
  // write stops training with an IoError (the last checkpoint stays). More than config.max_nonfinite_steps
  // non-finite steps in a row: a checkpoint of the current step (its weights are those of the last finite step), then
  // an Internal error naming the step.
  Status train(const std::function<void(const StepMetrics&)>& on_step = {}) { return train_until(total_steps_, on_step); }
  // The same, stopping after optimizer step `last_step` (a checkpoint is written there).
  Status train_until(int64_t last_step, const std::function<void(const StepMetrics&)>& on_step = {});
  // Called after every step (logged or not), before any checkpoint of that step; an error stops training with it
  // (the last checkpoint written stays the newest). For checks such as [budget]'s host memory.
  void set_step_check(std::function<Status(int64_t step)> check) { step_check_ = std::move(check); }
  // [eval]'s held-out loss (validation_loss.h) over `examples` (which must outlive the trainer), after every step
  // whose number is a multiple of `every` (0: none) and after the last one (total_steps()), before that step's
  // checkpoint: one {"step", "val_loss", "val_label_tokens"} record appended to metrics.jsonl (the same checked
  // writes, and a resume drops those after its checkpoint like any other) and a log line. Batches of
  // config.batch_size (packed as training packs); the RNG state is left as it was, so training is bit-identical
  // with and without it.
  void set_validation(const std::vector<TokenizedExample>* examples, int64_t every) {
    validation_examples_ = examples;
    validation_every_ = every;
  }
  // Polled after every step: once it returns true, train_until writes a checkpoint of the step just finished and
  // returns Ok with step() < last_step (see stop_signals.h for SIGINT/SIGTERM).
  void set_stop_check(std::function<bool()> stop_requested) { stop_requested_ = std::move(stop_requested); }

  // Resumes from a checkpoint folder written by save_checkpoint (trainable tensors, optimizer, step, RNG).
  Status load_checkpoint(const std::filesystem::path& dir);
  // Publishes the state as a checkpoint folder (publish_checkpoint: atomic, checkpoints/latest updated, older ones
  // pruned to config.keep_last).
  Status save_checkpoint(const std::filesystem::path& dir);

 private:
  std::function<Status(int64_t)> step_check_;
  struct State;
  StepMetrics train_step();
  // The examples of optimizer step `step` (0-based): a seeded permutation per epoch, so the data position is a pure
  // function of the step and resuming needs nothing else.
  std::vector<const TokenizedExample*> examples_for_step(int64_t step);

  TrainConfig config_;
  CausalLM& model_;
  const std::vector<TokenizedExample>& data_;
  std::filesystem::path run_dir_;
  c10::Device device_;
  int64_t total_steps_ = 0;
  int64_t step_ = 0;
  int64_t saved_step_ = -1;  // the step of the checkpoint last written or loaded: never written twice
  std::function<bool()> stop_requested_;
  const std::vector<TokenizedExample>* validation_examples_ = nullptr;
  int64_t validation_every_ = 0;
  std::unique_ptr<State> state_;
};

}  // namespace loft
