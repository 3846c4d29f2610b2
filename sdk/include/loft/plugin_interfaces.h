// Every plugin kind's interface header: the other half of the table in plugin_kinds.h (a new kind adds its header
// here). For the host; a plugin includes only its own kind's header.
#pragma once

#include "loft/dataset.h"
#include "loft/offload.h"
#include "loft/optimizer.h"
#include "loft/peft.h"
#include "loft/plugin_kinds.h"
#include "loft/quantizer.h"
