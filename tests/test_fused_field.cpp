// Kernel "laplace": the fused CPU implementation (impl = "fused", the default)
// against the plain LibTorch reference (impl = "plain") on many random shapes
// and extreme regimes, against every golden case, and the `impl` parameter.
//
// Tolerances (relative, ||a - b|| / ||b||): float64 1e-9; float32 1e-4, where
// the float32 fused result is compared with the plain result computed in
// float64 from the same (float32) inputs — i.e. the error the fused float32
// pipeline itself adds — and also with the plain float32 result.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "drift/field.hpp"
#include "field/field_io.hpp"
#include "io/h5.hpp"
#include "field_cases.hpp"
#include "../plugins/kernels/laplace/fused_isa.hpp"
#include "test_util.hpp"

namespace {

using drift::DriftInputs;
using drift::DriftOutputs;
using drift::test::Case;
using drift::test::all_finite;
using drift::test::compute;
using drift::test::fields;
using drift::test::impl_params;
using drift::test::make_inputs;
using drift::test::rel_err;

DriftInputs to_dtype(const DriftInputs& in, torch::ScalarType dt) {
  return drift::test::to(in, torch::kCPU, dt);
}

std::vector<Case> cases() {
  std::vector<Case> c = {
      {"small", 2, 5, 4, 3, 3},
      {"no_neg", 3, 7, 6, 0, 4},
      {"cg1", 2, 1, 5, 2, 3},
      {"cg2", 2, 2, 3, 0, 2},
      {"cg1_no_neg_cp1", 1, 1, 1, 0, 1},
      {"b1_s2_w1_like", 1, 64, 64, 0, 2},
      {"s1", 4, 9, 8, 3, 1},
      {"s2", 2, 17, 13, 5, 2},
      {"s2048", 2, 9, 7, 3, 2048},
      {"s1000_b1", 1, 33, 31, 0, 1000},
      {"w2_like", 8, 64, 64, 16, 128},
      {"odd_sizes", 3, 13, 11, 7, 37},
      {"rows_not_multiple_of_4", 2, 6, 3, 1, 16},
      {"cols_over_64", 2, 40, 50, 9, 5},
      {"single_temp", 2, 10, 9, 4, 8, {0.05}},
      {"tau_1e-3", 2, 12, 10, 3, 6, {1e-3}},
      {"tau_1e-3_mixed", 3, 8, 8, 2, 4, {1e-3, 0.02, 0.2}},
      {"many_temps", 2, 11, 9, 3, 5, {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0}},
      // several 64-row chunks, rows not a multiple of the 8-row tiles, S with a tail
      {"cg150_chunks", 1, 150, 40, 5, 17},
      // many problems (one problem per task), S just over one vector
      {"b40_s20", 40, 9, 8, 2, 20},
  };
  Case k;
  k = {"ones", 3, 10, 9, 4, 6}; k.weights = Case::kOnes; c.push_back(k);
  k = {"some_zero_weights", 3, 10, 9, 4, 6}; k.weights = Case::kSomeZero; c.push_back(k);
  k = {"zero_gen_weights", 2, 10, 9, 4, 6}; k.weights = Case::kAllZeroGen; c.push_back(k);
  k = {"collapsed", 2, 16, 12, 4, 3}; k.collapsed = true; c.push_back(k);
  k = {"collapsed_s64", 1, 32, 8, 0, 64}; k.collapsed = true; c.push_back(k);
  k = {"far_apart", 2, 6, 5, 3, 4}; k.far_apart = true; c.push_back(k);
  k = {"far_apart_tau_1e-3", 2, 6, 5, 3, 4, {1e-3}}; k.far_apart = true; c.push_back(k);
  k = {"coords_1e-3", 2, 10, 9, 4, 6}; k.coord = 1e-3; c.push_back(k);
  k = {"coords_1e3", 2, 10, 9, 4, 6}; k.coord = 1e3; c.push_back(k);
  k = {"offset_1e3", 2, 10, 9, 4, 6}; k.offset = 1e3; c.push_back(k);
  k = {"offset_1e3_s256", 2, 12, 12, 0, 256}; k.offset = 1e3; c.push_back(k);
  k = {"coords_1e-3_tau_1e-3", 1, 8, 8, 0, 3, {1e-3}}; k.coord = 1e-3; c.push_back(k);
  return c;
}

// Worst relative error of `got` against `ref` over all outputs; checks shapes/dtypes.
// An output whose reference norm is below `zero` is compared in absolute terms
// (without an affinity floor, a sample with no other generated sample near it
// has a field of ~1e-70 in float64 that float32 rounds to 0: both are zero).
double worst_err(const DriftOutputs& got, const DriftOutputs& ref, torch::ScalarType dt,
                 const std::string& where, double zero = 0.0) {
  double worst = 0;
  const auto g = fields(got), r = fields(ref);
  for (const auto& [name, t] : g) {
    EXPECT_EQ(t.scalar_type(), dt) << where << " " << name;
    EXPECT_EQ(t.sizes(), r.at(name).sizes()) << where << " " << name;
    const double rn = r.at(name).to(torch::kFloat64).norm().item<double>();
    const double e = rn < zero ? (t.to(torch::kCPU, torch::kFloat64) -
                                  r.at(name).to(torch::kCPU, torch::kFloat64)).norm().item<double>()
                               : rel_err(t, r.at(name));
    EXPECT_FALSE(std::isnan(e)) << where << " " << name;
    worst = std::max(worst, e);
  }
  return worst;
}

using ParamMap = std::map<std::string, drift::ParamValue>;

void compare_on_cases(const std::string& normalizer, const ParamMap& kp = {},
                      const std::string& label = "", double zero = 0.0) {
  double worst64 = 0, worst32 = 0, worst32_vs_plain32 = 0, plain32_vs_plain64 = 0;
  uint64_t seed = 100;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const DriftInputs in64 = make_inputs(c, seed++);
    const DriftInputs in32 = to_dtype(in64, torch::kFloat32);

    const DriftOutputs f64 = compute(in64, "fused", normalizer, kp);
    const DriftOutputs p64 = compute(in64, "plain", normalizer, kp);
    ASSERT_TRUE(all_finite(f64)) << c.name;
    ASSERT_TRUE(all_finite(p64)) << c.name;
    const double e64 = worst_err(f64, p64, torch::kFloat64, c.name + " float64");
    EXPECT_LE(e64, 1e-9) << c.name << " float64";

    // float32: against the exact answer for the same float32 inputs.
    const DriftOutputs f32 = compute(in32, "fused", normalizer, kp);
    const DriftOutputs p32 = compute(in32, "plain", normalizer, kp);
    const DriftOutputs p32_64 = compute(to_dtype(in32, torch::kFloat64), "plain", normalizer, kp);
    ASSERT_TRUE(all_finite(f32)) << c.name;
    const double e32 = worst_err(f32, p32_64, torch::kFloat32, c.name + " float32", zero);
    EXPECT_LE(e32, 1e-4) << c.name << " float32 fused vs exact";
    const double e32p = worst_err(f32, p32, torch::kFloat32, c.name + " float32 vs plain32", zero);
    const double ep = worst_err(p32, p32_64, torch::kFloat32, c.name + " plain32", zero);
    std::cout << "[fused " << normalizer << label << "] " << c.name << ": f64 " << e64 << "  f32 " << e32
              << "  (f32 vs plain f32 " << e32p << ", plain f32 " << ep << ")\n";
    worst64 = std::max(worst64, e64);
    worst32 = std::max(worst32, e32);
    worst32_vs_plain32 = std::max(worst32_vs_plain32, e32p);
    plain32_vs_plain64 = std::max(plain32_vs_plain64, ep);
  }
  std::cout << "[fused " << normalizer << label << "] " << cases().size()
            << " cases: max relative error float64 " << worst64 << ", float32 " << worst32
            << " (fused f32 vs plain f32: " << worst32_vs_plain32
            << "; plain f32 itself: " << plain32_vs_plain64 << ")\n";
  ::testing::Test::RecordProperty("max_relative_error_f64", std::to_string(worst64));
  ::testing::Test::RecordProperty("max_relative_error_f32", std::to_string(worst32));
}

