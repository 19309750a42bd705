// The image generators: plugins/generators/dit and plugins/generators/conv,
// loaded through the registry, and both trained a few steps on Fashion-MNIST
// (experiments/ci/fmnist_smoke.toml).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "data/fashion_mnist.hpp"
#include "test_util.hpp"
#include "train/cell_file.hpp"
#include "train/trainer.hpp"

namespace drift {
namespace {

using Given = std::map<std::string, ParamValue>;
using Shape = std::vector<int64_t>;

absl::StatusOr<std::shared_ptr<Generator>> try_make(const std::string& name, const Given& given,
                                                    const Shape& shape, int64_t n_classes,
                                                    uint64_t seed = 1) {
  auto& reg = test::default_registry();
  auto p = reg.validate(ComponentKind::Generator, name, given, "test");
  if (!p.ok()) return p.status();
  GeneratorContext ctx;
  ctx.sample_shape = shape;
  ctx.n_classes = n_classes;
  ctx.seed = seed;
  return reg.make_generator(name, *p, ctx);
}

std::shared_ptr<Generator> make(const std::string& name, const Given& given, const Shape& shape,
                                int64_t n_classes, uint64_t seed = 1) {
  auto g = try_make(name, given, shape, n_classes, seed);
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *g : nullptr;
}

at::Generator rng(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

torch::Tensor run(Generator& g, int64_t n, uint64_t seed, torch::Tensor labels = {},
                  torch::Tensor alpha = {}) {
  GenerateRequest req;
  req.n = n;
  req.labels = labels;
  req.alpha = alpha;
  req.rng = rng(seed);
  return g.generate(req);
}

// Parameters that start at exactly zero (the adaLN-zero modulations) get small
// random values, so that conditioning reaches the output.
void perturb_zero_parameters(Generator& g, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = rng(seed);
  for (auto& p : g.parameters())
    if (p.abs().max().item<float>() == 0.0f)
      p.copy_(0.05 * torch::randn(p.sizes(), gen, torch::TensorOptions().dtype(p.dtype())));
}

int64_t count_parameters(Generator& g) {
  int64_t n = 0;
  for (auto& p : g.parameters()) n += p.numel();
  return n;
}

bool contains(const absl::Status& st, const std::string& s) {
  return std::string(st.message()).find(s) != std::string::npos;
}

// Small sizes that keep the tests fast.
const Given kSmallDit = {{"hidden", int64_t{32}}, {"depth", int64_t{2}}, {"heads", int64_t{2}},
                         {"patch", int64_t{4}},   {"in_context", int64_t{4}}};
const Given kSmallConv = {{"width", int64_t{32}}, {"levels", int64_t{2}}};

struct Case {
  std::string name;
  Given given;
};
const std::vector<Case> kGenerators = {{"dit", kSmallDit}, {"conv", kSmallConv}};

// ------------------------------------------------------------------ shapes, determinism

TEST(ImageGenerators, OutputShapesForSeveralImageSizes) {
  for (const auto& g : kGenerators)
    for (const Shape& shape : {Shape{1, 32, 32}, Shape{3, 16, 16}, Shape{4, 8, 12}}) {
      SCOPED_TRACE(g.name + " " + std::to_string(shape[0]) + "x" + std::to_string(shape[1]) + "x" +
                   std::to_string(shape[2]));
      for (int64_t classes : {0, 10}) {
        auto gen = make(g.name, g.given, shape, classes);
        ASSERT_TRUE(gen);
        torch::Tensor labels = classes > 0 ? torch::arange(5, torch::kLong) : torch::Tensor();
        auto x = run(*gen, 5, 3, labels);
        EXPECT_EQ(x.sizes(), (Shape{5, shape[0], shape[1], shape[2]}));
        EXPECT_EQ(x.dtype(), torch::kFloat32);
        EXPECT_TRUE(torch::isfinite(x).all().item<bool>());
        EXPECT_GT(x.std().item<float>(), 0.0f);  // not a constant image
      }
    }
}

TEST(ImageGenerators, DeterministicGivenTheSeedAndTheRng) {
  for (const auto& g : kGenerators) {
    SCOPED_TRACE(g.name);
    auto a = make(g.name, g.given, {1, 16, 16}, 10, 7);
    auto b = make(g.name, g.given, {1, 16, 16}, 10, 7);
    auto c = make(g.name, g.given, {1, 16, 16}, 10, 8);
    ASSERT_TRUE(a && b && c);
    auto labels = torch::tensor({0L, 1L, 2L, 3L});
    auto alpha = torch::tensor({1.0f, 1.5f, 2.0f, 3.0f});
    auto xa = run(*a, 4, 5, labels, alpha);
    EXPECT_TRUE(torch::equal(xa, run(*b, 4, 5, labels, alpha)));   // same init, same noise
    EXPECT_FALSE(torch::equal(xa, run(*a, 4, 6, labels, alpha)));  // other noise
    EXPECT_FALSE(torch::equal(xa, run(*c, 4, 5, labels, alpha)));  // other init
    // Samples of one batch differ from each other.
    EXPECT_FALSE(torch::allclose(xa[0], xa[1]));
  }
}

TEST(ImageGenerators, DitStartsIgnoringTheConditionAndUsesItOnceAdaLnIsNonZero) {
  auto g = make("dit", kSmallDit, {1, 16, 16}, 10);
  ASSERT_TRUE(g);
  auto l0 = torch::zeros({4}, torch::kLong), l1 = torch::full({4}, 7, torch::kLong);
  auto a1 = torch::ones({4}), a3 = torch::full({4}, 3.0f);
  // adaLN-zero: a fresh model's output does not depend on class or alpha.
  auto x = run(*g, 4, 1, l0, a1);
  EXPECT_TRUE(torch::equal(x, run(*g, 4, 1, l1, a1)));
  EXPECT_TRUE(torch::equal(x, run(*g, 4, 1, l0, a3)));
  EXPECT_TRUE(torch::equal(x, run(*g, 4, 1, l0)));  // no alpha means alpha = 1
  perturb_zero_parameters(*g, 2);
  x = run(*g, 4, 1, l0, a1);
  EXPECT_FALSE(torch::allclose(x, run(*g, 4, 1, l1, a1)));
  EXPECT_FALSE(torch::allclose(x, run(*g, 4, 1, l0, a3)));
  EXPECT_TRUE(torch::equal(x, run(*g, 4, 1, l0)));
  // use_alpha = false: alpha is ignored even with non-zero modulations.
  Given no_alpha = kSmallDit;
  no_alpha["use_alpha"] = false;
  auto h = make("dit", no_alpha, {1, 16, 16}, 10);
  ASSERT_TRUE(h);
  perturb_zero_parameters(*h, 2);
  EXPECT_TRUE(torch::equal(run(*h, 4, 1, l0, a1), run(*h, 4, 1, l0, a3)));
}

TEST(ImageGenerators, ConvUsesClassAndAlphaFromTheStart) {
  auto g = make("conv", kSmallConv, {1, 16, 16}, 10);
  ASSERT_TRUE(g);
  auto l0 = torch::zeros({4}, torch::kLong), l1 = torch::full({4}, 7, torch::kLong);
  auto x = run(*g, 4, 1, l0, torch::ones({4}));
  EXPECT_FALSE(torch::allclose(x, run(*g, 4, 1, l1, torch::ones({4}))));
  EXPECT_FALSE(torch::allclose(x, run(*g, 4, 1, l0, torch::full({4}, 3.0f))));
  EXPECT_TRUE(torch::equal(x, run(*g, 4, 1, l0)));
}

TEST(ImageGenerators, GradientsReachEveryParameter) {
  for (const auto& g : kGenerators) {
    SCOPED_TRACE(g.name);
    auto gen = make(g.name, g.given, {2, 16, 16}, 10);
    ASSERT_TRUE(gen);
    perturb_zero_parameters(*gen, 3);
    auto labels = torch::arange(20, torch::kLong).remainder(10);
    auto alpha = 1 + 3 * torch::rand({20}, rng(4));
    auto x = run(*gen, 20, 5, labels, alpha);
    auto w = torch::randn(x.sizes(), rng(6));
    (x * w).sum().backward();
    for (const auto& item : gen->named_parameters()) {
      const auto& grad = item.value().grad();
      ASSERT_TRUE(grad.defined()) << item.key();
      EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
      EXPECT_GT(grad.abs().max().item<float>(), 0.0f) << item.key();
    }
  }
}

TEST(ImageGenerators, DitDefaultParameterCountMatchesTheArchitecture) {
  auto g = make("dit", {}, {1, 32, 32}, 10);
  ASSERT_TRUE(g);
  // Defaults: hidden 128, depth 4, heads 4, patch 4, mlp_ratio 4, 16 in-context
  // tokens, 64-entry style codebook, alpha embedding (256 sinusoids).
  const int64_t D = 128, L = 4, hd = 32, p = 4, C = 1, K = 16, S = 64, F = 256, classes = 10;
  const int64_t M = std::llround(2.0 / 3.0 * 4 * D);  // SwiGLU width 341
  const int64_t patch_embed = C * p * p * D + D;
  const int64_t conditioning = classes * D + (F * D + D + D * D + D) + S * D;
  const int64_t block = (3 * D * D + 3 * D) + 2 * hd + (D * D + D)  // attention + QK-norm
                        + (2 * M * D + 2 * M) + (M * D + D)          // SwiGLU
                        + (6 * D * D + 6 * D);                       // adaLN-zero
  const int64_t final_layer = (2 * D * D + 2 * D) + (D * p * p * C + p * p * C);
  EXPECT_EQ(count_parameters(*g), patch_embed + K * D + conditioning + L * block + final_layer);
  // A tiny default: it trains on two CPU cores.
  EXPECT_LT(count_parameters(*g), 2'000'000);
}

// ------------------------------------------------------------------ invalid settings

TEST(ImageGenerators, InvalidSizesGiveErrorsNamingTheKey) {
  struct Bad {
    std::string name;
    Given given;
    Shape shape;
    std::vector<std::string> message;
  };
  const std::vector<Bad> cases = {
      {"dit", {{"hidden", int64_t{130}}, {"heads", int64_t{4}}}, {1, 32, 32}, {"hidden = 130", "heads = 4"}},
      {"dit", {{"hidden", int64_t{24}}, {"heads", int64_t{4}}}, {1, 32, 32}, {"heads", "6", "divisible by 4", "RoPE"}},
      {"dit", {{"patch", int64_t{5}}}, {1, 32, 32}, {"patch = 5", "32x32"}},
      {"dit", {{"patch", int64_t{4}}}, {1, 32, 30}, {"patch = 4", "32x30"}},
      {"dit", {}, {2}, {"[C, H, W]", "[2]"}},
      {"conv", {{"levels", int64_t{3}}}, {1, 12, 12}, {"levels = 3", "12x12"}},
      {"conv", {}, {2}, {"[C, H, W]", "[2]"}},
  };
  for (const auto& c : cases) {
    auto g = try_make(c.name, c.given, c.shape, 0);
    ASSERT_FALSE(g.ok()) << c.name;
    for (const auto& m : c.message) EXPECT_TRUE(contains(g.status(), m)) << m << " in: " << g.status();
  }
  // Out-of-range values are refused by the declared ranges, naming the key.
  auto bad = try_make("dit", {{"depth", int64_t{0}}}, {1, 32, 32}, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(contains(bad.status(), "depth")) << bad.status();
}

TEST(ImageGenerators, UnconditionalWithoutAlphaOrStylesWorks) {
  Given plain = kSmallDit;
  plain["use_alpha"] = false;
  plain["style_count"] = int64_t{0};
  plain["in_context"] = int64_t{0};
  auto g = make("dit", plain, {1, 16, 16}, 0);
  ASSERT_TRUE(g);
  EXPECT_EQ(run(*g, 3, 1).sizes(), (Shape{3, 1, 16, 16}));
  // Fewer parameters than with the style codebook and in-context tokens.
  auto full = make("dit", kSmallDit, {1, 16, 16}, 0);
  EXPECT_LT(count_parameters(*g), count_parameters(*full));
}

TEST(ImageGenerators, CudaSeesTheSameNoiseAsTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& g : kGenerators) {
    SCOPED_TRACE(g.name);
    auto gen = make(g.name, g.given, {1, 16, 16}, 10);
    ASSERT_TRUE(gen);
    perturb_zero_parameters(*gen, 1);
    auto labels = torch::arange(4, torch::kLong);
    auto cpu = run(*gen, 4, 9, labels);
    gen->to(torch::kCUDA);
    GenerateRequest req;
    req.n = 4;
    req.labels = labels.to(torch::kCUDA);
    req.rng = rng(9);
    req.device = torch::kCUDA;
    auto gpu = gen->generate(req);
    EXPECT_TRUE(gpu.is_cuda());
    EXPECT_TRUE(torch::allclose(cpu, gpu.cpu(), 1e-3, 1e-3));
  }
}

// ------------------------------------------------------------------ training end to end

TEST(ImageGenerators, BothTrainOnFashionMnistThroughTheSmokeExperiment) {
  if (!std::filesystem::exists(std::string(data::kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "!!! Fashion-MNIST missing (apt-get install dataset-fashion-mnist)";
  auto exp = config::load_experiment(std::string(DRIFT_SOURCE_DIR) + "/experiments/ci/fmnist_smoke.toml");
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto cells = config::resolve_all(*exp, test::default_registry());
  ASSERT_TRUE(cells.ok()) << cells.status();
  ASSERT_EQ(cells->size(), 2u);
  std::vector<std::string> plugins;
  for (auto& cfg : *cells) {
    SCOPED_TRACE(cfg.generator.name);
    plugins.push_back(cfg.generator.name);
    train::CellRecorder rec;
    auto o = train::train_cell(cfg, test::default_registry(), rec);
    ASSERT_EQ(o.status, "done") << o.error;
    const int64_t steps = cfg.train.get_int("steps");
    EXPECT_EQ(o.steps_done, steps);
    const auto& t = rec.train_table();
    ASSERT_EQ(t.rows(), static_cast<size_t>(steps));
    for (size_t r = 0; r < t.rows(); ++r) {
      const double loss = std::get<double>(t.at(r, "loss"));
      EXPECT_TRUE(std::isfinite(loss)) << "step " << r + 1;
      EXPECT_GT(loss, 0.0);
      EXPECT_GT(std::get<double>(t.at(r, "grad_norm")), 0.0);
    }
    // Samples after the last step: n_samples class-conditional images.
    ASSERT_FALSE(rec.samples().empty());
    const auto& [step, xl] = rec.samples().back();
    EXPECT_EQ(step, steps);
    const int64_t n = cfg.eval.get_int("n_samples");
    EXPECT_EQ(xl.first.sizes(), (Shape{n, 1, 32, 32}));
    EXPECT_TRUE(torch::isfinite(xl.first).all().item<bool>());
    EXPECT_EQ(xl.second.sizes(), (Shape{n}));
  }
  EXPECT_EQ(plugins, (std::vector<std::string>{"dit", "conv"}));
}

}  // namespace
}  // namespace drift
