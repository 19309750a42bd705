// drift-demos: writes demonstrations of a built-in task's scripted expert
// (policy/env.hpp) in the demonstrations layout (policy/demonstrations.hpp),
// or summarises a demonstrations file.
//
//   drift-demos TASK N OUT.h5 [--seed S]     record N episodes (episode i from seed S + i)
//   drift-demos --summary FILE.h5            episodes, lengths, successes, mode shares
//
// On any error: one line "drift-demos: <message>" on stderr, exit status 1 (2
// for a usage error); OUT.h5 is written atomically, so it is either the old
// file or the new one.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "policy/demonstrations.hpp"
#include "policy/env.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-demos TASK N OUT.h5 [--seed S]\n"
    "       drift-demos --summary FILE.h5\n"
    "Records N episodes of TASK's scripted expert (episode i from seed S + i, default S = 0)\n"
    "as demonstrations (/data/demo_<i>/obs and /actions; docs/guide/policy.md), or summarises\n"
    "a demonstrations file. Tasks: ";

int usage(const std::string& why) {
  std::fprintf(stderr, "drift-demos: %s\n%s%s\n", why.c_str(), kUsage,
               absl::StrJoin(drift::policy::env_names(), ", ").c_str());
  return 2;
}

void summarise(const std::string& what, const drift::policy::Demonstrations& d,
               const std::vector<std::string>& mode_names) {
  int64_t ok = 0, steps = 0;
  std::map<int64_t, int64_t> modes;
  for (const auto& e : d.episodes) {
    ok += e.success ? 1 : 0;
    steps += e.obs.size(0);
    ++modes[e.mode];
  }
  const double n = static_cast<double>(d.episodes.size());
  std::string shares;
  for (const auto& [m, c] : modes) {
    const std::string name = m >= 0 && m < static_cast<int64_t>(mode_names.size())
                                 ? mode_names[m]
                                 : (m < 0 ? std::string("undecided") : absl::StrCat("mode ", m));
    absl::StrAppend(&shares, shares.empty() ? "" : ", ", name, " ", absl::StrFormat("%.1f%%", 100.0 * c / n));
  }
  std::printf("%s: %zu episodes%s, observations of %lld, actions of %lld values; mean length %.1f steps; "
              "success %.1f%%; modes: %s\n",
              what.c_str(), d.episodes.size(), d.env.empty() ? "" : absl::StrCat(" of ", d.env).c_str(),
              static_cast<long long>(d.obs_dim), static_cast<long long>(d.action_dim), steps / n, 100.0 * ok / n,
              shares.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "--summary") {
    auto d = drift::policy::read_demonstrations(args[1]);
    if (!d.ok()) {
      std::fprintf(stderr, "drift-demos: %s\n", std::string(d.status().message()).c_str());
      return 1;
    }
    std::vector<std::string> names;
    if (auto env = drift::policy::make_env(d->env); env.ok()) names = (*env)->spec().mode_names;
    summarise(args[1], *d, names);
    return 0;
  }
  if (args.size() != 3 && args.size() != 5) return usage("expected TASK N OUT.h5 [--seed S] or --summary FILE.h5");
  uint64_t seed = 0;
  if (args.size() == 5) {
    if (args[3] != "--seed") return usage(absl::StrCat("unknown option '", args[3], "'"));
    if (!absl::SimpleAtoi(args[4], &seed)) return usage(absl::StrCat("--seed: '", args[4], "' is not a non-negative integer"));
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(args[1], &n) || n < 1 || n > 10000000)
    return usage(absl::StrCat("N: '", args[1], "' is not a number of episodes (1 to 10000000)"));
  auto env = drift::policy::make_env(args[0]);
  if (!env.ok()) {
    std::fprintf(stderr, "drift-demos: %s\n", std::string(env.status().message()).c_str());
    return 1;
  }
  const auto d = drift::policy::record_expert(**env, n, seed);
  if (auto st = drift::policy::write_demonstrations(args[2], d); !st.ok()) {
    std::fprintf(stderr, "drift-demos: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  summarise(args[2], d, (*env)->spec().mode_names);
  return 0;
}
