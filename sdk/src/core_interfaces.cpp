// Key functions of the SDK's torch-free interfaces: each vtable and typeinfo is emitted once, here, in
// libloft_sdk_core, which a dataset plugin can link without LibTorch.
#include "loft/dataset.h"
#include "loft/host_context.h"
#include "loft/log.h"
#include "loft/registrar.h"

namespace loft {

LogSink::~LogSink() = default;
HostContext::~HostContext() = default;
Dataset::~Dataset() = default;
Registrar::~Registrar() = default;

}  // namespace loft
