// drift-rollout: closed-loop evaluation of a TorchScript policy on a built-in
// task (policy/rollout.hpp): success rate, mode shares, time per policy call.
//
//   drift-rollout TASK POLICY.pt [--episodes N] [--seed S] [--obs-horizon To]
//                 [--pred-horizon Tp] [--action-horizon Ta] [--threads T] [--out ROLLOUTS.h5]
//
// The policy's forward(obs [1, To, obs_dim], noise [1, Tp, action_dim]) returns
// actions [1, Tp, action_dim] (docs/guide/policy.md). On any error: one line
// "drift-rollout: <message>" on stderr, exit status 1 (2 for a usage error).
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "io/h5.hpp"
#include "policy/env.hpp"
#include "policy/rollout.hpp"
#include "runtime/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-rollout TASK POLICY.pt [--episodes N] [--seed S] [--obs-horizon To]\n"
    "                     [--pred-horizon Tp] [--action-horizon Ta] [--threads T] [--out ROLLOUTS.h5]\n"
    "Runs a TorchScript policy, forward(obs [1, To, obs_dim], noise [1, Tp, action_dim]) ->\n"
    "actions [1, Tp, action_dim], in closed loop on TASK (receding horizon: Ta of every Tp actions\n"
    "are executed). Defaults: 100 episodes from seed 1000000, To 2, Tp 16, Ta 8, 1 thread.\n"
    "torch's default generator is seeded with --seed (policies that draw their own noise).\n"
    "Prints success rate, mode shares and time per policy call; --out keeps every path.\n"
    "Tasks: ";

int usage(const std::string& why) {
  std::fprintf(stderr, "drift-rollout: %s\n%s%s\n", why.c_str(), kUsage,
               absl::StrJoin(drift::policy::env_names(), ", ").c_str());
  return 2;
}

int error(const std::string& what) {
  std::fprintf(stderr, "drift-rollout: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> pos;
  std::map<std::string, std::string> opt;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind("--", 0) == 0) {
      if (i + 1 >= args.size()) return usage(absl::StrCat(args[i], " needs a value"));
      opt[args[i]] = args[i + 1];
      ++i;
    } else {
      pos.push_back(args[i]);
    }
  }
  if (pos.size() != 2) return usage("expected TASK POLICY.pt");
  drift::policy::RolloutOptions o;
  int64_t threads = 1;
  std::string out;
  for (const auto& [k, v] : opt) {
    int64_t* target = k == "--episodes"         ? &o.episodes
                      : k == "--obs-horizon"    ? &o.obs_horizon
                      : k == "--pred-horizon"   ? &o.pred_horizon
                      : k == "--action-horizon" ? &o.action_horizon
                      : k == "--threads"        ? &threads
                                                : nullptr;
    if (k == "--out") {
      out = v;
    } else if (k == "--seed") {
      if (!absl::SimpleAtoi(v, &o.seed)) return usage(absl::StrCat("--seed: '", v, "' is not a non-negative integer"));
    } else if (target == nullptr) {
      return usage(absl::StrCat("unknown option '", k, "'"));
    } else if (!absl::SimpleAtoi(v, target) || *target < 1) {
      return usage(absl::StrCat(k, ": '", v, "' is not a positive integer"));
    }
  }
  drift::runtime::init_threads(static_cast<int>(threads));
  auto env = drift::policy::make_env(pos[0]);
  if (!env.ok()) return error(std::string(env.status().message()));
  torch::jit::Module module;
  try {
    module = torch::jit::load(pos[1], torch::kCPU);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    return error(absl::StrCat(pos[1], ": cannot load as a TorchScript policy: ", msg));
  }
  module.eval();
  // A policy that draws its own noise from torch's default generator (an
  // export of a drift-run policy) is reproducible too: seeded with --seed.
  torch::manual_seed(o.seed);
  auto policy = [&](const torch::Tensor& obs, const torch::Tensor& noise) {
    return module.forward({obs, noise}).toTensor();
  };
  auto r = drift::policy::rollout(**env, policy, o);
  if (!r.ok()) return error(absl::StrCat(pos[1], ": ", r.status().message()));
  const auto& spec = (*env)->spec();
  std::printf("%s, %lld episodes, To %lld, Tp %lld, Ta %lld, %lld thread%s: %s\n", spec.name.c_str(),
              static_cast<long long>(o.episodes), static_cast<long long>(o.obs_horizon),
              static_cast<long long>(o.pred_horizon), static_cast<long long>(o.action_horizon),
              static_cast<long long>(threads), threads == 1 ? "" : "s",
              drift::policy::summary_line(*r, spec).c_str());
  if (!out.empty()) {
    auto st = drift::io::write_h5_atomically(out, [&](drift::io::H5File& f) -> absl::Status {
      if (auto s = f.set_attr("/", "task", spec.name); !s.ok()) return s;
      if (auto s = f.set_attr("/", "policy", pos[1]); !s.ok()) return s;
      if (auto s = f.set_attr("/", "success_rate", r->success_rate()); !s.ok()) return s;
      if (auto s = f.write("chunk_ms", torch::tensor(r->chunk_ms, torch::kFloat64)); !s.ok()) return s;
      std::vector<int64_t> success, mode;
      for (size_t i = 0; i < r->episodes.size(); ++i) {
        success.push_back(r->episodes[i].success ? 1 : 0);
        mode.push_back(r->episodes[i].mode);
        if (auto s = f.create_group(absl::StrCat("episodes/", i)); !s.ok()) return s;
        if (auto s = f.write(absl::StrCat("episodes/", i, "/positions"), r->episodes[i].positions); !s.ok()) return s;
      }
      if (auto s = f.write("success", torch::tensor(success, torch::kInt64)); !s.ok()) return s;
      return f.write("mode", torch::tensor(mode, torch::kInt64));
    });
    if (!st.ok()) return error(std::string(st.message()));
  }
  return 0;
}