TEST(FusedField, MatchesPlainOnRandomShapesFeatureDrift) { compare_on_cases("feature_drift"); }
TEST(FusedField, MatchesPlainOnRandomShapesNoNormalizer) { compare_on_cases("none"); }

// The affinity floor (drift/affinity.hpp) is a parameter of the fused kernel
// too: none, a relative floor, a large absolute one, on every case.
TEST(FusedField, MatchesPlainWithoutAffinityFloor) {
  compare_on_cases("feature_drift", {{"min_affinity", drift::ParamValue(0.0)}}, " floor 0", 1e-20);
  compare_on_cases("none", {{"min_affinity", drift::ParamValue(0.0)}}, " floor 0", 1e-20);
}
TEST(FusedField, MatchesPlainWithRelativeAndLargeAffinityFloors) {
  compare_on_cases("feature_drift",
                   {{"min_affinity", drift::ParamValue(1e-2)},
                    {"min_affinity_mode", drift::ParamValue(std::string("relative"))}},
                   " floor 1e-2 relative");
  compare_on_cases("feature_drift", {{"min_affinity", drift::ParamValue(1e-3)}},
                   " floor 1e-3 absolute");
}

// The demo's normalizer clamp (min_normalizer): the authors' 1e-12 and a
// clamp that bites on most rows (1e-2), without a floor and with one.
TEST(FusedField, MatchesPlainWithTheNormalizerClamp) {
  compare_on_cases("none",
                   {{"min_affinity", drift::ParamValue(0.0)},
                    {"min_normalizer", drift::ParamValue(1e-12)}},
                   " clamp 1e-12", 1e-20);
  compare_on_cases("feature_drift",
                   {{"min_affinity", drift::ParamValue(0.0)},
                    {"min_normalizer", drift::ParamValue(1e-2)}},
                   " clamp 1e-2", 1e-20);
  compare_on_cases("feature_drift", {{"min_normalizer", drift::ParamValue(1e-2)}},
                   " clamp 1e-2 floor 1e-6");
  // The clamp changes the field on these inputs (else the above tests nothing).
  const DriftInputs in = make_inputs(Case{"bites", 2, 10, 9, 4, 6}, 5);
  const ParamMap none = {{"min_affinity", drift::ParamValue(0.0)}};
  ParamMap clamp = none;
  clamp["min_normalizer"] = drift::ParamValue(1e-2);
  EXPECT_GT(rel_err(compute(in, "fused", "feature_drift", clamp).V,
                    compute(in, "fused", "feature_drift", none).V),
            1e-3);
}

