// The built-in low-dimensional datasets (framework/src/data/toy.cpp).
#include <ATen/CPUGeneratorImpl.h>
#include <H5Cpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "data/toy.hpp"
#include "metrics/lowdim.hpp"
#include "test_util.hpp"

namespace drift {
namespace {

constexpr double kPi = 3.14159265358979323846;
using Given = std::map<std::string, ParamValue>;

absl::StatusOr<std::unique_ptr<Dataset>> try_make(const std::string& name, const Given& given,
                                                  const DatasetContext& ctx = {}) {
  return test::try_make_dataset(name, given, ctx);
}
std::unique_ptr<Dataset> make(const std::string& name, const Given& given = {},
                              const DatasetContext& ctx = {}) {
  return test::make_dataset(name, given, ctx);
}

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

DataBatch draw(Dataset& d, int64_t n, uint64_t seed) {
  at::Generator g = gen(seed);
  return d.sample(n, g);
}

const std::vector<std::string> kToys = {"bimodal",   "eight_gaussians", "checkerboard",
                                        "swiss_roll", "two_moons",       "rings", "mixture"};

// ------------------------------------------------------------------ registration

TEST(Datasets, AllRegisteredWithDocumentedParameters) {
  std::vector<std::string> names = test::default_registry().names(ComponentKind::Dataset);
  for (const auto& n : kToys)
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  EXPECT_NE(std::find(names.begin(), names.end(), "points"), names.end());
  for (const auto& n : names) {
    const runtime::RegisteredComponent* c = test::default_registry().find(ComponentKind::Dataset, n);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->source, "<built-in>");
    EXPECT_FALSE(c->info.doc.empty()) << n;
    for (const auto& p : c->info.params) EXPECT_FALSE(p.doc.empty()) << n << "." << p.name;
  }
}

TEST(Datasets, RegisteringTwiceIsAnError) {
  runtime::Registry r;
  ASSERT_TRUE(data::register_toy_datasets(r).ok());
  EXPECT_FALSE(data::register_toy_datasets(r).ok());
}

TEST(Datasets, OutOfRangeParametersAreRefusedByValidation) {
  EXPECT_FALSE(try_make("bimodal", {{"std", 0.0}}).ok());
  EXPECT_FALSE(try_make("bimodal", {{"weights", std::vector<double>{1.0}}}).ok());
  EXPECT_FALSE(try_make("bimodal", {{"weights", std::vector<double>{-1.0, 2.0}}}).ok());
  EXPECT_FALSE(try_make("eight_gaussians", {{"radius", -1.0}}).ok());
  EXPECT_FALSE(try_make("checkerboard", {{"cells", int64_t{1}}}).ok());
  EXPECT_FALSE(try_make("rings", {{"radii", std::vector<double>{1.0, 0.0}}}).ok());
  EXPECT_FALSE(try_make("points", {}).ok());  // path is required
}

// ------------------------------------------------------------------ determinism, shapes

TEST(Datasets, SameSeedSameSamplesOtherSeedOtherSamples) {
  for (const auto& name : kToys) {
    SCOPED_TRACE(name);
    auto d = make(name);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->sample_shape(), std::vector<int64_t>{2});
    EXPECT_EQ(d->num_classes(), 0);
    DataBatch a = draw(*d, 500, 7), b = draw(*d, 500, 7), c = draw(*d, 500, 8);
    EXPECT_EQ(a.x.sizes(), (std::vector<int64_t>{500, 2}));
    EXPECT_EQ(a.x.dtype(), torch::kFloat32);
    EXPECT_FALSE(a.labels.defined());
    EXPECT_TRUE(torch::isfinite(a.x).all().item<bool>());
    EXPECT_TRUE(torch::equal(a.x, b.x));
    EXPECT_FALSE(torch::equal(a.x, c.x));
    // Consecutive draws from one generator differ too.
    at::Generator g = gen(7);
    DataBatch s1 = d->sample(100, g), s2 = d->sample(100, g);
    EXPECT_FALSE(torch::equal(s1.x, s2.x));
    EXPECT_EQ(d->sample(0, g).x.sizes(), (std::vector<int64_t>{0, 2}));
  }
}

