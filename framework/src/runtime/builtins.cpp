#include "runtime/builtins.hpp"

#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "data/toy.hpp"
#include "policy/demo_dataset.hpp"
#include "policy/formations.hpp"
#include "runtime/registry.hpp"

namespace drift::runtime {
absl::Status register_builtins(Registry& reg) {
  if (reg.find(ComponentKind::Dataset, "bimodal") != nullptr) return absl::OkStatus();
  absl::Status st = data::register_toy_datasets(reg);
  if (st.ok()) st = data::register_image_datasets(reg);
  if (st.ok()) st = data::register_fashion_mnist(reg);
  if (st.ok()) st = policy::register_demo_dataset(reg);
  if (st.ok()) st = policy::register_formations(reg);
  return st;
}
}  // namespace drift::runtime
