// Fixture: exports the entry points by hand and reports an SDK ABI version the host does not support.
#include "loft/abi.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT uint32_t loft_plugin_abi_version(void) { return 9999; }
EXPORT const loft_plugin_descriptor* loft_plugin_describe(void) { return nullptr; }