// Thread count does not change the result (every cross-unit sum is serial). With
// B = 3 one thread runs one problem per task and two threads split each
// problem's stages: both schedules must give the same bits.
TEST(FusedField, ResultDoesNotDependOnThreadCount) {
  for (const Case& c : {Case{"threads", 3, 37, 20, 5, 33}, Case{"threads_chunks", 3, 150, 30, 4, 2},
                        Case{"threads_b1", 1, 130, 40, 0, 70}}) {
    SCOPED_TRACE(c.name);
    const DriftInputs in = make_inputs(c, 7);
    const int before = at::get_num_threads();
    at::set_num_threads(1);
    const DriftOutputs a = compute(in, "fused");
    at::set_num_threads(std::max(2, before));
    const DriftOutputs b = compute(in, "fused");
    at::set_num_threads(before);
    for (const auto& [name, t] : fields(a)) EXPECT_TRUE(torch::equal(t, fields(b).at(name))) << name;
  }
}

// Golden cases for both implementations: tests/test_golden.cpp.

// ---------------------------------------------------------------- instruction sets

// Sets DRIFT_FUSED_ISA (fused_isa.hpp) for one scope, then restores it.
class ScopedIsa {
 public:
  explicit ScopedIsa(const std::string& isa) {
    if (const char* old = std::getenv("DRIFT_FUSED_ISA")) old_ = old, had_ = true;
    setenv("DRIFT_FUSED_ISA", isa.c_str(), 1);
  }
  ~ScopedIsa() {
    if (had_) setenv("DRIFT_FUSED_ISA", old_.c_str(), 1);
    else unsetenv("DRIFT_FUSED_ISA");
  }