TEST(Datasets, LabelledVariantsReturnInt64Labels) {
  const std::map<std::string, int64_t> classes = {
      {"bimodal", 2}, {"eight_gaussians", 8}, {"two_moons", 2}, {"rings", 2}};
  for (const auto& [name, k] : classes) {
    SCOPED_TRACE(name);
    auto d = make(name, {{"labeled", true}});
    ASSERT_TRUE(d);
    EXPECT_EQ(d->num_classes(), k);
    DataBatch a = draw(*d, 4000, 3), b = draw(*d, 4000, 3);
    ASSERT_TRUE(a.labels.defined());
    EXPECT_EQ(a.labels.dtype(), torch::kInt64);
    EXPECT_EQ(a.labels.sizes(), (std::vector<int64_t>{4000}));
    EXPECT_TRUE(torch::equal(a.labels, b.labels));
    EXPECT_EQ(a.labels.min().item<int64_t>(), 0);
    EXPECT_EQ(a.labels.max().item<int64_t>(), k - 1);
  }
}

// ------------------------------------------------------------------ bimodal

TEST(Datasets, BimodalMatchesConfiguredCentresWeightsAndSpread) {
  auto d = make("bimodal", {{"center_a", std::vector<double>{-3.0, 1.0}},
                            {"center_b", std::vector<double>{2.0, -1.0}},
                            {"std", 0.4},
                            {"weights", std::vector<double>{3.0, 7.0}},  // normalized: 0.3, 0.7
                            {"labeled", true}});
  ASSERT_TRUE(d);
  const int64_t n = 20000;
  DataBatch b = draw(*d, n, 11);
  torch::Tensor x = b.x.to(torch::kFloat64);
  torch::Tensor is0 = b.labels == 0;
  // Share of mode 0: 0.3 +- 4 sigma, sigma = sqrt(0.3 * 0.7 / n) = 0.0032.
  const double share0 = is0.to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(share0, 0.3, 0.013);
  const std::vector<std::vector<double>> c = {{-3.0, 1.0}, {2.0, -1.0}};
  for (int k = 0; k < 2; ++k) {
    torch::Tensor xk = x.index({b.labels == k});
    const double nk = static_cast<double>(xk.size(0));
    for (int j = 0; j < 2; ++j) {
      // Mean: 4 sigma = 4 * 0.4 / sqrt(nk) <= 0.03; std: 4 * 0.4 / sqrt(2 nk) <= 0.02.
      EXPECT_NEAR(xk.select(1, j).mean().item<double>(), c[k][j], 4 * 0.4 / std::sqrt(nk));
      EXPECT_NEAR(xk.select(1, j).std().item<double>(), 0.4, 4 * 0.4 / std::sqrt(2 * nk));
    }
  }
  // The unlabelled mean is the weighted mean of the centres.
  EXPECT_NEAR(x.select(1, 0).mean().item<double>(), 0.3 * -3.0 + 0.7 * 2.0, 0.05);

  std::vector<Mode> modes = d->modes();
  ASSERT_EQ(modes.size(), 2u);
  EXPECT_DOUBLE_EQ(modes[0].weight, 0.3);
  EXPECT_DOUBLE_EQ(modes[1].weight, 0.7);
  EXPECT_TRUE(torch::allclose(modes[0].center, torch::tensor({-3.0f, 1.0f})));
  EXPECT_TRUE(torch::allclose(modes[1].center, torch::tensor({2.0f, -1.0f})));
  // min(3 std, half the distance between the centres) = min(1.2, sqrt(29)/2).
  EXPECT_NEAR(modes[0].radius, 1.2, 1e-12);
  EXPECT_NEAR(modes[1].radius, 1.2, 1e-12);

  // The samples fall into the modes in the configured proportions (P(|z| <= 3) in
  // 2-D is 1 - exp(-4.5) = 0.9889).
  std::vector<double> s = metrics::mode_shares(b.x, modes);
  EXPECT_NEAR(s[0], 0.3 * 0.9889, 0.015);
  EXPECT_NEAR(s[1], 0.7 * 0.9889, 0.015);
  EXPECT_EQ(metrics::modes_covered(s, {0.3, 0.7}), 2);
}

