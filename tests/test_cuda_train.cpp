// The training loop on a GPU: device = "cuda" / "auto" puts generator, encoder,
// real batches and the drift field on the GPU with the same noise as on the
// CPU; [train] autocast = "bf16" runs the forward passes in bf16 (on the GPU
// or, under CPU autocast, on the CPU).
//
// Without a CUDA device the GPU tests are skipped with "no CUDA device: ...";
// the tests of what happens without a GPU run everywhere.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <iostream>
#include <string>

#include "config/experiment.hpp"
#include "io/table.hpp"
#include "test_util.hpp"
#include "train/cell_file.hpp"
#include "train/trainer.hpp"

namespace {

#define REQUIRE_CUDA()                                                                  \
  do {                                                                                  \
    if (!torch::cuda::is_available())                                                   \
      GTEST_SKIP() << "no CUDA device: training on the GPU is NOT checked here (run "   \
                      "scripts/gpu/device_check.sh on a GPU machine)";                  \
  } while (0)

drift::config::ExperimentConfig make_cfg(const std::string& toml) {
  auto exp = drift::config::parse_experiment(toml, "/tmp/test_cuda_train.toml");
  EXPECT_TRUE(exp.ok()) << exp.status();
  auto cfg = drift::config::resolve_cell(*exp, 0, drift::test::default_registry());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  return *cfg;
}

// A toy cell (MLP on the bimodal 2-D toy); `extra_train` is appended to [train].
std::string toy(const std::string& device, const std::string& extra_train = "",
                bool conditional = false) {
  std::string t = R"(
[experiment]
name = "t"
seed = 11
device = ")" + device + R"("
[data]
dataset = "bimodal"
)" + std::string(conditional ? "labeled = true\n" : "") + R"(
[generator]
plugin = "mlp"
width = 32
depth = 2
)" + std::string(conditional ? "use_alpha = true\n" : "") + R"(
[train]
steps = 6
n_gen = 64
n_pos = 64
lr = 0.002
warmup = 2
eval_every = 3
)";
  if (conditional) t += "n_classes = 2\nn_unc = 8\ncfg_alpha_max = 3.0\n";
  t += extra_train + "\n[eval]\nn_samples = 128\n";
  return t;
}

struct CellRun {
  drift::train::CellOutcome outcome;
  drift::train::CellRecorder rec;
};

void run(const std::string& toml, CellRun& r) {
  auto cfg = make_cfg(toml);
  r.outcome = drift::train::train_cell(cfg, drift::test::default_registry(), r.rec);
}

double col(const drift::io::Table& t, size_t row, const std::string& name) {
  return std::get<double>(t.at(row, name));
}

// Same seed on CPU and GPU: same initial weights and the same noise, so the
// first step's drift statistics agree to float32 rounding.
TEST(CudaTrain, ToyCellRunsOnTheGpuWithTheCpuNoise) {
  REQUIRE_CUDA();
  CellRun gpu, cpu;
  run(toy("cuda"), gpu);
  run(toy("cpu"), cpu);
  ASSERT_EQ(gpu.outcome.status, "done") << gpu.outcome.error;
  ASSERT_EQ(cpu.outcome.status, "done") << cpu.outcome.error;
  EXPECT_EQ(gpu.outcome.device, "cuda:0");
  const auto& tg = gpu.rec.train_table();
  const auto& tc = cpu.rec.train_table();
  ASSERT_EQ(tg.rows(), 6u);
  for (const std::string c : {"loss", "m_tau_0.02", "m_tau_0.05", "m_tau_0.2"}) {
    const double g = col(tg, 0, c), h = col(tc, 0, c);
    EXPECT_TRUE(std::isfinite(g)) << c;
    EXPECT_NEAR(g, h, 1e-3 * std::abs(h) + 1e-6) << c << " step 1: GPU " << g << ", CPU " << h;
  }
  EXPECT_TRUE(std::isfinite(col(gpu.rec.eval_table(), gpu.rec.eval_table().rows() - 1, "mmd")));
}

TEST(CudaTrain, AutoPicksTheGpu) {
  REQUIRE_CUDA();
  CellRun r;
  run(toy("auto"), r);
  ASSERT_EQ(r.outcome.status, "done") << r.outcome.error;
  EXPECT_EQ(r.outcome.device, "cuda:0");
}

