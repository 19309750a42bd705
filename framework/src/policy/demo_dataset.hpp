// The `demonstrations` dataset: a policy's training data as drift sees it.
// Each sample is the expert's chunk of pred_horizon actions from step t of an
// episode; its condition is the window of the last obs_horizon observations up
// to step t. Windows are padded as Diffusion Policy pads them: the first
// observation repeated before an episode's start, the last action after its
// end. Observations are standardised per coordinate and actions divided by one
// scale (their standard deviation), so that the generator works in units of
// order one; the rollouts of drift-run map back through to_cond() and
// to_actions().
//
//   [data]
//   dataset = "demonstrations"
//   task = "obstacle"       # record `episodes` expert episodes (seed `demo_seed`), or
//   path = "demos.h5"       # read them (policy/demonstrations.hpp's layout)
#pragma once

#include <drift/dataset.hpp>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/registry.hpp"

namespace drift::policy {

class DemoDataset : public Dataset {
 public:
  // obs [N, To, obs_dim], actions [N, Tp, action_dim], raw units.
  DemoDataset(std::string task, torch::Tensor obs, torch::Tensor actions);

  std::vector<int64_t> sample_shape() const override { return {actions_.size(1), actions_.size(2)}; }
  std::vector<int64_t> cond_shape() const override { return {obs_.size(1), obs_.size(2)}; }
  int64_t num_classes() const override { return 0; }
  int64_t size() const override { return obs_.size(0); }
  // n windows drawn uniformly with replacement.
  DataBatch sample(int64_t n, at::Generator& rng) override;
  DataBatch get(const torch::Tensor& index) override;

  // The task the demonstrations come from ("" when the file does not say):
  // where drift-run's rollouts run.
  const std::string& task() const { return task_; }
  int64_t obs_horizon() const { return obs_.size(1); }
  int64_t pred_horizon() const { return actions_.size(1); }
  // Raw observation windows [B, To, obs_dim] -> conditions (standardised).
  torch::Tensor to_cond(const torch::Tensor& obs) const;
  // Generated samples [B, Tp, action_dim] -> raw actions.
  torch::Tensor to_actions(const torch::Tensor& x) const;

 private:
  std::string task_;
  torch::Tensor obs_, actions_;          // raw windows
  torch::Tensor cond_, x_;               // normalised windows
  torch::Tensor obs_mean_, obs_std_;     // [obs_dim]
  double act_scale_ = 1;
};

absl::Status register_demo_dataset(runtime::Registry& reg);

}  // namespace drift::policy