TEST(Datasets, BimodalDefaultsAndRadiusCappedByHalfTheDistance) {
  auto d = make("bimodal");
  ASSERT_TRUE(d);
  std::vector<Mode> m = d->modes();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_DOUBLE_EQ(m[0].weight, 0.5);
  EXPECT_TRUE(torch::allclose(m[0].center, torch::tensor({-2.0f, 0.0f})));
  EXPECT_TRUE(torch::allclose(m[1].center, torch::tensor({2.0f, 0.0f})));
  EXPECT_NEAR(m[0].radius, 1.5, 1e-12);  // 3 * 0.5 < 2
  auto close = make("bimodal", {{"center_a", std::vector<double>{0.0, 0.0}},
                                {"center_b", std::vector<double>{1.0, 0.0}}});
  ASSERT_TRUE(close);
  EXPECT_NEAR(close->modes()[0].radius, 0.5, 1e-12);  // half the distance < 1.5
}

TEST(Datasets, BimodalInAnyDimensionAndItsErrors) {
  auto d = make("bimodal", {{"center_a", std::vector<double>{0.0, 0.0, 0.0}},
                            {"center_b", std::vector<double>{0.0, 0.0, 5.0}}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sample_shape(), std::vector<int64_t>{3});
  EXPECT_EQ(draw(*d, 10, 1).x.sizes(), (std::vector<int64_t>{10, 3}));

  auto mismatch = try_make("bimodal", {{"center_a", std::vector<double>{0.0, 0.0, 0.0}}});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("same dimension"), std::string::npos)
      << mismatch.status();
  EXPECT_FALSE(try_make("bimodal", {{"center_b", std::vector<double>{-2.0, 0.0}}}).ok());
  EXPECT_FALSE(try_make("bimodal", {{"weights", std::vector<double>{0.0, 0.0}}}).ok());
  // One weight 0: all samples in the other mode.
  auto one = make("bimodal", {{"weights", std::vector<double>{0.0, 1.0}}, {"labeled", true}});
  ASSERT_TRUE(one);
  EXPECT_TRUE((draw(*one, 1000, 2).labels == 1).all().item<bool>());
}

// ------------------------------------------------------------------ eight gaussians

TEST(Datasets, EightGaussiansCoverEightModesEvenly) {
  auto d = make("eight_gaussians", {{"radius", 3.0}, {"std", 0.1}, {"labeled", true}});
  ASSERT_TRUE(d);
  std::vector<Mode> modes = d->modes();
  ASSERT_EQ(modes.size(), 8u);
  const int64_t n = 20000;
  DataBatch b = draw(*d, n, 5);
  torch::Tensor x = b.x.to(torch::kFloat64);
  for (int k = 0; k < 8; ++k) {
    SCOPED_TRACE(k);
    const double cx = 3.0 * std::cos(2 * kPi * k / 8), cy = 3.0 * std::sin(2 * kPi * k / 8);
    EXPECT_NEAR(modes[k].center[0].item<double>(), cx, 1e-6);
    EXPECT_NEAR(modes[k].center[1].item<double>(), cy, 1e-6);
    EXPECT_DOUBLE_EQ(modes[k].weight, 1.0 / 8);
    EXPECT_NEAR(modes[k].radius, 0.3, 1e-12);  // min(3 std, 3 sin(pi / 8) = 1.15)
    torch::Tensor xk = x.index({b.labels == k});
    // Share 1/8 +- 4 sigma (sigma = 0.0023).
    EXPECT_NEAR(static_cast<double>(xk.size(0)) / n, 0.125, 0.01);
    EXPECT_NEAR(xk.select(1, 0).mean().item<double>(), cx, 0.01);
    EXPECT_NEAR(xk.select(1, 1).mean().item<double>(), cy, 0.01);
  }
  std::vector<double> s = metrics::mode_shares(b.x, modes);
  for (double v : s) EXPECT_NEAR(v, 0.125 * 0.9889, 0.01);
  EXPECT_EQ(metrics::modes_covered(s, std::vector<double>(8, 0.125)), 8);
}

