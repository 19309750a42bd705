#pragma once

#include "absl/status/status.h"

namespace drift::runtime {
class Registry;
// Registers the components compiled into the framework (the datasets).
// Registry::load_default_paths() calls it; idempotent.
absl::Status register_builtins(Registry& reg);
}  // namespace drift::runtime
