#include "policy/demo_dataset.hpp"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "policy/demonstrations.hpp"
#include "policy/env.hpp"

namespace drift::policy {

DemoDataset::DemoDataset(std::string task, torch::Tensor obs, torch::Tensor actions)
    : task_(std::move(task)), obs_(std::move(obs)), actions_(std::move(actions)) {
  const torch::Tensor flat = obs_.reshape({-1, obs_.size(2)});
  obs_mean_ = flat.mean(0);
  obs_std_ = flat.std(0).clamp_min(1e-3);
  act_scale_ = std::max(actions_.std().item<double>(), 1e-6);
  cond_ = to_cond(obs_);
  x_ = actions_ / act_scale_;
}

torch::Tensor DemoDataset::to_cond(const torch::Tensor& obs) const {
  return (obs.to(torch::kCPU, torch::kFloat32) - obs_mean_) / obs_std_;
}

torch::Tensor DemoDataset::to_actions(const torch::Tensor& x) const {
  return x.to(torch::kCPU, torch::kFloat32) * act_scale_;
}

DataBatch DemoDataset::sample(int64_t n, at::Generator& rng) {
  return get(torch::randint(size(), {n}, rng, torch::kLong));
}

DataBatch DemoDataset::get(const torch::Tensor& index) {
  DataBatch b;
  b.index = index.to(torch::kLong);
  b.x = x_.index_select(0, b.index);
  b.cond = cond_.index_select(0, b.index);
  return b;
}

namespace {

// Every window of every successful episode: obs [N, To, od], actions [N, Tp, ad].
std::pair<torch::Tensor, torch::Tensor> windows(const Demonstrations& d, int64_t To, int64_t Tp) {
  std::vector<torch::Tensor> obs, act;
  for (const auto& e : d.episodes) {
    if (!e.success) continue;
    const int64_t T = e.obs.size(0);
    auto t = torch::arange(T, torch::kLong).unsqueeze(1);
    auto io = (t - (To - 1) + torch::arange(To, torch::kLong).unsqueeze(0)).clamp_min(0);   // [T, To]
    auto ia = (t + torch::arange(Tp, torch::kLong).unsqueeze(0)).clamp_max(T - 1);         // [T, Tp]
    obs.push_back(e.obs.index({io}));
    act.push_back(e.actions.index({ia}));
  }
  return {torch::cat(obs), torch::cat(act)};
}

absl::StatusOr<std::unique_ptr<Dataset>> make(const Params& p, const DatasetContext& ctx) {
  const std::string task = p.get_string("task"), path = p.get_string("path");
  const int64_t To = p.get_int("obs_horizon"), Tp = p.get_int("pred_horizon");
  if (task.empty() == path.empty())
    return absl::InvalidArgumentError(
        "demonstrations: give exactly one of 'task' (record the scripted expert's episodes) and "
        "'path' (read a demonstrations file)");
  Demonstrations d;
  std::string rollout_task = task;
  if (!path.empty()) {
    std::filesystem::path f(path);
    if (f.is_relative() && !ctx.base_dir.empty()) f = std::filesystem::path(ctx.base_dir) / f;
    auto r = read_demonstrations(f.string());
    if (!r.ok()) return r.status();
    d = *std::move(r);
    rollout_task = d.env;
  } else {
    auto env = make_env(task);
    if (!env.ok()) return absl::InvalidArgumentError(absl::StrCat("demonstrations: 'task': ", env.status().message()));
    d = record_expert(**env, p.get_int("episodes"), static_cast<uint64_t>(p.get_int("demo_seed")));
  }
  if (std::none_of(d.episodes.begin(), d.episodes.end(), [](const Episode& e) { return e.success; }))
    return absl::InvalidArgumentError("demonstrations: no successful episode to learn from");
  auto [obs, act] = windows(d, To, Tp);
  return std::make_unique<DemoDataset>(rollout_task, obs, act);
}

}  // namespace

absl::Status register_demo_dataset(runtime::Registry& reg) {
  ComponentInfo c;
  c.kind = ComponentKind::Dataset;
  c.name = "demonstrations";
  c.doc =
      "A policy's demonstrations: samples are [pred_horizon, action_dim] expert action chunks "
      "(divided by their standard deviation), conditioned on [obs_horizon, obs_dim] observation "
      "windows (standardised); successful episodes only (docs/guide/policy.md)";
  c.params = {
      ParamSpec::String("task", "", "record the scripted expert of this task (obstacle, two_goals); "
                                    "rollouts run on it"),
      ParamSpec::String("path", "", "read this demonstrations file instead (relative to the experiment "
                                    "file); rollouts run on its /data env attribute's task"),
      ParamSpec::Int("episodes", 200, "expert episodes to record (with 'task')").at_least(1),
      ParamSpec::Int("demo_seed", 0, "episode i is recorded from seed demo_seed + i (with 'task')").at_least(0),
      ParamSpec::Int("obs_horizon", 2, "observations per condition window (To)").in_range(1, 64),
      ParamSpec::Int("pred_horizon", 16, "actions per chunk (Tp)").in_range(1, 256)};
  c.factory = DatasetFactory(make);
  return reg.add_builtin(std::move(c));
}

}  // namespace drift::policy
