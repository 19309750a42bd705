// Low-dimensional sample metrics (framework/src/metrics/lowdim.cpp).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "metrics/lowdim.hpp"
#include "test_util.hpp"

namespace drift::metrics {
namespace {

constexpr double kPi = 3.14159265358979323846;

// n samples of N(shift * e_0, I_D), float32.
torch::Tensor gauss(int64_t n, int64_t D, double shift, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor x = at::randn({n, D}, g, torch::kFloat32);
  x.select(1, 0).add_(shift);
  return x;
}

// n copies of one point.
torch::Tensor point(int64_t n, std::vector<float> p) {
  return torch::tensor(p).unsqueeze(0).repeat({n, 1});
}

Mode mode(std::vector<float> c, double w, double r) { return Mode{torch::tensor(c), w, r}; }

// ------------------------------------------------------------------ MMD

TEST(Metrics, MmdNearZeroForOneDistributionLargeForShiftedOnes) {
  torch::Tensor x = gauss(600, 2, 0, 1), y = gauss(600, 2, 0, 2);
  const double same = mmd(x, y);
  const double shifted = mmd(x, gauss(600, 2, 1.0, 3));
  EXPECT_GT(shifted, 0.1);
  EXPECT_LT(std::abs(same), 0.05 * shifted);
  // Monotone in the shift size, with relative and with absolute bandwidths.
  MmdOptions fixed;
  fixed.relative = false;
  fixed.bandwidths = {0.5, 1.0, 2.0};
  double prev_rel = mmd(x, y), prev_abs = mmd(x, y, fixed);
  for (double s : {0.25, 0.5, 1.0, 2.0, 4.0}) {
    SCOPED_TRACE(s);
    torch::Tensor z = gauss(600, 2, s, 4);
    const double rel = mmd(x, z), abs_ = mmd(x, z, fixed);
    EXPECT_GT(rel, prev_rel);
    EXPECT_GT(abs_, prev_abs);
    prev_rel = rel;
    prev_abs = abs_;
  }
}

TEST(Metrics, MmdIsSymmetric) {
  torch::Tensor x = gauss(1200, 2, 0, 1), y = gauss(900, 2, 0.7, 2);  // x is subsampled for the median
  EXPECT_NEAR(mmd(x, y), mmd(y, x), 1e-12);
  EXPECT_EQ(mmd_bandwidths(x, y), mmd_bandwidths(y, x));
}

TEST(Metrics, MmdOfTwoPointMassesInClosedForm) {
  // Unbiased estimator, k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2)):
  // MMD^2 = sum_h (1 + 1 - 2 exp(-d^2 / (2 h^2))) exactly.
  MmdOptions o;
  o.relative = false;
  o.bandwidths = {1.0, 2.0};
  torch::Tensor x = point(5, {0, 0, 0}), y = point(7, {1, 2, 2});  // d = 3
  const double expected = 2 - 2 * std::exp(-9.0 / 2) + 2 - 2 * std::exp(-9.0 / 8);
  EXPECT_NEAR(mmd(x, y, o), expected, 1e-12);
  EXPECT_NEAR(mmd(x, point(4, {0, 0, 0}), o), 0.0, 1e-15);
}

TEST(Metrics, MmdBandwidthsAreRelativeToTheMedianDistance) {
  // 1-D points {0, 1, 3}: pairwise distances {1, 3, 2}, median 2.
  torch::Tensor x = torch::tensor({0.0f, 1.0f}).unsqueeze(1), y = torch::tensor({3.0f}).unsqueeze(1);
  EXPECT_DOUBLE_EQ(median_pairwise_distance(torch::cat({x, y})), 2.0);
  std::vector<double> h = mmd_bandwidths(x, y);
  EXPECT_EQ(h, (std::vector<double>{0.5, 1.0, 2.0, 4.0, 8.0}));
  // All points equal: the fallback is 1.
  EXPECT_DOUBLE_EQ(median_pairwise_distance(point(4, {1, 1})), 1.0);
}

TEST(Metrics, MetricsRejectMismatchedInputs) {
  EXPECT_THROW(mmd(gauss(10, 2, 0, 1), gauss(10, 3, 0, 1)), std::invalid_argument);
  EXPECT_THROW(mmd(gauss(1, 2, 0, 1), gauss(10, 2, 0, 1)), std::invalid_argument);
  EXPECT_THROW(energy_distance(gauss(10, 2, 0, 1), gauss(10, 3, 0, 1)), std::invalid_argument);
  EXPECT_THROW(sliced_wasserstein(gauss(10, 2, 0, 1), gauss(10, 3, 0, 1)), std::invalid_argument);
}

// ------------------------------------------------------------------ energy distance

TEST(Metrics, EnergyDistanceOfPointMassesIsTwiceTheirDistance) {
  EXPECT_NEAR(energy_distance(point(5, {0, 0, 0}), point(7, {1, 2, 2})), 6.0, 1e-12);
  EXPECT_NEAR(energy_distance(point(5, {1, 1}), point(3, {1, 1})), 0.0, 1e-15);
}

TEST(Metrics, EnergyDistanceNearZeroForOneDistributionMonotoneSymmetric) {
  torch::Tensor x = gauss(1500, 2, 0, 1), y = gauss(1500, 2, 0, 2);
  const double same = energy_distance(x, y);
  const double shifted = energy_distance(x, gauss(1500, 2, 1.0, 3));
  EXPECT_GT(shifted, 0.2);
  EXPECT_LT(std::abs(same), 0.05 * shifted);
  double prev = same;
  for (double s : {0.25, 0.5, 1.0, 2.0, 4.0}) {
    const double e = energy_distance(x, gauss(1500, 2, s, 4));
    EXPECT_GT(e, prev) << s;
    prev = e;
  }
  // For a large shift s the energy distance approaches 2 s - 2 E|X - X'| = 2 s - 2 sqrt(pi).
  EXPECT_NEAR(energy_distance(x, gauss(1500, 2, 50, 5)), 100 - 2 * std::sqrt(kPi), 0.3);
  torch::Tensor z = gauss(900, 2, 0.5, 6);
  EXPECT_NEAR(energy_distance(x, z), energy_distance(z, x), 1e-10);
}

// ------------------------------------------------------------------ Wasserstein

TEST(Metrics, Wasserstein1dExactCases) {
  EXPECT_NEAR(wasserstein_1d({0, 1}, {1, 0, 0, 1}), 0.0, 1e-15);
  EXPECT_NEAR(wasserstein_1d({0}, {1, 3}, 1.0), 2.0, 1e-15);
  EXPECT_NEAR(wasserstein_1d({0}, {1, 3}, 2.0), std::sqrt(5.0), 1e-15);
  // Quantile functions 0|1|2 (thirds) vs 0|2 (halves) differ by 1 on [1/3, 2/3).
  EXPECT_NEAR(wasserstein_1d({2, 0, 1}, {0, 2}, 1.0), 1.0 / 3, 1e-15);
  EXPECT_NEAR(wasserstein_1d({2, 0, 1}, {0, 2}, 2.0), std::sqrt(1.0 / 3), 1e-15);
  EXPECT_NEAR(wasserstein_1d({0, 1, 2}, {5, 6, 7}, 3.0), 5.0, 1e-12);
}

TEST(Metrics, SlicedWassersteinOfAShiftIn1dIsTheShift) {
  torch::Tensor x = gauss(500, 1, 0, 1).to(torch::kFloat64);
  for (double p : {1.0, 2.0}) {
    SlicedOptions o;
    o.p = p;
    o.num_projections = 8;
    EXPECT_NEAR(sliced_wasserstein(x, x + 0.7, o), 0.7, 1e-12) << p;
    EXPECT_NEAR(sliced_wasserstein(x, x - 1.3, o), 1.3, 1e-12) << p;
  }
}

TEST(Metrics, SlicedWassersteinOfAShiftIn2dMatchesTheProjectionAverage) {
  // y = x + delta: W_p along th is |<th, delta>|, so SW_2 = |delta| sqrt(E cos^2) = |delta| / sqrt(2)
  // and SW_1 = |delta| E|cos| = |delta| 2 / pi (Monte Carlo over 4096 directions).
  torch::Tensor x = gauss(400, 2, 0, 1);
  torch::Tensor y = x + torch::tensor({3.0f, 4.0f});
  SlicedOptions o;
  o.num_projections = 4096;
  o.seed = 3;
  EXPECT_NEAR(sliced_wasserstein(x, y, o), 5.0 / std::sqrt(2.0), 0.03 * 5.0 / std::sqrt(2.0));
  o.p = 1;
  EXPECT_NEAR(sliced_wasserstein(x, y, o), 5.0 * 2 / kPi, 0.03 * 5.0 * 2 / kPi);
  // Point masses: every projection gives |<th, a - b>| too.
  o.p = 2;
  EXPECT_NEAR(sliced_wasserstein(point(3, {0, 0}), point(5, {3, 4}), o), 5.0 / std::sqrt(2.0),
              0.03 * 5.0 / std::sqrt(2.0));
}

TEST(Metrics, SlicedWassersteinDeterministicSymmetricSmallForOneDistribution) {
  torch::Tensor x = gauss(1000, 2, 0, 1), y = gauss(1000, 2, 0, 2), z = gauss(700, 2, 1.0, 3);
  SlicedOptions a, b;
  a.seed = 1;
  b.seed = 2;
  EXPECT_EQ(sliced_wasserstein(x, z, a), sliced_wasserstein(x, z, a));
  EXPECT_NE(sliced_wasserstein(x, z, a), sliced_wasserstein(x, z, b));
  EXPECT_NEAR(sliced_wasserstein(x, z, a), sliced_wasserstein(z, x, a), 1e-12);
  const double same = sliced_wasserstein(x, y, a), shifted = sliced_wasserstein(x, z, a);
  EXPECT_GT(shifted, 0.5);
  EXPECT_LT(same, 0.15 * shifted);
  double prev = same;
  for (double s : {0.25, 0.5, 1.0, 2.0, 4.0}) {
    const double w = sliced_wasserstein(x, gauss(1000, 2, s, 4), a);
    EXPECT_GT(w, prev) << s;
    prev = w;
  }
}

// ------------------------------------------------------------------ modes

TEST(Metrics, ModeSharesOfHandMadeSamples) {
  std::vector<Mode> modes = {mode({0, 0}, 0.5, 1.0), mode({10, 0}, 0.5, 1.0)};
  // 3 at mode 0, 1 at mode 1, 1 far from both.
  torch::Tensor x = torch::tensor({0.0f, 0.1f, 0.5f, -0.5f, -0.9f, 0.0f, 10.0f, 0.5f, 5.0f, 5.0f})
                        .reshape({5, 2});
  std::vector<double> s = mode_shares(x, modes);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_DOUBLE_EQ(s[0], 0.6);
  EXPECT_DOUBLE_EQ(s[1], 0.2);
  EXPECT_LE(s[0] + s[1], 1.0);
  // No samples: all zero; no modes: empty.
  EXPECT_EQ(mode_shares(torch::zeros({0, 2}), modes), (std::vector<double>{0, 0}));
  EXPECT_TRUE(mode_shares(x, {}).empty());
  EXPECT_THROW(mode_shares(torch::zeros({3, 3}), modes), std::invalid_argument);
}

TEST(Metrics, ModeSharesWithOverlappingAndUnequalRadii) {
  // 1-D modes at 0 (radius 2) and 1 (radius 0.3).
  std::vector<Mode> modes = {mode({0}, 0.5, 2.0), mode({1}, 0.5, 0.3)};
  // 0.4: in mode 0's ball only -> 0; 0.8: in both, nearer to 1 -> 1;
  // 1.5: nearer to 1 but outside its radius, inside mode 0's -> 0; 2.5: outside both.
  torch::Tensor x = torch::tensor({0.4f, 0.8f, 1.5f, 2.5f}).unsqueeze(1);
  std::vector<double> s = mode_shares(x, modes);
  EXPECT_DOUBLE_EQ(s[0], 0.5);
  EXPECT_DOUBLE_EQ(s[1], 0.25);
}

TEST(Metrics, ModeSharesEqualConstructedProportions) {
  // 8 modes on a circle; put n_k samples inside mode k's ball with n_k = 0..7 and 10 outside.
  std::vector<Mode> modes;
  std::vector<torch::Tensor> parts;
  int64_t total = 10;
  for (int k = 0; k < 8; ++k) {
    const float cx = 3 * std::cos(2 * kPi * k / 8), cy = 3 * std::sin(2 * kPi * k / 8);
    modes.push_back(mode({cx, cy}, 1.0 / 8, 0.5));
    if (k > 0) parts.push_back(point(k, {cx, cy}) + 0.3 * gauss(k, 2, 0, k).clamp(-1, 1) / 1.5);
    total += k;
  }
  parts.push_back(point(10, {0, 0}));
  std::vector<double> s = mode_shares(torch::cat(parts), modes);
  double sum = 0;
  for (int k = 0; k < 8; ++k) {
    EXPECT_DOUBLE_EQ(s[k], static_cast<double>(k) / total) << k;
    sum += s[k];
  }
  EXPECT_NEAR(sum, 28.0 / 38.0, 1e-12);
}

TEST(Metrics, ModesCoveredCountsSharesAtLeastHalfTheirTarget) {
  EXPECT_EQ(modes_covered({0.5, 0.24, 0.0, 0.05}, {0.5, 0.5, 0.0, 0.1}), 3);
  EXPECT_EQ(modes_covered({1.0, 0.0}, {0.5, 0.5}), 1);
  EXPECT_EQ(modes_covered({0.25, 0.25}, {0.5, 0.5}), 2);
  EXPECT_EQ(modes_covered({}, {}), 0);
  EXPECT_THROW(modes_covered({0.5}, {0.5, 0.5}), std::invalid_argument);
}

// ------------------------------------------------------------------ evaluate_lowdim

TEST(Metrics, EvaluateLowdimNamesOrderFloorsAndModes) {
  // Real: two modes at (+-2, 0); gen: collapsed onto the left one.
  auto real = [](int64_t n, uint64_t seed) {
    torch::Tensor x = 0.3 * gauss(n, 2, 0, seed);
    x.slice(0, 0, n / 2).select(1, 0).add_(-2);
    x.slice(0, n / 2, n).select(1, 0).add_(2);
    return x;
  };
  torch::Tensor ra = real(600, 1), rb = real(400, 2);
  torch::Tensor gen = 0.3 * gauss(400, 2, 0, 3) + torch::tensor({-2.0f, 0.0f});
  std::vector<Mode> modes = {mode({-2, 0}, 0.5, 0.9), mode({2, 0}, 0.5, 0.9)};
  auto out = evaluate_lowdim({"sliced_w", "mmd", "mode_share", "energy"}, gen, ra, rb, modes, 5);
  std::vector<std::string> names;
  for (const auto& [n, v] : out) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"sliced_w", "sliced_w_floor", "mmd", "mmd_floor",
                                             "mode_share_0", "mode_target_0", "mode_share_1",
                                             "mode_target_1", "modes_covered", "mode_share_none",
                                             "energy", "energy_floor"}));
  auto val = [&out](const std::string& n) {
    for (const auto& [k, v] : out)
      if (k == n) return v;
    ADD_FAILURE() << n;
    return 0.0;
  };
  for (const std::string m : {"sliced_w", "mmd", "energy"}) {
    EXPECT_GT(val(m), 10 * std::abs(val(m + "_floor"))) << m;
  }
  EXPECT_GT(val("mode_share_0"), 0.97);  // P(|z| <= 3 sigma) in 2-D = 0.989
  EXPECT_EQ(val("mode_share_1"), 0.0);
  EXPECT_EQ(val("mode_target_0"), 0.5);
  EXPECT_EQ(val("modes_covered"), 1.0);
  // The rest: samples within no mode's radius.
  EXPECT_DOUBLE_EQ(val("mode_share_none"), 1.0 - val("mode_share_0") - val("mode_share_1"));
  EXPECT_GT(val("mode_share_none"), 0.0);
  // The values are the metric functions' (same projections for the same seed).
  SlicedOptions o;
  o.seed = 5;
  EXPECT_DOUBLE_EQ(val("sliced_w"), sliced_wasserstein(gen, ra, o));
  EXPECT_DOUBLE_EQ(val("sliced_w_floor"), sliced_wasserstein(rb, ra, o));
  EXPECT_DOUBLE_EQ(val("energy"), energy_distance(gen, ra));
  EXPECT_DOUBLE_EQ(val("mmd"), mmd(gen, ra));
  // Deterministic.
  EXPECT_EQ(out, evaluate_lowdim({"sliced_w", "mmd", "mode_share", "energy"}, gen, ra, rb, modes, 5));

  // A generator matching the data: near its floor, both modes covered.
  torch::Tensor good = real(400, 4);
  auto g = evaluate_lowdim({"energy", "mode_share"}, good, ra, rb, modes, 5);
  ASSERT_EQ(g.size(), 8u);
  EXPECT_LT(std::abs(g[0].second), 0.05);
  EXPECT_EQ(g[6], (std::pair<std::string, double>{"modes_covered", 2.0}));
  EXPECT_EQ(g[7].first, "mode_share_none");
  EXPECT_LT(g[7].second, 0.05);

  // No modes: mode_share adds nothing.
  EXPECT_TRUE(evaluate_lowdim({"mode_share"}, gen, ra, rb, {}, 0).empty());
}

TEST(Metrics, EvaluateLowdimRejectsUnknownNames) {
  torch::Tensor x = gauss(10, 2, 0, 1);
  try {
    evaluate_lowdim({"mmd", "fid"}, x, x, x, {}, 0);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("\"fid\""), std::string::npos) << m;
    for (const char* v : {"mmd", "energy", "sliced_w", "mode_share"})
      EXPECT_NE(m.find(v), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace drift::metrics
