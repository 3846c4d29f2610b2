// [budget] enforcement: the allocator cap, host checks and the by-category report (see memory_budget.h).
#include "loft/framework/memory_budget.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include <ATen/ops/empty.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "loft/framework/recipe.h"
#include "loft/pinned_arena.h"

namespace loft {

namespace {

constexpr size_t kAggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
// Room left outside the allocator's cap for kernel images CUDA loads after the cap is set (at most a quarter of what
// the budget leaves after the context).
constexpr uint64_t kKernelHeadroomBytes = uint64_t{256} << 20;

uint64_t call(const std::function<uint64_t(c10::Device)>& f, c10::Device d) { return f ? f(d) : 0; }

// The caching allocator's statistics for `device`; zeros before torch's CUDA state exists.
c10::CachingDeviceAllocator::DeviceStats allocator_stats(c10::Device device) {
  try {
    return c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
  } catch (const c10::Error&) {
    return {};
  }
}

}  // namespace

StatusOr<MemoryBudget> MemoryBudget::from_options(const Options& budget) {
  MemoryBudget b;
  for (auto [key, out] : {std::pair<const char*, uint64_t*>{"gpu_memory", &b.gpu_bytes}, {"host_memory", &b.host_bytes}}) {
    const std::string& text = budget.string(key);
    if (text.empty()) continue;
    auto bytes = parse_byte_size(text);
    if (!bytes.ok()) return Status::InvalidArgument(fmt::format("budget.{}: {}", key, bytes.status().message()));
    *out = bytes.value();
  }
  return b;
}

HostMemoryNow host_memory_now() {
  HostMemoryNow now;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kib = 0;
    char key[32] = {0};
    if (std::sscanf(line.c_str(), "%31[^:]: %llu kB", key, &kib) != 2) continue;
    const uint64_t bytes = static_cast<uint64_t>(kib) * 1024;
    if (!std::strcmp(key, "VmRSS")) now.resident_bytes = bytes;
    else if (!std::strcmp(key, "RssAnon")) now.anon_bytes = bytes;
    else if (!std::strcmp(key, "RssFile")) now.file_bytes = bytes;
    else if (!std::strcmp(key, "RssShmem")) now.shmem_bytes = bytes;
  }
  return now;
}

