// The training loop, top to bottom: batches -> forward -> chunked loss -> backward -> (unscale) -> clip -> optimizer step.
#include "loft/error_message.h"
#include "loft/framework/trainer.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/clamp_max.h>
#include <ATen/ops/isfinite.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/serialize.h>

#include "loft/adamw.h"
#include "loft/framework/atomic_file.h"
#include "loft/framework/checkpoint_folder.h"
#include "loft/framework/chunked_loss.h"
#include "loft/framework/files.h"
#include "loft/framework/param_groups.h"
#include "loft/framework/step_profiler.h"
#include "loft/framework/validation_loss.h"

namespace fs = std::filesystem;

namespace loft {

StatusOr<TrainConfig> TrainConfig::from_options(const Options& t) {
  TrainConfig c;
  c.batch_size = t.integer("batch_size");
  c.grad_accum = t.integer("grad_accum");
  c.lr = t.real("lr");
  auto schedule = parse_schedule(t.string("schedule"));
  if (!schedule.ok()) return schedule.status();
  c.schedule = schedule.value();
  c.warmup_steps = t.integer("warmup_steps");
  c.max_steps = t.integer("max_steps");
  c.epochs = t.integer("epochs");
  c.max_grad_norm = t.real("max_grad_norm");
  c.weight_decay = t.real("weight_decay");
  c.adam_beta1 = t.real("adam_beta1");
  c.adam_beta2 = t.real("adam_beta2");
  c.adam_eps = t.real("adam_eps");
  c.seed = static_cast<uint64_t>(t.integer("seed"));
  c.log_every = t.integer("log_every");
  c.save_every = t.integer("save_every");
  c.profile_step = t.integer("profile_step");
  c.keep_last = t.integer("keep_last");
  c.pack_length = t.boolean("packing") ? t.integer("pack_length") : 0;
  c.max_nonfinite_steps = t.integer("max_nonfinite_steps");
  return c;
}

at::Tensor batch_loss_sum(CausalLM& model, const Batch& batch, c10::Device device, const at::Tensor& head,
                          bool training) {
  auto ids = batch.input_ids.to(device), lengths = batch.lengths.to(device), labels = batch.labels.to(device);
  // The packed layout stays on the host: the model reads cu_seqlens there and copies what the GPU needs.
  auto hidden = batch.packed() ? model.packed_hidden_states(ids, batch.position_ids, batch.cu_seqlens,
                                                            batch.max_seqlen, training)
                               : model.hidden_states(ids, lengths, training);
  const int64_t h = hidden.size(-1);
  // Position t predicts token t+1: drop the last hidden state and the first label.
  auto flat_hidden = hidden.narrow(1, 0, hidden.size(1) - 1).reshape({-1, h});
  auto flat_labels = labels.narrow(1, 1, labels.size(1) - 1).reshape({-1});
  return chunked_linear_cross_entropy(flat_hidden, head, flat_labels);
}

namespace {

double peak_host_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;
}

double peak_gpu_bytes(const c10::Device& device) {
  if (!device.is_cuda()) return 0;
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
  return static_cast<double>(stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak);
}

std::string tensor_bytes(const at::Tensor& t) {
  std::ostringstream os;
  torch::save(t, os);
  return os.str();
}

// metrics.jsonl, appended one record at a time with write(2): every write is checked, and a record that could not be
// written whole is cut off again, so a full disk leaves the file as it was before that record.
class MetricsFile {
 public:
  static StatusOr<std::unique_ptr<MetricsFile>> open(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Status::IoError(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    return std::unique_ptr<MetricsFile>(new MetricsFile(path, fd));
  }
  ~MetricsFile() { ::close(fd_); }
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;

  Status append(const std::string& line) {
    struct stat before {};
    const bool sized = ::fstat(fd_, &before) == 0 && S_ISREG(before.st_mode);
    const char* data = line.data();
    size_t left = line.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, data, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : ENOSPC;
        if (sized && ::ftruncate(fd_, before.st_size) != 0) {
          // The torn record stays; the next resume drops it (truncate_metrics).
        }
        return Status::IoError(fmt::format("cannot write {}: {}", path_.string(), std::strerror(err)));
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

 private:
  MetricsFile(fs::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  fs::path path_;
  int fd_;
};

// The fault-injection settings of the environment (see trainer.h).
struct FaultInjection {
  std::set<int64_t> nonfinite_steps;
  int64_t hold_after_step = -1, hang_after_step = -1;

  static FaultInjection from_environment() {
    FaultInjection f;
    auto number = [](const char* var, const std::string& text) {
      char* end = nullptr;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      TORCH_CHECK(!text.empty() && end && *end == '\0' && v > 0, var, " must list optimizer steps >= 1, got '", text,
                  "'");
      return static_cast<int64_t>(v);
    };
    if (const char* v = std::getenv("LOFT_FAULT_NONFINITE_STEPS")) {
      std::stringstream list(v);
      for (std::string item; std::getline(list, item, ',');) {
        f.nonfinite_steps.insert(number("LOFT_FAULT_NONFINITE_STEPS", item));
      }
    }
    if (const char* v = std::getenv("LOFT_FAULT_HOLD_AFTER_STEP")) f.hold_after_step = number("LOFT_FAULT_HOLD_AFTER_STEP", v);
    if (const char* v = std::getenv("LOFT_FAULT_HANG_AFTER_STEP")) f.hang_after_step = number("LOFT_FAULT_HANG_AFTER_STEP", v);
    return f;
  }
};

}  // namespace

std::string first_nonfinite_tensor(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  // Per device: one isfinite().all() per tensor, stacked, one copy to the host.
  std::map<std::string, std::pair<std::vector<size_t>, std::vector<at::Tensor>>> by_device;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i].second;
    if (!t.defined() || !at::isFloatingType(t.scalar_type()) || t.numel() == 0) continue;
    auto& [index, finite] = by_device[t.device().str()];
    index.push_back(i);
    finite.push_back(at::isfinite(t).all());
  }
  size_t first = tensors.size();
  for (const auto& [device, entry] : by_device) {
    const at::Tensor all = at::stack(entry.second).cpu();
    const bool* ok = all.data_ptr<bool>();
    for (size_t k = 0; k < entry.first.size(); ++k) {
      if (!ok[k]) first = std::min(first, entry.first[k]);
    }
  }
  return first < tensors.size() ? tensors[first].first : "";
}

StatusOr<int64_t> truncate_metrics(const fs::path& file, int64_t step) {
  if (!fs::is_regular_file(file)) return int64_t{0};
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::IoError(fmt::format("cannot read {}: {}", file.string(), std::strerror(errno)));
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) return Status::IoError(fmt::format("cannot read {}", file.string()));
  std::string kept;
  int64_t dropped = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) {  // a torn last record: the write that would have ended it never happened
      ++dropped;
      break;
    }
    const std::string_view line(text.data() + start, end - start);
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool later = record.is_object() && record.contains("step") && record["step"].is_number_integer() &&
                       record["step"].get<int64_t>() > step;
    if (later) {
      ++dropped;
    } else {
      kept.append(line).push_back('\n');
    }
    start = end + 1;
  }
  if (dropped == 0) return dropped;
  if (auto st = write_file_atomically(file, kept); !st.ok()) return st;
  return dropped;
}

