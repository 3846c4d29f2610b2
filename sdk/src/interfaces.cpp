// Key functions of the SDK's torch interfaces: each vtable and typeinfo is emitted once, here, in libloft_sdk (the
// torch-free ones are in core_interfaces.cpp, in libloft_sdk_core).
#include "loft/memory_cost.h"
#include "loft/offload.h"
#include "loft/optimizer.h"
#include "loft/peft.h"
#include "loft/quantizer.h"

namespace loft {

QuantizedLinear::~QuantizedLinear() = default;
bool QuantizedLinear::visit_storage(const StorageVisitor&) { return false; }
Quantizer::~Quantizer() = default;
Adapter::~Adapter() = default;
PeftMethod::~PeftMethod() = default;
OffloadStrategy::~OffloadStrategy() = default;
Optimizer::~Optimizer() = default;
QuantizerMemoryCost::~QuantizerMemoryCost() = default;
PeftMemoryCost::~PeftMemoryCost() = default;
OptimizerMemoryCost::~OptimizerMemoryCost() = default;
OffloadMemoryPlan::~OffloadMemoryPlan() = default;

}  // namespace loft
