// Kernel "laplace" impl = "cuda" (plugins/kernels/laplace/laplace_cuda.cu)
// against the plain LibTorch reference, on fresh random inputs of many shapes
// and regimes, with every buffer poisoned, and against every golden case.
//
// Without a CUDA device every GPU test is skipped with "no CUDA device: ...".
// The tests at the bottom (impl selection, the refusal without CUDA) run
// everywhere.
//
// Tolerances (relative, ||a - b|| / ||b||) as for the fused CPU kernel:
// float64 1e-9; float32 1e-4 against the plain result computed in float64 from
// the same float32 inputs (the error the float32 CUDA pipeline itself adds).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "drift/field.hpp"
#include "field/field_io.hpp"
#include "io/h5.hpp"
#include "field_cases.hpp"
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
using drift::test::to;

#define REQUIRE_CUDA()                                                                   \
  do {                                                                                   \
    if (!torch::cuda::is_available())                                                    \
      GTEST_SKIP() << "no CUDA device: the CUDA drift field is NOT checked here (run "   \
                      "scripts/gpu/device_check.sh on a GPU machine)";                   \
    if (!cuda_kernel_built())                                                            \
      GTEST_SKIP() << "no CUDA kernel in this build (DRIFT_WITH_CUDA=OFF): NOT checked"; \
  } while (0)

bool cuda_kernel_built() {
  return drift::test::default_registry().make_kernel("laplace", impl_params("cuda")).ok();
}

std::vector<Case> cases() {
  std::vector<Case> c = {
      {"small", 2, 5, 4, 3, 3},
      {"no_neg", 3, 7, 6, 0, 4},
      {"cg1", 2, 1, 5, 2, 3},
      {"cg2", 2, 2, 3, 0, 2},
      {"cg1_cp1_s1", 1, 1, 1, 0, 1},
      {"b1_w1", 1, 256, 256, 0, 2},
      {"s1", 4, 9, 8, 3, 1},
      {"s2048", 2, 9, 7, 3, 2048},
      {"s2048_b3_tiles", 3, 40, 33, 5, 2048},
      {"w2_like", 64, 64, 64, 16, 128},
      {"w3_like", 4, 64, 64, 16, 1024},
      {"odd_sizes", 3, 13, 11, 7, 37},
      {"tile_edges", 2, 33, 31, 1, 33},
      {"many_problems", 700, 5, 6, 2, 3},
      {"single_temp", 2, 10, 9, 4, 8, {0.05}},
      {"tau_1e-3", 2, 12, 10, 3, 6, {1e-3}},
      {"many_temps", 2, 11, 9, 3, 5, {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0}},
  };
  Case k;
  k = {"ones", 3, 10, 9, 4, 6}; k.weights = Case::kOnes; c.push_back(k);
  k = {"some_zero_weights", 3, 10, 9, 4, 6}; k.weights = Case::kSomeZero; c.push_back(k);
  k = {"collapsed", 2, 16, 12, 4, 3}; k.collapsed = true; c.push_back(k);
  k = {"collapsed_s64", 1, 32, 8, 0, 64}; k.collapsed = true; c.push_back(k);
  k = {"far_apart", 2, 6, 5, 3, 4}; k.far_apart = true; c.push_back(k);
  k = {"far_apart_tau_1e-3", 2, 6, 5, 3, 4, {1e-3}}; k.far_apart = true; c.push_back(k);
  k = {"coords_1e-3", 2, 10, 9, 4, 6}; k.coord = 1e-3; c.push_back(k);
  k = {"coords_1e3", 2, 10, 9, 4, 6}; k.coord = 1e3; c.push_back(k);
  k = {"offset_1e3_s256", 2, 12, 12, 0, 256}; k.offset = 1e3; c.push_back(k);
  return c;
}

// Fresh inputs on every run (the seed comes from std::random_device, printed on failure).
uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

double worst_err(const DriftOutputs& got, const DriftOutputs& ref, torch::ScalarType dt,
                 const std::string& where) {
  double worst = 0;
  const auto g = fields(got), r = fields(ref);
  for (const auto& [name, t] : g) {
    EXPECT_EQ(t.scalar_type(), dt) << where << " " << name;
    EXPECT_TRUE(t.is_cuda()) << where << " " << name << " must stay on the GPU";
    EXPECT_EQ(t.sizes(), r.at(name).sizes()) << where << " " << name;
    const double e = rel_err(t, r.at(name));
    EXPECT_FALSE(std::isnan(e)) << where << " " << name;
    worst = std::max(worst, e);
  }
  return worst;
}

// Every buffer of the CUDA implementation filled with NaN before the kernels
// run (laplace_cuda.cpp honours DRIFT_LAPLACE_CUDA_POISON): an element that no
// kernel writes shows up as a NaN in the outputs.
struct Poison {
  Poison() { setenv("DRIFT_LAPLACE_CUDA_POISON", "1", 1); }
  ~Poison() { unsetenv("DRIFT_LAPLACE_CUDA_POISON"); }
};

