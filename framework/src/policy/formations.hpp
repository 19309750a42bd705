// The built-in formations (drift/formation.hpp): how the positives of a batch
// conditioned on observations are chosen (docs/guide/policy.md, "Forming a
// conditional batch").
//
//   expert  each group is one window; its n_gen generated chunks have the
//           window's expert chunk as their only positive ([train] n_pos = 1).
//   knn     each group is one window; its positives are the expert chunks of
//           the n_pos windows whose conditions are nearest (itself included).
//   joint   each group is n_pos windows; its generated chunks are conditioned on
//           them in turn, its positives are their expert chunks, and the kernel
//           sees (weight * condition, chunk): a joint kernel over observations
//           and actions.
#pragma once

#include "absl/status/status.h"
#include "runtime/registry.hpp"

namespace drift::policy {
absl::Status register_formations(runtime::Registry& reg);
}  // namespace drift::policy
