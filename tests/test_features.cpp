// The feature set of docs/method.md §4 (drift/features.hpp) on small tensors
// whose features can be checked by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "drift/features.hpp"

namespace {

using drift::Feature;
using drift::FeatureMap;
using drift::FeatureSetOptions;
using drift::FeatureSubset;

std::map<std::string, torch::Tensor> by_name(const std::vector<Feature>& fs) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& f : fs) {
    EXPECT_EQ(out.count(f.name), 0u) << "duplicate feature " << f.name;
    out[f.name] = f.value;
  }
  return out;
}

std::vector<std::string> names(const std::vector<Feature>& fs) {
  std::vector<std::string> out;
  for (const auto& f : fs) out.push_back(f.name);
  return out;
}

// [1, N, C, H, W] holding 0, 1, 2, ... in row-major order (plus 100 * n per sample).
torch::Tensor ramp(int64_t N, int64_t C, int64_t H, int64_t W) {
  auto t = torch::arange(C * H * W, torch::kFloat32).view({1, 1, C, H, W}).repeat({1, N, 1, 1, 1});
  return t + 100 * torch::arange(N, torch::kFloat32).view({1, N, 1, 1, 1});
}

FeatureSetOptions subset(FeatureSubset s) {
  FeatureSetOptions o;
  o.subset = s;
  return o;
}

}  // namespace

TEST(Features, RawAndX2OfTheInput) {
  auto x = torch::tensor({1.f, -2.f, 3.f, 0.f, /*ch 2*/ 2.f, 2.f, 2.f, 2.f}).view({1, 1, 2, 2, 2});
  auto f = by_name(drift::feature_set(x, {}));
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f["raw"].sizes(), (std::vector<int64_t>{1, 1, 1, 8}));
  EXPECT_TRUE(torch::equal(f["raw"].flatten(), x.flatten()));
  ASSERT_EQ(f["x2"].sizes(), (std::vector<int64_t>{1, 1, 1, 2}));
  // channel 1: sqrt((1 + 4 + 9 + 0) / 4) = sqrt(3.5); channel 2: 2 (up to the 1e-6).
  EXPECT_NEAR(f["x2"][0][0][0][0].item<float>(), std::sqrt(3.5f), 1e-5);
  EXPECT_NEAR(f["x2"][0][0][0][1].item<float>(), 2.f, 1e-5);
}

TEST(Features, FlatSamplesHaveRawOnly) {
  auto x = torch::randn({3, 5, 2});
  auto fs = drift::feature_set(x, {});
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].name, "raw");
  EXPECT_EQ(fs[0].value.sizes(), (std::vector<int64_t>{3, 1, 5, 2}));
}

TEST(Features, LocationsMeanStdAndPatchesByHand) {
  const int64_t N = 2, C = 3;
  auto x = torch::zeros({1, N, 1, 8, 8});
  auto m = ramp(N, C, 4, 4);  // channel c holds 16c .. 16c + 15
  auto f = by_name(drift::feature_set(x, {{"s1", m}}));

  // (a) one location per pixel, row by row: location h*4 + w holds m[n, :, h, w].
  ASSERT_EQ(f["s1.loc"].sizes(), (std::vector<int64_t>{1, 16, N, C}));
  EXPECT_FLOAT_EQ(f["s1.loc"][0][6][1][2].item<float>(), 100 + 32 + 6);  // h=1, w=2, n=1, c=2
  // (b) mean of 0..15 = 7.5, population variance (16^2 - 1) / 12 = 21.25.
  ASSERT_EQ(f["s1.mean"].sizes(), (std::vector<int64_t>{1, 1, N, C}));
  EXPECT_FLOAT_EQ(f["s1.mean"][0][0][0][0].item<float>(), 7.5f);
  EXPECT_FLOAT_EQ(f["s1.mean"][0][0][1][1].item<float>(), 100 + 16 + 7.5f);
  EXPECT_NEAR(f["s1.std"][0][0][0][0].item<float>(), std::sqrt(21.25f), 1e-5);
  // (c) 2x2 patches: patch (0, 0) = {0, 1, 4, 5}: mean 2.5, variance 4.25;
  // patch (1, 1) = {10, 11, 14, 15}: mean 12.5.
  ASSERT_EQ(f["s1.p2.mean"].sizes(), (std::vector<int64_t>{1, 4, N, C}));
  EXPECT_FLOAT_EQ(f["s1.p2.mean"][0][0][0][0].item<float>(), 2.5f);
  EXPECT_FLOAT_EQ(f["s1.p2.mean"][0][3][0][0].item<float>(), 12.5f);
  EXPECT_NEAR(f["s1.p2.std"][0][2][1][1].item<float>(), std::sqrt(4.25f), 1e-5);
  // (d) a 4x4 map's one 4x4 patch would be (b) again: skipped.
  EXPECT_EQ(f.count("s1.p4.mean"), 0u);
  EXPECT_EQ(f.count("s1.p4.std"), 0u);
}