Status load_trainable_tensors(const std::vector<std::pair<std::string, at::Tensor>>& params, const fs::path& file) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string());
    at::NoGradGuard no_grad;
    for (const auto& [name, t] : params) {
      at::Tensor saved;
      if (!archive.try_read(name, saved, /*is_buffer=*/true)) {
        return Status::InvalidArgument(fmt::format("{} has no tensor '{}': was it written by another recipe?",
                                                   file.string(), name));
      }
      if (saved.sizes() != t.sizes()) {
        return Status::InvalidArgument(fmt::format("{}: '{}' has shape {}, the model has {}", file.string(), name,
                                                   fmt::join(saved.sizes(), "x"), fmt::join(t.sizes(), "x")));
      }
      t.copy_(saved);
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(fmt::format("{} is unreadable: {}", file.string(), error_message(e)));
  }
  return Status::Ok();
}

struct Trainer::State {
  std::vector<std::pair<std::string, at::Tensor>> params;  // model order: what trainable.pt holds
  std::unique_ptr<Optimizer> optimizer;
  // For each tensor in model order, its index in the optimizer's attach order (groups in order): the gradients are
  // clipped in model order, so that grouping does not change the global norm's rounding.
  std::vector<size_t> attach_index;
  double loss_scale = 65536.0;
  int64_t good_steps = 0;  // consecutive steps without overflow; the loss scale doubles after 2000
  std::vector<int64_t> order;  // the permutation of the epoch below
  int64_t order_epoch = -1;
  int64_t nonfinite_in_row = 0;  // consecutive non-finite steps up to the last one trained
  FaultInjection faults = FaultInjection::from_environment();
};