 private:
  std::string old_;
  bool had_ = false;
};

const std::vector<std::string> kIsas = {"v4", "v3", "default"};

// Every golden case: the fused result against the plain one (float64 within
// 1e-9; float32 within 1e-4 of plain in float64 on the same float32 inputs).
void golden_fused_vs_plain(const std::string& label) {
  auto cases = drift::test::golden_cases();
  ASSERT_TRUE(cases.ok()) << cases.status();
  ASSERT_FALSE(cases->empty());
  double worst64 = 0, worst32 = 0;
  for (const auto& path : *cases) {
    SCOPED_TRACE(path);
    auto raw = drift::field::read_field_inputs(path, torch::kFloat64);
    ASSERT_TRUE(raw.ok()) << raw.status();
    const DriftInputs in64 = *raw;
    const DriftInputs in32 = to_dtype(in64, torch::kFloat32);
    const double e64 = worst_err(compute(in64, "fused"), compute(in64, "plain"), torch::kFloat64,
                                 path + " float64");
    const double e32 = worst_err(compute(in32, "fused"),
                                 compute(to_dtype(in32, torch::kFloat64), "plain"),
                                 torch::kFloat32, path + " float32");
    EXPECT_LE(e64, 1e-9) << path << label;
    EXPECT_LE(e32, 1e-4) << path << label;
    worst64 = std::max(worst64, e64);
    worst32 = std::max(worst32, e32);
  }
  std::cout << "[golden fused vs plain" << label << "] " << cases->size()
            << " cases: max relative error float64 " << worst64 << ", float32 " << worst32 << "\n";
}

// Every copy of the fused kernel that this CPU runs, forced in turn, against
// the plain path: random shapes and regimes, and the golden cases.
TEST(FusedFieldIsa, EveryCopyTheCpuRunsMatchesPlain) {
  int ran = 0;
  for (const std::string& isa : kIsas) {
    if (!drift::laplace::fused_isa_supported(isa)) {
      std::cout << "[fused isa] " << isa << ": not supported by this CPU, not tested\n";
      continue;
    }
    SCOPED_TRACE("DRIFT_FUSED_ISA=" + isa);
    ScopedIsa forced(isa);
    EXPECT_EQ(drift::laplace::fused_isa(), isa);
    compare_on_cases("feature_drift", {}, " isa " + isa);
    compare_on_cases("none", {{"min_affinity", drift::ParamValue(0.0)},
                              {"min_normalizer", drift::ParamValue(1e-2)}},
                     " isa " + isa + " clamp 1e-2 floor 0", 1e-20);
    golden_fused_vs_plain(" isa " + isa);
    ++ran;
  }
  EXPECT_GE(ran, 1);  // "default" runs everywhere
}

// Each copy gives the same bits for any thread count (as the default choice
// does above), and the copies are really different code: with vectors of
// 16, 8 and 4 floats they add up in different orders, so on these inputs
// their float32 results differ in the last bits (all within tolerance above).
TEST(FusedFieldIsa, EachCopyIsThreadCountIndependentAndTheCopiesDiffer) {
  const DriftInputs in64 = make_inputs(Case{"isa_threads", 3, 37, 20, 5, 33}, 7);
  const DriftInputs in32 = to_dtype(in64, torch::kFloat32);
  std::map<std::string, torch::Tensor> v32;
  for (const std::string& isa : kIsas) {
    if (!drift::laplace::fused_isa_supported(isa)) continue;
    SCOPED_TRACE("DRIFT_FUSED_ISA=" + isa);
    ScopedIsa forced(isa);
    for (const DriftInputs* in : {&in64, &in32}) {
      const int before = at::get_num_threads();
      at::set_num_threads(1);
      const DriftOutputs a = compute(*in, "fused");
      at::set_num_threads(std::max(2, before));
      const DriftOutputs b = compute(*in, "fused");
      at::set_num_threads(before);
      for (const auto& [name, t] : fields(a)) EXPECT_TRUE(torch::equal(t, fields(b).at(name))) << name;
      if (in == &in32) v32[isa] = a.V;
    }
  }
  for (const auto& [i, a] : v32)
    for (const auto& [j, b] : v32)
      if (i < j) EXPECT_FALSE(torch::equal(a, b)) << i << " and " << j << " gave the same bits";
}

