// Closed-loop evaluation of a policy cell ([eval] rollouts): the generator,
// asked for an action chunk per observation window, drives the demonstrations'
// task for a number of episodes (policy/rollout.hpp); what comes back is the
// cell's eval columns (success, mode shares, latency) and, at the last step,
// the paths for /cells/<id>/rollouts.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "drift/dataset.hpp"
#include "drift/generator.hpp"
#include "drift/params.hpp"
#include "policy/demo_dataset.hpp"
#include "policy/rollout.hpp"
#include "train/trainer.hpp"

namespace drift::train {

class PolicyEvaluator {
 public:
  // nullptr when the cell has nothing to roll out: the dataset is not a set of
  // demonstrations, or `[eval] rollouts` is 0. Errors name `file` and the key:
  // demonstrations without a task, an action horizon above the dataset's.
  static absl::StatusOr<std::unique_ptr<PolicyEvaluator>> create(const Params& eval, Dataset& dataset,
                                                                 const std::string& file);

  // Runs every episode with `generator` as it is (the caller swaps in the
  // weights to evaluate and sets eval mode), one generate() per chunk drawing
  // its noise from `rng` (the rollout's own noise is not used). `paths`, when
  // given, receives each episode's path, success and mode.
  absl::StatusOr<std::vector<std::pair<std::string, double>>> evaluate(Generator& generator,
                                                                       torch::Device device,
                                                                       at::Generator rng,
                                                                       CellSink::Rollouts* paths);

 private:
  PolicyEvaluator(policy::DemoDataset& demos, std::unique_ptr<policy::Env> env, policy::RolloutOptions opts)
      : demos_(demos), env_(std::move(env)), opts_(opts) {}

  policy::DemoDataset& demos_;
  std::unique_ptr<policy::Env> env_;
  policy::RolloutOptions opts_;
};

}  // namespace drift::train