namespace {

std::vector<ParamGroup> default_groups(const NamedTensors& params, double weight_decay) {
  ParamGroup all;
  all.name = "default";
  all.tensors = params;
  auto resolved = resolve_param_groups(params, {all}, weight_decay, "trainer");
  TORCH_CHECK(resolved.ok(), resolved.status().message());
  return std::move(resolved).value();
}

}  // namespace

Trainer::Trainer(TrainConfig config, CausalLM& model, const std::vector<TokenizedExample>& data, fs::path run_dir,
                 c10::Device device)
    : Trainer(config, model, data, std::move(run_dir), device, std::make_unique<AdamW>(),
              default_groups(model.trainable_parameters(), config.weight_decay)) {}

Trainer::Trainer(TrainConfig config, CausalLM& model, const std::vector<TokenizedExample>& data, fs::path run_dir,
                 c10::Device device, std::unique_ptr<Optimizer> optimizer, std::vector<ParamGroup> groups)
    : config_(std::move(config)), model_(model), data_(data), run_dir_(std::move(run_dir)), device_(device),
      state_(std::make_unique<State>()) {
  TORCH_CHECK(!data_.empty(), "the dataset produced no examples");
  TORCH_CHECK(optimizer != nullptr, "the trainer needs an optimizer");
  const int64_t per_step = config_.batch_size * config_.grad_accum;
  const int64_t steps_per_epoch = (static_cast<int64_t>(data_.size()) + per_step - 1) / per_step;
  total_steps_ = config_.max_steps > 0 ? config_.max_steps : steps_per_epoch * config_.epochs;
  state_->params = model_.trainable_parameters();
  TORCH_CHECK(!state_->params.empty(), "nothing to train: the PEFT method marked no tensor trainable");
  std::map<std::string, size_t> position;
  for (const auto& g : groups) {
    for (const auto& [name, t] : g.tensors) position.emplace(name, position.size());
  }
  for (auto& [name, t] : state_->params) {
    TORCH_CHECK(t.scalar_type() == at::kFloat, "trainable tensor ", name, " must be an fp32 master, got ",
                t.scalar_type());
    auto it = position.find(name);
    TORCH_CHECK(it != position.end(), "trainable tensor ", name, " is in no parameter group");
    state_->attach_index.push_back(it->second);
  }
  TORCH_CHECK(position.size() == state_->params.size(), "the parameter groups hold ", position.size(),
              " tensors, the model trains ", state_->params.size());
  optimizer->attach(groups, OptimizerSettings{config_.adam_beta1, config_.adam_beta2, config_.adam_eps});
  state_->optimizer = std::move(optimizer);
}

