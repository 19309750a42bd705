// Demonstrations for policy learning: episodes of (observation, action) pairs,
// read from and written to HDF5 in a layout close to robomimic's, so that a
// user can bring their own (docs/guide/policy.md has the layout and a
// conversion example).
//
//   /data                       attributes: env (string, optional), obs_dim, action_dim
//   /data/demo_<i>/obs          [T_i, obs_dim] float32 (or float64): the observation before step t
//   /data/demo_<i>/actions      [T_i, action_dim] float32 (or float64): the action taken at step t
//   /data/demo_<i>              attributes, optional: mode (int64, -1 undecided), success (int64)
//
// Episodes are read in the order of their index i (demo_2 before demo_10),
// whatever other members /data has.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "policy/env.hpp"

namespace drift::policy {

struct Episode {
  torch::Tensor obs;      // [T, obs_dim] float32
  torch::Tensor actions;  // [T, action_dim] float32
  int64_t mode = -1;
  bool success = true;
};

struct Demonstrations {
  std::string env;  // the task that made them, "" when unknown
  int64_t obs_dim = 0, action_dim = 0;
  std::vector<Episode> episodes;
};

// Reads a file of the layout above. Errors name the file and the dataset and
// say what was expected (a missing /data, an episode without actions, a T
// that differs between obs and actions, a dimension that differs between
// episodes, non-finite values).
absl::StatusOr<Demonstrations> read_demonstrations(const std::string& path);

// Writes `d` atomically (io::write_h5_atomically).
absl::Status write_demonstrations(const std::string& path, const Demonstrations& d);

// `n` episodes of `env`'s scripted expert, episode i from seed `seed + i`.
// Failed episodes are kept (success = false) so that the file says how good
// the expert is; callers that want only successes filter.
Demonstrations record_expert(Env& env, int64_t n, uint64_t seed);

}  // namespace drift::policy
