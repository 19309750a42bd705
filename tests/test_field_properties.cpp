// Properties of the default drift field (kernel "laplace") on random inputs:
// anti-symmetry, equilibrium, translation invariance, finiteness in extreme
// regimes, the loss and its gradient, dtype agreement, the normalizers, and
// the input checks of canonicalize_drift_inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "drift/field.hpp"
#include "drift/field_steps.hpp"
#include "test_util.hpp"

namespace {

using drift::DriftInputs;
using drift::DriftOutputs;

const std::vector<double> kTemps = {0.02, 0.05, 0.2};

DriftOutputs compute(const DriftInputs& raw, const std::string& normalizer = "feature_drift",
                     const std::string& kernel = "laplace") {
  auto& reg = drift::test::default_registry();
  auto k = reg.make_kernel(kernel, {});
  auto n = reg.make_normalizer(normalizer, {});
  if (!k.ok() || !n.ok()) throw std::runtime_error("cannot make kernel/normalizer");
  const auto in = drift::canonicalize_drift_inputs(raw);
  torch::NoGradGuard ng;
  return (*k)->compute(in, **n);
}

double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

bool all_finite(const DriftOutputs& o) {
  for (const auto& t : {o.V, o.goal, o.m_tau, o.scale, o.coord_scale})
    if (!t.defined() || !torch::isfinite(t).all().item<bool>()) return false;
  return true;
}

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

// A random problem: B problems, Cg generated, Cp positives, Cn negatives in S dims.
DriftInputs random_inputs(int64_t B, int64_t Cg, int64_t Cp, int64_t Cn, int64_t S,
                          torch::ScalarType dtype = torch::kFloat64) {
  auto o = torch::TensorOptions().dtype(dtype);
  DriftInputs in;
  in.gen = torch::randn({B, Cg, S}, o);
  in.pos = torch::randn({B, Cp, S}, o) + 0.7;
  in.neg = torch::randn({B, Cn, S}, o) - 0.4;
  in.w_gen = torch::rand({B, Cg}, o) + 0.5;
  in.w_pos = torch::rand({B, Cp}, o) + 0.5;
  in.w_neg = torch::rand({B, Cn}, o) + 0.5;
  in.temperatures = kTemps;
  return in;
}

// ---------------------------------------------------------------- anti-symmetry

// With the generated samples' own weights at 0 they act only as query points;
// then swapping the positive and negative sets (with their weights) negates
// every coefficient K, hence the raw drift F_tau (normalizer "none") and,
// because m_tau is unchanged, the normalized V (feature_drift).
TEST(FieldProperties, SwappingPositivesAndNegativesFlipsTheDrift) {
  torch::manual_seed(1);
  DriftInputs a = random_inputs(3, 10, 7, 9, 5);
  a.w_gen = torch::zeros({3, 10}, f64());
  DriftInputs b = a;
  b.pos = a.neg;
  b.w_pos = a.w_neg;
  b.neg = a.pos;
  b.w_neg = a.w_pos;

  for (const std::string norm : {"none", "feature_drift"}) {
    SCOPED_TRACE(norm);
    const auto oa = compute(a, norm), ob = compute(b, norm);
    ASSERT_TRUE(all_finite(oa) && all_finite(ob));
    ASSERT_GT(oa.V.abs().max().item<double>(), 1e-3) << "the drift must not be trivially zero";
    EXPECT_LT(rel(ob.V, -oa.V), 1e-10) << "V_{q,p} must equal -V_{p,q}";
    EXPECT_LT(rel(ob.m_tau, oa.m_tau), 1e-10);
    EXPECT_NEAR(ob.scale.item<double>(), oa.scale.item<double>(), 1e-12);
  }
  // Raw drift scales with 1/coord_scale only; with "none" it is in input units.
  // Control: with the generated samples weighted as negatives (the default),
  // the swap is NOT an exact negation, so the check above is discriminating.
  DriftInputs a1 = a, b1 = b;
  a1.w_gen = b1.w_gen = torch::ones({3, 10}, f64());
  const auto oa1 = compute(a1, "none"), ob1 = compute(b1, "none");
  EXPECT_GT(rel(ob1.V, -oa1.V), 1e-3);
}

// ---------------------------------------------------------------- equilibrium

// m_tau between two independent draws of one 2-D Gaussian (q = p) is much
// smaller than between that Gaussian and its copy shifted by two standard
// deviations. Measured ratios (numpy reference, 20 seeds): tau 0.02: 3.7-4.9,
// tau 0.05: 6.2-9.2, tau 0.2: 21-66. At tau = 0.02 the kernel is so local that
// with 256 samples the finite-sample noise of the nearest-neighbour drift keeps
// the ratio below 5, so that temperature is held to 3x.
TEST(FieldProperties, EquilibriumDriftIsSmallerThanShiftedDrift) {
  torch::manual_seed(7);
  const int64_t N = 256;
  const auto x = torch::randn({1, N, 2}, f64());
  const auto y_same = torch::randn({1, N, 2}, f64());
  const auto y_shift = torch::randn({1, N, 2}, f64()) + torch::tensor({2.0, 0.0}, f64());
  DriftInputs eq, off;
  eq.gen = off.gen = x;
  eq.pos = y_same;
  off.pos = y_shift;
  eq.temperatures = off.temperatures = kTemps;
  const auto m_eq = compute(eq).m_tau, m_off = compute(off).m_tau;
  const std::vector<double> min_ratio = {3.0, 5.0, 5.0};
  for (size_t i = 0; i < kTemps.size(); ++i) {
    const double r = m_off[i].item<double>() / m_eq[i].item<double>();
    std::cout << "[equilibrium] tau=" << kTemps[i] << " m_tau ratio shifted/equal = " << r << "\n";
    EXPECT_GE(r, min_ratio[i]) << "tau=" << kTemps[i] << ": m_tau(p,p)=" << m_eq[i].item<double>()
                               << " m_tau(p,shifted)=" << m_off[i].item<double>();
  }
  // And the shifted drift points toward the data (+x direction), on average.
  const auto V = compute(off).V;
  EXPECT_GT(V.select(2, 0).mean().item<double>(), 0.5);
}

// ---------------------------------------------------------------- translation

TEST(FieldProperties, TranslatingAllInputsLeavesTheDriftUnchanged) {
  torch::manual_seed(3);
  DriftInputs a = random_inputs(2, 12, 9, 4, 6);
  const auto shift = torch::randn({1, 1, 6}, f64()) * 5.0;
  DriftInputs b = a;
  b.gen = a.gen + shift;
  b.pos = a.pos + shift;
  b.neg = a.neg + shift;
  for (const std::string norm : {"none", "feature_drift"}) {
    SCOPED_TRACE(norm);
    const auto oa = compute(a, norm), ob = compute(b, norm);
    EXPECT_LT(rel(ob.V, oa.V), 1e-9);
    EXPECT_LT(rel(ob.m_tau, oa.m_tau), 1e-9);
    EXPECT_NEAR(ob.scale.item<double>(), oa.scale.item<double>(), 1e-9);
    // The goal moves with the samples (in normalized coordinates).
    EXPECT_LT(rel(ob.goal - oa.goal, (shift / oa.coord_scale).expand_as(oa.goal)), 1e-9);
  }
}

// Feature normalization makes the field scale-free: multiplying every input by
// a constant leaves V unchanged (as long as the 1e-3 floors are not reached).
// Not to rounding: the self-distances d[b,i,i] = sqrt(1e-8) = 1e-4 enter `scale`
// in raw units and do not scale, a ~1e-6 relative effect here.
TEST(FieldProperties, FeatureNormalizationMakesTheFieldScaleFree) {
  torch::manual_seed(4);
  DriftInputs a = random_inputs(2, 8, 8, 3, 4);
  DriftInputs b = a;
  b.gen = a.gen * 1000.0;
  b.pos = a.pos * 1000.0;
  b.neg = a.neg * 1000.0;
  const auto oa = compute(a), ob = compute(b);
  EXPECT_LT(rel(ob.V, oa.V), 1e-5);
  EXPECT_NEAR(ob.scale.item<double>() / oa.scale.item<double>(), 1000.0, 1e-2);
}

// ---------------------------------------------------------------- finiteness

TEST(FieldProperties, FiniteForCollapsedInputs) {
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto o = torch::TensorOptions().dtype(dtype);
    DriftInputs in;
    in.gen = torch::full({2, 6, 3}, 0.25, o);  // all generated samples identical
    in.pos = torch::full({2, 5, 3}, 0.25, o);  // ... and equal to every positive
    in.neg = torch::full({2, 2, 3}, 0.25, o);
    in.temperatures = kTemps;
    for (const std::string norm : {"feature_drift", "none"}) {
      const auto out = compute(in, norm);
      EXPECT_TRUE(all_finite(out)) << norm << " " << c10::toString(dtype);
    }
    // Collapsed generated samples, positives elsewhere: finite, and drift toward them.
    in.pos = torch::full({2, 5, 3}, 3.0, o);
    const auto out = compute(in);
    EXPECT_TRUE(all_finite(out));
    EXPECT_GT(out.V.mean().item<double>(), 0.0);
  }
}