// ------------------------------------------------------------------ other toys

TEST(Datasets, CheckerboardOnlyBlackCellsAllOfThemEvenly) {
  auto d = make("checkerboard", {{"cells", int64_t{4}}, {"scale", 3.0}});
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->modes().empty());
  const int64_t n = 16000;
  torch::Tensor x = draw(*d, n, 9).x.to(torch::kFloat64);
  EXPECT_LE(x.abs().max().item<double>(), 3.0);
  torch::Tensor cell = torch::floor((x + 3.0) / 1.5).to(torch::kInt64).clamp(0, 3);  // [n, 2]
  torch::Tensor parity = (cell.select(1, 0) + cell.select(1, 1)) % 2;
  EXPECT_EQ(parity.sum().item<int64_t>(), 0);  // no sample in a white cell
  torch::Tensor counts = torch::bincount(cell.select(1, 0) * 4 + cell.select(1, 1), {}, 16);
  int black = 0;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      if ((i + j) % 2 == 0) {
        ++black;
        // 1/8 of the samples each, +- 4 sigma.
        EXPECT_NEAR(counts[i * 4 + j].item<int64_t>() / static_cast<double>(n), 0.125, 0.011);
      }
  EXPECT_EQ(black, 8);
}

TEST(Datasets, SwissRollWithoutNoiseLiesOnItsSpiral) {
  const double scale = 2.0, turns = 1.5;
  auto d = make("swiss_roll", {{"scale", scale}, {"turns", turns}, {"noise", 0.0}});
  ASSERT_TRUE(d);
  torch::Tensor x = draw(*d, 2000, 4).x.to(torch::kFloat64);
  const double t0 = 1.5 * kPi, t1 = t0 + 2 * kPi * turns;
  torch::Tensor r = x.norm(2, 1);
  torch::Tensor t = r * (t1 / scale);  // the spiral is r = t * scale / t1
  EXPECT_GE(t.min().item<double>(), t0 - 1e-4);
  EXPECT_LE(t.max().item<double>(), t1 + 1e-4);
  EXPECT_LT((x.select(1, 0) - r * torch::cos(t)).abs().max().item<double>(), 1e-4);
  EXPECT_LT((x.select(1, 1) - r * torch::sin(t)).abs().max().item<double>(), 1e-4);
  // With noise the points scatter off the spiral, around the same scale.
  auto noisy = make("swiss_roll", {{"noise", 0.2}});
  torch::Tensor xn = draw(*noisy, 2000, 4).x.to(torch::kFloat64);
  EXPECT_LE(xn.norm(2, 1).max().item<double>(), 2.0 + 6 * 0.2);
}

// The authors' toy demo's checkerboard: 4 x 4 board on [-1, 1]^2 plus noise 0.05.
TEST(Datasets, CheckerboardNoiseScattersAroundTheCells) {
  auto clean = make("checkerboard", {{"cells", int64_t{4}}, {"scale", 1.0}});
  auto noisy = make("checkerboard", {{"cells", int64_t{4}}, {"scale", 1.0}, {"noise", 0.05}});
  torch::Tensor a = draw(*clean, 20000, 3).x.to(torch::kFloat64);
  torch::Tensor b = draw(*noisy, 20000, 3).x.to(torch::kFloat64);
  EXPECT_LE(a.abs().max().item<double>(), 1.0);
  EXPECT_GT(b.abs().max().item<double>(), 1.05);  // noise leaves the board
  // Noise adds variance 0.05^2 per coordinate; a cell's uniform part has 0.5^2 / 12.
  const double va = a.var(0).mean().item<double>(), vb = b.var(0).mean().item<double>();
  EXPECT_NEAR(vb - va, 0.0025, 0.0015);
  // Same cells: the share of samples with x > 0 stays 1/2.
  EXPECT_NEAR((b.select(1, 0) > 0).to(torch::kFloat64).mean().item<double>(), 0.5, 0.02);
}

