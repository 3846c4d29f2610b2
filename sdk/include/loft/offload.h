// Offload plugins: where each frozen tensor lives (decided before the model is built) and how each decoder block
// executes (plainly, inside the SDK's block boundary with backward callbacks, or recomputed in backward).
//
// The life of a strategy, all on the thread that builds and drives the model:
//   1. plan(units)   before anything is materialised: one Home per unit (embedding, each block, final norm, lm_head).
//                    The host builds every frozen tensor of a unit at that home, one unit after the other. A linear
//                    is quantized (and its adapter attached) on the run device and moved home before the next block
//                    is built, so a host-homed block costs the run device at most one block's weights, transiently,
//                    and its quantized storage is bit-identical to a resident one's.
//   2. place(units)  once, after the quantizer and PEFT method ran: the strategy takes hold of each unit's frozen
//                    storage (copies it into pinned arenas, moves it, allocates reusable device buffers). Until
//                    place() returns a strategy may replace frozen tensors by assignment through the pointers given
//                    here (or through QuantizedLinear::visit_storage); afterwards the tensor objects are fixed,
//                    because autograd graphs capture them, and a strategy changes only their bytes, in place, with
//                    refill_storage() / release_storage() below.
//   3. run_block()   per block per forward pass (the host calls it; it is the SDK's, not the strategy's): the block
//                    runs as execution(index) says, and on_block() hears forward, recompute and backward pre/post.
//                    A block whose storage is not on the run device must be made readable there at kForwardPre /
//                    kRecomputePre / kBackwardPre. The embedding, final norm and lm_head get no callbacks yet: a
//                    strategy that homes them on the host must leave them readable on the run device after place().
// Ownership: the host owns every tensor and QuantizedLinear it points a strategy to, for the whole run. The strategy
// must outlive the model and every autograd graph built through run_block (the host creates it first, drops it last).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "loft/quantizer.h"

namespace loft {

// Where a unit's frozen tensors live between uses. kRunDevice: the host's device (HostContext::device()), where
// blocks compute. kPinnedHost: host memory the strategy streams from (on a CPU run this is plain CPU memory).
enum class Home : uint8_t { kRunDevice, kPinnedHost };
const char* home_name(Home home);  // "run_device", "pinned_host"
// The device the host builds a unit of `home` on: `run_device`, or the CPU.
c10::Device home_device(Home home, c10::Device run_device);

// The parts of the model a strategy places, in execution order.
enum class UnitKind : uint8_t { kEmbedding, kBlock, kFinalNorm, kLmHead };
const char* unit_kind_name(UnitKind kind);  // "embedding", "block", "final_norm", "lm_head"

// A unit as plan() sees it: nothing of it exists yet.
struct ModelUnit {
  UnitKind kind = UnitKind::kBlock;
  int64_t index = 0;          // the block's index; 0 for the other kinds
  std::string name;           // "model.embed_tokens", "model.layers.3", "model.norm", "lm_head"
  int64_t frozen_bytes = 0;   // its frozen tensors in the compute dtype before quantization (a sizing hint; trainable
                              // tensors such as a fully fine-tuned embedding are not counted and never offered)
};

// What one unit holds that a strategy may move, as place() sees it. Pointers stay valid for the run.
// A tied lm_head is the embedding: no kLmHead unit is offered then. Trainable tensors are never offered.
struct BlockResidency {
  int64_t index = 0;                          // the block's index; 0 for the other kinds
  std::vector<QuantizedLinear*> frozen_linears;
  std::vector<at::Tensor*> frozen_tensors;    // norms, biases, the embedding table, an untied lm_head
  UnitKind kind = UnitKind::kBlock;
  Home home = Home::kRunDevice;               // what plan() chose; the tensors were built on home_device(home, ...)
};

// The forward of one decoder block on the hidden states; everything else it needs is captured.
using BlockFunction = std::function<at::Tensor(const at::Tensor& hidden)>;

// How run_block executes a block when grad mode is on. Without grad mode (evaluation, generation) every block runs
// plainly, with forward callbacks only.
enum class BlockExecution : uint8_t {
  kPlain,      // block(hidden) as is: autograd keeps its activations; forward callbacks only
  kBoundary,   // activations kept, and the block's backward runs inside the SDK's node: backward callbacks too
  kRecompute,  // only the input is kept; the forward runs again inside backward (reentrant checkpointing):
               // recompute and backward callbacks too
};

// Where in a block's life a callback runs. Forward and recompute callbacks run on the thread calling run_block /
// the autograd engine's thread for the block's device, with the host's current CUDA stream current; backward
// callbacks on the autograd engine's thread, with the stream the block's forward ran on current.
enum class BlockStage : uint8_t {
  kForwardPre,     // before the block's forward: its frozen storage must be readable on the run device after this
  kForwardPost,    // after the forward: activations of a kRecompute block are already freed
  kRecomputePre,   // kRecompute, in backward, before the forward runs again (storage must be readable again)
  kRecomputePost,  // after the recompute, before the block's gradients are computed
  kBackwardPre,    // kBoundary / kRecompute: before the block's gradients are computed (after kRecomputePost)
  kBackwardPost,   // after the block's gradients are computed; nothing of the block is read again in this pass
};
const char* block_stage_name(BlockStage stage);

struct BlockEvent {
  int64_t index = 0;
  BlockStage stage = BlockStage::kForwardPre;
  BlockExecution execution = BlockExecution::kPlain;  // what the block actually does (kPlain without grad mode)
  // kRecompute only, at kForwardPost and kRecomputePre: the block input the boundary keeps for the recompute. At
  // kForwardPost a strategy may replace it with a tensor of the same values anywhere (a pinned host copy, to offload
  // activations); at kRecomputePre it must put back one of the same sizes and dtype on the input's device. Null
  // otherwise.
  at::Tensor* saved_input = nullptr;
};

// Decides residency and how blocks execute. Created once per run; not thread-safe (one thread drives the model;
// backward callbacks arrive on the autograd engine's thread while that thread waits in backward()).
class OffloadStrategy {
 public:
  virtual ~OffloadStrategy();