TEST(FieldProperties, FiniteForTinyAndHugeCoordinates) {
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (double mag : {1e-3, 1e3}) {
      torch::manual_seed(5);
      DriftInputs in = random_inputs(2, 8, 8, 4, 5, dtype);
      in.gen = in.gen * mag;
      in.pos = in.pos * mag;
      in.neg = in.neg * mag;
      for (const std::string norm : {"feature_drift", "none"}) {
        const auto out = compute(in, norm);
        EXPECT_TRUE(all_finite(out)) << norm << " " << c10::toString(dtype) << " mag=" << mag;
      }
    }
  }
}

// Far-apart sets with raw distances (normalizer "none") and tiny temperatures:
// every exp(-d / tau) underflows; the log-domain softmaxes must stay finite.
TEST(FieldProperties, FiniteWhenEveryKernelWeightUnderflows) {
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    torch::manual_seed(6);
    DriftInputs in = random_inputs(2, 8, 8, 4, 3, dtype);
    in.pos = in.pos + 1e4;
    in.gen = in.gen * 100.0;
    in.temperatures = {1e-6, 0.02, 1.0};
    for (const std::string norm : {"feature_drift", "none"}) {
      const auto out = compute(in, norm);
      EXPECT_TRUE(all_finite(out)) << norm << " " << c10::toString(dtype);
    }
  }
}