TEST(Features, FourByFourPatchesOfAnEightByEightMap) {
  auto x = torch::zeros({1, 1, 1, 8, 8});
  auto m = ramp(1, 1, 8, 8);
  auto f = by_name(drift::feature_set(x, {{"m", m}}));
  ASSERT_EQ(f["m.p4.mean"].sizes(), (std::vector<int64_t>{1, 4, 1, 1}));
  // Patch (0, 1): rows 0-3, columns 4-7: mean of 4..7 + 8 * (0..3) = 5.5 + 12 = 17.5.
  EXPECT_FLOAT_EQ(f["m.p4.mean"][0][1][0][0].item<float>(), 17.5f);
  // Its variance: columns (var of 4 consecutive = 1.25) + rows (64 * 1.25) = 81.25.
  EXPECT_NEAR(f["m.p4.std"][0][1][0][0].item<float>(), std::sqrt(81.25f), 1e-4);
}

TEST(Features, CountsPerSubsetAndSmallMapsSkipped) {
  auto x = torch::randn({2, 3, 1, 16, 16});
  std::vector<FeatureMap> maps{{"a", torch::randn({2, 3, 4, 8, 8})},
                               {"b", torch::randn({2, 3, 4, 4, 4})},
                               {"c", torch::randn({2, 3, 4, 2, 2})},
                               {"d", torch::randn({2, 3, 4, 1, 1})},
                               {"e", torch::randn({2, 3, 4, 3, 5})}};
  // raw, x2 + per map: a (8x8): 3 / 5 / 7; b (4x4): 3 / 5 / 5; c (2x2): 3 / 3 / 3;
  // d (1x1): loc only; e (3x5): 3 / 5 / 5 (its 2x2 patches: one row of two).
  EXPECT_EQ(drift::feature_set(x, maps, subset(FeatureSubset::AB)).size(), 2u + 3 + 3 + 3 + 1 + 3);
  EXPECT_EQ(drift::feature_set(x, maps, subset(FeatureSubset::AC)).size(), 2u + 5 + 5 + 3 + 1 + 5);
  auto all = by_name(drift::feature_set(x, maps, subset(FeatureSubset::AD)));
  EXPECT_EQ(all.size(), 2u + 7 + 5 + 3 + 1 + 5);
  EXPECT_EQ(all["e.p2.mean"].sizes(), (std::vector<int64_t>{2, 2, 3, 4}));
  EXPECT_EQ(all["a.p4.std"].sizes(), (std::vector<int64_t>{2, 4, 3, 4}));
  EXPECT_EQ(all["d.loc"].sizes(), (std::vector<int64_t>{2, 1, 3, 4}));
  EXPECT_EQ(all.count("d.mean"), 0u);
  EXPECT_EQ(all.count("c.p2.mean"), 0u);

  // Map selection and no x2.
  FeatureSetOptions o;
  o.maps = {"b"};
  o.input_x2 = false;
  EXPECT_EQ(names(drift::feature_set(x, maps, o)),
            (std::vector<std::string>{"raw", "b.loc", "b.mean", "b.std", "b.p2.mean", "b.p2.std"}));
}

TEST(Features, GradientsFlowThroughEveryFeature) {
  auto x = torch::randn({2, 3, 2, 8, 8}, torch::requires_grad());
  auto m1 = torch::randn({2, 3, 4, 8, 8}, torch::requires_grad());
  auto m2 = torch::zeros({2, 3, 4, 4, 4}, torch::requires_grad());  // constant: std at the eps
  auto fs = drift::feature_set(x, {{"m1", m1}, {"m2", m2}});
  ASSERT_EQ(fs.size(), 2u + 7 + 5);
  for (const auto& f : fs) {
    for (auto* t : {&x, &m1, &m2})
      if (t->grad().defined()) t->mutable_grad().zero_();
    auto w = torch::randn(f.value.sizes());
    (f.value * w).sum().backward();
    const auto& src = f.name == "raw" || f.name == "x2" ? x : f.name.rfind("m1", 0) == 0 ? m1 : m2;
    ASSERT_TRUE(src.grad().defined()) << f.name;
    EXPECT_TRUE(torch::isfinite(src.grad()).all().item<bool>()) << f.name;
    if (f.name.find(".std") == std::string::npos || f.name.rfind("m1", 0) == 0)
      EXPECT_GT(src.grad().abs().sum().item<double>(), 0) << f.name << ": no gradient";
  }
}

TEST(Features, OptionsFromParams) {
  auto specs = drift::feature_set_params();
  auto p = drift::validate_params(specs, {{"features", std::string("a-c")},
                                          {"maps", std::vector<std::string>{"s2"}}},
                                  "t");
  ASSERT_TRUE(p.ok()) << p.status();
  auto o = drift::feature_set_options(*p, {"s1", "s2"}, "enc");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->subset, FeatureSubset::AC);
  EXPECT_EQ(o->maps, std::vector<std::string>{"s2"});
  EXPECT_TRUE(o->input_x2);

  auto bad = drift::feature_set_options(*p, {"s1", "s3"}, "enc");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no feature map \"s2\""), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("s1, s3"), std::string::npos) << bad.status();

  EXPECT_FALSE(drift::validate_params(specs, {{"features", std::string("a-e")}}, "t").ok());
  EXPECT_FALSE(drift::parse_feature_subset("abcd", "w").ok());
  EXPECT_EQ(*drift::parse_feature_subset("a,b", "w"), FeatureSubset::AB);
}

TEST(Features, MapOfOtherBatchIsAnError) {
  auto x = torch::zeros({1, 2, 1, 4, 4});
  EXPECT_THROW(drift::feature_set(x, {{"m", torch::zeros({1, 3, 2, 2, 2})}}), std::invalid_argument);
}