  // One Home per unit, same order, before the host materialises anything. Called once, on the building thread. May
  // throw (the build fails with the message); launches no device work.
  virtual std::vector<Home> plan(const std::vector<ModelUnit>& units) = 0;

  // Once, after the model is built at the planned homes and the quantizer and PEFT method have run: take hold of
  // every unit's frozen storage (see the top of this file for what may change and how). Units arrive in execution
  // order with their home. Runs on the building thread; device work goes on the host's current stream or the
  // strategy's own streams, and must be complete, or ordered before the current stream with events, when place()
  // returns. May throw; may block (copies into pinned arenas, cudaHostRegister, device synchronisation).
  virtual void place(const std::vector<BlockResidency>& units) = 0;

  // How block `index` executes under grad mode. Called once per block per forward pass, before kForwardPre, on the
  // thread calling run_block. Must not throw or block. Default: kPlain.
  virtual BlockExecution execution(int64_t index);

  // Hears every stage of every block (see BlockStage for which thread and stream). May block (waiting for a copy
  // event) and may launch work on its own streams, ordering the host's current stream after it with events. May
  // throw: in forward the exception leaves run_block; in backward it fails the backward pass (the matching *Post is
  // then not called). Default: nothing.
  virtual void on_block(const BlockEvent& event);

  // Versioned capability query: a pointer to the interface named `id` ("loft.offload.<name>.v<N>"), or nullptr
  // when unsupported (the default). Lets later features reach a built plugin without breaking it.
  virtual const void* extension(std::string_view id) const;

  // Runs block `index` through the SDK's block boundary (the host calls this; strategies do not override it) and
  // returns exactly block(hidden)'s value, with gradients reaching `hidden` and every tensor the block reads that
  // requires grad, under backward() and autograd::grad alike, even when `hidden` itself does not require grad.
  // A kRecompute block's function is kept (copied) until its backward has run or its graph is freed. Runs on the
  // calling thread with the host's current stream; throws what the block or on_block throws.
  at::Tensor run_block(int64_t index, const BlockFunction& block, const at::Tensor& hidden);
};

// ---- changing the bytes of a frozen tensor that autograd graphs may have captured ----

// Points `tensor` at the bytes of `source` without a new tensor object and without bumping its version counter, so
// every graph (and every view) that captured `tensor` reads `source`'s bytes from now on; the tensor keeps
// `source`'s storage alive until the next refill or release. `tensor` must own its whole storage (offset 0,
// contiguous); `source` must have the same sizes, dtype and device, and be contiguous. Use it to bring a weight
// back into a reusable device buffer before a block reads it. The caller guarantees the values are the ones the
// graphs saw (autograd's in-place check is bypassed on purpose). Throws c10::Error on a mismatch; never blocks.
void refill_storage(const at::Tensor& tensor, const at::Tensor& source);

// Drops `tensor`'s bytes (its storage becomes empty, same device) until the next refill_storage; reading it before
// then is an error of the strategy's. Never blocks; throws c10::Error if `tensor` does not own its whole storage.
void release_storage(const at::Tensor& tensor);

}  // namespace loft