namespace {

// Global-norm clipping as torch.nn.utils.clip_grad_norm_ (foreach path): the norm stays on the device, no sync.
at::Tensor clip_gradients(const std::vector<at::Tensor>& grads, double max_norm) {
  std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  at::Tensor total = at::linalg_vector_norm(at::stack(norms), 2);
  if (std::isfinite(max_norm)) {
    at::Tensor coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    at::_foreach_mul_(grads, coef);
  }
  return total;
}

}  // namespace

Trainer::~Trainer() = default;

std::vector<const TokenizedExample*> Trainer::examples_for_step(int64_t step) {
  const int64_t n = static_cast<int64_t>(data_.size());
  const int64_t per_step = config_.batch_size * config_.grad_accum;
  std::vector<const TokenizedExample*> out;
  for (int64_t k = 0; k < per_step; ++k) {
    const int64_t global = step * per_step + k, epoch = global / n, index = global % n;
    if (state_->order_epoch != epoch) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(config_.seed * 1000003ull + static_cast<uint64_t>(epoch));
      auto perm = at::randperm(n, gen, at::TensorOptions().dtype(at::kLong));
      state_->order.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + n);
      state_->order_epoch = epoch;
    }
    out.push_back(&data_[static_cast<size_t>(state_->order[static_cast<size_t>(index)])]);
  }
  return out;
}

StepMetrics Trainer::train_step() {
  const auto started = std::chrono::steady_clock::now();
  StepMetrics m;
  m.step = step_ + 1;
  m.lr = learning_rate(config_.schedule, config_.lr, step_, config_.warmup_steps, total_steps_);

  // Collate every micro-batch first: the loss is normalised by the label tokens of the whole step, so that
  // accumulation gives the same gradient as one large batch (not a mean of micro-batch means).
  auto examples = examples_for_step(step_);
  std::vector<Batch> micro;
  for (int64_t i = 0; i < config_.grad_accum; ++i) {
    std::vector<const TokenizedExample*> part(examples.begin() + i * config_.batch_size,
                                              examples.begin() + (i + 1) * config_.batch_size);
    micro.push_back(config_.pack_length > 0 ? collate_packed(part, config_.pad_id, config_.pack_length)
                                            : collate(part, config_.pad_id));
    m.label_tokens += micro.back().label_tokens;
  }
  TORCH_CHECK(m.label_tokens > 0, "step ", m.step, " has no label tokens: every response was truncated away");

  Optimizer& optimizer = *state_->optimizer;
  optimizer.zero_grad();
  const double scale = config_.fp16_loss_scaling ? state_->loss_scale : 1.0;
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device_));
  int64_t tokens = 0;
  for (auto& batch : micro) {
    auto loss = batch_loss_sum(model_, batch, device_, model_.lm_head_weight(), /*training=*/true);
    if (state_->faults.nonfinite_steps.count(m.step)) loss = loss * std::numeric_limits<double>::quiet_NaN();
    (loss * (scale / static_cast<double>(m.label_tokens))).backward();
    loss_sum += loss.detach();
    tokens += batch.input_ids.numel();
  }
  // The gradients as the optimizer holds them (on the device, or host copies), in model order; tensors this step's
  // graph did not reach have none and are left alone, like PyTorch.
  const std::vector<at::Tensor> held = optimizer.gradients();
  TORCH_CHECK(held.size() == state_->params.size(), "the optimizer returned ", held.size(), " gradients for ",
              state_->params.size(), " tensors");
  std::vector<at::Tensor> grads;
  for (size_t i : state_->attach_index) {
    if (held[i].defined()) grads.push_back(held[i]);
  }
  if (scale != 1.0) at::_foreach_div_(grads, scale);
  const double max_norm = config_.max_grad_norm > 0 ? config_.max_grad_norm : std::numeric_limits<double>::infinity();
  at::Tensor grad_norm = grads.empty() ? at::zeros({}, loss_sum.options()) : clip_gradients(grads, max_norm);
  // One host sync for what the step reports and what decides whether it updates: a NaN or Inf in any gradient makes
  // the global norm non-finite, so the norm doubles as the finiteness check of every gradient.
  const at::Tensor reported = at::stack({loss_sum, grad_norm.to(loss_sum.device(), at::kDouble)}).cpu();
  m.loss = reported[0].item<double>() / static_cast<double>(m.label_tokens);
  m.grad_norm = reported[1].item<double>();
  if (!std::isfinite(m.loss) || (!config_.fp16_loss_scaling && !std::isfinite(m.grad_norm))) {
    m.nonfinite = m.skipped = true;  // no update: weights, optimizer state and its step count stay as they were
  } else if (config_.fp16_loss_scaling && !std::isfinite(m.grad_norm)) {
    m.skipped = true;  // overflow: skip the update, halve the scale
    state_->loss_scale /= 2;
    state_->good_steps = 0;
  } else if (!grads.empty()) {
    optimizer.step(m.lr);
    if (config_.fp16_loss_scaling && ++state_->good_steps % 2000 == 0) state_->loss_scale *= 2;
  }
  ++step_;
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  m.tokens_per_second = static_cast<double>(tokens) / std::max(seconds, 1e-9);
  m.step_time_s = seconds;
  m.peak_gpu_bytes = peak_gpu_bytes(device_);
  m.peak_host_bytes = peak_host_bytes();
  return m;
}