void compare_on_cases(const std::string& normalizer,
                      const std::map<std::string, drift::ParamValue>& kp = {}) {
  const torch::Device gpu(torch::kCUDA, 0);
  const Poison poison;
  double worst64 = 0, worst32 = 0;
  for (const Case& c : cases()) {
    const uint64_t seed = fresh_seed();
    SCOPED_TRACE(c.name + " seed " + std::to_string(seed));
    const DriftInputs in64 = make_inputs(c, seed);
    const DriftInputs in32 = to(in64, torch::kCPU, torch::kFloat32);

    const DriftOutputs g64 = compute(to(in64, gpu, torch::kFloat64), "cuda", normalizer, kp);
    const DriftOutputs p64 = compute(in64, "plain", normalizer, kp);
    ASSERT_TRUE(all_finite(g64)) << c.name << " float64";
    const double e64 = worst_err(g64, p64, torch::kFloat64, c.name + " float64");
    EXPECT_LE(e64, 1e-9) << c.name << " float64";

    const DriftOutputs g32 = compute(to(in32, gpu, torch::kFloat32), "cuda", normalizer, kp);
    const DriftOutputs p32_64 = compute(to(in32, torch::kCPU, torch::kFloat64), "plain", normalizer, kp);
    ASSERT_TRUE(all_finite(g32)) << c.name << " float32";
    const double e32 = worst_err(g32, p32_64, torch::kFloat32, c.name + " float32");
    EXPECT_LE(e32, 1e-4) << c.name << " float32 cuda vs exact";
    std::cout << "[cuda " << normalizer << "] " << c.name << ": f64 " << e64 << "  f32 " << e32
              << "\n";
    worst64 = std::max(worst64, e64);
    worst32 = std::max(worst32, e32);
  }
  std::cout << "[cuda " << normalizer << "] " << cases().size()
            << " cases: max relative error float64 " << worst64 << ", float32 " << worst32
            << "\n";
  ::testing::Test::RecordProperty("max_relative_error_f64", std::to_string(worst64));
  ::testing::Test::RecordProperty("max_relative_error_f32", std::to_string(worst32));
}

TEST(CudaField, MatchesPlainOnRandomShapesFeatureDrift) {
  REQUIRE_CUDA();
  compare_on_cases("feature_drift");
}
TEST(CudaField, MatchesPlainOnRandomShapesNoNormalizer) {
  REQUIRE_CUDA();
  compare_on_cases("none");
}
// The affinity floor as a parameter of the CUDA kernel (drift/affinity.hpp).
TEST(CudaField, MatchesPlainWithoutAffinityFloorAndWithARelativeOne) {
  REQUIRE_CUDA();
  compare_on_cases("feature_drift", {{"min_affinity", drift::ParamValue(0.0)}});
  compare_on_cases("feature_drift",
                   {{"min_affinity", drift::ParamValue(1e-2)},
                    {"min_affinity_mode", drift::ParamValue(std::string("relative"))}});
}

// Same inputs, same bits: every cross-thread sum is a fixed tree.
TEST(CudaField, Deterministic) {
  REQUIRE_CUDA();
  Case c{"det", 5, 37, 20, 5, 300};
  const DriftInputs in = to(make_inputs(c, fresh_seed()), torch::kCUDA, torch::kFloat32);
  const DriftOutputs a = compute(in, "cuda");
  const DriftOutputs b = compute(in, "cuda");
  for (const auto& [name, t] : fields(a)) EXPECT_TRUE(torch::equal(t, fields(b).at(name))) << name;
}

// "auto" on CUDA tensors is the CUDA kernel; non-contiguous inputs are accepted.
TEST(CudaField, AutoUsesCudaAndNonContiguousInputsWork) {
  REQUIRE_CUDA();
  Case c{"auto", 3, 12, 10, 4, 9};
  const DriftInputs in = to(make_inputs(c, fresh_seed()), torch::kCUDA, torch::kFloat32);
  const DriftOutputs a = compute(in, "cuda");
  const DriftOutputs b = compute(in, "auto");
  for (const auto& [name, t] : fields(a)) EXPECT_TRUE(torch::equal(t, fields(b).at(name))) << name;

  DriftInputs nc = in;  // same values, transposed storage
  nc.gen = in.gen.transpose(1, 2).contiguous().transpose(1, 2);
  nc.pos = in.pos.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(nc.gen.is_contiguous());
  const DriftOutputs d = compute(nc, "cuda");
  for (const auto& [name, t] : fields(a)) EXPECT_TRUE(torch::equal(t, fields(d).at(name))) << name;
}

