#pragma once

#include <ostream>

#include "runtime/registry.hpp"

namespace drift::runtime {
// Prints every component: kind, name, plugin file, doc, and each parameter with
// its type, default, allowed values and doc (drift-run --list-plugins).
void print_components(const Registry& reg, std::ostream& os);
}  // namespace drift::runtime