Status Trainer::train_until(int64_t last_step, const std::function<void(const StepMetrics&)>& on_step) {
  last_step = std::min(last_step, total_steps_);
  if (auto st = fs::create_directories(run_dir_); !st.ok()) return st;
  const fs::path metrics_path = run_dir_ / "metrics.jsonl";
  // A resumed run starts at its checkpoint: records written after it (before a kill) would appear twice.
  auto dropped = truncate_metrics(metrics_path, step_);
  if (!dropped.ok()) return dropped.status();
  if (dropped.value() > 0) {
    spdlog::info("{}: dropped {} record(s) after step {}, the step training continues from", metrics_path.string(),
                 dropped.value(), step_);
  }
  auto opened = MetricsFile::open(metrics_path);
  if (!opened.ok()) return opened.status();
  MetricsFile& metrics = *opened.value();
  // A checkpoint of the current step, refused when a trainable tensor is not finite (the previous one stays).
  // Never the same step twice: saved_step_ is the step last saved or loaded (save_checkpoint, load_checkpoint).
  auto checkpoint = [&]() -> Status {
    if (saved_step_ == step_) return Status::Ok();
    if (std::string bad = first_nonfinite_tensor(state_->params); !bad.empty()) {
      return Status::Internal(fmt::format(
          "step {}: trainable tensor '{}' holds NaN or Inf values; no checkpoint written (the latest one in {} is "
          "kept). Lower train.lr or check the data", step_, bad, (run_dir_ / "checkpoints").string()));
    }
    return save_checkpoint(run_dir_ / "checkpoints" / fmt::format("step-{:06d}", step_));
  };
  const auto write_failed = [&](const Status& st) {
    return Status::IoError(fmt::format("{}; training stopped after step {} (the checkpoints written so far in {} are kept; "
                                       "free space, then continue with --resume)", st.message(), step_,
                                       (run_dir_ / "checkpoints").string()));
  };
  while (step_ < last_step) {
    const bool profiled = step_ + 1 == config_.profile_step;
    StepProfiler profiler(device_.is_cuda());
    if (profiled) profiler.start();
    StepMetrics m = train_step();
    if (profiled) {
      auto table = profiler.stop(run_dir_ / "profile" / fmt::format("step-{:06d}.json", m.step));
      if (!table.ok()) return table.status();
      m.profile = table.value();
    }
    state_->nonfinite_in_row = m.nonfinite ? state_->nonfinite_in_row + 1 : 0;
    if (m.step % config_.log_every == 0 || m.step == total_steps_ || profiled || m.nonfinite) {
      nlohmann::json j = {{"step", m.step}, {"loss", m.loss}, {"lr", m.lr}, {"grad_norm", m.grad_norm},
                          {"tokens_per_s", m.tokens_per_second}, {"label_tokens", m.label_tokens},
                          {"peak_gpu_bytes", m.peak_gpu_bytes}, {"peak_host_bytes", m.peak_host_bytes},
                          {"skipped", m.skipped}, {"nonfinite", m.nonfinite}};
      if (auto st = metrics.append(j.dump() + "\n"); !st.ok()) return write_failed(st);
      if (on_step) on_step(m);
    }
    if (step_check_) {
      if (auto st = step_check_(m.step); !st.ok()) return st;
    }
    if (m.nonfinite) {
      const std::string what = fmt::format("step {}: loss {:.6g}, gradient norm {:.6g}", m.step, m.loss, m.grad_norm);
      if (state_->nonfinite_in_row > config_.max_nonfinite_steps) {
        if (auto st = checkpoint(); !st.ok()) return st;
        return Status::Internal(fmt::format(
            "{}: {} non-finite step(s) in a row (train.max_nonfinite_steps = {}), training stopped. "
            "checkpoints/step-{:06d} holds the weights of step {}, the last finite one; lower train.lr, check the data "
            "of steps {}-{}, or raise train.max_nonfinite_steps to skip more", what, state_->nonfinite_in_row,
            config_.max_nonfinite_steps, m.step, m.step - state_->nonfinite_in_row,
            m.step - state_->nonfinite_in_row + 1, m.step));
      }
      spdlog::warn("{}: update skipped ({} in a row; more than train.max_nonfinite_steps = {} in a row stop the run)",
                   what, state_->nonfinite_in_row, config_.max_nonfinite_steps);
    }
    // The held-out loss before the step's checkpoint: a resume from that checkpoint then finds the step's record.
    if (validation_examples_ &&
        (m.step == total_steps_ || (validation_every_ > 0 && m.step % validation_every_ == 0))) {
      const ValidationLoss v = validation_loss(model_, *validation_examples_, config_.batch_size, config_.pad_id,
                                               config_.pack_length, device_);
      const nlohmann::json j = {{"step", m.step}, {"val_loss", v.loss}, {"val_label_tokens", v.label_tokens}};
      if (auto st = metrics.append(j.dump() + "\n"); !st.ok()) return write_failed(st);
      spdlog::info("step {}: validation loss {:.4f} over {} held-out label tokens", m.step, v.loss, v.label_tokens);
    }
    if (config_.save_every > 0 && m.step % config_.save_every == 0) {
      if (auto st = checkpoint(); !st.ok()) return st;
    }
    if (m.step == state_->faults.hold_after_step) {
      while (!(stop_requested_ && stop_requested_())) ::usleep(10000);
    }
    if (m.step == state_->faults.hang_after_step) {
      for (;;) ::pause();
    }
    if (stop_requested_ && stop_requested_()) break;
  }
  return checkpoint();  // not again when the last step was just saved (save_every) or loaded (a finished run)
}

