// The ablation kernels of docs/method.md §3: kernel "general" (normalization,
// shape, attraction/repulsion) and kernel "mmd" (the MMD gradient field).
//
//  - general with its defaults is the laplace field (random inputs, golden cases);
//  - which variants are anti-symmetric, and that a != r is not;
//  - the field is exactly a * V+ - r * V- (raw drift, normalizer "none"), each
//    part translation-invariant, drift normalization applied to the combination;
//  - equilibrium: the raw drift at q = p is far below the drift toward a shifted copy;
//  - hand-computed fields on 2 generated samples in 1-D (closed forms written out);
//  - finite outputs for collapsed, far-apart inputs and tau = 1e-3;
//  - the parameter checks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "drift/field.hpp"
#include "field/field_io.hpp"
#include "field_cases.hpp"
#include "io/h5.hpp"
#include "test_util.hpp"

namespace {

using drift::DriftInputs;
using drift::DriftOutputs;
using drift::ParamValue;
using drift::test::Case;
using drift::test::all_finite;
using drift::test::make_inputs;
using drift::test::rel_err;
using ParamMap = std::map<std::string, ParamValue>;

// A kernel variant: a kernel name and its (unvalidated) parameters.
struct Variant {
  std::string label;
  std::string kernel;
  ParamMap params;
};

ParamMap general(const std::string& normalization, const std::string& shape, double a = 1.0,
                 double r = 1.0) {
  return {{"normalization", ParamValue(normalization)},
          {"shape", ParamValue(shape)},
          {"attraction", ParamValue(a)},
          {"repulsion", ParamValue(r)}};
}

// Every anti-symmetric variant (a = r): each normalization x each shape, and mmd.
std::vector<Variant> symmetric_variants() {
  std::vector<Variant> v;
  for (const std::string n : {"both", "targets", "none"})
    for (const std::string s : {"laplace", "gaussian"})
      v.push_back({"general/" + n + "/" + s, "general", general(n, s)});
  v.push_back({"mmd", "mmd", {}});
  return v;
}

// ... plus the anti-symmetry breaking ones.
std::vector<Variant> all_variants() {
  auto v = symmetric_variants();
  v.push_back({"general/a2_r1", "general", general("both", "laplace", 2.0, 1.0)});
  v.push_back({"general/a1_r0", "general", general("both", "laplace", 1.0, 0.0)});
  v.push_back({"general/a1_r1.5_gaussian_none", "general", general("none", "gaussian", 1.0, 1.5)});
  return v;
}

absl::StatusOr<std::unique_ptr<drift::DriftKernel>> try_make_kernel(const std::string& name,
                                                                   const ParamMap& given) {
  auto& reg = drift::test::default_registry();
  auto p = reg.validate(drift::ComponentKind::Kernel, name, given, "test");
  if (!p.ok()) return p.status();
  return reg.make_kernel(name, *p);
}

DriftOutputs run(const std::string& kernel, const ParamMap& params, const DriftInputs& raw,
                 const std::string& normalizer = "feature_drift") {
  auto k = try_make_kernel(kernel, params);
  if (!k.ok()) throw std::runtime_error(std::string(k.status().message()));
  auto n = drift::test::default_registry().make_normalizer(normalizer, {});
  if (!n.ok()) throw std::runtime_error(std::string(n.status().message()));
  const auto in = drift::canonicalize_drift_inputs(raw);
  torch::NoGradGuard ng;
  return (*k)->compute(in, **n);
}

DriftOutputs run(const Variant& v, const DriftInputs& raw,
                 const std::string& normalizer = "feature_drift") {
  return run(v.kernel, v.params, raw, normalizer);
}

torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

// Temperatures at which every variant has a non-negligible field on unit-scale
// inputs (the Gaussian kernels at tau = 0.02 see only nearest neighbours).
const std::vector<double> kTemps = {0.1, 0.3, 1.0};

DriftInputs random_inputs(int64_t B, int64_t Cg, int64_t Cp, int64_t Cn, int64_t S) {
  DriftInputs in;
  in.gen = torch::randn({B, Cg, S}, f64());
  in.pos = torch::randn({B, Cp, S}, f64()) + 0.7;
  in.neg = torch::randn({B, Cn, S}, f64()) - 0.4;
  in.w_gen = torch::rand({B, Cg}, f64()) + 0.5;
  in.w_pos = torch::rand({B, Cp}, f64()) + 0.5;
  in.w_neg = torch::rand({B, Cn}, f64()) + 0.5;
  in.temperatures = kTemps;
  return in;
}

// ------------------------------------------------ general (defaults) == laplace

// The defaults are the field of docs/method.md §2: identical to laplace's plain reference on
// random inputs, extreme regimes included, with both normalizers.
TEST(KernelGeneral, DefaultsEqualLaplacePlain) {
  std::vector<Case> cases = {
      {"small", 2, 5, 4, 3, 3},
      {"no_neg", 3, 7, 6, 0, 4},
      {"cg1", 2, 1, 5, 2, 3},
      {"s1", 4, 9, 8, 3, 1},
      {"odd_sizes", 3, 13, 11, 7, 37},
      {"single_temp", 2, 10, 9, 4, 8, {0.05}},
      {"tau_1e-3", 2, 12, 10, 3, 6, {1e-3, 0.02, 0.2}},
  };
  Case c;
  c = {"some_zero_weights", 2, 8, 7, 5, 4};
  c.weights = Case::kSomeZero;
  cases.push_back(c);
  c = {"collapsed", 2, 8, 6, 3, 5};
  c.collapsed = true;
  cases.push_back(c);
  c = {"far_apart", 2, 6, 5, 3, 3};
  c.far_apart = true;
  cases.push_back(c);
  c = {"offset_1e3", 2, 9, 8, 2, 4};
  c.offset = 1e3;
  cases.push_back(c);

  uint64_t seed = 100;
  for (const auto& cs : cases) {
    const DriftInputs in = make_inputs(cs, seed++);
    for (const std::string norm : {"feature_drift", "none"}) {
      SCOPED_TRACE(cs.name + " / " + norm);
      const auto ref = run("laplace", {{"impl", ParamValue(std::string("plain"))}}, in, norm);
      const auto got = run("general", {}, in, norm);  // defaults
      ASSERT_TRUE(all_finite(got));
      for (const auto& [name, t] : drift::test::fields(ref)) {
        const torch::Tensor g = drift::test::fields(got).at(name);  // a copy: the map is a temporary
        ASSERT_EQ(g.sizes(), t.sizes()) << name;
        EXPECT_LT(rel_err(g, t), 1e-12) << name;
      }
      // And in float32 (the kernel works in its input dtype).
      const auto in32 = drift::test::to(in, torch::kCPU, torch::kFloat32);
      const auto ref32 = run("laplace", {{"impl", ParamValue(std::string("plain"))}}, in32, norm);
      const auto got32 = run("general", {}, in32, norm);
      EXPECT_EQ(got32.V.scalar_type(), torch::kFloat32);
      EXPECT_LT(rel_err(got32.V, ref32.V), 1e-6);
    }
  }
}

// The same through every golden case (float64, as test_golden).
TEST(KernelGeneral, DefaultsReproduceTheGoldenCases) {
  auto cases = drift::test::golden_cases();
  ASSERT_TRUE(cases.ok()) << cases.status();
  int n = 0;
  for (const std::string& path : *cases) {
    SCOPED_TRACE(path);
    auto raw = drift::field::read_field_inputs(path, torch::kFloat64);
    ASSERT_TRUE(raw.ok()) << raw.status();
    const auto out = run("general", {}, *raw);
    auto file = drift::io::H5File::open_read(path);
    ASSERT_TRUE(file.ok()) << file.status();
    const std::vector<std::pair<std::string, torch::Tensor>> got = {
        {"goal", out.goal}, {"V", out.V}, {"scale", out.scale},
        {"loss_per_temperature", out.m_tau}};
    for (const auto& [name, t] : got) {
      auto ref = file->read_as("expected/" + name, torch::kFloat64);
      ASSERT_TRUE(ref.ok()) << ref.status();
      ASSERT_EQ(t.sizes(), ref->sizes()) << name;
      EXPECT_LE(rel_err(t, *ref), 1e-9) << name;
    }
    ++n;
  }
  EXPECT_GT(n, 0) << "no golden case found";
}

// ------------------------------------------------ anti-symmetry

// Swapping positives and negatives (generated samples at weight 0, so they are
// only query points; see test_field_properties) permutes the target columns,
// and every normalization treats the target set symmetrically (softmax over all
// targets, softmax over the generated axis per column, or no softmax): so every
// variant with a = r is exactly anti-symmetric. mmd too (each side divided by
// its own total weight).
DriftInputs swapped(const DriftInputs& a) {
  DriftInputs b = a;
  b.pos = a.neg;
  b.w_pos = a.w_neg;
  b.neg = a.pos;
  b.w_neg = a.w_pos;
  return b;
}

TEST(KernelVariants, SymmetricVariantsAreAntiSymmetric) {
  torch::manual_seed(1);
  DriftInputs a = random_inputs(3, 10, 7, 9, 5);
  a.w_gen = torch::zeros({3, 10}, f64());
  const DriftInputs b = swapped(a);
  for (const auto& v : symmetric_variants()) {
    for (const std::string norm : {"none", "feature_drift"}) {
      SCOPED_TRACE(v.label + " / " + norm);
      const auto oa = run(v, a, norm), ob = run(v, b, norm);
      ASSERT_TRUE(all_finite(oa) && all_finite(ob));
      ASSERT_GT(oa.m_tau.min().item<double>(), 0.0) << "the drift must not be trivially zero";
      EXPECT_LT(rel_err(ob.V, -oa.V), 1e-10) << "V_{q,p} must equal -V_{p,q}";
      EXPECT_LT(rel_err(ob.m_tau, oa.m_tau), 1e-10);
    }
  }
}

// a != r: the swap no longer negates the field, by a wide margin. From the
// algebra, V(swapped) + V = (a - r)(V+ + V-) for the raw drift.
TEST(KernelVariants, AttractionRepulsionImbalanceBreaksAntiSymmetry) {
  torch::manual_seed(1);
  DriftInputs a = random_inputs(3, 10, 7, 9, 5);
  a.w_gen = torch::zeros({3, 10}, f64());
  const DriftInputs b = swapped(a);
  const std::vector<std::pair<double, double>> ar = {{2.0, 1.0}, {1.0, 2.0}, {1.0, 0.0},
                                                     {1.5, 1.0}};
  for (const std::string n : {"both", "targets", "none"}) {
    for (const auto& [at, rep] : ar) {
      for (const std::string norm : {"none", "feature_drift"}) {
        SCOPED_TRACE(n + " a=" + std::to_string(at) + " r=" + std::to_string(rep) + " / " + norm);
        const auto p = general(n, "laplace", at, rep);
        const auto oa = run("general", p, a, norm), ob = run("general", p, b, norm);
        ASSERT_TRUE(all_finite(oa) && all_finite(ob));
        const double dev = rel_err(ob.V, -oa.V);
        std::cout << "[antisymmetry] " << n << " a=" << at << " r=" << rep << " " << norm
                  << ": |V(swap) + V| / |V| = " << dev << "\n";
        EXPECT_GT(dev, 0.1);
      }
    }
  }
}

// ------------------------------------------------ a * V+ - r * V-

// With the raw drift (normalizer "none") the field is linear in (a, r):
// V(a, r) = a V(1, 0) - r (-V(0, 1)), i.e. V(1, 0) = V+ and V(0, 1) = -V-.
TEST(KernelGeneral, FieldIsAttractionTimesVPlusMinusRepulsionTimesVMinus) {
  torch::manual_seed(2);
  const DriftInputs in = random_inputs(2, 9, 8, 4, 3);
  DriftInputs one_tau = in;
  one_tau.temperatures = {0.3};
  for (const std::string n : {"both", "targets", "none"}) {
    for (const std::string s : {"laplace", "gaussian"}) {
      SCOPED_TRACE(n + "/" + s);
      const auto Vp = run("general", general(n, s, 1.0, 0.0), in, "none").V;   // V+
      const auto Vm = -run("general", general(n, s, 0.0, 1.0), in, "none").V;  // V-
      ASSERT_GT(Vp.norm().item<double>(), 0.0);
      ASSERT_GT(Vm.norm().item<double>(), 0.0);
      for (const auto& [at, rep] : std::vector<std::pair<double, double>>{
               {1.0, 1.0}, {2.0, 1.0}, {1.0, 0.0}, {0.5, 3.0}}) {
        SCOPED_TRACE("a=" + std::to_string(at) + " r=" + std::to_string(rep));
        const auto out = run("general", general(n, s, at, rep), in, "none");
        EXPECT_LT(rel_err(out.V, at * Vp - rep * Vm), 1e-12);
        EXPECT_LT(rel_err(out.goal, in.gen + at * Vp - rep * Vm), 1e-12);
        // m_tau is the mean square of the combined drift.
        const auto o1 = run("general", general(n, s, at, rep), one_tau, "none");
        const auto p1 = run("general", general(n, s, 1.0, 0.0), one_tau, "none").V;
        const auto m1 = -run("general", general(n, s, 0.0, 1.0), one_tau, "none").V;
        EXPECT_NEAR(o1.m_tau[0].item<double>(), (at * p1 - rep * m1).pow(2).mean().item<double>(),
                    1e-12 * o1.m_tau[0].item<double>());
      }
      // (a, r) = (1, 1) is the default field: V+ and V- are both non-trivial and
      // partly cancel, so neither alone is the field.
      EXPECT_GT(rel_err(Vp, Vp - Vm), 0.05);
    }
  }
}

// Drift normalization acts on the combined F_tau: scaling a and r together
// leaves the normalized field unchanged (F doubles, m_tau quadruples).
TEST(KernelGeneral, DriftNormalizationActsOnTheCombinedField) {
  torch::manual_seed(3);
  const DriftInputs in = random_inputs(2, 9, 8, 4, 3);
  const auto base = run("general", general("both", "laplace", 2.0, 1.0), in);
  const auto twice = run("general", general("both", "laplace", 4.0, 2.0), in);
  EXPECT_LT(rel_err(twice.V, base.V), 1e-12);
  EXPECT_LT(rel_err(twice.m_tau, 4.0 * base.m_tau), 1e-12);
  // Each temperature's normalized drift has mean square 1: one temperature gives mean(V^2) = 1.
  DriftInputs one = in;
  one.temperatures = {0.3};
  EXPECT_NEAR(run("general", general("both", "laplace", 1.0, 0.0), one).V.pow(2).mean().item<double>(),
              1.0, 1e-12);
}

// Each part is translation-invariant on its own, so every (a, r) is.
TEST(KernelGeneral, EveryAttractionRepulsionMixIsTranslationInvariant) {
  torch::manual_seed(4);
  const DriftInputs a = random_inputs(2, 8, 7, 3, 4);
  const auto shift = torch::randn({1, 1, 4}, f64()) * 5.0;
  DriftInputs b = a;
  b.gen = a.gen + shift;
  b.pos = a.pos + shift;
  b.neg = a.neg + shift;
  for (const auto& [at, rep] :
       std::vector<std::pair<double, double>>{{1.0, 0.0}, {0.0, 1.0}, {2.0, 1.0}}) {
    for (const std::string n : {"both", "none"}) {
      SCOPED_TRACE(n + " a=" + std::to_string(at) + " r=" + std::to_string(rep));
      const auto p = general(n, "gaussian", at, rep);
      const auto oa = run("general", p, a, "none"), ob = run("general", p, b, "none");
      ASSERT_GT(oa.V.norm().item<double>(), 0.0);
      EXPECT_LT(rel_err(ob.V, oa.V), 1e-9);
    }
  }
  // mmd as well.
  const auto oa = run("mmd", {}, a, "none"), ob = run("mmd", {}, b, "none");
  EXPECT_LT(rel_err(ob.V, oa.V), 1e-9);
}

// ------------------------------------------------ equilibrium

// m_tau (raw drift, normalizer "none") between two independent draws of one
// 2-D Gaussian (q = p) against the same with the data shifted by two standard
// deviations, for every anti-symmetric variant. Raw distances: tau in input units.
//
// At tau = 1 (kernel width ~ the shift) every variant passes by a wide margin
// (measured ratios 88-526). At tau = 0.3 only the doubly-softmaxed ("both")
// variants do (measured 29-61); without the softmax over generated samples a
// local kernel barely reaches data two standard deviations away, and the raw
// field is further scaled by the positives' kernel mass, which is tiny there:
// measured ratios at tau = 0.3: targets/laplace 5.1, none/laplace 6.9,
// targets/gaussian 0.87, none/gaussian 0.91, mmd 1.8. That is a property of
// those kernels (the paper's Table 11 point), not a failure of the equilibrium,
// so the local temperature is asserted only for "both".
TEST(KernelVariants, EquilibriumDriftIsFarBelowShiftedDrift) {
  torch::manual_seed(7);
  const int64_t N = 256;
  const auto x = torch::randn({1, N, 2}, f64());
  const auto y_same = torch::randn({1, N, 2}, f64());
  const auto y_shift = torch::randn({1, N, 2}, f64()) + torch::tensor({2.0, 0.0}, f64());
  DriftInputs eq, off;
  eq.gen = off.gen = x;
  eq.pos = y_same;
  off.pos = y_shift;
  const std::vector<double> temps = {0.3, 1.0};
  eq.temperatures = off.temperatures = temps;
  for (const auto& v : symmetric_variants()) {
    SCOPED_TRACE(v.label);
    const bool both = v.kernel == "general" &&
                      std::get<std::string>(v.params.at("normalization")) == "both";
    const auto m_eq = run(v, eq, "none").m_tau, m_off = run(v, off, "none").m_tau;
    for (size_t i = 0; i < temps.size(); ++i) {
      const double r = m_off[i].item<double>() / m_eq[i].item<double>();
      std::cout << "[equilibrium] " << v.label << " tau=" << temps[i]
                << " m_tau ratio shifted/equal = " << r << "\n";
      if (temps[i] >= 1.0 || both) EXPECT_GE(r, 10.0) << "tau=" << temps[i];
    }
    // The shifted drift points toward the data (+x), on average.
    EXPECT_GT(run(v, off, "none").V.select(2, 0).mean().item<double>(), 0.0);
  }
  // Control: with a != r the drift does not vanish at q = p, so the ratio
  // collapses. Measured: attraction-only (1, 0) 4.1 (tau 0.3) and 4.0 (tau 1);
  // (2, 1) 14.6 and 15.3, against 61 and 526 for the default field.
  auto ratio = [&](const ParamMap& p, size_t i) {
    return run("general", p, off, "none").m_tau[i].item<double>() /
           run("general", p, eq, "none").m_tau[i].item<double>();
  };
  for (size_t i = 0; i < temps.size(); ++i) {
    SCOPED_TRACE("tau=" + std::to_string(temps[i]));
    const double r_default = ratio(general("both", "laplace"), i);
    const double r_attr = ratio(general("both", "laplace", 1.0, 0.0), i);
    const double r_2_1 = ratio(general("both", "laplace", 2.0, 1.0), i);
    std::cout << "[equilibrium] tau=" << temps[i] << " ratio default " << r_default
              << ", a=1 r=0 " << r_attr << ", a=2 r=1 " << r_2_1 << "\n";
    EXPECT_LT(r_attr, 10.0);
    EXPECT_LT(r_attr, 0.2 * r_default);
    if (temps[i] >= 1.0) EXPECT_LT(r_2_1, 0.2 * r_default);
  }
}

// ------------------------------------------------ hand-computed cases

// Two generated samples x1 = 0, x2 = 1 and one positive y = 3 in 1-D, no extra
// negatives, unit weights, normalizer "none" (raw distances, raw drift).
// Targets per row: [x1, x2, y]; the self distance is sqrt(1e-8) + 100.
// With kernel values A = g(dn) per row (before any softmax),
//   row x1: A = (A0, A1, A2) at dn = (ds + 100, 1, 3)
//     F(x1) = r * (-A1 A2) * (x2 - x1) + a * A2 (A0 + A1) * (y - x1)
//   row x2: A = (B0, B1, B2) at dn = (1, ds + 100, 2)
//     F(x2) = r * (-B0 B2) * (x1 - x2) + a * B2 (B0 + B1) * (y - x2)
// (Kn = -An rowsum(Ap), Kp = Ap rowsum(An); the self column's own direction is 0
// but its A enters rowsum(An).) "targets" divides each row's A by its sum first.
struct HandCase {
  std::string normalization, shape;
  double a, r;
};

TEST(KernelGeneral, HandComputedTwoSamplesInOneD) {
  DriftInputs in;
  in.gen = torch::tensor({0.0, 1.0}, f64()).reshape({1, 2, 1});
  in.pos = torch::tensor({3.0}, f64()).reshape({1, 1, 1});
  in.temperatures = {1.0, 0.5};
  const double ds = std::sqrt(1e-8);
  const std::vector<HandCase> cases = {{"none", "laplace", 1, 1},  {"none", "gaussian", 1, 1},
                                       {"none", "laplace", 2, 0.5}, {"none", "gaussian", 1, 0},
                                       {"targets", "laplace", 1, 1}, {"targets", "gaussian", 3, 1}};
  for (const auto& hc : cases) {
    SCOPED_TRACE(hc.normalization + "/" + hc.shape + " a=" + std::to_string(hc.a) +
                 " r=" + std::to_string(hc.r));
    std::vector<double> V = {0.0, 0.0}, m;
    for (double tau : in.temperatures) {
      const std::function<double(double)> g = [&](double dn) {
        return hc.shape == "laplace" ? std::exp(-dn / tau) : std::exp(-dn * dn / (2 * tau * tau));
      };
      double A0 = g(ds + 100), A1 = g(1), A2 = g(3);
      double B0 = g(1), B1 = g(ds + 100), B2 = g(2);
      if (hc.normalization == "targets") {
        const double sa = A0 + A1 + A2, sb = B0 + B1 + B2;
        A0 /= sa, A1 /= sa, A2 /= sa, B0 /= sb, B1 /= sb, B2 /= sb;
      }
      const double F1 = hc.r * (-A1 * A2) * (1.0 - 0.0) + hc.a * A2 * (A0 + A1) * (3.0 - 0.0);
      const double F2 = hc.r * (-B0 * B2) * (0.0 - 1.0) + hc.a * B2 * (B0 + B1) * (3.0 - 1.0);
      V[0] += F1;
      V[1] += F2;
      m.push_back((F1 * F1 + F2 * F2) / 2);
    }
    const auto out = run("general", general(hc.normalization, hc.shape, hc.a, hc.r), in, "none");
    const auto expected_V = torch::tensor(V, f64()).reshape({1, 2, 1});
    EXPECT_LT(rel_err(out.V, expected_V), 1e-12) << out.V << " vs " << expected_V;
    EXPECT_LT(rel_err(out.m_tau, torch::tensor(m, f64())), 1e-12);
    EXPECT_LT(rel_err(out.goal, in.gen + expected_V), 1e-12);
  }
  // The Gaussian self term is excluded: exp(-(100 + ds)^2 / 2) is 0 in float64,
  // so at tau = 1 the field is exactly the two-target closed form without it.
  DriftInputs one = in;
  one.temperatures = {1.0};
  const auto out = run("general", general("none", "gaussian"), one, "none");
  const double e = std::exp(-0.5), f = std::exp(-4.5), h = std::exp(-2.0);
  EXPECT_NEAR(out.V[0][0][0].item<double>(), f * e * (3.0 - 1.0), 1e-15);  // A2 A1 (3 - 1)
  EXPECT_NEAR(out.V[0][1][0].item<double>(), h * e * (1.0 + 2.0), 1e-15);  // B2 B0 (1 + 2)
}

// mmd on x1 = 0, x2 = 1 (weights 1), one extra negative z = -1 with weight 2,
// positives y1 = 3 (weight 1) and y2 = 2 (weight 3); normalizer "none".
// k(u, v) = exp(-(u - v)^2 / (2 tau^2)), W_p = 4, W_n(x1) = w_x2 + w_z = 3, W_n(x2) = 3:
//   V(x1) = [ (1 k(0,3) 3 + 3 k(0,2) 2) / 4 - (1 k(0,1) (1) + 2 k(0,-1) (-1)) / 3 ] / tau^2
//   V(x2) = [ (1 k(1,3) 2 + 3 k(1,2) 1) / 4 - (1 k(1,0) (-1) + 2 k(1,-1) (-2)) / 3 ] / tau^2
TEST(KernelMmd, HandComputedTwoSamplesInOneD) {
  DriftInputs in;
  in.gen = torch::tensor({0.0, 1.0}, f64()).reshape({1, 2, 1});
  in.neg = torch::tensor({-1.0}, f64()).reshape({1, 1, 1});
  in.w_neg = torch::tensor({2.0}, f64()).reshape({1, 1});
  in.pos = torch::tensor({3.0, 2.0}, f64()).reshape({1, 2, 1});
  in.w_pos = torch::tensor({1.0, 3.0}, f64()).reshape({1, 2});
  in.temperatures = {1.0, 2.0};
  std::vector<double> V = {0.0, 0.0}, m;
  for (double tau : in.temperatures) {
    auto k = [&](double u, double v) { return std::exp(-(u - v) * (u - v) / (2 * tau * tau)); };
    const double V1 =
        ((1 * k(0, 3) * 3 + 3 * k(0, 2) * 2) / 4 - (1 * k(0, 1) * 1 + 2 * k(0, -1) * -1) / 3) /
        (tau * tau);
    const double V2 =
        ((1 * k(1, 3) * 2 + 3 * k(1, 2) * 1) / 4 - (1 * k(1, 0) * -1 + 2 * k(1, -1) * -2) / 3) /
        (tau * tau);
    V[0] += V1;
    V[1] += V2;
    m.push_back((V1 * V1 + V2 * V2) / 2);
  }
  const auto out = run("mmd", {}, in, "none");
  const auto expected_V = torch::tensor(V, f64()).reshape({1, 2, 1});
  EXPECT_LT(rel_err(out.V, expected_V), 1e-12) << out.V << " vs " << expected_V;
  EXPECT_LT(rel_err(out.m_tau, torch::tensor(m, f64())), 1e-12);
  EXPECT_LT(rel_err(out.goal, in.gen + expected_V), 1e-12);

  // Scaling every weight of one side by a constant leaves the field unchanged
  // (each side is a weighted mean), while moving weight between sides does not.
  DriftInputs scaled = in;
  scaled.w_pos = in.w_pos * 7.0;
  scaled.w_neg = in.w_neg * 5.0;
  scaled.w_gen = torch::full({1, 2}, 5.0, f64());
  EXPECT_LT(rel_err(run("mmd", {}, scaled, "none").V, out.V), 1e-12);
  scaled.w_gen = torch::full({1, 2}, 1.0, f64());
  EXPECT_GT(rel_err(run("mmd", {}, scaled, "none").V, out.V), 1e-3);
}

// With a single generated sample and no extra negatives the negatives' side is
// empty after self-exclusion: the field is the attraction alone, and finite.
TEST(KernelMmd, OnlyGeneratedSampleHasNoRepulsion) {
  DriftInputs in;
  in.gen = torch::tensor({0.5}, f64()).reshape({1, 1, 1});
  in.pos = torch::tensor({1.5}, f64()).reshape({1, 1, 1});
  in.temperatures = {1.0};
  const auto out = run("mmd", {}, in, "none");
  ASSERT_TRUE(all_finite(out));
  EXPECT_NEAR(out.V.item<double>(), std::exp(-0.5) * 1.0, 1e-15);
}

// ------------------------------------------------ finiteness

TEST(KernelVariants, FiniteForCollapsedFarApartAndTinyTemperatures) {
  std::vector<Case> cases;
  Case c = {"collapsed", 2, 8, 6, 3, 5};
  c.collapsed = true;
  cases.push_back(c);
  c = {"far_apart", 2, 6, 5, 3, 3};
  c.far_apart = true;
  cases.push_back(c);
  c = {"tau_1e-3", 2, 12, 10, 3, 6, {1e-3}};
  cases.push_back(c);
  c = {"tau_1e-3_far_apart", 2, 6, 5, 3, 3, {1e-3, 0.02}};
  c.far_apart = true;
  cases.push_back(c);
  c = {"zero_gen_weights", 2, 6, 5, 3, 3};
  c.weights = Case::kAllZeroGen;
  cases.push_back(c);
  uint64_t seed = 300;
  for (const auto& cs : cases) {
    const DriftInputs in64 = make_inputs(cs, seed++);
    // Every sample equal (generated, positives and negatives).
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      const DriftInputs in = drift::test::to(in64, torch::kCPU, dtype);
      for (const auto& v : all_variants()) {
        for (const std::string norm : {"feature_drift", "none"}) {
          SCOPED_TRACE(cs.name + " " + v.label + " " + norm + " " + c10::toString(dtype));
          const auto out = run(v, in, norm);
          EXPECT_TRUE(all_finite(out));
          EXPECT_EQ(out.V.scalar_type(), dtype);
        }
      }
    }
  }
  // Fully collapsed: every generated sample, positive and negative identical.
  DriftInputs all_equal;
  all_equal.gen = torch::full({2, 6, 3}, 0.25, f64());
  all_equal.pos = torch::full({2, 5, 3}, 0.25, f64());
  all_equal.neg = torch::full({2, 2, 3}, 0.25, f64());
  all_equal.temperatures = {1e-3, 0.05, 1.0};
  for (const auto& v : all_variants())
    for (const std::string norm : {"feature_drift", "none"}) {
      SCOPED_TRACE("all equal " + v.label + " " + norm);
      const auto out = run(v, all_equal, norm);
      EXPECT_TRUE(all_finite(out));
      EXPECT_LT(out.V.abs().max().item<double>(), 1e-6) << "no direction to drift in";
    }
}

// ------------------------------------------------ parameters

TEST(KernelGeneral, BadParametersAreOneClearLine) {
  const std::vector<std::pair<ParamMap, std::vector<std::string>>> bad = {
      {{{"normalization", ParamValue(std::string("rows"))}}, {"normalization", "targets"}},
      {{{"shape", ParamValue(std::string("cauchy"))}}, {"shape", "gaussian"}},
      {{{"attraction", ParamValue(-1.0)}}, {"attraction"}},
      {{{"repulsion", ParamValue(std::string("x"))}}, {"repulsion"}},
      {{{"repulsoin", ParamValue(1.0)}}, {"repulsion"}},  // typo: the closest name suggested
  };
  for (const auto& [given, needles] : bad) {
    auto k = try_make_kernel("general", given);
    ASSERT_FALSE(k.ok());
    const std::string msg(k.status().message());
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
  EXPECT_TRUE(try_make_kernel("general", general("none", "gaussian", 0.0, 2.5)).ok());
  EXPECT_TRUE(try_make_kernel("mmd", {}).ok());
  EXPECT_FALSE(try_make_kernel("mmd", {{"tau", ParamValue(1.0)}}).ok());
}

}  // namespace
