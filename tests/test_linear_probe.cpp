// metrics/linear_probe: the linear probe behind drift-probe.
#include <gtest/gtest.h>

#include "metrics/linear_probe.hpp"

namespace {

using drift::metrics::linear_probe;

// n points per class around class centres in F dims, with noise `sigma`.
std::pair<torch::Tensor, torch::Tensor> blobs(int64_t n, int64_t classes, int64_t F, double sigma, uint64_t seed,
                                              const torch::Tensor& centres) {
  auto g = at::detail::createCPUGenerator(seed);
  auto y = torch::arange(classes, torch::kLong).repeat_interleave(n);
  auto x = centres.index_select(0, y) + sigma * torch::randn({classes * n, F}, g, torch::kFloat32);
  return {x, y};
}

TEST(LinearProbe, SeparatesLinearlySeparableClassesAndGeneralises) {
  auto g = at::detail::createCPUGenerator(1);
  const auto centres = 3 * torch::randn({5, 16}, g, torch::kFloat32);
  auto [xf, yf] = blobs(100, 5, 16, 0.5, 2, centres);
  auto [xv, yv] = blobs(50, 5, 16, 0.5, 3, centres);
  auto [xt, yt] = blobs(50, 5, 16, 0.5, 4, centres);
  auto r = linear_probe(xf, yf, xv, yv, xt, yt, 5);
  EXPECT_GT(r.test_accuracy, 0.98);
  EXPECT_EQ(r.features, 16);
  EXPECT_EQ(r.val_accuracy_per_decay.size(), 4u);
}

TEST(LinearProbe, RandomLabelsGiveChance) {
  auto g = at::detail::createCPUGenerator(5);
  auto xf = torch::randn({500, 8}, g, torch::kFloat32), xv = torch::randn({500, 8}, g, torch::kFloat32);
  auto xt = torch::randn({2000, 8}, g, torch::kFloat32);
  auto yf = torch::randint(10, {500}, g, torch::kLong), yv = torch::randint(10, {500}, g, torch::kLong);
  auto yt = torch::randint(10, {2000}, g, torch::kLong);
  auto r = linear_probe(xf, yf, xv, yv, xt, yt, 10);
  EXPECT_LT(r.test_accuracy, 0.16);  // chance is 0.1
  EXPECT_GT(r.test_accuracy, 0.05);
}

TEST(LinearProbe, WeightDecayIsChosenOnValidationNotTest) {
  // The test set plays no part in the choice: a test set with flipped labels
  // changes only the reported test accuracy (to its complement).
  auto g = at::detail::createCPUGenerator(7);
  const auto centres = 0.4 * torch::randn({2, 200}, g, torch::kFloat32);
  auto [xf, yf] = blobs(10, 2, 200, 1.0, 8, centres);
  auto [xv, yv] = blobs(200, 2, 200, 1.0, 9, centres);
  auto [xt, yt] = blobs(200, 2, 200, 1.0, 10, centres);
  const std::vector<double> decays = {1e-6, 10.0};
  auto a = linear_probe(xf, yf, xv, yv, xt, yt, 2, decays);
  auto b = linear_probe(xf, yf, xv, yv, xt, 1 - yt, 2, decays);
  EXPECT_EQ(a.weight_decay, b.weight_decay);
  EXPECT_EQ(a.val_accuracy, b.val_accuracy);
  EXPECT_NEAR(a.test_accuracy + b.test_accuracy, 1.0, 1e-12);
}

TEST(LinearProbe, RefusesMismatchedFeatures) {
  auto x = torch::zeros({4, 3}), y = torch::zeros({4}, torch::kLong);
  EXPECT_THROW(linear_probe(x, y, torch::zeros({4, 2}), y, x, y, 2), std::invalid_argument);
}

}  // namespace
