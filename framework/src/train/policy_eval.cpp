#include "train/policy_eval.hpp"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace drift::train {

absl::StatusOr<std::unique_ptr<PolicyEvaluator>> PolicyEvaluator::create(const Params& eval, Dataset& dataset,
                                                                          const std::string& file) {
  auto* demos = dynamic_cast<policy::DemoDataset*>(&dataset);
  const int64_t episodes = eval.get_int("rollouts");
  if (demos == nullptr || episodes == 0) return std::unique_ptr<PolicyEvaluator>();
  if (demos->task().empty())
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": [eval] rollouts = ", episodes,
        " but the demonstrations do not name their task (/data attribute env); set [eval] rollouts = 0"));
  auto env = policy::make_env(demos->task());
  if (!env.ok()) return env.status();
  policy::RolloutOptions opts;
  opts.episodes = episodes;
  opts.seed = static_cast<uint64_t>(eval.get_int("rollout_seed"));
  opts.obs_horizon = demos->obs_horizon();
  opts.pred_horizon = demos->pred_horizon();
  opts.action_horizon = eval.get_int("action_horizon");
  if (opts.action_horizon > opts.pred_horizon)
    return absl::InvalidArgumentError(absl::StrCat(file, ": [eval] action_horizon = ", opts.action_horizon,
                                                   " exceeds the dataset's pred_horizon = ", opts.pred_horizon));
  return std::unique_ptr<PolicyEvaluator>(new PolicyEvaluator(*demos, *std::move(env), opts));
}

absl::StatusOr<std::vector<std::pair<std::string, double>>> PolicyEvaluator::evaluate(
    Generator& generator, torch::Device device, at::Generator rng, CellSink::Rollouts* paths) {
  torch::NoGradGuard no_grad;
  policy::PolicyFn fn = [&](const torch::Tensor& obs, const torch::Tensor&) {
    GenerateRequest req;
    req.n = obs.size(0);
    req.device = device;
    req.rng = rng;
    req.cond = demos_.to_cond(obs).to(device);
    return demos_.to_actions(generator.generate(req));
  };
  auto r = policy::rollout(*env_, fn, opts_);
  if (!r.ok()) return r.status();
  const auto& spec = env_->spec();
  if (paths != nullptr) {
    paths->task = spec.name;
    paths->mode_names = spec.mode_names;
    const int64_t E = static_cast<int64_t>(r->episodes.size());
    int64_t T = 0;
    for (const auto& e : r->episodes) T = std::max<int64_t>(T, e.positions.size(0));
    paths->positions = torch::full({E, T, 2}, std::numeric_limits<float>::quiet_NaN());
    paths->success = torch::empty({E}, torch::kLong);
    paths->mode = torch::empty({E}, torch::kLong);
    for (int64_t i = 0; i < E; ++i) {
      const auto& e = r->episodes[static_cast<size_t>(i)];
      paths->positions[i].narrow(0, 0, e.positions.size(0)).copy_(e.positions);
      paths->success[i] = e.success ? 1 : 0;
      paths->mode[i] = e.mode;
    }
  }
  std::vector<std::pair<std::string, double>> v;
  v.emplace_back("success", r->success_rate());
  const auto shares = r->mode_shares(spec.mode_names.size());
  for (size_t m = 0; m < spec.mode_names.size(); ++m)
    v.emplace_back("mode_" + absl::StrReplaceAll(spec.mode_names[m], {{" ", "_"}}), shares[m]);
  v.emplace_back("mode_undecided", shares.back());
  v.emplace_back("ms_per_call", r->median_chunk_ms());
  return v;
}

}  // namespace drift::train