std::string format_bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (bytes >= (uint64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (bytes >= 1024) return fmt::format("{:.0f} KiB", b / 1024);
  return fmt::format("{} B", bytes);
}

namespace {

// "a 1.2 GiB, b 300 MiB, ...": the categories by size, the largest first, zero-sized ones left out.
std::string largest_first(std::vector<MemoryUse> uses) {
  std::stable_sort(uses.begin(), uses.end(), [](const MemoryUse& a, const MemoryUse& b) { return a.bytes > b.bytes; });
  std::string largest;
  for (const auto& u : uses) {
    if (u.bytes == 0) continue;
    largest += fmt::format("{}{} {}", largest.empty() ? "" : ", ", u.category, format_bytes(u.bytes));
  }
  return largest.empty() ? "(nothing measured)" : largest;
}

}  // namespace

std::string over_budget_message(const std::string& what, const std::string& key, uint64_t cap, uint64_t in_use,
                                std::vector<MemoryUse> uses, const std::string& fix) {
  return fmt::format("{} over budget.{} = {}: {} in use; largest: {}. {}", what, key, format_bytes(cap),
                     format_bytes(in_use), largest_first(std::move(uses)), fix);
}

MemoryGuard::MemoryGuard(MemoryBudget budget, c10::Device device) : budget_(budget), device_(device) {}

Status MemoryGuard::arm(bool explicit_cpu) {
  if (budget_.gpu_bytes == 0) return Status::Ok();
  if (!device_.is_cuda()) {
    if (explicit_cpu) {
      return Status::InvalidArgument(fmt::format(
          "budget.gpu_memory = {} but model.device = \"cpu\": there is no GPU memory to cap; remove budget.gpu_memory "
          "or train on a GPU", format_bytes(budget_.gpu_bytes)));
    }
    spdlog::warn("budget.gpu_memory ({}) is not applied: model.device = \"auto\" found no CUDA device, the run is on "
                 "the CPU", format_bytes(budget_.gpu_bytes));
    return Status::Ok();
  }
  const c10::DeviceIndex index = device_.has_index() ? device_.index() : c10::cuda::current_device();
  device_ = c10::Device(c10::kCUDA, index);
  c10::cuda::set_device(index);
  // Torch's CUDA state (context, caching allocator) comes up with the first tensor; measure after that.
  (void)at::empty({1}, at::TensorOptions().device(c10::Device(c10::kCUDA, index)));
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::FailedPrecondition("budget.gpu_memory: cannot query the GPU's memory (cudaMemGetInfo failed)");
  }
  // What the process holds outside the caching allocator (context, cuBLAS/cuDNN handles) plus whatever the allocator
  // already reserved, which the fraction below counts again: subtract that part.
  const auto stats = allocator_stats(device_);
  const uint64_t reserved = static_cast<uint64_t>(stats.reserved_bytes[kAggregate].current);
  const uint64_t used = static_cast<uint64_t>(total_bytes - free_bytes);
  context_bytes_ = used > reserved ? used - reserved : 0;
  if (context_bytes_ >= budget_.gpu_bytes) {
    return Status::InvalidArgument(fmt::format(
        "budget.gpu_memory = {} does not even hold what is in use on {} before loft allocated anything ({}: this "
        "process's CUDA context, and other processes' memory on a shared GPU); raise budget.gpu_memory", format_bytes(budget_.gpu_bytes), device_.str(), format_bytes(context_bytes_)));
  }
  if (budget_.gpu_bytes >= total_bytes) {
    spdlog::info("budget.gpu_memory = {} is at least the GPU's {}: no cap needed", format_bytes(budget_.gpu_bytes),
                 format_bytes(total_bytes));
    allocator_cap_bytes_ = total_bytes - context_bytes_;
    return Status::Ok();
  }
  // CUDA loads kernel images lazily, so the context grows as new kernels first run (tens to hundreds of MiB over a
  // run): keep room for that outside the allocator's cap.
  headroom_bytes_ = std::min<uint64_t>(kKernelHeadroomBytes, (budget_.gpu_bytes - context_bytes_) / 4);
  allocator_cap_bytes_ = budget_.gpu_bytes - context_bytes_ - headroom_bytes_;
  c10::cuda::CUDACachingAllocator::setMemoryFraction(
      static_cast<double>(allocator_cap_bytes_) / static_cast<double>(total_bytes), index);
  spdlog::info("budget.gpu_memory = {}: CUDA context {}, {} kept for kernels loaded later, tensors capped at {}",
               format_bytes(budget_.gpu_bytes), format_bytes(context_bytes_), format_bytes(headroom_bytes_),
               format_bytes(allocator_cap_bytes_));
  return Status::Ok();
}

void MemoryGuard::note_model_built(const MemoryLedgerSources& sources) {
  sources_ = sources;
  if (!device_.is_cuda()) return;
  const auto stats = allocator_stats(device_);
  const uint64_t allocated = static_cast<uint64_t>(stats.allocated_bytes[kAggregate].current);
  const uint64_t adapters = call(sources_.adapters, device_);
  weights_gpu_bytes_ = allocated > adapters ? allocated - adapters : 0;
}

std::vector<MemoryUse> MemoryGuard::gpu_uses() const {
  const auto stats = allocator_stats(device_);
  const uint64_t peak = static_cast<uint64_t>(stats.allocated_bytes[kAggregate].peak);
  const uint64_t reserved = static_cast<uint64_t>(stats.reserved_bytes[kAggregate].current);
  const uint64_t allocated = static_cast<uint64_t>(stats.allocated_bytes[kAggregate].current);
  std::vector<MemoryUse> uses = {
      {"context", context_bytes_},
      {"weights", weights_gpu_bytes_},
      {"adapters", call(sources_.adapters, device_)},
      {"gradients", call(sources_.gradients, device_)},
      {"optimizer", call(sources_.optimizer, device_)},
  };
  uint64_t known = 0;
  for (size_t i = 1; i < uses.size(); ++i) known += uses[i].bytes;
  // The rest of the allocator's peak: activations saved for backward, the loss chunk and temporaries.
  uses.push_back({"activations and loss chunk (at the peak)", peak > known ? peak - known : 0});
  uses.push_back({"allocator cache (reserved, not in use)", reserved > allocated ? reserved - allocated : 0});
  return uses;
}

