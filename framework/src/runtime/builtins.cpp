#include "runtime/builtins.hpp"

#include "data/toy.hpp"
#include "runtime/registry.hpp"

namespace drift::runtime {
absl::Status register_builtins(Registry& reg) {
  if (reg.find(ComponentKind::Dataset, "bimodal") != nullptr) return absl::OkStatus();
  return data::register_toy_datasets(reg);
}
}  // namespace drift::runtime
