#include "policy/demonstrations.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "io/h5.hpp"

namespace drift::policy {
namespace {

// The episodes of /data in index order: ("demo_<i>", i).
absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> episode_names(const io::H5File& f) {
  auto members = f.list("data");
  if (!members.ok()) return members.status();
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& m : *members) {
    int64_t i = 0;
    if (absl::StartsWith(m, "demo_") && absl::SimpleAtoi(m.substr(5), &i) && i >= 0 &&
        f.is_group("data/" + m))
      out.push_back({m, i});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

absl::StatusOr<torch::Tensor> read_matrix(const io::H5File& f, const std::string& name) {
  auto t = f.read_as(name, torch::kFloat32, {"float32", "float64"});
  if (!t.ok()) return t.status();
  if (t->dim() != 2 || t->size(1) < 1)
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": dataset '", name, "' has shape ",
                                                   io::shape_string(*t), ", expected [T, dim] with dim >= 1"));
  if (!torch::isfinite(*t).all().item<bool>())
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": dataset '", name, "' holds non-finite values"));
  return t;
}

}  // namespace

absl::StatusOr<Demonstrations> read_demonstrations(const std::string& path) {
  auto f = io::H5File::open_read(path);
  if (!f.ok()) return f.status();
  if (!f->is_group("data"))
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no group '/data' (demonstrations: /data/demo_<i>/obs and /actions)"));
  auto names = episode_names(*f);
  if (!names.ok()) return names.status();
  if (names->empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": /data holds no episode (groups demo_0, demo_1, ...)"));
  Demonstrations d;
  if (f->has_attr("data", "env")) {
    auto env = f->read_string_attr("data", "env");
    if (!env.ok()) return env.status();
    d.env = *env;
  }
  for (const auto& [name, index] : *names) {
    const std::string g = "data/" + name;
    for (const char* part : {"obs", "actions"})
      if (!f->is_dataset(g + "/" + part))
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": episode '", g, "' has no dataset '", part, "'"));
    Episode e;
    auto obs = read_matrix(*f, g + "/obs");
    if (!obs.ok()) return obs.status();
    auto act = read_matrix(*f, g + "/actions");
    if (!act.ok()) return act.status();
    if (obs->size(0) != act->size(0) || obs->size(0) == 0)
      return absl::InvalidArgumentError(absl::StrCat(path, ": episode '", g, "' has ", obs->size(0),
                                                     " observations and ", act->size(0),
                                                     " actions, expected the same number, at least 1"));
    if (d.episodes.empty()) {
      d.obs_dim = obs->size(1);
      d.action_dim = act->size(1);
    } else if (obs->size(1) != d.obs_dim || act->size(1) != d.action_dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": episode '", g, "' has observations of ", obs->size(1), " and actions of ", act->size(1),
          " values, the first episode ", d.obs_dim, " and ", d.action_dim));
    }
    e.obs = *obs;
    e.actions = *act;
    if (f->has_attr(g, "mode")) {
      auto m = f->read_int_attr(g, "mode");
      if (!m.ok()) return m.status();
      e.mode = *m;
    }
    if (f->has_attr(g, "success")) {
      auto s = f->read_int_attr(g, "success");
      if (!s.ok()) return s.status();
      e.success = *s != 0;
    }
    d.episodes.push_back(std::move(e));
  }
  return d;
}

absl::Status write_demonstrations(const std::string& path, const Demonstrations& d) {
  return io::write_h5_atomically(path, [&](io::H5File& f) -> absl::Status {
    if (auto st = f.create_group("data"); !st.ok()) return st;
    if (!d.env.empty())
      if (auto st = f.set_attr("data", "env", d.env); !st.ok()) return st;
    if (auto st = f.set_attr("data", "obs_dim", d.obs_dim); !st.ok()) return st;
    if (auto st = f.set_attr("data", "action_dim", d.action_dim); !st.ok()) return st;
    for (size_t i = 0; i < d.episodes.size(); ++i) {
      const Episode& e = d.episodes[i];
      const std::string g = absl::StrCat("data/demo_", i);
      if (auto st = f.create_group(g); !st.ok()) return st;
      if (auto st = f.write(g + "/obs", e.obs.to(torch::kFloat32)); !st.ok()) return st;
      if (auto st = f.write(g + "/actions", e.actions.to(torch::kFloat32)); !st.ok()) return st;
      if (auto st = f.set_attr(g, "mode", e.mode); !st.ok()) return st;
      if (auto st = f.set_attr(g, "success", static_cast<int64_t>(e.success ? 1 : 0)); !st.ok()) return st;
    }
    return absl::OkStatus();
  });
}

Demonstrations record_expert(Env& env, int64_t n, uint64_t seed) {
  const EnvSpec& spec = env.spec();
  Demonstrations d;
  d.env = spec.name;
  d.obs_dim = spec.obs_dim;
  d.action_dim = spec.action_dim;
  for (int64_t i = 0; i < n; ++i) {
    env.reset(seed + static_cast<uint64_t>(i));
    std::vector<float> obs, act;
    while (!env.done()) {
      const auto o = env.observe();
      const auto a = env.expert_action(env.expert_mode());
      obs.insert(obs.end(), o.begin(), o.end());
      act.insert(act.end(), a.begin(), a.end());
      env.step(a.data());
    }
    const int64_t T = env.steps();
    Episode e;
    e.obs = torch::from_blob(obs.data(), {T, spec.obs_dim}, torch::kFloat32).clone();
    e.actions = torch::from_blob(act.data(), {T, spec.action_dim}, torch::kFloat32).clone();
    e.mode = env.mode();
    e.success = env.success();
    d.episodes.push_back(std::move(e));
  }
  return d;
}

}  // namespace drift::policy
