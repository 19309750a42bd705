#include "policy/rollout.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "io/h5.hpp"

namespace drift::policy {

double RolloutResult::success_rate() const {
  if (episodes.empty()) return 0;
  double ok = 0;
  for (const auto& e : episodes) ok += e.success ? 1 : 0;
  return ok / static_cast<double>(episodes.size());
}

std::vector<double> RolloutResult::mode_shares(size_t n_modes) const {
  std::vector<double> s(n_modes + 1, 0.0);
  for (const auto& e : episodes) {
    const size_t k = e.mode >= 0 && static_cast<size_t>(e.mode) < n_modes ? static_cast<size_t>(e.mode) : n_modes;
    s[k] += 1.0 / static_cast<double>(episodes.size());
  }
  return s;
}

double RolloutResult::median_chunk_ms() const {
  if (chunk_ms.empty()) return 0;
  std::vector<double> v = chunk_ms;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

absl::StatusOr<RolloutResult> rollout(Env& env, const PolicyFn& policy, const RolloutOptions& o) {
  if (o.episodes < 1 || o.obs_horizon < 1 || o.pred_horizon < 1 || o.action_horizon < 1 ||
      o.action_horizon > o.pred_horizon)
    return absl::InvalidArgumentError(absl::StrFormat(
        "rollout: need episodes >= 1 and 1 <= action horizon (%d) <= prediction horizon (%d), observation "
        "horizon >= 1 (%d)",
        o.action_horizon, o.pred_horizon, o.obs_horizon));
  const EnvSpec& spec = env.spec();
  torch::NoGradGuard no_grad;
  RolloutResult r;
  for (int64_t i = 0; i < o.episodes; ++i) {
    const uint64_t seed = o.seed + static_cast<uint64_t>(i);
    env.reset(seed);
    auto gen = at::detail::createCPUGenerator(seed);
    std::vector<std::vector<float>> window;
    std::vector<float> path = env.position();
    while (!env.done()) {
      const auto ob = env.observe();
      if (window.empty())
        window.assign(static_cast<size_t>(o.obs_horizon), ob);
      else {
        window.erase(window.begin());
        window.push_back(ob);
      }
      torch::Tensor obs = torch::empty({1, o.obs_horizon, spec.obs_dim});
      for (int64_t t = 0; t < o.obs_horizon; ++t)
        for (int d = 0; d < spec.obs_dim; ++d) obs[0][t][d] = window[static_cast<size_t>(t)][static_cast<size_t>(d)];
      const torch::Tensor noise = torch::randn({1, o.pred_horizon, spec.action_dim}, gen);
      torch::Tensor chunk;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        chunk = policy(obs, noise);
      } catch (const std::exception& e) {
        std::string msg = e.what();
        if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
        return absl::InvalidArgumentError(absl::StrCat("rollout: the policy failed: ", msg));
      }
      r.chunk_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (!chunk.defined() || chunk.dim() != 3 || chunk.size(0) != 1 || chunk.size(1) < o.action_horizon ||
          chunk.size(2) != spec.action_dim)
        return absl::InvalidArgumentError(absl::StrCat(
            "rollout: the policy returned ", chunk.defined() ? io::shape_string(chunk) : std::string("nothing"),
            ", expected [1, Tp >= ", o.action_horizon, ", ", spec.action_dim, "] (actions for ", spec.name, ")"));
      chunk = chunk.to(torch::kCPU, torch::kFloat32).contiguous();
      const float* a = chunk.data_ptr<float>();
      for (int64_t t = 0; t < o.action_horizon && !env.done(); ++t) {
        env.step(a + t * spec.action_dim);
        const auto p = env.position();
        path.insert(path.end(), p.begin(), p.end());
        if (t + 1 < o.action_horizon && !env.done()) {
          // Observations between policy calls still enter the window.
          window.erase(window.begin());
          window.push_back(env.observe());
        }
      }
    }
    EpisodeResult e;
    e.success = env.success();
    e.mode = env.mode();
    e.steps = env.steps();
    e.positions = torch::from_blob(path.data(), {static_cast<int64_t>(path.size() / 2), 2}, torch::kFloat32).clone();
    r.episodes.push_back(std::move(e));
  }
  return r;
}

std::string summary_line(const RolloutResult& r, const EnvSpec& spec) {
  const auto shares = r.mode_shares(spec.mode_names.size());
  std::string modes;
  for (size_t k = 0; k < shares.size(); ++k)
    absl::StrAppend(&modes, k ? ", " : "", k < spec.mode_names.size() ? spec.mode_names[k] : "undecided", " ",
                    absl::StrFormat("%.1f%%", 100 * shares[k]));
  double steps = 0;
  for (const auto& e : r.episodes) steps += static_cast<double>(e.steps);
  const double n = static_cast<double>(r.episodes.size());
  return absl::StrFormat("success %.1f%%; modes: %s; %.1f steps, %.1f policy calls per episode; %.3f ms per call (median)",
                         100 * r.success_rate(), modes, steps / n, static_cast<double>(r.chunk_ms.size()) / n,
                         r.median_chunk_ms());
}

}  // namespace drift::policy
