// drift SDK: formations, how the drift problems of a batch conditioned on
// continuous conditions (a policy's observations) are formed
// (docs/guide/policy.md, "Forming a conditional batch").
//
// With one expert sample per condition there is no "class" whose samples can
// be the positives: a formation decides, for each of the step's G groups, the
// conditions of its n_gen generated samples and its n_pos positives. The drift
// field is computed per group, as for classes: generated samples are
// attracted by the group's positives and repelled by the group's other
// generated samples (docs/method.md §2).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>

#include "absl/status/status.h"
#include "drift/dataset.hpp"

namespace drift {

// What the framework tells a formation when it is created (once per cell).
struct FormationContext {
  uint64_t seed = 0;  // derived from [experiment] seed
};

// One step's groups. Shapes: C = the dataset's cond_shape(), S = its sample_shape().
struct ConditionalBatch {
  torch::Tensor gen_cond;  // [G, n_gen, *C]: the condition of every generated sample
  torch::Tensor pos;       // [G, n_pos, *S]: the positives of each group
  // [G, n_pos, *C]: the positives' own conditions; needed only when
  // cond_weight > 0, undefined otherwise.
  torch::Tensor pos_cond;
  // > 0: a joint kernel over (condition, sample). The framework appends
  // cond_weight * the flattened condition to every feature of the generated
  // samples (gen_cond) and of the positives (pos_cond) before the field, so a
  // positive attracts a generated sample in proportion to how close both its
  // sample and its condition are. The condition part is a constant: only the
  // sample part moves. 0: the field sees the samples' features alone.
  double cond_weight = 0;
};

// The contract (docs/guide/plugins.md, "Formation"): every call is on the CPU,
// from the cell's thread. prepare() is called once per cell, before the first
// step, with the training dataset (finite and indexed, with conditions);
// form() once per step. All randomness comes from `rng` (the cell's data
// stream), so the same state gives the same batch, and a checkpointed run
// resumes it exactly. A formation keeps no other state that changes between
// steps.
class Formation {
 public:
  virtual ~Formation() = default;
  // Precomputes what needs the whole dataset (a neighbour table, say). An
  // error fails the cell with its message.
  virtual absl::Status prepare(Dataset& /*data*/) { return absl::OkStatus(); }
  virtual ConditionalBatch form(Dataset& data, int64_t G, int64_t n_gen, int64_t n_pos,
                                at::Generator& rng) = 0;
};

}  // namespace drift
