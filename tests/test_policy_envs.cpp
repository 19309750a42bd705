// The policy-learning tasks (policy/env.hpp), their scripted experts, and the
// demonstrations layout (policy/demonstrations.hpp).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/h5.hpp"
#include "policy/demonstrations.hpp"
#include "policy/env.hpp"
#include "scratch_dir.hpp"

namespace {
using namespace drift::policy;

std::unique_ptr<Env> env_named(const std::string& name) {
  auto e = make_env(name);
  EXPECT_TRUE(e.ok()) << e.status();
  return std::move(*e);
}

// Success rate and share of mode 0 over `n` episodes of `policy`.
struct Outcome {
  double success = 0, mode0 = 0, undecided = 0;
};
template <typename Policy>
Outcome roll(Env& env, int n, Policy&& policy) {
  Outcome o;
  for (int i = 0; i < n; ++i) {
    env.reset(1000 + i);
    while (!env.done()) {
      const auto a = policy(env);
      env.step(a.data());
    }
    o.success += env.success() ? 1.0 / n : 0.0;
    o.mode0 += env.mode() == 0 ? 1.0 / n : 0.0;
    o.undecided += env.mode() < 0 ? 1.0 / n : 0.0;
  }
  return o;
}

class Tasks : public ::testing::TestWithParam<std::string> {};

TEST_P(Tasks, TheExpertSucceedsAndSplitsItsEpisodesBetweenTheModes) {
  auto env = env_named(GetParam());
  const auto o = roll(*env, 400, [](Env& e) { return e.expert_action(e.expert_mode()); });
  EXPECT_GE(o.success, 0.99) << GetParam();
  // 400 fair coins: the share of one mode is within 0.5 +- 0.075 with probability > 0.997.
  EXPECT_NEAR(o.mode0, 0.5, 0.075) << GetParam();
  EXPECT_LE(o.undecided, 0.01) << GetParam();
  // The expert following one mode always takes that mode.
  for (int m : {0, 1}) {
    const auto forced = roll(*env, 50, [m](Env& e) { return e.expert_action(m); });
    EXPECT_GE(forced.success, 0.98) << GetParam() << " mode " << m;
    EXPECT_NEAR(forced.mode0, m == 0 ? 1.0 : 0.0, 0.04) << GetParam() << " mode " << m;
  }
}

TEST_P(Tasks, AveragingTheTwoModesFails) {
  // What regression onto multimodal demonstrations learns at best: the mean of
  // the modes' actions. It must not solve the task, or the task is not multimodal.
  auto env = env_named(GetParam());
  const auto o = roll(*env, 200, [](Env& e) {
    const auto a = e.expert_action(0), b = e.expert_action(1);
    return std::vector<float>{(a[0] + b[0]) / 2, (a[1] + b[1]) / 2};
  });
  EXPECT_LE(o.success, 0.1) << GetParam();
}

TEST_P(Tasks, AnEpisodeIsFixedByItsSeed) {
  auto env = env_named(GetParam());
  auto a = record_expert(*env, 3, 42), b = record_expert(*env, 3, 42), c = record_expert(*env, 3, 43);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(torch::equal(a.episodes[i].obs, b.episodes[i].obs));
    EXPECT_TRUE(torch::equal(a.episodes[i].actions, b.episodes[i].actions));
  }
  // Seed 43 is episode 1 of the first call.
  EXPECT_TRUE(torch::equal(a.episodes[1].actions, c.episodes[0].actions));
  EXPECT_FALSE(torch::equal(a.episodes[0].obs.slice(0, 0, 1), a.episodes[1].obs.slice(0, 0, 1)));
  // The first observations of a run of seeds are not all alike.
}

TEST_P(Tasks, ActionsAreLimitedAndNonFiniteActionsAreIgnored) {
  auto env = env_named(GetParam());
  env->reset(5);
  const auto before = env->position();
  const float huge[2] = {100.0f, 0.0f};
  env->step(huge);
  const auto after = env->position();
  EXPECT_NEAR(after[0] - before[0], kMaxSpeed, 1e-6);
  EXPECT_NEAR(after[1] - before[1], 0.0, 1e-6);
  const float bad[2] = {std::nanf(""), INFINITY};
  env->step(bad);
  EXPECT_EQ(env->position(), after);
  EXPECT_EQ(env->steps(), 2);
}

INSTANTIATE_TEST_SUITE_P(Policy, Tasks, ::testing::Values("obstacle", "two_goals"));

TEST(PolicyTasks, ObstacleCrashingIntoTheDiscEndsTheEpisodeAsAFailure) {
  auto env = env_named("obstacle");
  env->reset(0);
  const float up[2] = {0.0f, kMaxSpeed};
  while (!env->done()) env->step(up);
  EXPECT_FALSE(env->success());
  EXPECT_LT(env->steps(), 20);  // from y = -0.8 to the disc's edge at -0.3: about 10 steps
}