// ---------------------------------------------------------------- loss and gradient

// loss[b] = mean_{i,k} (gen/s - G)^2 with G = old/s + V frozen, so
//   loss[b] = mean_{i,k} V^2  and  d(sum_b loss[b]) / d gen = -2 V / (Cg * S * s).
TEST(FieldProperties, DriftLossValueAndGradient) {
  torch::manual_seed(8);
  const int64_t B = 3, Cg = 6, S = 4;
  DriftInputs in = random_inputs(B, Cg, 5, 2, S);
  in.gen = in.gen.clone().requires_grad_(true);
  const auto out = compute(in);
  EXPECT_FALSE(out.V.requires_grad());
  EXPECT_FALSE(out.goal.requires_grad());
  const auto loss = drift::drift_loss(in.gen, out);
  ASSERT_EQ(loss.sizes(), torch::IntArrayRef({B}));
  EXPECT_LT(rel(loss.detach(), out.V.pow(2).mean({1, 2})), 1e-12);
  loss.sum().backward();
  const auto expected = -2.0 * out.V / (Cg * S * out.coord_scale);
  EXPECT_LT(rel(in.gen.grad(), expected), 1e-10);
  // Drift normalization: each F_tau / sqrt(m_tau) has mean square exactly 1 over
  // the batch, so with n temperatures mean_b loss[b] lies in (0, n^2] (n^2 when
  // all are parallel) and equals 1 for one temperature.
  EXPECT_GT(loss.mean().item<double>(), 0.0);
  EXPECT_LE(loss.mean().item<double>(), 9.0 + 1e-9);
  DriftInputs one = in;
  one.gen = in.gen.detach();
  one.temperatures = {0.05};
  const auto out1 = compute(one);
  EXPECT_NEAR(drift::drift_loss(one.gen, out1).mean().item<double>(), 1.0, 1e-12);
}