// A common offset of 1e3 leaves the field unchanged (centring per problem).
TEST(CudaField, TranslationInvariant) {
  REQUIRE_CUDA();
  Case c{"shift", 2, 20, 18, 4, 64};
  const DriftInputs in = to(make_inputs(c, fresh_seed()), torch::kCUDA, torch::kFloat32);
  DriftInputs shifted = in;
  shifted.gen = in.gen + 1e3;
  shifted.pos = in.pos + 1e3;
  shifted.neg = in.neg + 1e3;
  const DriftOutputs a = compute(in, "cuda");
  const DriftOutputs b = compute(shifted, "cuda");
  EXPECT_LE(rel_err(b.V, a.V), 1e-3);
  EXPECT_LE(rel_err(b.m_tau, a.m_tau), 1e-3);
}

// Golden cases (tests/golden, drift::test::golden_cases) through impl = "cuda",
// float32 and float64.
void run_golden(torch::ScalarType dtype, double tol) {
  auto cases = drift::test::golden_cases();
  ASSERT_TRUE(cases.ok()) << cases.status();
  const std::vector<std::string>& paths = *cases;
  const Poison poison;
  double worst = 0;
  for (const auto& path : paths) {
    SCOPED_TRACE(path);
    auto raw = drift::field::read_field_inputs(path, dtype);
    ASSERT_TRUE(raw.ok()) << raw.status();
    const DriftInputs in = drift::canonicalize_drift_inputs(to(*raw, torch::kCUDA, dtype));
    const DriftOutputs out = compute(in, "cuda");
    torch::Tensor loss;
    {
      torch::NoGradGuard ng;
      loss = drift::drift_loss(in.gen, out);
    }
    auto file = drift::io::H5File::open_read(path);
    ASSERT_TRUE(file.ok()) << file.status();
    const std::vector<std::pair<std::string, torch::Tensor>> got = {
        {"goal", out.goal}, {"V", out.V}, {"loss", loss}, {"scale", out.scale},
        {"loss_per_temperature", out.m_tau}};
    for (const auto& [name, t] : got) {
      auto ref = file->read_as("expected/" + name, torch::kFloat64);
      ASSERT_TRUE(ref.ok()) << ref.status();
      ASSERT_EQ(t.sizes(), ref->sizes()) << name;
      EXPECT_TRUE(t.is_cuda()) << name;
      const double e = rel_err(t, *ref);
      worst = std::max(worst, e);
      EXPECT_LE(e, tol) << std::filesystem::path(path).filename().string() << ": '" << name
                        << "' relative error " << e;
    }
  }
  std::cout << "[golden cuda] " << paths.size() << " cases, "
            << (dtype == torch::kFloat32 ? "float32" : "float64") << ": max relative error "
            << worst << " (tolerance " << tol << ")\n";
}

TEST(CudaField, GoldenFloat32Within1e4) {
  REQUIRE_CUDA();
  run_golden(torch::kFloat32, 1e-4);
}
TEST(CudaField, GoldenFloat64Within1e9) {
  REQUIRE_CUDA();
  run_golden(torch::kFloat64, 1e-9);
}

// ---------------------------------------------------------------- everywhere

// Without a CUDA kernel in the build, impl = "cuda" is refused when the kernel
// is made, naming the build option; with one, it refuses CPU tensors at compute.
TEST(CudaFieldEverywhere, CudaImplIsRefusedClearlyWhereItCannotRun) {
  auto& reg = drift::test::default_registry();
  auto k = reg.make_kernel("laplace", impl_params("cuda"));
  if (!k.ok()) {
    EXPECT_NE(std::string(k.status().message()).find("DRIFT_WITH_CUDA"), std::string::npos)
        << k.status();
    std::cout << "[cuda] this build has no CUDA kernel: " << k.status().message() << "\n";
    return;
  }
  std::cout << "[cuda] this build has the CUDA kernel (DRIFT_WITH_CUDA=ON)\n";
  Case c{"cpu", 2, 4, 4, 0, 3};
  auto n = reg.make_normalizer("feature_drift", {});
  ASSERT_TRUE(n.ok());
  const auto in = drift::canonicalize_drift_inputs(make_inputs(c, 1));
  try {
    (*k)->compute(in, **n);
    FAIL() << "impl = \"cuda\" accepted CPU tensors";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("impl = \"cuda\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected a CUDA device"), std::string::npos) << msg;
  }
}

// The default ("auto") on CPU tensors is the fused CPU kernel, bit for bit.
TEST(CudaFieldEverywhere, AutoOnCpuIsFused) {
  auto& reg = drift::test::default_registry();
  auto def = reg.validate(drift::ComponentKind::Kernel, "laplace", {}, "test");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(def->get_string("impl"), "auto");
  Case c{"auto_cpu", 3, 9, 8, 2, 5};
  const DriftInputs in = to(make_inputs(c, fresh_seed()), torch::kCPU, torch::kFloat32);
  const DriftOutputs a = compute(in, "auto");
  const DriftOutputs f = compute(in, "fused");
  for (const auto& [name, t] : fields(a)) EXPECT_TRUE(torch::equal(t, fields(f).at(name))) << name;
}

}  // namespace