#if defined(__x86_64__)
// Stages E and K + G flush subnormals to zero (MXCSR FTZ + DAZ) and restore
// the caller's floating-point mode on return, in every copy.
TEST(FusedFieldIsa, CallerFloatingPointModeIsRestored) {
  const DriftInputs in = make_inputs(Case{"mxcsr", 2, 70, 9, 4, 20, {1e-3, 0.2}}, 3);
  const unsigned before = _mm_getcsr();
  ASSERT_EQ(before & 0x8040u, 0u) << "the test expects FTZ and DAZ off";
  for (const std::string& isa : kIsas) {
    if (!drift::laplace::fused_isa_supported(isa)) continue;
    ScopedIsa forced(isa);
    compute(in, "fused");
    compute(to_dtype(in, torch::kFloat32), "fused");
    EXPECT_EQ(_mm_getcsr(), before) << isa;
  }
}
#endif

// A value that names no copy, or a copy this CPU cannot run, is refused with
// one line naming the variable; auto and empty mean the default choice.
TEST(FusedFieldIsa, BadOrUnsupportedValueIsRefused) {
  const DriftInputs in = make_inputs(Case{"isa", 2, 6, 5, 2, 4}, 3);
  for (const std::string& bad : {"avx512", "V4", "x86-64-v3"}) {
    ScopedIsa forced(bad);
    try {
      compute(in, "fused");
      ADD_FAILURE() << "DRIFT_FUSED_ISA=" << bad << " was accepted";
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("DRIFT_FUSED_ISA"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  for (const std::string& isa : kIsas) {
    if (drift::laplace::fused_isa_supported(isa)) continue;
    ScopedIsa forced(isa);
    EXPECT_THROW(compute(in, "fused"), std::exception) << isa;
  }
  std::string best;
  {
    ScopedIsa forced("auto");
    best = drift::laplace::fused_isa();
    EXPECT_TRUE(drift::laplace::fused_isa_supported(best));
  }
  {
    ScopedIsa forced("");
    EXPECT_EQ(drift::laplace::fused_isa(), best);
  }
  // The plain path never reads it.
  ScopedIsa forced("bogus");
  EXPECT_NO_THROW(compute(in, "plain"));
}

// ---------------------------------------------------------------- parameter

TEST(FusedField, ImplParameterIsValidated) {
  auto& reg = drift::test::default_registry();
  using drift::ComponentKind;
  auto def = reg.validate(ComponentKind::Kernel, "laplace", {}, "test");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->get_string("impl"), "auto");  // fused on CPU tensors (test_cuda_field)
  for (const std::string ok : {"fused", "plain"}) {
    auto p = reg.validate(ComponentKind::Kernel, "laplace", {{"impl", drift::ParamValue(ok)}},
                          "test");
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_TRUE(reg.make_kernel("laplace", *p).ok());
  }
  auto bad = reg.validate(ComponentKind::Kernel, "laplace",
                          {{"impl", drift::ParamValue(std::string("bogus"))}}, "test");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("impl"), std::string::npos)
      << bad.status();
  // The factory refuses it too when handed unvalidated parameters.
  EXPECT_FALSE(reg.make_kernel("laplace", impl_params("bogus")).ok());
}

// Inputs the fused kernel does not handle (here bfloat16) go to the plain code:
// the same result, or the same refusal where LibTorch's CPU ops lack the dtype.
TEST(FusedField, UnsupportedDtypeFallsBackToPlain) {
  Case c{"bf16", 2, 6, 5, 2, 4};
  const DriftInputs in = to_dtype(make_inputs(c, 3), torch::kBFloat16);
  DriftOutputs p;
  try {
    p = compute(in, "plain");
  } catch (const std::exception& e) {
    EXPECT_ANY_THROW(compute(in, "fused")) << "plain refused bfloat16 (" << e.what() << ")";
    return;
  }
  const DriftOutputs f = compute(in, "fused");
  for (const auto& [name, t] : fields(f)) EXPECT_TRUE(torch::equal(t, fields(p).at(name))) << name;
}

}  // namespace