// The authors' toy demo's Swiss roll: t from 0.5 pi over 2 turns, outer radius 1.
TEST(Datasets, SwissRollStartsWhereStartTurnsSays) {
  auto d = make("swiss_roll", {{"scale", 1.0}, {"turns", 2.0}, {"start_turns", 0.25},
                               {"noise", 0.0}});
  torch::Tensor x = draw(*d, 4000, 5).x.to(torch::kFloat64);
  const double t0 = 0.5 * kPi, t1 = 4.5 * kPi;
  torch::Tensor r = x.norm(2, 1), t = r * t1;
  EXPECT_GE(t.min().item<double>(), t0 - 1e-4);
  EXPECT_LT(t.min().item<double>(), t0 + 0.05);
  EXPECT_LE(t.max().item<double>(), t1 + 1e-4);
  EXPECT_GT(t.max().item<double>(), t1 - 0.05);
  EXPECT_LT((x.select(1, 0) - r * torch::cos(t)).abs().max().item<double>(), 1e-4);
  EXPECT_LT((x.select(1, 1) - r * torch::sin(t)).abs().max().item<double>(), 1e-4);
}

TEST(Datasets, MixtureHasItsWeightsAndDeclaresItsModes) {
  const std::vector<double> centers = {-4, 0, 4, 0, 0, 5};
  auto d = make("mixture", {{"centers", centers}, {"weights", std::vector<double>{5, 3, 2}},
                            {"std", 0.25}, {"labeled", true}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->num_classes(), 3);
  const auto modes = d->modes();
  ASSERT_EQ(modes.size(), 3u);
  EXPECT_DOUBLE_EQ(modes[0].weight, 0.5);
  EXPECT_DOUBLE_EQ(modes[2].weight, 0.2);
  EXPECT_DOUBLE_EQ(modes[1].radius, 0.75);  // 3 std, the centres being far apart
  DataBatch b = draw(*d, 20000, 4);
  const std::vector<double> shares = metrics::mode_shares(b.x, modes);
  EXPECT_NEAR(shares[0], 0.5, 0.015);
  EXPECT_NEAR(shares[1], 0.3, 0.015);
  EXPECT_NEAR(shares[2], 0.2 * 0.989, 0.015);  // 3 std in 2-D hold 1 - exp(-4.5) = 98.9%
  torch::Tensor c1 = b.x.index({b.labels == 1}).to(torch::kFloat64);
  EXPECT_NEAR(c1.mean(0)[0].item<double>(), 4.0, 0.02);
  EXPECT_NEAR(c1.std(0)[1].item<double>(), 0.25, 0.01);
  // Close centres: the mode radius is half their distance.
  auto close = make("mixture", {{"centers", std::vector<double>{0, 0, 1, 0}},
                               {"weights", std::vector<double>{}}, {"std", 0.5}});
  EXPECT_DOUBLE_EQ(close->modes()[0].radius, 0.5);
  // Errors name the key.
  auto bad = try_make("mixture", {{"centers", std::vector<double>{1, 2, 3}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("centers"), std::string::npos);
  bad = try_make("mixture", {{"centers", centers}, {"weights", std::vector<double>{1, 1}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("weights"), std::string::npos);
}

TEST(Datasets, TwoMoonsWithoutNoiseLieOnTheirHalfCircles) {
  auto d = make("two_moons", {{"scale", 2.0}, {"noise", 0.0}, {"labeled", true}});
  ASSERT_TRUE(d);
  DataBatch b = draw(*d, 4000, 6);
  torch::Tensor u = b.x.to(torch::kFloat64) / 2.0 + torch::tensor({0.5, 0.25}, torch::kFloat64);
  torch::Tensor m0 = u.index({b.labels == 0}), m1 = u.index({b.labels == 1});
  EXPECT_NEAR(m0.size(0) / 4000.0, 0.5, 0.032);
  // Moon 0: the upper unit half circle around (0, 0); moon 1: the lower one around (1, 0.5).
  EXPECT_LT((m0.norm(2, 1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_GE(m0.select(1, 1).min().item<double>(), -1e-6);
  torch::Tensor c1 = m1 - torch::tensor({1.0, 0.5}, torch::kFloat64);
  EXPECT_LT((c1.norm(2, 1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_LE(c1.select(1, 1).max().item<double>(), 1e-6);
}

TEST(Datasets, RingsLieOnTheirRadiiWithLengthProportionalShares) {
  auto d = make("rings", {{"radii", std::vector<double>{1.0, 3.0}}, {"noise", 0.0},
                          {"labeled", true}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->num_classes(), 2);
  const int64_t n = 20000;
  DataBatch b = draw(*d, n, 8);
  torch::Tensor r = b.x.to(torch::kFloat64).norm(2, 1);
  torch::Tensor expected = torch::where(b.labels == 0, torch::full_like(r, 1.0), torch::full_like(r, 3.0));
  EXPECT_LT((r - expected).abs().max().item<double>(), 1e-5);
  // Uniform along the total length: the inner ring holds 1 / (1 + 3) of the samples.
  EXPECT_NEAR((b.labels == 0).to(torch::kFloat64).mean().item<double>(), 0.25, 0.013);
  // Default: num_rings = 2 evenly spaced up to max_radius = 2.
  auto def = make("rings", {{"noise", 0.0}, {"num_rings", int64_t{4}}, {"max_radius", 2.0}});
  torch::Tensor rd = draw(*def, 4000, 1).x.to(torch::kFloat64).norm(2, 1);
  torch::Tensor nearest = torch::round(rd / 0.5) * 0.5;
  EXPECT_LT((rd - nearest).abs().max().item<double>(), 1e-5);
  EXPECT_NEAR(rd.min().item<double>(), 0.5, 1e-5);
  EXPECT_NEAR(rd.max().item<double>(), 2.0, 1e-5);
}

// ------------------------------------------------------------------ points (HDF5)

template <class T>
void put(H5::H5File& f, const std::string& name, const std::vector<T>& v,
         const std::vector<hsize_t>& dims, const H5::PredType& file_type,
         const H5::PredType& mem_type) {
  H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
  H5::DataSet ds = f.createDataSet(name, file_type, space);
  ds.write(v.data(), mem_type);
}

struct PointsFile {
  std::string dir, path;
  std::vector<double> x;  // [10, 3]
  std::vector<int32_t> labels;
};

PointsFile write_points_file() {
  PointsFile pf;
  pf.dir = test::temp_dir("points");
  pf.path = pf.dir + "/cloud.h5";
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 3; ++j) pf.x.push_back(i * 10.0 + j + 0.25);
  for (int i = 0; i < 10; ++i) pf.labels.push_back(i % 5);
  H5::H5File f(pf.path, H5F_ACC_TRUNC);
  put(f, "x", pf.x, {10, 3}, H5::PredType::IEEE_F64LE, H5::PredType::NATIVE_DOUBLE);
  put(f, "lab", pf.labels, {10}, H5::PredType::STD_I32LE, H5::PredType::NATIVE_INT32);
  std::vector<float> xf(pf.x.begin(), pf.x.end());
  f.createGroup("grp");
  put(f, "grp/xf", xf, {10, 3}, H5::PredType::IEEE_F32LE, H5::PredType::NATIVE_FLOAT);
  put(f, "flat", pf.x, {30}, H5::PredType::IEEE_F64LE, H5::PredType::NATIVE_DOUBLE);
  std::vector<int64_t> short_labels(9, 1);
  put(f, "lab9", short_labels, {9}, H5::PredType::STD_I64LE, H5::PredType::NATIVE_INT64);
  std::vector<double> flabels(10, 1.0);
  put(f, "flab", flabels, {10}, H5::PredType::IEEE_F64LE, H5::PredType::NATIVE_DOUBLE);
  std::vector<int32_t> neg(10, 0);
  neg[3] = -1;
  put(f, "neg", neg, {10}, H5::PredType::STD_I32LE, H5::PredType::NATIVE_INT32);
  return pf;
}

TEST(Datasets, PointsSamplesRowsOfTheFileWithTheirLabels) {
  PointsFile pf = write_points_file();
  DatasetContext ctx;
  ctx.base_dir = pf.dir;  // "cloud.h5" is relative to it
  auto d = make("points", {{"path", std::string("cloud.h5")}, {"labels", std::string("lab")}}, ctx);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sample_shape(), std::vector<int64_t>{3});
  EXPECT_EQ(d->num_classes(), 5);
  EXPECT_TRUE(d->modes().empty());
  DataBatch b = draw(*d, 2000, 1);
  ASSERT_EQ(b.x.sizes(), (std::vector<int64_t>{2000, 3}));
  EXPECT_EQ(b.x.dtype(), torch::kFloat32);
  ASSERT_TRUE(b.labels.defined());
  EXPECT_EQ(b.labels.dtype(), torch::kInt64);
  // Each sample is a row i of the file (x[i, j] = 10 i + j + 0.25) with label i % 5.
  auto xa = b.x.accessor<float, 2>();
  auto la = b.labels.accessor<int64_t, 1>();
  std::vector<int> seen(10, 0);
  for (int64_t s = 0; s < 2000; ++s) {
    const int i = static_cast<int>(std::lround((xa[s][0] - 0.25) / 10));
    ASSERT_TRUE(i >= 0 && i < 10);
    for (int j = 0; j < 3; ++j) ASSERT_FLOAT_EQ(xa[s][j], static_cast<float>(pf.x[i * 3 + j]));
    ASSERT_EQ(la[s], i % 5);
    ++seen[i];
  }
  // With replacement, uniformly: every row about 200 times.
  for (int c : seen) EXPECT_NEAR(c, 200, 60);
  EXPECT_TRUE(torch::equal(b.x, draw(*d, 2000, 1).x));
  EXPECT_FALSE(torch::equal(b.x, draw(*d, 2000, 2).x));
}

// [data] dataset = "points" selects the component; points' own `dataset`
// parameter (the HDF5 dataset, default "x") keeps its default, or is set in
// [data.points]. The resolved configuration says so and reads back the same.
TEST(Datasets, PointsDatasetParameterIsNotTheComponentSelector) {
  PointsFile pf = write_points_file();
  auto& reg = test::default_registry();
  auto resolve = [&](const std::string& extra) {
    const std::string toml = "[data]\ndataset = \"points\"\npath = \"" + pf.path + "\"\n" +
                             extra + "\n[generator]\nplugin = \"mlp\"\n";
    auto exp = config::parse_experiment(toml, pf.dir + "/e.toml");
    EXPECT_TRUE(exp.ok()) << exp.status();
    return config::resolve_cell(*exp, 0, reg);
  };
  for (const auto& [extra, want] : std::vector<std::pair<std::string, std::string>>{
           {"", "x"}, {"[data.points]\ndataset = \"grp/xf\"\n", "grp/xf"}}) {
    SCOPED_TRACE(want);
    auto cfg = resolve(extra);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    EXPECT_EQ(cfg->data.name, "points");
    EXPECT_EQ(cfg->data.params.get_string("dataset"), want);
    // The dataset reads that HDF5 dataset.
    auto d = reg.make_dataset("points", cfg->data.params, DatasetContext{});
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(draw(**d, 7, 1).x.size(1), 3);
    // The recorded configuration is a valid experiment that resolves the same.
    auto again = config::parse_experiment(cfg->resolved_toml, pf.dir + "/r.toml");
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << cfg->resolved_toml;
    auto cfg2 = config::resolve_cell(*again, 0, reg);
    ASSERT_TRUE(cfg2.ok()) << cfg2.status() << "\n" << cfg->resolved_toml;
    EXPECT_EQ(cfg2->data.name, "points");
    EXPECT_EQ(cfg2->data.params.get_string("dataset"), want);
  }
  // A missing HDF5 dataset is named in the error.
  auto missing = resolve("[data.points]\ndataset = \"nope\"\n");
  ASSERT_TRUE(missing.ok()) << missing.status();
  auto d = reg.make_dataset("points", missing->data.params, DatasetContext{});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("nope"), std::string::npos) << d.status();
}

TEST(Datasets, PointsFloat32InAGroupAbsolutePathUnlabelled) {
  PointsFile pf = write_points_file();
  auto d = make("points", {{"path", pf.path}, {"dataset", std::string("grp/xf")}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->num_classes(), 0);
  DataBatch b = draw(*d, 50, 3);
  EXPECT_FALSE(b.labels.defined());
  EXPECT_EQ(b.x.sizes(), (std::vector<int64_t>{50, 3}));
}

std::string points_error(const Given& given, const DatasetContext& ctx = {}) {
  auto d = try_make("points", given, ctx);
  EXPECT_FALSE(d.ok());
  return d.ok() ? "" : std::string(d.status().message());
}

TEST(Datasets, PointsErrorsNameThePathTheDatasetAndTheExpectedShape) {
  PointsFile pf = write_points_file();
  const std::string P = "points: " + pf.path + ": ";

  // Wrong rank: the exact message.
  EXPECT_EQ(points_error({{"path", pf.path}, {"dataset", std::string("flat")}}),
            P + "dataset 'flat' has shape [30], expected [N, D]");

  // Missing file (relative path resolved against base_dir).
  DatasetContext ctx;
  ctx.base_dir = pf.dir;
  std::string e = points_error({{"path", std::string("nope.h5")}}, ctx);
  EXPECT_NE(e.find(pf.dir + "/nope.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("no such file"), std::string::npos) << e;
  EXPECT_NE(e.find("'x'"), std::string::npos) << e;
  EXPECT_NE(e.find("[N, D]"), std::string::npos) << e;

  // Missing dataset, also inside a missing group.
  for (const std::string name : {"y", "nogroup/y"}) {
    e = points_error({{"path", pf.path}, {"dataset", name}});
    EXPECT_EQ(e.rfind(P, 0), 0u) << e;
    EXPECT_NE(e.find("no dataset '" + name + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("[N, D]"), std::string::npos) << e;
  }

  // Labels of the wrong length, of a float type, missing, negative.
  e = points_error({{"path", pf.path}, {"labels", std::string("lab9")}});
  EXPECT_EQ(e.rfind(P + "dataset 'lab9' has shape [9], expected [10]", 0), 0u) << e;
  e = points_error({{"path", pf.path}, {"labels", std::string("flab")}});
  EXPECT_NE(e.find("'flab'"), std::string::npos) << e;
  EXPECT_NE(e.find("integer"), std::string::npos) << e;
  e = points_error({{"path", pf.path}, {"labels", std::string("nolab")}});
  EXPECT_NE(e.find("no dataset 'nolab'"), std::string::npos) << e;
  EXPECT_NE(e.find("[10]"), std::string::npos) << e;
  e = points_error({{"path", pf.path}, {"labels", std::string("neg")}});
  EXPECT_NE(e.find("negative"), std::string::npos) << e;

  // Not an HDF5 file.
  const std::string txt = pf.dir + "/not.h5";
  std::ofstream(txt) << "hello\n";
  e = points_error({{"path", txt}});
  EXPECT_EQ(e.rfind("points: " + txt + ": not an HDF5 file", 0), 0u) << e;
}

}  // namespace
}  // namespace drift
