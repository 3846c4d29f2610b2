// The SDK's autograd boundary around one decoder block: plain, kept-graph (backward callbacks) or recomputed in
// backward (reentrant checkpointing), built from autograd internals here so that no plugin needs them.
// OffloadStrategy::run_block is this function with the strategy's execution() and on_block().
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/core/Tensor.h>

#include "loft/offload.h"

namespace loft {

// Receives every BlockEvent of one run_block_boundary call, including those that arrive later in backward; it is
// copied into the block's autograd node and kept until that node is freed. May throw (see OffloadStrategy::on_block).
using BlockListener = std::function<void(const BlockEvent&)>;

// Runs `block` on `hidden` as `execution` says (kPlain whenever grad mode is off) and returns exactly block(hidden)'s
// value. Guarantees, for every execution:
//  - gradients reach `hidden` and every tensor the block reads that requires grad (leaves such as LoRA matrices,
//    and captured non-leaves computed outside the block), under backward() and autograd::grad(outputs, inputs)
//    alike, and the block's own tensors get their gradients even when `hidden` does not require grad;
//  - kRecompute keeps only the input (and the block function), frees the block's activations before kForwardPost,
//    and replays the CPU and CUDA generator states and the autocast settings in the recompute, so dropout draws and
//    results are bit-identical to a plain run, and the RNG stream continues as after a plain run;
//  - kBoundary keeps the block's graph and computes its gradients in a nested pass with the same kernels, so results
//    are bit-identical to kPlain.
// Errors (c10::Error): a second backward through a released graph (pass retain_graph), double backward through a
// kBoundary or kRecompute block, a block input modified in place before a recompute, a recompute that reads tensors
// requiring grad other than the forward's. Runs on the calling thread; backward work on the autograd engine's.
at::Tensor run_block_boundary(int64_t index, const BlockFunction& block, const at::Tensor& hidden,
                              BlockExecution execution, const BlockListener& listener);

}  // namespace loft
