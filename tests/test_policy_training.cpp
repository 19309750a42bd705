// Training policies inside drift: the `demonstrations` dataset (windows,
// padding, normalisation), the built-in formations of a conditional batch
// (drift/formation.hpp, policy/formations.hpp), and the mlp generator's
// continuous condition.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "policy/demo_dataset.hpp"
#include "policy/demonstrations.hpp"
#include "policy/env.hpp"
#include "test_util.hpp"

namespace drift {
namespace {

using Given = std::map<std::string, ParamValue>;

at::Generator rng(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

std::unique_ptr<Formation> formation(const std::string& name, const Given& given = {}) {
  auto& reg = test::default_registry();
  auto p = reg.validate(ComponentKind::Formation, name, given, "test");
  EXPECT_TRUE(p.ok()) << p.status();
  auto f = reg.make_formation(name, *p, FormationContext{});
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? std::move(*f) : nullptr;
}

// Hand-made windows (To 2, Tp 2, obs_dim 1, action_dim 1): an episode with
// observations 0, 1, 2 and actions 10, 11, 12, then one of a single step.
std::unique_ptr<policy::DemoDataset> tiny() {
  std::vector<float> o = {0, 0, 0, 1, 1, 2, 5, 5};
  std::vector<float> a = {10, 11, 11, 12, 12, 12, 20, 20};
  return std::make_unique<policy::DemoDataset>("obstacle", torch::tensor(o).view({4, 2, 1}),
                                               torch::tensor(a).view({4, 2, 1}));
}

TEST(DemoDataset, WindowsArePaddedAsDiffusionPolicyPadsThem) {
  auto d = test::make_dataset("demonstrations", {{"task", std::string("obstacle")},
                                                 {"episodes", int64_t{3}},
                                                 {"obs_horizon", int64_t{3}},
                                                 {"pred_horizon", int64_t{4}}});
  ASSERT_NE(d, nullptr);
  auto* demos = dynamic_cast<policy::DemoDataset*>(d.get());
  ASSERT_NE(demos, nullptr);
  EXPECT_EQ(d->sample_shape(), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(d->cond_shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(demos->task(), "obstacle");
  // The same episodes, recorded here: one window per step.
  auto env = policy::make_env("obstacle");
  ASSERT_TRUE(env.ok());
  auto rec = policy::record_expert(**env, 3, 0);
  int64_t n = 0;
  for (const auto& e : rec.episodes) n += e.obs.size(0);
  ASSERT_EQ(d->size(), n);
  DataBatch all = d->get(torch::arange(n, torch::kLong));
  // Window 0: the first observation three times; the first four actions.
  const auto& e0 = rec.episodes[0];
  const int64_t T0 = e0.obs.size(0);
  auto actions = demos->to_actions(all.x);
  EXPECT_TRUE(torch::allclose(actions[0], e0.actions.narrow(0, 0, 4), 1e-5, 1e-6));
  // The last window of episode 0: its last action repeated.
  auto last = actions[T0 - 1];
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_TRUE(torch::allclose(last[i], e0.actions[T0 - 1], 1e-5, 1e-6)) << i;
  // Conditions: standardised, and window 0's three rows are equal (padding).
  auto c0 = all.cond[0];
  EXPECT_TRUE(torch::equal(c0[0], c0[1]) && torch::equal(c0[1], c0[2]));
  auto flat = all.cond.reshape({-1, 2});
  EXPECT_LT(flat.mean(0).abs().max().item<double>(), 1e-4);
  EXPECT_NEAR(flat.std(0)[0].item<double>(), 1.0, 1e-3);
  // to_cond maps a raw window onto its condition.
  auto step1 = torch::stack({e0.obs[0], e0.obs[0], e0.obs[1]}).unsqueeze(0);
  EXPECT_TRUE(torch::allclose(demos->to_cond(step1)[0], all.cond[1], 1e-5, 1e-5));
}

TEST(DemoDataset, NeedsExactlyOneSource) {
  auto d = test::try_make_dataset("demonstrations", {});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("exactly one of 'task'"), std::string::npos) << d.status();
  auto bad = test::try_make_dataset("demonstrations", {{"task", std::string("pusht")}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("no task 'pusht'"), std::string::npos) << bad.status();
}

TEST(Formations, ExpertIsTheWindowsOwnChunk) {
  auto d = tiny();
  auto f = formation("expert");
  auto g = rng(3);
  ConditionalBatch b = f->form(*d, 5, 3, 1, g);
  ASSERT_EQ(b.gen_cond.sizes(), (std::vector<int64_t>{5, 3, 2, 1}));
  ASSERT_EQ(b.pos.sizes(), (std::vector<int64_t>{5, 1, 2, 1}));
  EXPECT_EQ(b.cond_weight, 0);
  DataBatch all = d->get(torch::arange(4, torch::kLong));
  for (int64_t i = 0; i < 5; ++i) {
    // Find the window by its condition; its chunk is the positive.
    int64_t w = -1;
    for (int64_t j = 0; j < 4; ++j)
      if (torch::equal(all.cond[j], b.gen_cond[i][0])) w = j;
    ASSERT_GE(w, 0);
    EXPECT_TRUE(torch::equal(b.pos[i][0], all.x[w]));
    EXPECT_TRUE(torch::equal(b.gen_cond[i][2], b.gen_cond[i][0]));
  }
  EXPECT_THROW(f->form(*d, 2, 3, 2, g), std::invalid_argument);
}

TEST(Formations, KnnTakesTheNearestConditionsChunks) {
  auto d = test::make_dataset("demonstrations", {{"task", std::string("two_goals")}, {"episodes", int64_t{4}}});
  ASSERT_NE(d, nullptr);
  auto f = formation("knn");
  auto g = rng(5);
  const int64_t k = 6;
  ConditionalBatch b = f->form(*d, 8, 4, k, g);
  ASSERT_EQ(b.pos.sizes(), (std::vector<int64_t>{8, k, 16, 2}));
  DataBatch all = d->get(torch::arange(d->size(), torch::kLong));
  const auto c = all.cond.flatten(1).to(torch::kFloat64);
  for (int64_t i = 0; i < 8; ++i) {
    const auto q = b.gen_cond[i][0].flatten().to(torch::kFloat64);
    const auto d2 = (c - q).square().sum(1);
    const double kth = std::get<0>(d2.sort()).index({k - 1}).item<double>();
    // The first positive is the window itself (distance 0)...
    const int64_t self = d2.argmin().item<int64_t>();
    EXPECT_TRUE(torch::equal(b.pos[i][0], all.x[self]));
    // ...and every positive is the chunk of a window at most the k-th distance away.
    for (int64_t j = 0; j < k; ++j) {
      const auto match = (all.x.flatten(1) == b.pos[i][j].flatten()).all(1);
      const auto dist = d2.masked_select(match);
      ASSERT_GT(dist.numel(), 0);
      EXPECT_LE(dist.min().item<double>(), kth + 1e-9) << i << " " << j;
    }
  }
  EXPECT_THROW(f->form(*d, 2, 4, d->size() + 1, g), std::invalid_argument);
}

TEST(Formations, JointPairsEachChunkWithItsWindow) {
  auto d = tiny();
  auto f = formation("joint", {{"weight", 0.5}});
  auto g = rng(7);
  ConditionalBatch b = f->form(*d, 2, 6, 3, g);
  ASSERT_EQ(b.pos.sizes(), (std::vector<int64_t>{2, 3, 2, 1}));
  ASSERT_EQ(b.pos_cond.sizes(), (std::vector<int64_t>{2, 3, 2, 1}));
  ASSERT_EQ(b.gen_cond.sizes(), (std::vector<int64_t>{2, 6, 2, 1}));
  EXPECT_EQ(b.cond_weight, 0.5);
  DataBatch all = d->get(torch::arange(4, torch::kLong));
  for (int64_t gi = 0; gi < 2; ++gi)
    for (int64_t j = 0; j < 3; ++j) {
      // Generated chunks 2j, 2j+1 are conditioned on positive j's window.
      EXPECT_TRUE(torch::equal(b.gen_cond[gi][2 * j], b.pos_cond[gi][j]));
      EXPECT_TRUE(torch::equal(b.gen_cond[gi][2 * j + 1], b.pos_cond[gi][j]));
      bool found = false;
      for (int64_t w = 0; w < 4; ++w)
        found |= torch::equal(all.cond[w], b.pos_cond[gi][j]) && torch::equal(all.x[w], b.pos[gi][j]);
      EXPECT_TRUE(found);
    }
  EXPECT_THROW(f->form(*d, 2, 5, 3, g), std::invalid_argument);
}

TEST(Formations, SameGeneratorStateSameBatch) {
  auto d = tiny();
  for (const char* name : {"expert", "knn", "joint"}) {
    auto f = formation(name);
    const int64_t n_pos = std::string(name) == "expert" ? 1 : 2;
    auto g1 = rng(11), g2 = rng(11);
    auto a = f->form(*d, 3, 4, n_pos, g1), b = f->form(*d, 3, 4, n_pos, g2);
    EXPECT_TRUE(torch::equal(a.pos, b.pos) && torch::equal(a.gen_cond, b.gen_cond)) << name;
  }
}

// Both shipped generators for action chunks: the output follows the
// condition, the same noise and condition give the same chunk, gradients reach
// the parameters, a missing condition is an error, and restricting a request to
// rows keeps each row's condition.
TEST(PolicyGenerators, FollowTheirCondition) {
  auto& reg = test::default_registry();
  for (const char* name : {"mlp", "unet1d"}) {
    SCOPED_TRACE(name);
    auto p = reg.validate(ComponentKind::Generator, name, {}, "test");
    ASSERT_TRUE(p.ok()) << p.status();
    GeneratorContext ctx;
    ctx.sample_shape = {16, 2};
    ctx.cond_shape = {2, 8};
    ctx.seed = 1;
    auto gen = reg.make_generator(name, *p, ctx);
    ASSERT_TRUE(gen.ok()) << gen.status();
    auto run = [&](const torch::Tensor& cond) {
      GenerateRequest req;
      req.n = cond.size(0);
      req.cond = cond;
      req.rng = rng(2);
      return (*gen)->generate(req);
    };
    auto c = torch::randn({4, 2, 8}, rng(9));
    auto x = run(c);
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{4, 16, 2}));
    EXPECT_TRUE(torch::equal(x, run(c)));            // same noise and condition
    EXPECT_FALSE(torch::allclose(x, run(c + 1.0)));  // another condition
    // Each sample's chunk depends on its own condition only.
    auto c2 = c.clone();
    c2[3] += 1.0;
    auto x2 = run(c2);
    EXPECT_TRUE(torch::allclose(x2.narrow(0, 0, 3), x.narrow(0, 0, 3), 1e-5, 1e-6));
    EXPECT_FALSE(torch::allclose(x2[3], x[3]));
    x.square().mean().backward();
    int64_t with_grad = 0;
    for (const auto& t : (*gen)->parameters()) with_grad += t.grad().defined() && t.grad().abs().sum().item<double>() > 0;
    EXPECT_GT(with_grad, 0);
    GenerateRequest none;
    none.n = 4;
    EXPECT_THROW((*gen)->generate(none), c10::Error);
    GenerateRequest rows;
    rows.n = 4;
    rows.cond = c;
    rows.rng = rng(2);
    rows.rows = torch::tensor({3, 1}, torch::kLong);
    auto xr = (*gen)->generate(rows);
    EXPECT_TRUE(torch::allclose(xr[0], x[3].detach(), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(xr[1], x[1].detach(), 1e-5, 1e-6));
  }
}

TEST(PolicyGenerators, Unet1dRefusesWhatItCannotShape) {
  auto& reg = test::default_registry();
  auto p = reg.validate(ComponentKind::Generator, "unet1d", {}, "test");
  ASSERT_TRUE(p.ok());
  GeneratorContext ctx;
  ctx.sample_shape = {10, 2};  // 10 is not divisible by 4 (three levels)
  auto g = reg.make_generator("unet1d", *p, ctx);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(std::string(g.status().message()).find("T = 10 is not divisible by 2^(levels - 1) = 4"), std::string::npos)
      << g.status();
  ctx.sample_shape = {1, 32, 32};
  g = reg.make_generator("unet1d", *p, ctx);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(std::string(g.status().message()).find("needs samples [T, action_dim]"), std::string::npos) << g.status();
}

}  // namespace
}  // namespace drift
