// The normalizer variants of docs/method.md §3 (plugins/normalizers/feature_drift):
// "feature_only" (feature normalization, raw drift) and "drift_only" (raw
// distances and coordinates, normalized drift), against the default
// ("feature_drift") and "none" with kernel laplace (plain reference), and with
// kernel sinkhorn.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "drift/field.hpp"
#include "field_cases.hpp"
#include "test_util.hpp"

namespace {

using drift::DriftInputs;
using drift::DriftOutputs;
using drift::test::Case;
using drift::test::all_finite;
using drift::test::compute;  // kernel laplace with an impl and a normalizer
using drift::test::make_inputs;
using drift::test::rel_err;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

std::unique_ptr<drift::Normalizer> normalizer(const std::string& name) {
  auto n = drift::test::default_registry().make_normalizer(name, {});
  if (!n.ok()) throw std::runtime_error(std::string(n.status().message()));
  return std::move(*n);
}

DriftInputs with_temps(DriftInputs in, std::vector<double> t) {
  in.temperatures = std::move(t);
  return in;
}

const std::vector<Case> kCases = {
    {"small", 2, 9, 7, 3, 4},
    {"no_neg_ones", 3, 12, 10, 0, 6, {0.02, 0.05, 0.2}, Case::kOnes},
    {"wide_spread", 2, 16, 12, 5, 8, {0.02, 0.05, 0.2}, Case::kRandom, 30.0, 5.0},
};

// The halves: feature_only's feature() is the default's, its drift factor 1;
// drift_only's divisors are 1, its drift factor the default's.
TEST(NormalizerVariants, FormulasAreTheTwoHalves) {
  const auto def = normalizer("feature_drift"), none = normalizer("none");
  const auto fo = normalizer("feature_only"), dro = normalizer("drift_only");
  for (double scale : {8.0, 1e-6, 0.37}) {
    for (int64_t S : {1, 16, 3072}) {
      const auto sc = torch::tensor(scale, f64());
      const auto d = def->feature(sc, S), f = fo->feature(sc, S), r = dro->feature(sc, S);
      EXPECT_EQ(f.distance_divisor.item<double>(), d.distance_divisor.item<double>());
      EXPECT_EQ(f.coord_divisor.item<double>(), d.coord_divisor.item<double>());
      EXPECT_EQ(r.distance_divisor.item<double>(), 1.0);
      EXPECT_EQ(r.coord_divisor.item<double>(), 1.0);
    }
  }
  EXPECT_DOUBLE_EQ(fo->feature(torch::tensor(8.0, f64()), 16).coord_divisor.item<double>(), 2.0);
  for (double m : {4.0, 0.0, 1e-12, 123.0}) {
    const auto mt = torch::tensor(m, f64());
    EXPECT_EQ(fo->drift_factor(mt).item<double>(), 1.0);
    EXPECT_EQ(dro->drift_factor(mt).item<double>(), def->drift_factor(mt).item<double>());
    EXPECT_NEAR(dro->drift_factor(mt).item<double>(), 1 / std::sqrt(std::max(m, 1e-8)), 1e-9);
  }
}

// feature_only = the default field with the drift normalization removed:
// sum over temperatures of the raw F_tau in normalized coordinates. Each F_tau
// is recovered from a one-temperature default run as V * sqrt(max(m_tau, 1e-8)).
TEST(NormalizerVariants, FeatureOnlyIsTheDefaultWithoutDriftNormalization) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const DriftInputs in = make_inputs(c, 21);
    const auto fo = compute(in, "plain", "feature_only");
    ASSERT_TRUE(all_finite(fo));
    torch::Tensor expected = torch::zeros_like(fo.V);
    std::vector<double> m;
    for (double tau : in.temperatures) {
      const auto d = compute(with_temps(in, {tau}), "plain", "feature_drift");
      const double mt = d.m_tau[0].item<double>();
      expected = expected + d.V * std::sqrt(std::max(mt, 1e-8));
      m.push_back(mt);
      EXPECT_DOUBLE_EQ(d.coord_scale.item<double>(), fo.coord_scale.item<double>());
    }
    EXPECT_LT(rel_err(fo.V, expected), 1e-10);
    EXPECT_LT(rel_err(fo.m_tau, torch::tensor(m, f64())), 1e-10);
    EXPECT_LT(rel_err(fo.goal, in.gen / fo.coord_scale + fo.V), 1e-12);
    // ... and is not the default field (the control: drift normalization matters).
    EXPECT_GT(rel_err(fo.V, compute(in, "plain", "feature_drift").V), 1e-2);
  }
}

// drift_only: every per-temperature drift has unit mean square, in raw
// coordinates; the field is the sum over temperatures of "none"'s raw drift
// divided by sqrt(m_tau).
TEST(NormalizerVariants, DriftOnlyGivesUnitMeanSquareDrifts) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const DriftInputs in = make_inputs(c, 22);
    const auto dro = compute(in, "plain", "drift_only");
    ASSERT_TRUE(all_finite(dro));
    EXPECT_EQ(dro.coord_scale.item<double>(), 1.0);
    EXPECT_LT(rel_err(dro.goal, in.gen + dro.V), 1e-12);
    torch::Tensor expected = torch::zeros_like(dro.V);
    for (double tau : in.temperatures) {
      const auto one = compute(with_temps(in, {tau}), "plain", "drift_only");
      EXPECT_NEAR(one.V.pow(2).mean().item<double>(), 1.0, 1e-10) << "tau=" << tau;
      const auto raw = compute(with_temps(in, {tau}), "plain", "none");
      expected = expected + raw.V / std::sqrt(raw.m_tau[0].item<double>());
    }
    EXPECT_LT(rel_err(dro.V, expected), 1e-10);
    // Raw distances: unlike the default, the field is not scale-free.
    DriftInputs big = in;
    big.gen = in.gen * 10;
    big.pos = in.pos * 10;
    big.neg = in.neg * 10;
    EXPECT_GT(rel_err(compute(big, "plain", "drift_only").V, dro.V), 1e-2);
    EXPECT_LT(rel_err(compute(big, "plain", "feature_drift").V,
                      compute(in, "plain", "feature_drift").V), 1e-4);
  }
}

// The variants work with any kernel: kernel sinkhorn under drift_only gives
// unit mean-square drifts per temperature, under feature_only the raw ones.
TEST(NormalizerVariants, WorkWithKernelSinkhorn) {
  auto& reg = drift::test::default_registry();
  auto k = reg.make_kernel("sinkhorn", *reg.validate(drift::ComponentKind::Kernel, "sinkhorn",
                                                      {}, "test"));
  ASSERT_TRUE(k.ok()) << k.status();
  const DriftInputs in = drift::canonicalize_drift_inputs(make_inputs(kCases[0], 23));
  torch::NoGradGuard ng;
  for (double tau : in.temperatures) {
    const auto one = (*k)->compute(with_temps(in, {tau}), *normalizer("drift_only"));
    EXPECT_NEAR(one.V.pow(2).mean().item<double>(), 1.0, 1e-10);
    const auto fo = (*k)->compute(with_temps(in, {tau}), *normalizer("feature_only"));
    EXPECT_NEAR(fo.V.pow(2).mean().item<double>(), fo.m_tau[0].item<double>(), 1e-12);
  }
}

}  // namespace