std::vector<MemoryUse> MemoryGuard::host_uses(const HostMemoryNow& now) const {
  const uint64_t pinned = static_cast<uint64_t>(PinnedArena::live_bytes());
  const uint64_t optimizer = call(sources_.optimizer, c10::Device(c10::kCPU));
  const uint64_t adapters = call(sources_.adapters, c10::Device(c10::kCPU));
  const uint64_t gradients = call(sources_.gradients, c10::Device(c10::kCPU));
  const uint64_t named = pinned + optimizer + adapters + gradients;
  return {
      {"pinned arenas (offloaded weights)", pinned},
      {"optimizer (host)", optimizer},
      {"adapters (host)", adapters},
      {"gradients (host)", gradients},
      {"other heap (weights on the host, data, activations, libraries)", now.anon_bytes > named ? now.anon_bytes - named : 0},
      {"mapped files (libraries, checkpoint pages)", now.file_bytes},
      {"shared memory", now.shmem_bytes},
  };
}

Status MemoryGuard::check_gpu(const std::string& where) const {
  if (budget_.gpu_bytes == 0 || !device_.is_cuda()) return Status::Ok();
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::Ok();  // a failing query is not the run's fault; the allocator cap still holds
  }
  const uint64_t used = total_bytes - free_bytes;
  if (used <= budget_.gpu_bytes) return Status::Ok();
  const auto stats = allocator_stats(device_);
  const uint64_t reserved = static_cast<uint64_t>(stats.reserved_bytes[kAggregate].current);
  std::vector<MemoryUse> uses = gpu_uses();
  uses[0] = {"context and loaded kernels", used > reserved ? used - reserved : 0};
  return Status::FailedPrecondition(over_budget_message(
      "GPU memory " + where + ":", "gpu_memory", budget_.gpu_bytes, used, uses,
      "The CUDA context outgrew the room kept for it (libraries such as cuDNN or NCCL allocate outside the tensor "
      "cap): raise budget.gpu_memory."));
}

Status MemoryGuard::check_host(const std::string& where) const {
  if (budget_.host_bytes == 0) return Status::Ok();
  const HostMemoryNow now = host_memory_now();
  if (now.resident_bytes <= budget_.host_bytes) return Status::Ok();
  return Status::FailedPrecondition(over_budget_message(
      "host memory " + where + ":", "host_memory", budget_.host_bytes, now.resident_bytes, host_uses(now),
      "Raise budget.host_memory, or move less to the host (offload options), or shorten train.batch_size / "
      "dataset.max_length."));
}

std::string MemoryGuard::describe_gpu_oom(const std::string& allocator_message) const {
  std::string request;
  std::smatch m;
  static const std::regex tried("Tried to allocate ([0-9.]+ [KMGT]?i?B)");
  if (std::regex_search(allocator_message, m, tried)) request = fmt::format(" (a request for {} failed)", m[1].str());
  const uint64_t cap = budget_.gpu_bytes;
  uint64_t in_use = context_bytes_;
  if (device_.is_cuda()) {
    const auto stats = allocator_stats(device_);
    in_use += static_cast<uint64_t>(stats.reserved_bytes[kAggregate].peak);
  }
  const std::string fix =
      "Lower train.batch_size or dataset.max_length, turn on recompute ([offload] type = \"checkpoint\") or offload "
      "(\"zero3\"), or quantize the base weights ([quantizer] type = \"int8\" or \"nf4\").";
  std::vector<MemoryUse> uses = device_.is_cuda() ? gpu_uses() : std::vector<MemoryUse>{};
  if (cap == 0) {
    return fmt::format("out of GPU memory{}: {} in use at the peak; largest: {}. {}", request, format_bytes(in_use),
                       largest_first(std::move(uses)), fix);
  }
  return over_budget_message("GPU memory" + request, "gpu_memory", cap, in_use, std::move(uses), fix);
}

}  // namespace loft
