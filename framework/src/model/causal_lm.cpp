// CausalLM's key function and its default for models that cannot pack.
#include "loft/framework/causal_lm.h"

#include <c10/util/Exception.h>

namespace loft {

CausalLM::~CausalLM() = default;

at::Tensor CausalLM::packed_hidden_states(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, bool) {
  TORCH_CHECK(false, "this model cannot train on packed batches; set train.packing = false");
}

}  // namespace loft
