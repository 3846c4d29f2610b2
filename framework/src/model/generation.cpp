// Generation with a KV cache: one prefill of the right-padded prompts, then one decode step per new token.
//
// Why right padding with per-row cache lengths (rather than HF's left padding): the prefill then is exactly the
// training forward (causal, no mask tensor, positions 0..len-1 in every row), so it runs on the same flash kernel and
// needs no position-id bookkeeping. Each row's next token goes to its own cache slot (its length) at its own RoPE
// position; decode steps attend with a key mask (slot <= own position), which hides the stale padding entries that
// the prefill left past each shorter prompt. Those slots are overwritten as the row grows.
#include "loft/framework/generation.h"

#include <algorithm>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorIndexing.h>
#include <ATen/TensorOperators.h>
#include <ATen/core/Generator.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/tensor.h>
#include <fmt/format.h>

namespace loft {
namespace {

// HF's TopPLogitsWarper: drop the smallest-probability tokens whose cumulative mass stays within 1 - top_p, always
// keeping the most likely one. `scores` [B, V] fp32 on the CPU.
at::Tensor top_p_filter(const at::Tensor& scores, double top_p) {
  auto [sorted, indices] = scores.sort(/*dim=*/-1, /*descending=*/false);
  at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
  at::Tensor remove_sorted = cumulative <= (1.0 - top_p);
  remove_sorted.select(-1, remove_sorted.size(-1) - 1).fill_(false);
  at::Tensor remove = remove_sorted.scatter(1, indices, remove_sorted);
  return scores.masked_fill(remove, -std::numeric_limits<float>::infinity());
}

}  // namespace

StatusOr<std::vector<std::vector<int64_t>>> generate(Qwen2Model& model, const std::vector<std::vector<int64_t>>& prompts,
                                                     const GenerationConfig& config) {
  const int64_t vocab = model.config().vocab_size;
  const int64_t B = static_cast<int64_t>(prompts.size());
  if (config.max_new_tokens < 0) {
    return Status::InvalidArgument(fmt::format("generate: max_new_tokens must be >= 0, got {}", config.max_new_tokens));
  }
  if (config.do_sample && !(config.temperature > 0)) {
    return Status::InvalidArgument(fmt::format("generate: temperature must be > 0, got {}", config.temperature));
  }
  if (config.do_sample && !(config.top_p > 0 && config.top_p <= 1)) {
    return Status::InvalidArgument(fmt::format("generate: top_p must be in (0, 1], got {}", config.top_p));
  }
  if (config.pad_token_id < 0 || config.pad_token_id >= vocab) {
    return Status::InvalidArgument(
        fmt::format("generate: pad_token_id {} is outside the vocabulary [0, {})", config.pad_token_id, vocab));
  }
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    if (p.empty()) return Status::InvalidArgument(fmt::format("generate: prompt {} is empty", b));
    for (int64_t id : p) {
      if (id < 0 || id >= vocab) {
        return Status::InvalidArgument(
            fmt::format("generate: prompt {} holds token id {}, outside the vocabulary [0, {})", b, id, vocab));
      }
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  }
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  if (B == 0 || config.max_new_tokens == 0) return out;

  at::NoGradGuard no_grad;
  const auto cpu_long = at::TensorOptions().dtype(at::kLong);
  at::Tensor ids = at::full({B, longest}, config.pad_token_id, cpu_long);
  at::Tensor lengths = at::empty({B}, cpu_long);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    std::copy(p.begin(), p.end(), ids[b].data_ptr<int64_t>());
    lengths[b] = static_cast<int64_t>(p.size());
  }

  // The last new token is never fed back, so the cache needs longest + max_new_tokens - 1 positions.
  KvCache cache = model.new_cache(B, longest + config.max_new_tokens - 1);
  const at::Tensor lm_head = model.lm_head_weight();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  std::vector<bool> finished(static_cast<size_t>(B), false);
  int64_t running = B;

  at::Tensor hidden = model.prefill(ids, lengths, cache);
  for (int64_t step = 0; step < config.max_new_tokens; ++step) {
    at::Tensor scores = at::linear(hidden, lm_head).to(at::kCPU, at::kFloat);
    at::Tensor next;
    if (!config.do_sample) {
      next = scores.argmax(-1);
    } else {
      scores = scores / config.temperature;
      if (config.top_p < 1.0) scores = top_p_filter(scores, config.top_p);
      next = at::multinomial(scores.softmax(-1), 1, /*replacement=*/false, gen).squeeze(1);
    }
    next = next.contiguous();
    const int64_t* picked = next.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      if (finished[static_cast<size_t>(b)]) {
        next[b] = config.pad_token_id;  // keeps the row's shape; its outputs are ignored
        continue;
      }
      const int64_t id = picked[b];
      out[static_cast<size_t>(b)].push_back(id);
      if (std::find(config.stop_token_ids.begin(), config.stop_token_ids.end(), id) != config.stop_token_ids.end()) {
        finished[static_cast<size_t>(b)] = true;
        --running;
      }
    }
    if (running == 0 || step + 1 == config.max_new_tokens) break;
    hidden = model.decode(next, cache);
  }
  return out;
}

}  // namespace loft