Status Trainer::save_checkpoint(const fs::path& dir) {
  torch::serialize::OutputArchive params;
  for (auto& [name, t] : state_->params) params.write(name, t.detach().cpu(), /*is_buffer=*/true);
  torch::serialize::OutputArchive optimizer;
  for (const auto& [key, t] : state_->optimizer->state_dict()) optimizer.write(key, t.detach().cpu(), true);
  std::ostringstream params_bytes, optimizer_bytes;
  params.save_to(params_bytes);
  optimizer.save_to(optimizer_bytes);
  nlohmann::json meta = {{"format", "loft-checkpoint"}, {"version", 2}, {"step", step_},
                         {"total_steps", total_steps_}, {"loss_scale", state_->loss_scale},
                         {"good_steps", state_->good_steps}};
  std::vector<std::pair<std::string, std::string>> files = {
      {"trainable.pt", params_bytes.str()},
      {"optimizer.pt", optimizer_bytes.str()},
      {"rng_cpu.pt", tensor_bytes(at::globalContext().defaultGenerator(c10::kCPU).get_state())},
      {"trainer.json", meta.dump(2)}};
  if (device_.is_cuda()) {
    files.emplace_back("rng_cuda.pt", tensor_bytes(at::globalContext().defaultGenerator(device_).get_state()));
  }
  // A checkpoint folder is complete or absent, and checkpoints/latest names a complete one through any crash.
  if (auto st = publish_checkpoint(dir, files, config_.keep_last); !st.ok()) return st;
  saved_step_ = step_;
  return Status::Ok();
}

