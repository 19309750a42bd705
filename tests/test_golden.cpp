// Every golden case (tests/golden/*.h5, and a second reference's cases when
// DRIFT_EXTRA_GOLDEN_DIR names them) through kernel "laplace" + normalizer
// "feature_drift", in float32 (1e-4 relative error) and float64 (1e-9), as
// docs/method.md §2 and tests/golden/README.md state.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "drift/field.hpp"
#include "field/field_io.hpp"
#include "io/h5.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"

namespace {
namespace fs = std::filesystem;

// The cases, failing the calling test when there are none.
std::vector<std::string> cases_or_fail() {
  auto cases = drift::test::golden_cases();
  EXPECT_TRUE(cases.ok()) << cases.status();
  return cases.ok() ? *cases : std::vector<std::string>{};
}

// ||out - ref|| / ||ref|| in float64 (absolute error where ||ref|| == 0).
double rel_err(const torch::Tensor& out, const torch::Tensor& ref) {
  auto o = out.detach().to(torch::kCPU, torch::kFloat64).reshape(-1);
  auto r = ref.to(torch::kFloat64).reshape(-1);
  const double denom = r.norm().item<double>();
  const double num = (o - r).norm().item<double>();
  return denom > 0 ? num / denom : num;
}

// Every golden case through kernel laplace (impl = "plain" or "fused") + feature_drift.
void run_golden(const std::string& impl, torch::ScalarType dtype, double tol) {
  const auto cases = cases_or_fail();
  ASSERT_FALSE(cases.empty());

  auto& reg = drift::test::default_registry();
  auto params = reg.validate(drift::ComponentKind::Kernel, "laplace", {{"impl", impl}}, "test");
  ASSERT_TRUE(params.ok()) << params.status();
  auto kernel = reg.make_kernel("laplace", *params);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  auto norm = reg.make_normalizer("feature_drift", {});
  ASSERT_TRUE(norm.ok()) << norm.status();

  double worst = 0;
  for (const auto& path : cases) {
    SCOPED_TRACE(path);
    auto raw = drift::field::read_field_inputs(path, dtype);
    ASSERT_TRUE(raw.ok()) << raw.status();
    const auto in = drift::canonicalize_drift_inputs(*raw);
    drift::DriftOutputs out;
    torch::Tensor loss;
    {
      torch::NoGradGuard ng;
      out = (*kernel)->compute(in, **norm);
      loss = drift::drift_loss(in.gen, out);
    }
    EXPECT_EQ(out.V.scalar_type(), dtype) << "the kernel must work in the input dtype";

    auto file = drift::io::H5File::open_read(path);
    ASSERT_TRUE(file.ok()) << file.status();
    const std::vector<std::pair<std::string, torch::Tensor>> got = {
        {"goal", out.goal}, {"V", out.V}, {"loss", loss}, {"scale", out.scale},
        {"loss_per_temperature", out.m_tau}};
    for (const auto& [name, t] : got) {
      auto ref = file->read_as("expected/" + name, torch::kFloat64);
      ASSERT_TRUE(ref.ok()) << ref.status();
      ASSERT_EQ(t.sizes(), ref->sizes()) << name;
      const double e = rel_err(t, *ref);
      worst = std::max(worst, e);
      EXPECT_LE(e, tol) << fs::path(path).filename().string() << ": '" << name
                        << "' relative error " << e;
    }
    EXPECT_TRUE(torch::isfinite(out.V).all().item<bool>());
  }
  std::cout << "[golden " << impl << "] " << cases.size() << " cases, "
            << (dtype == torch::kFloat32 ? "float32" : "float64")
            << " compute: max relative error " << worst << " (tolerance " << tol << ")\n";
  ::testing::Test::RecordProperty("max_relative_error", std::to_string(worst));
}

TEST(Golden, PlainFloat64Within1e9) { run_golden("plain", torch::kFloat64, 1e-9); }
TEST(Golden, PlainFloat32Within1e4) { run_golden("plain", torch::kFloat32, 1e-4); }
TEST(Golden, FusedFloat64Within1e9) { run_golden("fused", torch::kFloat64, 1e-9); }
TEST(Golden, FusedFloat32Within1e4) { run_golden("fused", torch::kFloat32, 1e-4); }

// Which references ran: the repository's cases always; a second, independent
// set only where DRIFT_EXTRA_GOLDEN_DIR names one (skipped, and said, elsewhere).
TEST(Golden, SecondReferenceCasesAreChecked) {
  const std::string extra = drift::test::extra_golden_dir();
  if (extra.empty())
    GTEST_SKIP() << "no second reference (DRIFT_EXTRA_GOLDEN_DIR unset): only tests/golden checked";
  const auto cases = cases_or_fail();
  const auto n = std::count_if(cases.begin(), cases.end(), [&](const std::string& c) {
    return c.rfind(extra, 0) == 0;
  });
  EXPECT_GT(n, 0) << extra;
  std::cout << "[golden] second reference " << extra << ": " << n << " cases checked above\n";
}

// The tool itself, end to end, on one case: its OUT.h5 must match the golden file.
TEST(Golden, DriftFieldToolMatchesGolden) {
  const auto cases = cases_or_fail();
  ASSERT_FALSE(cases.empty());
  const drift::test::ScratchDir scratch("golden-tool");
  const std::string dir = scratch.path();
  for (const auto& path : cases) {
    SCOPED_TRACE(path);
    const std::string out_path = dir + "/" + fs::path(path).filename().string();
    std::string log;
    const int rc = drift::test::run_command(std::string(DRIFT_BINARY_DIR) + "/bin/drift-field '" +
                                                path + "' '" + out_path + "' --dtype float64",
                                            &log);
    ASSERT_EQ(rc, 0) << log;
    auto out = drift::io::H5File::open_read(out_path);
    ASSERT_TRUE(out.ok()) << out.status();
    auto ref = drift::io::H5File::open_read(path);
    ASSERT_TRUE(ref.ok()) << ref.status();
    for (const std::string name : {"goal", "V", "loss", "scale", "loss_per_temperature"}) {
      auto o = out->read(name);
      ASSERT_TRUE(o.ok()) << o.status();
      EXPECT_EQ(o->scalar_type(), torch::kFloat64) << name;
      auto r = ref->read("expected/" + name);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(o->sizes(), r->sizes()) << name;
      EXPECT_LE(rel_err(*o, *r), 1e-9) << name;
    }
  }
}

}  // namespace
