// Kernel "sinkhorn" (plugins/kernels/sinkhorn): the log-domain Sinkhorn solver's
// marginals, the field against an independent reference written here (scaling
// form, straightforward loops), hand-computed cases, equilibrium and the
// self-mass handling, (anti)symmetry, finiteness in extreme regimes, the effect
// of `iterations` / `tolerance`, and the parameter checks.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "../plugins/kernels/sinkhorn/sinkhorn_plan.hpp"
#include "drift/field.hpp"
#include "field_cases.hpp"
#include "test_util.hpp"

namespace {

using drift::DriftInputs;
using drift::DriftOutputs;
using drift::ParamValue;
using drift::test::all_finite;
using drift::test::rel_err;

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

using Given = std::map<std::string, ParamValue>;

// The kernel "sinkhorn" with the parameters `given` (validated), run under
// `normalizer` on canonicalized inputs. `no_grad = false` leaves autograd on
// (the kernel must switch it off itself).
DriftOutputs sinkhorn(const DriftInputs& raw, const Given& given = {},
                      const std::string& normalizer = "feature_drift", bool no_grad = true) {
  auto& reg = drift::test::default_registry();
  auto p = reg.validate(drift::ComponentKind::Kernel, "sinkhorn", given, "test");
  if (!p.ok()) throw std::runtime_error(std::string(p.status().message()));
  auto k = reg.make_kernel("sinkhorn", *p);
  auto n = reg.make_normalizer(normalizer, {});
  if (!k.ok()) throw std::runtime_error(std::string(k.status().message()));
  if (!n.ok()) throw std::runtime_error(std::string(n.status().message()));
  const auto in = drift::canonicalize_drift_inputs(raw);
  if (no_grad) {
    torch::NoGradGuard ng;
    return (*k)->compute(in, **n);
  }
  return (*k)->compute(in, **n);
}

Given tight() {
  return {{"iterations", ParamValue(int64_t{20000})}, {"tolerance", ParamValue(1e-12)}};
}

Given with(Given g, const std::string& k, ParamValue v) {
  g[k] = std::move(v);
  return g;
}

DriftInputs random_inputs(int64_t B, int64_t Cg, int64_t Cp, int64_t Cn, int64_t S,
                          std::vector<double> temps) {
  DriftInputs in;
  in.gen = torch::randn({B, Cg, S}, f64());
  in.pos = torch::randn({B, Cp, S}, f64()) + 0.7;
  in.neg = torch::randn({B, Cn, S}, f64()) - 0.4;
  in.w_gen = torch::rand({B, Cg}, f64()) + 0.5;
  in.w_pos = torch::rand({B, Cp}, f64()) + 0.5;
  in.w_neg = torch::rand({B, Cn}, f64()) + 0.5;
  in.temperatures = std::move(temps);
  return in;
}

// ---------------------------------------------------------------- reference

// The field written out from the definition, independently of the plugin:
// scaling-form Sinkhorn (u, v, K = exp(-C/eps), no logs) run for a fixed large
// number of iterations, per problem, in float64; the self pairs of the
// repulsive plan get K = 0 exactly (infinite cost). Only for inputs where
// exp(-C/eps) does not underflow. `norm`: "feature_drift" or "none".
struct Ref {
  torch::Tensor V, m_tau;
};

torch::Tensor ref_plan(const torch::Tensor& K, const torch::Tensor& a, const torch::Tensor& c) {
  auto u = torch::ones_like(a), v = torch::ones_like(c);
  for (int it = 0; it < 20000; ++it) {
    u = a / torch::mv(K, v);
    v = c / torch::mv(K.t(), u);
  }
  return u.unsqueeze(1) * K * v.unsqueeze(0);
}

Ref reference(const DriftInputs& in, const std::string& norm, bool squared = true,
              bool exclude_self = true) {
  const int64_t B = in.gen.size(0), Cg = in.gen.size(1), Cn = in.neg.size(1),
                S = in.gen.size(2);
  const auto Y = torch::cat({in.gen, in.neg, in.pos}, 1);
  const auto w = torch::cat({in.w_gen, in.w_neg, in.w_pos}, 1);
  // d[b,i,t] = sqrt(max(|x - y|^2, 1e-8)); scale = mean(d * w_t) / mean(w)
  const auto diff = in.gen.unsqueeze(2) - Y.unsqueeze(1);
  const auto d = diff.pow(2).sum(3).clamp_min(1e-8).sqrt();
  const double scale = ((d * w.unsqueeze(1)).mean() / w.mean()).item<double>();
  double ddiv = 1, s = 1;
  if (norm == "feature_drift") {
    ddiv = std::max(scale, 1e-3);
    s = std::max(scale / std::sqrt(static_cast<double>(S)), 1e-3);
  }
  const auto dn = d / ddiv;
  const auto C = squared ? dn.pow(2) : dn;
  std::vector<torch::Tensor> ms;
  auto V = torch::zeros_like(in.gen);
  for (double eps : in.temperatures) {
    auto F = torch::zeros_like(in.gen);
    for (int64_t b = 0; b < B; ++b) {
      const auto a = in.w_gen[b] / in.w_gen[b].sum();
      // attraction: gen -> pos
      const auto Kp = torch::exp(-C[b].narrow(1, Cg + Cn, in.pos.size(1)) / eps);
      const auto Pp = ref_plan(Kp, a, in.w_pos[b] / in.w_pos[b].sum());
      const auto bary_p = torch::mm(Pp, in.pos[b] / s) / Pp.sum(1, true);
      // repulsion: gen -> [gen, neg]
      auto Kn = torch::exp(-C[b].narrow(1, 0, Cg + Cn) / eps);
      if (exclude_self) Kn = Kn * (1 - torch::eye(Cg, Cg + Cn, f64()));
      const auto wn = torch::cat({in.w_gen[b], in.w_neg[b]});
      const auto Pn = ref_plan(Kn, a, wn / wn.sum());
      const auto Z = torch::cat({in.gen[b], in.neg[b]}) / s;
      const auto bary_n = torch::mm(Pn, Z) / Pn.sum(1, true);
      F[b] = bary_p - bary_n;
    }
    const auto m = F.pow(2).mean();
    ms.push_back(m);
    V = V + (norm == "feature_drift" ? F / m.clamp_min(1e-8).sqrt() : F);
  }
  return {V, torch::stack(ms)};
}

// ---------------------------------------------------------------- solver marginals

// Random costs and marginals (some masses 0): the plan exp(f + log K + g) has
// column sums equal to the column masses and row sums within the tolerance
// (max |row sum - a_i| <= tol / R); one iteration leaves a larger error.
TEST(SinkhornPlan, MarginalsMatchToTheTolerance) {
  torch::manual_seed(1);
  const int64_t B = 3, R = 7, C = 9;
  const auto cost = torch::rand({B, R, C}, f64()) * 3.0;
  const auto log_k = -cost / 0.1;
  auto wa = torch::rand({B, R}, f64()) + 0.1;
  auto wc = torch::rand({B, C}, f64()) + 0.1;
  wa.index_put_({0, 2}, 0.0);  // a row of zero mass
  wc.index_put_({1, 4}, 0.0);  // a column of zero mass
  const auto a = wa / wa.sum(1, true), c = wc / wc.sum(1, true);
  for (double tol : {1e-3, 1e-6, 1e-10}) {
    SCOPED_TRACE("tol=" + std::to_string(tol));
    const auto p = drift::sinkhorn::solve(log_k, a.log(), c.log(), 100000, tol);
    const auto P = (p.f.unsqueeze(2) + log_k + p.g.unsqueeze(1)).exp();
    const double row_err = (P.sum(2) - a).abs().max().item<double>() * R;
    const double col_err = (P.sum(1) - c).abs().max().item<double>();
    EXPECT_LE(row_err, tol);
    EXPECT_NEAR(row_err, p.marginal_error, 1e-12);
    EXPECT_LT(col_err, 1e-13);
    EXPECT_GT(p.iterations, 1);
    EXPECT_EQ(P.select(1, 2)[0].sum().item<double>(), 0.0);
    EXPECT_EQ(P.select(2, 4)[1].sum().item<double>(), 0.0);
  }
  const auto loose = drift::sinkhorn::solve(log_k, a.log(), c.log(), 1, 1e-4);
  const auto deflt = drift::sinkhorn::solve(log_k, a.log(), c.log(), 50, 1e-4);
  std::cout << "[marginals] error after 1 iteration " << loose.marginal_error << ", after "
            << deflt.iterations << ": " << deflt.marginal_error << "\n";
  EXPECT_EQ(loose.iterations, 1);
  EXPECT_GT(loose.marginal_error, 1e-2);
  EXPECT_LT(deflt.marginal_error, loose.marginal_error / 10);
  // Row conditionals do not depend on f and sum to 1, also for the zero-mass row.
  const auto cond = drift::sinkhorn::row_conditionals(deflt, log_k);
  EXPECT_LT((cond.sum(2) - 1).abs().max().item<double>(), 1e-12);
}

// Far-apart costs (every exp(-C / eps) underflows) and tiny eps: finite potentials
// and a plan that still meets the marginals.
TEST(SinkhornPlan, LogDomainSurvivesUnderflow) {
  torch::manual_seed(2);
  const auto cost = torch::rand({2, 5, 6}, f64()) * 0.01 + 1e4;
  const auto log_k = -cost / 1e-3;  // about -1e7 (exp underflows), spread 10
  ASSERT_EQ(log_k.exp().max().item<double>(), 0.0);
  const auto a = torch::full({2, 5}, 0.2, f64()), c = torch::full({2, 6}, 1.0 / 6, f64());
  const auto p = drift::sinkhorn::solve(log_k, a.log(), c.log(), 5000, 1e-8);
  EXPECT_TRUE(torch::isfinite(p.f).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(p.g).all().item<bool>());
  const auto P = drift::sinkhorn::plan(p, log_k);
  EXPECT_LE((P.sum(2) - a).abs().max().item<double>() * 5, 1e-8);
  EXPECT_LT((P.sum(1) - c).abs().max().item<double>(), 1e-12);
}

// ---------------------------------------------------------------- against the reference

TEST(Sinkhorn, MatchesIndependentReference) {
  torch::manual_seed(3);
  DriftInputs in = random_inputs(2, 6, 5, 3, 4, {0.3, 1.0});
  for (const std::string norm : {"feature_drift", "none"}) {
    for (bool squared : {true, false}) {
      SCOPED_TRACE(norm + (squared ? " sqeuclidean" : " euclidean"));
      Given g = with(tight(), "cost", ParamValue(std::string(squared ? "sqeuclidean" : "euclidean")));
      DriftInputs x = in;
      if (norm == "none") x.temperatures = {2.0, 6.0};  // raw costs are larger
      const auto out = sinkhorn(x, g, norm);
      const auto ref = reference(x, norm, squared);
      ASSERT_TRUE(all_finite(out));
      EXPECT_LT(rel_err(out.V, ref.V), 1e-9);
      EXPECT_LT(rel_err(out.m_tau, ref.m_tau), 1e-9);
      EXPECT_LT(rel_err(out.goal, x.gen / out.coord_scale + ref.V), 1e-9);
    }
  }
  // With self_mass = "keep" the reference keeps K_ii too.
  const auto keep = sinkhorn(in, with(tight(), "self_mass", ParamValue(std::string("keep"))));
  EXPECT_LT(rel_err(keep.V, reference(in, "feature_drift", true, false).V), 1e-9);
  // The default parameters (50 iterations, tolerance 1e-4) are close to converged.
  const auto deflt = sinkhorn(in);
  const double e = rel_err(deflt.V, reference(in, "feature_drift").V);
  std::cout << "[reference] default parameters: rel err " << e << "\n";
  EXPECT_LT(e, 1e-2);
}

// ---------------------------------------------------------------- hand-computed

// One generated sample, two positives of equal weight: the plan's marginals
// force P+ = (1/2, 1/2) whatever eps is, and the only repulsive target is the
// sample itself, so V = (y1 + y2) / 2 - x exactly (normalizer "none").
// (The default kernel would weight the nearer positive more.)
TEST(Sinkhorn, HandComputedOneGeneratedTwoPositives) {
  DriftInputs in;
  in.gen = torch::tensor({0.0, 0.0}, f64()).view({1, 1, 2});
  in.pos = torch::tensor({1.0, 0.0, 0.0, 3.0}, f64()).view({1, 2, 2});
  for (double tau : {0.05, 1.0, 20.0}) {
    in.temperatures = {tau};
    const auto out = sinkhorn(in, tight(), "none");
    EXPECT_NEAR(out.V[0][0][0].item<double>(), 0.5, 1e-12) << "tau=" << tau;
    EXPECT_NEAR(out.V[0][0][1].item<double>(), 1.5, 1e-12) << "tau=" << tau;
  }
}

// Two generated samples x = (0, 1), two positives y = (0.5, 3), 1-D, equal
// weights, eps = 1, raw squared costs C+ = [[0.25, 9], [0.25, 4]]. A 2x2 plan
// with uniform marginals is [[p, 1/2 - p], [1/2 - p, p]] with
// (p / (1/2 - p))^2 = K11 K22 / (K12 K21) = exp(-(0.25 + 4 - 9 - 0.25)) = e^5,
// so the row conditionals put e^2.5 / (1 + e^2.5) on the diagonal:
//   bary+(x1) = (0.5 e^2.5 + 3) / (1 + e^2.5),  bary+(x2) = (0.5 + 3 e^2.5) / (1 + e^2.5).
// Repulsive, self excluded: each sample's only target is the other one:
//   bary-(x1) = 1, bary-(x2) = 0.
// Repulsive, self kept: C- = [[0, 1], [1, 0]], ratio e^2, diagonal weight e / (1 + e):
//   bary-(x1) = 1 / (1 + e), bary-(x2) = e / (1 + e).
TEST(Sinkhorn, HandComputedTwoByTwo) {
  DriftInputs in;
  in.gen = torch::tensor({0.0, 1.0}, f64()).view({1, 2, 1});
  in.pos = torch::tensor({0.5, 3.0}, f64()).view({1, 2, 1});
  in.temperatures = {1.0};
  const double e = std::exp(1.0), e25 = std::exp(2.5);
  const double bp1 = (0.5 * e25 + 3) / (1 + e25), bp2 = (0.5 + 3 * e25) / (1 + e25);
  const auto ex = sinkhorn(in, tight(), "none");
  EXPECT_NEAR(ex.V[0][0][0].item<double>(), bp1 - 1.0, 1e-10);
  EXPECT_NEAR(ex.V[0][1][0].item<double>(), bp2 - 0.0, 1e-10);
  const auto keep = sinkhorn(in, with(tight(), "self_mass", ParamValue(std::string("keep"))), "none");
  // C-_ii = 1e-8 (the distance floor of docs/method.md §2 step 2), not 0: a 1e-8 effect.
  EXPECT_NEAR(keep.V[0][0][0].item<double>(), bp1 - 1 / (1 + e), 1e-7);
  EXPECT_NEAR(keep.V[0][1][0].item<double>(), bp2 - e / (1 + e), 1e-7);
  EXPECT_NEAR(ex.m_tau[0].item<double>(),
              0.5 * (std::pow(bp1 - 1.0, 2) + std::pow(bp2, 2)), 1e-10);
}

// ---------------------------------------------------------------- marginals through the field

// Because the columns of both plans are exact and the rows within the
// tolerance, the a-weighted mean drift is the difference of the weighted means:
//   sum_i a_i V_i = sum_tau (sum_j c+_j y_j - sum_k c-_k z_k)   (normalizer "none").
// A loose tolerance leaves a larger (but bounded) error.
TEST(Sinkhorn, WeightedMeanDriftIsTheDifferenceOfWeightedMeans) {
  torch::manual_seed(4);
  DriftInputs in = random_inputs(2, 9, 7, 4, 3, {2.0, 8.0});
  const auto a = in.w_gen / in.w_gen.sum(1, true);
  const auto cp = in.w_pos / in.w_pos.sum(1, true);
  const auto wn = torch::cat({in.w_gen, in.w_neg}, 1);
  const auto cn = wn / wn.sum(1, true);
  const auto Z = torch::cat({in.gen, in.neg}, 1);
  const auto expected = 2.0 * ((cp.unsqueeze(2) * in.pos).sum(1) - (cn.unsqueeze(2) * Z).sum(1));
  auto err = [&](const Given& g) {
    const auto V = sinkhorn(in, g, "none").V;
    return ((a.unsqueeze(2) * V).sum(1) - expected).abs().max().item<double>();
  };
  const double e_tight = err(tight());
  const double e_loose = err({{"tolerance", ParamValue(0.05)}});
  const double e_one = err({{"iterations", ParamValue(int64_t{1})}});
  std::cout << "[mean drift] error tight " << e_tight << ", tolerance 0.05 " << e_loose
            << ", 1 iteration " << e_one << "\n";
  EXPECT_LT(e_tight, 1e-10);
  EXPECT_GT(e_loose, e_tight);
  // rows within 0.05 / R of a_i: the error is at most 0.05 * (2 temps) * max|coordinate| * 2
  const double max_coord = torch::cat({in.pos, Z}, 1).abs().max().item<double>();
  EXPECT_LT(e_loose, 0.05 * 2 * 2 * max_coord);
  EXPECT_GT(e_one, e_loose);
}

// ---------------------------------------------------------------- equilibrium and self-mass

// Two independent draws x, y of one 2-D Gaussian (q = p), or y shifted by two
// standard deviations; raw drift in normalized coordinates (feature_only).
struct EqRun {
  torch::Tensor m_eq, m_off;  // [n temps]
  double contraction;         // mean_i <V_i, x_i - mean(x)> at q = p (< 0: contracts)
};

EqRun equilibrium(const std::string& self_mass, uint64_t seed, std::vector<double> temps) {
  torch::manual_seed(seed);
  const int64_t N = 256;
  const auto x = torch::randn({1, N, 2}, f64());
  const auto y_same = torch::randn({1, N, 2}, f64());
  const auto y_shift = torch::randn({1, N, 2}, f64()) + torch::tensor({2.0, 0.0}, f64());
  DriftInputs eq, off;
  eq.gen = off.gen = x;
  eq.pos = y_same;
  off.pos = y_shift;
  eq.temperatures = off.temperatures = temps;
  const Given g = {{"self_mass", ParamValue(self_mass)}};
  const auto oe = sinkhorn(eq, g, "feature_only");
  const auto oo = sinkhorn(off, g, "feature_only");
  EXPECT_TRUE(all_finite(oe) && all_finite(oo));
  const auto xc = x - x.mean(1, true);
  return {oe.m_tau, oo.m_tau, (oe.V * xc).sum(2).mean().item<double>()};
}

// q = p: the raw drift m_tau is far below that toward the shifted copy.
TEST(Sinkhorn, EquilibriumDriftIsSmallerThanShiftedDrift) {
  const auto st = equilibrium("exclude", 7, {0.02, 0.05, 0.2});
  for (int64_t t = 0; t < 3; ++t) {
    const double r = st.m_off[t].item<double>() / st.m_eq[t].item<double>();
    std::cout << "[equilibrium] tau #" << t << " m_tau(eq) " << st.m_eq[t].item<double>()
              << " ratio shifted/equal " << r << "\n";
    EXPECT_GT(r, 5.0);
  }
}

// Self-mass. At q = p (independent draws x, y of one 2-D Gaussian, N = 128)
// the contraction statistic c = mean_i <V_i, x_i - mean(x)> (< 0: the field
// pulls the samples together) measures the systematic part of the field.
// With the self pairs kept, each sample's repulsive barycentre is pulled toward
// the sample itself, so the inward pull of the attractive barycentre (a local
// average of the positives) is no longer cancelled: c is lower than with the
// self pairs excluded (leave-one-out: the repulsive side sees N - 1 samples
// independent of x_i, like the attractive side). The paired difference over
// 24 seeds is many standard errors below 0 (single runs are dominated by
// sampling noise); with exclusion c is consistent with 0.
TEST(Sinkhorn, SelfMassKeptBiasesTheEquilibrium) {
  const int K = 24;
  const int64_t N = 128;
  auto contraction = [&](const std::string& self, uint64_t seed) {
    torch::manual_seed(seed);
    DriftInputs eq;
    eq.gen = torch::randn({1, N, 2}, f64());
    eq.pos = torch::randn({1, N, 2}, f64());
    eq.temperatures = {0.05};
    const auto o = sinkhorn(eq, {{"self_mass", ParamValue(self)}}, "feature_only");
    const auto xc = eq.gen - eq.gen.mean(1, true);
    return (o.V * xc).sum(2).mean().item<double>();
  };
  std::vector<double> ex, diff;
  for (int k = 0; k < K; ++k) {
    ex.push_back(contraction("exclude", 100 + k));
    diff.push_back(contraction("keep", 100 + k) - ex.back());
  }
  auto mean_se = [&](const std::vector<double>& v) {
    double m = 0, var = 0;
    for (double x : v) m += x / K;
    for (double x : v) var += (x - m) * (x - m) / (K - 1);
    return std::make_pair(m, std::sqrt(var / K));
  };
  const auto [m_ex, se_ex] = mean_se(ex);
  const auto [m_d, se_d] = mean_se(diff);
  std::cout << "[self-mass] contraction exclude " << m_ex << " +- " << se_ex
            << "; keep - exclude " << m_d << " +- " << se_d << "\n";
  EXPECT_LT(m_d, -5 * se_d);
  EXPECT_LT(std::abs(m_ex), 3 * se_ex);
  EXPECT_GT(std::abs(m_d), 0.5 * se_ex) << "the bias must be visible next to the noise";
}

// ---------------------------------------------------------------- (anti)symmetry

// With the generated samples' own weights at 0 they are query points only (rows
// of uniform mass, no repulsive columns of their own); swapping positives and
// negatives (with weights) then swaps the two plans and negates V exactly.
TEST(Sinkhorn, SwappingPositivesAndNegativesFlipsTheDrift) {
  torch::manual_seed(5);
  DriftInputs a = random_inputs(2, 8, 6, 7, 3, {0.05, 0.2});
  a.w_gen = torch::zeros({2, 8}, f64());
  DriftInputs b = a;
  b.pos = a.neg;
  b.w_pos = a.w_neg;
  b.neg = a.pos;
  b.w_neg = a.w_pos;
  // Both runs take the same iterations (the plans are the same problems), so
  // convergence is not needed for the negation; 2000 iterations keep it quick.
  const Given g = {{"iterations", ParamValue(int64_t{2000})}, {"tolerance", ParamValue(1e-10)}};
  for (const std::string norm : {"feature_drift", "none"}) {
    SCOPED_TRACE(norm);
    const auto oa = sinkhorn(a, g, norm), ob = sinkhorn(b, g, norm);
    ASSERT_TRUE(all_finite(oa) && all_finite(ob));
    ASSERT_GT(oa.V.abs().max().item<double>(), 1e-3);
    EXPECT_LT(rel_err(ob.V, -oa.V), 1e-8);
    EXPECT_LT(rel_err(ob.m_tau, oa.m_tau), 1e-8);
  }
  // Control: generated samples weighted as negatives (default): not a negation.
  DriftInputs a1 = a, b1 = b;
  a1.w_gen = b1.w_gen = torch::ones({2, 8}, f64());
  EXPECT_GT(rel_err(sinkhorn(b1, g, "none").V, -sinkhorn(a1, g, "none").V), 1e-2);
}

// Swapping generated samples and positives (no extra negatives): the fields live
// at different points, so V is not negated sample by sample; what holds is that
// the weighted mean drift (mean(pos) - mean(gen)) flips sign.
TEST(Sinkhorn, SwappingGeneratedAndPositivesFlipsTheMeanDrift) {
  torch::manual_seed(6);
  DriftInputs a = random_inputs(2, 8, 8, 0, 3, {0.3});
  DriftInputs b = a;
  b.gen = a.pos;
  b.w_gen = a.w_pos;
  b.pos = a.gen;
  b.w_pos = a.w_gen;
  const auto oa = sinkhorn(a, tight(), "none"), ob = sinkhorn(b, tight(), "none");
  const auto ma = ((a.w_gen / a.w_gen.sum(1, true)).unsqueeze(2) * oa.V).sum(1);
  const auto mb = ((b.w_gen / b.w_gen.sum(1, true)).unsqueeze(2) * ob.V).sum(1);
  ASSERT_GT(ma.abs().max().item<double>(), 0.1);
  EXPECT_LT(rel_err(mb, -ma), 1e-9);
  const double per_sample = rel_err(ob.V, -oa.V);
  std::cout << "[swap gen/pos] per-sample rel |V_b + V_a| / |V_a| = " << per_sample << "\n";
  EXPECT_GT(per_sample, 1e-2);
}

// ---------------------------------------------------------------- translation, no graph

TEST(Sinkhorn, TranslationInvariantAndNoAutogradGraph) {
  torch::manual_seed(8);
  DriftInputs a = random_inputs(2, 7, 6, 3, 4, {0.05, 0.2});
  DriftInputs b = a;
  const auto shift = torch::randn({1, 1, 4}, f64()) * 100.0;
  b.gen = a.gen + shift;
  b.pos = a.pos + shift;
  b.neg = a.neg + shift;
  const auto oa = sinkhorn(a), ob = sinkhorn(b);
  EXPECT_LT(rel_err(ob.V, oa.V), 1e-7);
  DriftInputs g = a;
  g.gen = a.gen.clone().requires_grad_(true);
  const auto og = sinkhorn(g, {}, "feature_drift", /*no_grad=*/false);
  EXPECT_FALSE(og.V.requires_grad());
  EXPECT_FALSE(og.goal.requires_grad());
  EXPECT_FALSE(og.m_tau.requires_grad());
}

// ---------------------------------------------------------------- finiteness

TEST(Sinkhorn, FiniteInExtremeRegimes) {
  using drift::test::Case;
  std::vector<Case> cases = {
      {"collapsed", 2, 9, 7, 3, 4, {0.02, 0.05, 0.2}, Case::kRandom, 1.0, 0.0, true},
      {"far_apart", 2, 6, 5, 3, 3, {0.02, 0.05, 0.2}, Case::kRandom, 1.0, 0.0, false, true},
      {"tau_1e-3", 2, 10, 8, 3, 5, {1e-3}},
      {"tau_1e-3_mixed", 2, 10, 8, 3, 5, {1e-3, 0.02, 0.2}},
      {"some_zero_weights", 2, 10, 8, 4, 3, {0.02, 0.2}, Case::kSomeZero},
      {"all_zero_gen_weights", 2, 10, 8, 4, 3, {0.05}, Case::kAllZeroGen},
      {"cg1_no_neg", 2, 1, 5, 0, 3},
      {"cg2_no_neg_unequal_weights", 2, 2, 3, 0, 2},
      {"huge_offset", 2, 8, 8, 2, 3, {0.05}, Case::kRandom, 1.0, 1e6},
  };
  for (const auto& c : cases) {
    for (auto dt : {torch::kFloat64, torch::kFloat32}) {
      for (const std::string norm : {"feature_drift", "none"}) {
        for (const std::string self : {"exclude", "keep"}) {
          SCOPED_TRACE(c.name + " " + c10::toString(dt) + " " + norm + " " + self);
          const auto in = drift::test::to(drift::test::make_inputs(c, 11), torch::kCPU, dt);
          const auto out = sinkhorn(in, {{"self_mass", ParamValue(self)}}, norm);
          EXPECT_TRUE(all_finite(out));
          EXPECT_EQ(out.V.scalar_type(), dt);
        }
      }
    }
  }
  // All generated samples identical and equal to every positive: finite, zero drift.
  for (auto dt : {torch::kFloat64, torch::kFloat32}) {
    auto o = torch::TensorOptions().dtype(dt);
    DriftInputs in;
    in.gen = torch::full({2, 6, 3}, 0.25, o);
    in.pos = torch::full({2, 5, 3}, 0.25, o);
    in.neg = torch::full({2, 2, 3}, 0.25, o);
    in.temperatures = {1e-3, 0.05};
    const auto out = sinkhorn(in);
    EXPECT_TRUE(all_finite(out));
    EXPECT_LT(out.V.abs().max().item<double>(), 1e-3);
    // Collapsed generated samples, positives elsewhere: drift toward them.
    in.pos = torch::full({2, 5, 3}, 3.0, o);
    const auto out2 = sinkhorn(in);
    EXPECT_TRUE(all_finite(out2));
    EXPECT_GT(out2.V.min().item<double>(), 0.0);
  }
}

// tau = 1e-3 on normalized costs: exp(-C / tau) underflows for all but the
// nearest pairs, yet the field still meets the marginals (weighted mean drift
// equals the difference of weighted means, here to the default tolerance).
TEST(Sinkhorn, TinyTemperatureStillMeetsTheMarginals) {
  torch::manual_seed(9);
  DriftInputs in = random_inputs(1, 12, 12, 0, 2, {1e-3});
  in.w_gen = in.w_pos = torch::Tensor();  // uniform
  const auto out = sinkhorn(in, {{"iterations", ParamValue(int64_t{20000})}}, "feature_only");
  ASSERT_TRUE(all_finite(out));
  const auto s = out.coord_scale;
  const auto expected = (in.pos.mean(1) - in.gen.mean(1)) / s;
  EXPECT_LT((out.V.mean(1) - expected).abs().max().item<double>(),
            1e-3 * (in.pos.abs().max().item<double>() / s.item<double>()));
}

// ---------------------------------------------------------------- parameters

// Fewer iterations / a looser tolerance leave the field further from the
// converged one; the defaults are between.
TEST(Sinkhorn, IterationsAndToleranceHaveAnEffect) {
  torch::manual_seed(10);
  DriftInputs in = random_inputs(2, 32, 32, 8, 4, {0.02, 0.05, 0.2});
  const auto conv = sinkhorn(in, tight()).V;
  auto err = [&](const Given& g) { return rel_err(sinkhorn(in, g).V, conv); };
  const double e1 = err({{"iterations", ParamValue(int64_t{1})}});
  const double e5 = err({{"iterations", ParamValue(int64_t{5})}});
  const double e_def = err({});
  const double e_loose = err({{"tolerance", ParamValue(0.3)}, {"iterations", ParamValue(int64_t{100000})}});
  const double e_tol = err({{"tolerance", ParamValue(1e-7)}, {"iterations", ParamValue(int64_t{100000})}});
  std::cout << "[params] rel err vs converged: 1 it " << e1 << ", 5 it " << e5 << ", default "
            << e_def << ", tol 0.3 " << e_loose << ", tol 1e-7 " << e_tol << "\n";
  EXPECT_GT(e1, e5);
  EXPECT_GT(e5, e_def);
  EXPECT_GT(e1, 1e-2);
  EXPECT_GT(e_loose, e_tol);
  EXPECT_LT(e_tol, 1e-5);
}

TEST(Sinkhorn, BadParametersNameTheParameterAndRange) {
  auto& reg = drift::test::default_registry();
  const std::vector<std::pair<Given, std::string>> bad = {
      {{{"iterations", ParamValue(int64_t{0})}}, "iterations"},
      {{{"tolerance", ParamValue(-1.0)}}, "tolerance"},
      {{{"cost", ParamValue(std::string("l1"))}}, "cost"},
      {{{"self_mass", ParamValue(std::string("drop"))}}, "self_mass"},
  };
  for (const auto& [given, name] : bad) {
    auto p = reg.validate(drift::ComponentKind::Kernel, "sinkhorn", given, "exp.toml: [kernel]");
    ASSERT_FALSE(p.ok()) << name;
    const std::string msg(p.status().message());
    std::cout << "[params] " << msg << "\n";
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
  auto def = reg.validate(drift::ComponentKind::Kernel, "sinkhorn", {}, "test");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->get_int("iterations"), 50);
  EXPECT_DOUBLE_EQ(def->get_float("tolerance"), 1e-4);
  EXPECT_EQ(def->get_string("cost"), "sqeuclidean");
  EXPECT_EQ(def->get_string("self_mass"), "exclude");
}

TEST(Sinkhorn, Float32AgreesWithFloat64) {
  torch::manual_seed(12);
  DriftInputs a = random_inputs(2, 16, 12, 6, 8, {0.05, 0.2});
  const auto b = drift::test::to(a, torch::kCPU, torch::kFloat32);
  const Given g = {{"iterations", ParamValue(int64_t{2000})}, {"tolerance", ParamValue(1e-5)}};
  const auto oa = sinkhorn(a, g), ob = sinkhorn(b, g);
  EXPECT_EQ(ob.V.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel_err(ob.V, oa.V), 1e-3);
}

}  // namespace