// ---------------------------------------------------------------- dtypes

TEST(FieldProperties, Float32AgreesWithFloat64) {
  torch::manual_seed(9);
  DriftInputs a = random_inputs(2, 16, 12, 6, 8);
  DriftInputs b = a;
  for (auto* t : {&b.gen, &b.pos, &b.neg, &b.w_gen, &b.w_pos, &b.w_neg}) *t = t->to(torch::kFloat32);
  const auto oa = compute(a), ob = compute(b);
  EXPECT_EQ(ob.V.scalar_type(), torch::kFloat32);
  EXPECT_EQ(ob.m_tau.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel(ob.V.to(torch::kFloat64), oa.V), 1e-4);
  EXPECT_LT(rel(ob.m_tau.to(torch::kFloat64), oa.m_tau), 1e-4);
}

// ---------------------------------------------------------------- normalizers

TEST(Normalizers, FeatureDriftFormulas) {
  auto n = drift::test::default_registry().make_normalizer("feature_drift", {});
  ASSERT_TRUE(n.ok()) << n.status();
  auto f = (*n)->feature(torch::tensor(8.0, f64()), 16);
  EXPECT_DOUBLE_EQ(f.distance_divisor.item<double>(), 8.0);
  EXPECT_DOUBLE_EQ(f.coord_divisor.item<double>(), 2.0);  // 8 / sqrt(16)
  f = (*n)->feature(torch::tensor(1e-6, f64()), 4);  // both floors at 1e-3
  EXPECT_DOUBLE_EQ(f.distance_divisor.item<double>(), 1e-3);
  EXPECT_DOUBLE_EQ(f.coord_divisor.item<double>(), 1e-3);
  EXPECT_DOUBLE_EQ((*n)->drift_factor(torch::tensor(4.0, f64())).item<double>(), 0.5);
  EXPECT_NEAR((*n)->drift_factor(torch::tensor(0.0, f64())).item<double>(), 1e4, 1e-6);
}

TEST(Normalizers, NoneIsIdentity) {
  auto n = drift::test::default_registry().make_normalizer("none", {});
  ASSERT_TRUE(n.ok()) << n.status();
  auto f = (*n)->feature(torch::tensor(8.0, f64()), 16);
  EXPECT_EQ(f.distance_divisor.item<double>(), 1.0);
  EXPECT_EQ(f.coord_divisor.item<double>(), 1.0);
  EXPECT_EQ((*n)->drift_factor(torch::tensor(0.3, f64())).item<double>(), 1.0);
  // With "none" the goal is old + raw drift in input units.
  torch::manual_seed(10);
  DriftInputs in = random_inputs(1, 5, 5, 0, 3);
  const auto out = compute(in, "none");
  EXPECT_LT(rel(out.goal, in.gen + out.V), 1e-12);
  EXPECT_NEAR(out.m_tau[0].item<double>(), 0, 10.0);
}

// ---------------------------------------------------------------- input checks

void expect_rejected(const DriftInputs& in, const std::string& needle) {
  try {
    drift::canonicalize_drift_inputs(in);
    ADD_FAILURE() << "accepted inputs that should name " << needle;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message '" << e.what() << "' does not name " << needle;
  }
}

