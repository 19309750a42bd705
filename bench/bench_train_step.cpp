// Steps per second of the toy training step: MLP 3x256 (noise 32), 256
// generated, 256 positives (bimodal), 3 temperatures, laplace + feature_drift,
// AdamW, grad clip, EMA; with the fused (default) and the plain drift field. bench/compare_train_step.sh runs this and the same
// step in PyTorch eager (bench/py/train_step.py) in one go and prints the ratio.
#include <benchmark/benchmark.h>

#include "config/experiment.hpp"
#include "runtime/registry.hpp"
#include "runtime/threads.hpp"
#include "train/trainer.hpp"

namespace {

class NullSink : public drift::train::CellSink {
 public:
  void on_step(const drift::train::StepLog&) override {}
  void on_eval(const drift::train::EvalLog&) override {}
  void on_samples(int64_t, const torch::Tensor&, const torch::Tensor&) override {}
  void on_real_samples(const torch::Tensor&) override {}
};

constexpr int kSteps = 100;

void ToyMlpTrainStep(benchmark::State& state, const std::string& kernel_section) {
  drift::runtime::Registry reg;
  if (auto st = reg.load_default_paths(); !st.ok()) {
    state.SkipWithError(std::string(st.message()).c_str());
    return;
  }
  auto exp = drift::config::parse_experiment(kernel_section + R"(
[data]
dataset = "bimodal"
[generator]
plugin = "mlp"
noise_dim = 32
width = 256
depth = 3
[train]
steps = 100
n_gen = 256
n_pos = 256
eval_every = 0
sample_every = 0
[eval]
n_samples = 16
metrics = []
)", "bench.toml");
  if (!exp.ok()) {
    state.SkipWithError(std::string(exp.status().message()).c_str());
    return;
  }
  if (auto st = drift::config::load_experiment_plugins(*exp, reg); !st.ok()) {
    state.SkipWithError(std::string(st.message()).c_str());
    return;
  }
  auto cfg = drift::config::resolve_cell(*exp, 0, reg);
  if (!cfg.ok()) {
    state.SkipWithError(std::string(cfg.status().message()).c_str());
    return;
  }
  NullSink sink;
  for (auto _ : state) {
    auto o = drift::train::train_cell(*cfg, reg, sink);
    if (o.status != "done") state.SkipWithError(o.error.c_str());
  }
  state.counters["steps_per_s"] =
      benchmark::Counter(static_cast<double>(kSteps) * state.iterations(), benchmark::Counter::kIsRate);
}
void BM_ToyMlpTrainStep(benchmark::State& state) {
  ToyMlpTrainStep(state, "[kernel]\nimpl = \"fused\"\n");
}
void BM_ToyMlpTrainStepPlainField(benchmark::State& state) {
  ToyMlpTrainStep(state, "[kernel]\nimpl = \"plain\"\n");
}
// The same step with a drift kernel that costs nothing (the tests' toy_zero
// kernel): what the generator, optimiser and data cost on their own.
void BM_ToyMlpTrainStepZeroField(benchmark::State& state) {
  ToyMlpTrainStep(state, "[plugins]\npaths = [\"" DRIFT_BINARY_DIR
                         "/test_plugins/good_toy_plugin.so\"]\n[kernel]\nplugin = \"toy_zero\"\n");
}
BENCHMARK(BM_ToyMlpTrainStep)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_ToyMlpTrainStepPlainField)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_ToyMlpTrainStepZeroField)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_threads();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