TEST(PolicyTasks, AnUnknownTaskIsRefusedListingTheKnownOnes) {
  auto e = make_env("pusht");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(std::string(e.status().message()), "no task 'pusht' (tasks: obstacle, two_goals)");
}

TEST(Demonstrations, RoundTripAndSummaryFields) {
  const drift::test::ScratchDir scratch("demos");
  auto env = env_named("two_goals");
  const auto d = record_expert(*env, 5, 7);
  const std::string path = scratch / "d.h5";
  ASSERT_TRUE(write_demonstrations(path, d).ok());
  auto r = read_demonstrations(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->env, "two_goals");
  EXPECT_EQ(r->obs_dim, 8);
  EXPECT_EQ(r->action_dim, 2);
  ASSERT_EQ(r->episodes.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_TRUE(torch::equal(r->episodes[i].obs, d.episodes[i].obs));
    EXPECT_TRUE(torch::equal(r->episodes[i].actions, d.episodes[i].actions));
    EXPECT_EQ(r->episodes[i].mode, d.episodes[i].mode);
    EXPECT_EQ(r->episodes[i].success, d.episodes[i].success);
  }
}

TEST(Demonstrations, AFileFromElsewhereIsReadInEpisodeOrderAndBadOnesNameTheProblem) {
  const drift::test::ScratchDir scratch("demos");
  using drift::io::H5File;
  auto write = [&](const std::string& name, auto&& fill) {
    const std::string path = scratch / name;
    auto f = H5File::create(path);
    EXPECT_TRUE(f.ok());
    fill(*f);
    EXPECT_TRUE(f->close().ok());
    return path;
  };
  // Episodes demo_10 and demo_2, float64, no attributes, an unrelated member: read as demo_2, demo_10.
  const auto good = write("good.h5", [](H5File& f) {
    (void)f.create_group("data/demo_10");
    (void)f.create_group("data/demo_2");
    (void)f.create_group("data/mask");
    (void)f.write("data/demo_10/obs", torch::full({3, 4}, 10.0, torch::kFloat64));
    (void)f.write("data/demo_10/actions", torch::zeros({3, 2}, torch::kFloat64));
    (void)f.write("data/demo_2/obs", torch::full({2, 4}, 2.0, torch::kFloat64));
    (void)f.write("data/demo_2/actions", torch::zeros({2, 2}, torch::kFloat64));
  });
  auto r = read_demonstrations(good);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->episodes.size(), 2u);
  EXPECT_EQ(r->episodes[0].obs[0][0].item<float>(), 2.0f);
  EXPECT_EQ(r->episodes[1].obs.size(0), 3);
  EXPECT_EQ(r->env, "");

  auto error_of = [&](const std::string& path) {
    auto r = read_demonstrations(path);
    EXPECT_FALSE(r.ok()) << path;
    return r.ok() ? std::string() : std::string(r.status().message());
  };
  const auto no_data = write("no_data.h5", [](H5File& f) { (void)f.write("obs", torch::zeros({2, 2})); });
  EXPECT_EQ(error_of(no_data), no_data + ": no group '/data' (demonstrations: /data/demo_<i>/obs and /actions)");
  const auto no_actions = write("no_actions.h5", [](H5File& f) {
    (void)f.create_group("data/demo_0");
    (void)f.write("data/demo_0/obs", torch::zeros({2, 2}));
  });
  EXPECT_EQ(error_of(no_actions), no_actions + ": episode 'data/demo_0' has no dataset 'actions'");
  const auto lengths = write("lengths.h5", [](H5File& f) {
    (void)f.create_group("data/demo_0");
    (void)f.write("data/demo_0/obs", torch::zeros({3, 2}));
    (void)f.write("data/demo_0/actions", torch::zeros({2, 2}));
  });
  EXPECT_EQ(error_of(lengths), lengths + ": episode 'data/demo_0' has 3 observations and 2 actions, expected the same "
                                         "number, at least 1");
  const auto dims = write("dims.h5", [](H5File& f) {
    for (int i = 0; i < 2; ++i) {
      (void)f.create_group("data/demo_" + std::to_string(i));
      (void)f.write("data/demo_" + std::to_string(i) + "/obs", torch::zeros({2, 2 + i}));
      (void)f.write("data/demo_" + std::to_string(i) + "/actions", torch::zeros({2, 2}));
    }
  });
  EXPECT_EQ(error_of(dims), dims + ": episode 'data/demo_1' has observations of 3 and actions of 2 values, the first "
                                   "episode 2 and 2");
  const auto nan = write("nan.h5", [](H5File& f) {
    (void)f.create_group("data/demo_0");
    (void)f.write("data/demo_0/obs", torch::full({2, 2}, NAN));
    (void)f.write("data/demo_0/actions", torch::zeros({2, 2}));
  });
  EXPECT_EQ(error_of(nan), nan + ": dataset 'data/demo_0/obs' holds non-finite values");
}

}  // namespace
