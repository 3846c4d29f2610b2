// Key functions of the SDK's interfaces: each vtable and typeinfo is emitted once, here, in libloft_sdk.
#include "loft/dataset.h"
#include "loft/host_context.h"
#include "loft/log.h"
#include "loft/offload.h"
#include "loft/peft.h"
#include "loft/quantizer.h"
#include "loft/registrar.h"

namespace loft {

LogSink::~LogSink() = default;
HostContext::~HostContext() = default;
QuantizedLinear::~QuantizedLinear() = default;
bool QuantizedLinear::visit_storage(const StorageVisitor&) { return false; }
Quantizer::~Quantizer() = default;
Adapter::~Adapter() = default;
PeftMethod::~PeftMethod() = default;
OffloadStrategy::~OffloadStrategy() = default;
Dataset::~Dataset() = default;
Registrar::~Registrar() = default;

}  // namespace loft