// bf16 autocast: runs, stays finite, and the float32 field sees nearly the
// same features as without autocast.
TEST(CudaTrain, Bf16AutocastRuns) {
  REQUIRE_CUDA();
  CellRun bf, fp;
  run(toy("cuda", "autocast = \"bf16\""), bf);
  run(toy("cuda"), fp);
  ASSERT_EQ(bf.outcome.status, "done") << bf.outcome.error;
  ASSERT_EQ(fp.outcome.status, "done") << fp.outcome.error;
  const double a = col(bf.rec.train_table(), 0, "m_tau_0.2");
  const double b = col(fp.rec.train_table(), 0, "m_tau_0.2");
  EXPECT_TRUE(std::isfinite(a));
  EXPECT_NEAR(a, b, 0.1 * std::abs(b)) << "bf16 " << a << " vs float32 " << b;
  EXPECT_NE(a, b) << "autocast changed nothing: is it applied?";
}

// Class-conditional with guidance: labels, alpha, negatives and their weights on the GPU.
TEST(CudaTrain, ClassConditionalWithGuidanceRunsOnTheGpu) {
  REQUIRE_CUDA();
  CellRun r;
  run(toy("cuda", "", /*conditional=*/true), r);
  ASSERT_EQ(r.outcome.status, "done") << r.outcome.error;
  EXPECT_TRUE(std::isfinite(col(r.rec.train_table(), 5, "loss")));
}

// ---------------------------------------------------------------- everywhere

// bf16 autocast on the CPU: the generator's forward pass runs in bf16 (the
// first step's statistics move, by bf16 rounding, not more), the field sees
// float32 features, and the cell trains to the end with finite values.
TEST(CudaTrainEverywhere, Bf16AutocastOnTheCpu) {
  CellRun bf, fp;
  run(toy("cpu", "autocast = \"bf16\""), bf);
  run(toy("cpu"), fp);
  ASSERT_EQ(bf.outcome.status, "done") << bf.outcome.error;
  ASSERT_EQ(fp.outcome.status, "done") << fp.outcome.error;
  EXPECT_EQ(bf.outcome.device, "cpu");
  const auto& tb = bf.rec.train_table();
  const auto& tf = fp.rec.train_table();
  ASSERT_EQ(tb.rows(), 6u);
  for (const std::string c : {"loss", "m_tau_0.2"}) {
    const double a = col(tb, 0, c), b = col(tf, 0, c);
    EXPECT_TRUE(std::isfinite(a)) << c;
    EXPECT_NEAR(a, b, 0.1 * std::abs(b)) << c << " step 1: bf16 " << a << ", float32 " << b;
  }
  EXPECT_NE(col(tb, 0, "m_tau_0.2"), col(tf, 0, "m_tau_0.2")) << "autocast changed nothing: is it applied?";
  EXPECT_TRUE(std::isfinite(col(tb, 5, "loss")));
  EXPECT_TRUE(std::isfinite(col(bf.rec.eval_table(), bf.rec.eval_table().rows() - 1, "mmd")));
}

TEST(CudaTrainEverywhere, DeviceCudaWithoutGpuFailsClearly) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device exists: nothing to refuse";
  CellRun r;
  run(toy("cuda"), r);
  EXPECT_EQ(r.outcome.status, "failed");
  EXPECT_NE(r.outcome.error.find("no CUDA device"), std::string::npos) << r.outcome.error;
}

// device = "auto" without a GPU: the cell trains on the CPU, and autocast
// applies there as it does with device = "cpu".
TEST(CudaTrainEverywhere, AutoWithoutGpuAutocastsOnTheCpu) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device exists: auto picks it";
  CellRun a, b;
  run(toy("auto", "autocast = \"bf16\""), a);
  run(toy("cpu", "autocast = \"bf16\""), b);
  ASSERT_EQ(a.outcome.status, "done") << a.outcome.error;
  EXPECT_EQ(a.outcome.device, "cpu");
  EXPECT_EQ(col(a.rec.train_table(), 5, "loss"), col(b.rec.train_table(), 5, "loss"));
}

}  // namespace
