// Closed-loop evaluation of a policy on a task (policy/env.hpp), the way
// diffusion policies are run: from the last `obs_horizon` observations the
// policy predicts a chunk of `pred_horizon` actions, of which the first
// `action_horizon` are executed before it is asked again (receding horizon).
//
//   auto r = policy::rollout(env, my_policy, opts);   // StatusOr<RolloutResult>
//
// A policy is a function (obs [1, To, obs_dim], noise [1, Tp, action_dim]) ->
// actions [1, Tp, action_dim]: a one-step generator maps the noise to a chunk in
// one call; a diffusion policy runs its denoising loop inside the call; a
// regression policy ignores the noise. At the start of an episode the window is
// padded with copies of the first observation. The noise of episode i comes from
// seed + i, so a run is reproducible.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "policy/env.hpp"

namespace drift::policy {

using PolicyFn = std::function<torch::Tensor(const torch::Tensor& obs, const torch::Tensor& noise)>;

struct RolloutOptions {
  int64_t episodes = 100;
  uint64_t seed = 1000000;  // episode i: task seed and noise seed `seed + i` (away from demonstration seeds)
  int64_t obs_horizon = 2;     // To
  int64_t pred_horizon = 16;   // Tp
  int64_t action_horizon = 8;  // Ta <= Tp
};

struct EpisodeResult {
  bool success = false;
  int mode = -1;
  int64_t steps = 0;
  torch::Tensor positions;  // [steps + 1, 2]: where the point was, start included
};

struct RolloutResult {
  std::vector<EpisodeResult> episodes;
  std::vector<double> chunk_ms;  // wall time of every policy call
  double success_rate() const;
  // Share of episodes per mode, index mode_names.size() for undecided.
  std::vector<double> mode_shares(size_t n_modes) const;
  double median_chunk_ms() const;
};

// Runs `opts.episodes` episodes. Errors: horizons out of range, a policy that
// throws or returns another shape (one line naming what it returned).
absl::StatusOr<RolloutResult> rollout(Env& env, const PolicyFn& policy, const RolloutOptions& opts);

// One line: "success 93.0%; modes: left 48.0%, right 45.0%, undecided 7.0%; 39.1 steps, 5.0 policy
// calls per episode; 0.21 ms per call (median)".
std::string summary_line(const RolloutResult& r, const EnvSpec& spec);

}  // namespace drift::policy