Status Trainer::load_checkpoint(const fs::path& dir) {
  auto read = [&](const char* name, std::string& out) -> Status {
    std::ifstream in(dir / name, std::ios::binary);
    if (!in) return Status::NotFound(fmt::format("checkpoint {} has no {}", dir.string(), name));
    out.assign(std::istreambuf_iterator<char>(in), {});
    return Status::Ok();
  };
  std::string meta_text, optimizer_bytes, rng_bytes;
  for (auto [name, out] : {std::pair<const char*, std::string*>{"trainer.json", &meta_text},
                           {"optimizer.pt", &optimizer_bytes}, {"rng_cpu.pt", &rng_bytes}}) {
    if (auto st = read(name, *out); !st.ok()) return st;
  }
  try {
    auto meta = nlohmann::json::parse(meta_text);
    if (meta.value("format", "") != "loft-checkpoint" || meta.value("version", 0) != 2) {
      return Status::InvalidArgument(fmt::format(
          "{}/trainer.json is not a loft checkpoint of version 2 (version 1 checkpoints, with libtorch's AdamW state, "
          "predate the fused optimizer and cannot be resumed)", dir.string()));
    }
    std::istringstream optimizer_in(optimizer_bytes), rng_in(rng_bytes);
    at::NoGradGuard no_grad;
    if (auto st = load_trainable_tensors(state_->params, dir / "trainable.pt"); !st.ok()) return st;
    torch::serialize::InputArchive optimizer;
    optimizer.load_from(optimizer_in);
    std::map<std::string, at::Tensor> optimizer_state;
    for (const auto& [key, target] : state_->optimizer->state_dict()) {
      at::Tensor saved;
      if (!optimizer.try_read(key, saved, true)) {
        return Status::InvalidArgument(fmt::format("{}/optimizer.pt has no '{}': the checkpoint belongs to a run with "
                                                   "other trainable tensors or another optimizer", dir.string(), key));
      }
      if (saved.sizes() != target.sizes()) {
        return Status::InvalidArgument(fmt::format("{}/optimizer.pt: '{}' has shape [{}], expected [{}]", dir.string(),
                                                   key, fmt::join(saved.sizes(), ", "),
                                                   fmt::join(target.sizes(), ", ")));
      }
      optimizer_state.emplace(key, saved);
    }
    if (auto st = state_->optimizer->load_state_dict(optimizer_state); !st.ok()) {
      return Status::InvalidArgument(fmt::format("{}/optimizer.pt: {}", dir.string(), st.message()));
    }
    at::Tensor rng;
    torch::load(rng, rng_in);
    at::Generator cpu_gen = at::globalContext().defaultGenerator(c10::kCPU);
    cpu_gen.set_state(rng);
    std::string cuda_rng;
    if (device_.is_cuda() && read("rng_cuda.pt", cuda_rng).ok()) {
      std::istringstream in(cuda_rng);
      torch::load(rng, in);
      at::Generator cuda_gen = at::globalContext().defaultGenerator(device_);
      cuda_gen.set_state(rng);
    }
    step_ = meta.at("step").get<int64_t>();
    saved_step_ = step_;
    state_->loss_scale = meta.value("loss_scale", state_->loss_scale);
    state_->good_steps = meta.value("good_steps", int64_t{0});
  } catch (const std::exception& e) {
    return Status::InvalidArgument(fmt::format("checkpoint {} is unreadable: {}", dir.string(), error_message(e)));
  }
  return Status::Ok();
}

}  // namespace loft