TEST(CanonicalizeDriftInputs, RejectsWrongShapesNamingTheTensor) {
  torch::manual_seed(11);
  const DriftInputs ok = random_inputs(2, 4, 3, 2, 5);
  EXPECT_NO_THROW(drift::canonicalize_drift_inputs(ok));
  DriftInputs x = ok;
  x.gen = torch::randn({4, 5}, f64());
  expect_rejected(x, "'gen'");
  x = ok;
  x.pos = torch::randn({2, 3, 6}, f64());  // wrong S
  expect_rejected(x, "'pos'");
  x = ok;
  x.pos = torch::randn({3, 3, 5}, f64());  // wrong B
  expect_rejected(x, "'pos'");
  x = ok;
  x.neg = torch::randn({2, 2}, f64());  // wrong rank
  expect_rejected(x, "'neg'");
  x = ok;
  x.w_gen = torch::ones({2, 5}, f64());
  expect_rejected(x, "'w_gen'");
  x = ok;
  x.w_pos = torch::ones({2, 3, 1}, f64());
  expect_rejected(x, "'w_pos'");
  x = ok;
  x.w_neg = torch::ones({2, 3}, f64());
  expect_rejected(x, "'w_neg'");
  x = ok;
  x.pos = ok.pos.to(torch::kFloat32);  // dtype differs from gen
  expect_rejected(x, "'pos'");
  x = ok;
  x.temperatures = {};
  expect_rejected(x, "temperatures");
  x = ok;
  x.temperatures = {0.1, -1.0};
  expect_rejected(x, "temperature");
}

TEST(CanonicalizeDriftInputs, FillsDefaults) {
  DriftInputs in;
  in.gen = torch::randn({2, 4, 3}, f64());
  in.pos = torch::randn({2, 5, 3}, f64());
  in.temperatures = {0.1};
  const auto c = drift::canonicalize_drift_inputs(in);
  EXPECT_EQ(c.neg.sizes(), torch::IntArrayRef({2, 0, 3}));
  EXPECT_TRUE(torch::equal(c.w_gen, torch::ones({2, 4}, f64())));
  EXPECT_EQ(c.w_neg.sizes(), torch::IntArrayRef({2, 0}));
  // Absent extra negatives and an explicit empty set give the same field.
  DriftInputs e = in;
  e.neg = torch::empty({2, 0, 3}, f64());
  EXPECT_LT(rel(compute(e).V, compute(in).V), 1e-15);
}

// The SDK's shared steps (drift/field_steps.hpp) on a case small enough to
// write out: B = 1, 1-D, gen = {0, 1}, one extra negative {-2} of weight 0.5,
// positives {3}.
DriftInputs tiny_case() {
  DriftInputs in;
  in.gen = torch::tensor({0.0, 1.0}, f64()).view({1, 2, 1});
  in.neg = torch::tensor({-2.0}, f64()).view({1, 1, 1});
  in.pos = torch::tensor({3.0}, f64()).view({1, 1, 1});
  in.w_neg = torch::tensor({0.5}, f64()).view({1, 1});
  in.temperatures = {0.1};
  return drift::canonicalize_drift_inputs(in);
}

TEST(FieldSteps, PrepareFieldHandComputed) {
  const DriftInputs in = tiny_case();
  auto& reg = drift::test::default_registry();
  // Targets [old, neg, pos] = {0, 1, -2, 3}, weights {1, 1, 0.5, 1}.
  // d rows: from 0: {1e-4, 1, 2, 3}; from 1: {1, 1e-4, 3, 2} (sqrt(1e-8) on the diagonal).
  const double mean_w = 3.5 / 4;
  const double scale = (1e-4 + 1 + 0.5 * 2 + 3 + 1 + 1e-4 + 0.5 * 3 + 2) / 8 / mean_w;
  for (const std::string norm : {"none", "feature_drift"}) {
    auto n = reg.make_normalizer(norm, {});
    ASSERT_TRUE(n.ok());
    const drift::PreparedField p = drift::prepare_field(in, **n);
    EXPECT_EQ(p.Cg, 2);
    EXPECT_EQ(p.Cn, 1);
    EXPECT_EQ(p.Cp, 1);
    EXPECT_EQ(p.S, 1);
    EXPECT_TRUE(torch::equal(p.Y.view({4}), torch::tensor({0.0, 1.0, -2.0, 3.0}, f64())));
    EXPECT_TRUE(torch::equal(p.w.view({4}), torch::tensor({1.0, 1.0, 0.5, 1.0}, f64())));
    const torch::Tensor d =
        torch::tensor({1e-4, 1.0, 2.0, 3.0, 1.0, 1e-4, 3.0, 2.0}, f64()).view({1, 2, 4});
    EXPECT_LT((p.d - d).abs().max().item<double>(), 1e-12);
    EXPECT_NEAR(p.scale.item<double>(), scale, 1e-12);
    // "none": both divisors 1; feature_drift: scale (S = 1, so s = scale / sqrt(1)).
    const double div = norm == "none" ? 1.0 : scale;
    EXPECT_LT((p.dn - d / div).abs().max().item<double>(), 1e-12) << norm;
    EXPECT_NEAR(p.s.item<double>(), div, 1e-12) << norm;
    EXPECT_LT((p.Y_n - p.Y / div).abs().max().item<double>(), 1e-12) << norm;
    EXPECT_LT((p.old_n - p.old / div).abs().max().item<double>(), 1e-12) << norm;
    EXPECT_FALSE(p.old.requires_grad());
  }
}

TEST(FieldSteps, DriftFromCoefficientsIsTheWeightedSumOfDirections) {
  const DriftInputs in = tiny_case();
  auto n = drift::test::default_registry().make_normalizer("none", {});
  ASSERT_TRUE(n.ok());
  const drift::PreparedField p = drift::prepare_field(in, **n);
  // F_i = sum_t K[i,t] (Y_t - old_i) whatever rowsum(K) is.
  const torch::Tensor K =
      torch::tensor({0.0, 2.0, -1.0, 0.5, 3.0, 0.0, 0.25, -4.0}, f64()).view({1, 2, 4});
  const torch::Tensor F = p.drift_from_coefficients(K);
  const double f0 = 2.0 * (1 - 0) - 1.0 * (-2 - 0) + 0.5 * (3 - 0);
  const double f1 = 3.0 * (0 - 1) + 0.25 * (-2 - 1) - 4.0 * (3 - 1);
  EXPECT_NEAR(F[0][0][0].item<double>(), f0, 1e-12);
  EXPECT_NEAR(F[0][1][0].item<double>(), f1, 1e-12);
}

TEST(FieldSteps, AccumulatorSumsNormalizedDriftsAndRecordsMTau) {
  const DriftInputs in = tiny_case();
  auto& reg = drift::test::default_registry();
  const torch::Tensor F1 = torch::tensor({1.0, -3.0}, f64()).view({1, 2, 1});
  const torch::Tensor F2 = torch::tensor({0.5, 0.5}, f64()).view({1, 2, 1});
  for (const std::string norm : {"none", "feature_drift"}) {
    auto n = reg.make_normalizer(norm, {});
    ASSERT_TRUE(n.ok());
    const drift::PreparedField p = drift::prepare_field(in, **n);
    drift::DriftAccumulator acc(p, **n);
    acc.add(F1);
    acc.add(F2);
    const DriftOutputs out = std::move(acc).finish();
    const double m1 = (1.0 + 9.0) / 2, m2 = 0.25;
    EXPECT_NEAR(out.m_tau[0].item<double>(), m1, 1e-12);
    EXPECT_NEAR(out.m_tau[1].item<double>(), m2, 1e-12);
    // "none": factor 1; feature_drift: 1 / sqrt(m_tau).
    const torch::Tensor V = norm == "none" ? F1 + F2 : F1 / std::sqrt(m1) + F2 / std::sqrt(m2);
    EXPECT_LT((out.V - V).abs().max().item<double>(), 1e-12) << norm;
    EXPECT_LT((out.goal - (p.old_n + V)).abs().max().item<double>(), 1e-12) << norm;
    EXPECT_TRUE(torch::equal(out.scale, p.scale));
    EXPECT_TRUE(torch::equal(out.coord_scale, p.s));
  }
  auto n = reg.make_normalizer("none", {});
  ASSERT_TRUE(n.ok());
  const drift::PreparedField p = drift::prepare_field(in, **n);
  drift::DriftAccumulator bad(p, **n);
  EXPECT_THROW(bad.add(torch::zeros({1, 3, 1}, f64())), std::invalid_argument);
  EXPECT_THROW(std::move(bad).finish(), std::invalid_argument);
}

}  // namespace
