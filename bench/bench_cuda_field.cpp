// The default drift field on a CUDA GPU (kernel "laplace" + normalizer
// "feature_drift", float32, temperatures {0.02, 0.05, 0.2}) (docs/guide/running.md §8, GPU):
//   W2_1024 [1024, 64, 64, 16, 128]  (W2 of bench_drift_field with B = 1024)
//   W2      [256, 64, 64, 16, 128]
//   W3      [16, 64, 64, 16, 1024]
// For each: impl = "cuda" (laplace_cuda.cu), impl = "plain" (the LibTorch
// reference, on the GPU) and the GEMM floor (the two batched products of the
// same shapes, [B,Cg,S]x[B,S,T] and [B,n*Cg,T]x[B,T,S], cuBLAS fp32).
//
// Timing: each benchmark iteration is kCalls calls followed by one device
// synchronisation (manual time = wall time / kCalls, so the launch queue stays
// full and one sync is amortised); inputs rotate over kSets sets so that W3
// (9 MB) is not served from L2. Counters: flop and bytes per call (the
// minimum: inputs read once, V and goal written once) for the roofline in
// bench/py/cuda_field_report.py, which also times PyTorch eager and
// torch.compile of the same math and prints the comparison.
//
// Without a CUDA device (or without the CUDA kernel) it says so and exits 0.
#include <benchmark/benchmark.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "drift/field.hpp"
#include "runtime/registry.hpp"

namespace {

struct Workload {
  const char* name;
  int64_t B, Cg, Cp, Cn, S;
};
const Workload kWorkloads[] = {
    {"W2_1024", 1024, 64, 64, 16, 128},
    {"W2", 256, 64, 64, 16, 128},
    {"W3", 16, 64, 64, 16, 1024},
};
constexpr int kCalls = 10;
constexpr int kSets = 4;
const std::vector<double> kTemps = {0.02, 0.05, 0.2};

std::vector<drift::DriftInputs> make_inputs(const Workload& w) {
  torch::manual_seed(0);
  std::vector<drift::DriftInputs> sets;
  const auto o = torch::TensorOptions().device(torch::kCUDA);
  for (int i = 0; i < kSets; ++i) {
    drift::DriftInputs in;
    in.gen = torch::randn({w.B, w.Cg, w.S}, o);
    in.pos = torch::randn({w.B, w.Cp, w.S}, o) + 0.5;
    in.neg = torch::randn({w.B, w.Cn, w.S}, o) - 0.5;
    in.temperatures = kTemps;
    sets.push_back(drift::canonicalize_drift_inputs(in));
  }
  return sets;
}

double flop(const Workload& w) {  // distances (sub + fma) and K @ Y per temperature
  const double T = static_cast<double>(w.Cg + w.Cn + w.Cp);
  const double n = static_cast<double>(kTemps.size());
  return 3.0 * w.B * w.Cg * T * w.S + 2.0 * n * w.B * w.Cg * T * w.S;
}
double bytes(const Workload& w) {  // inputs once, V and goal once (float32)
  return 4.0 * (w.B * (w.Cg + w.Cn + w.Cp) * w.S + 2.0 * w.B * w.Cg * w.S);
}

struct Components {
  drift::runtime::Registry reg;
  std::unique_ptr<drift::DriftKernel> cuda, plain;
  std::unique_ptr<drift::Normalizer> norm;
  std::string error;
  Components() {
    if (auto st = reg.load_default_paths(); !st.ok()) {
      error = std::string(st.message());
      return;
    }
    auto make = [&](const char* impl) -> std::unique_ptr<drift::DriftKernel> {
      auto p = reg.validate(drift::ComponentKind::Kernel, "laplace",
                            {{"impl", drift::ParamValue(std::string(impl))}}, "bench");
      if (!p.ok()) {
        error = std::string(p.status().message());
        return nullptr;
      }
      auto k = reg.make_kernel("laplace", *p);
      if (!k.ok()) {
        error = std::string(k.status().message());
        return nullptr;
      }
      return std::move(*k);
    };
    cuda = make("cuda");
    plain = make("plain");
    auto n = reg.make_normalizer("feature_drift", {});
    if (!n.ok()) error = std::string(n.status().message());
    else norm = std::move(*n);
  }
};

Components& components() {
  static Components c;
  return c;
}

template <typename Fn>
void timed(benchmark::State& state, const Workload& w, Fn&& call) {
  call(0);  // warm-up: allocator, cuBLAS handle, module load
  torch::cuda::synchronize();
  int it = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < kCalls; ++c) call((it * kCalls + c) % kSets);
    torch::cuda::synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s / kCalls);
    ++it;
  }
  state.counters["flop"] = flop(w);
  state.counters["bytes"] = bytes(w);
}

void BM_Field(benchmark::State& state, const Workload w, bool cuda) {
  auto& c = components();
  if (!c.error.empty()) {
    state.SkipWithError(c.error.c_str());
    return;
  }
  const auto sets = make_inputs(w);
  const drift::DriftKernel& k = cuda ? *c.cuda : *c.plain;
  torch::NoGradGuard ng;
  timed(state, w, [&](int i) {
    auto out = k.compute(sets[i], *c.norm);
    benchmark::DoNotOptimize(out.V.data_ptr());
  });
}

void BM_GemmFloor(benchmark::State& state, const Workload w) {
  torch::manual_seed(0);
  const int64_t T = w.Cg + w.Cn + w.Cp, n = static_cast<int64_t>(kTemps.size());
  const auto o = torch::TensorOptions().device(torch::kCUDA);
  std::vector<std::vector<torch::Tensor>> sets;
  for (int i = 0; i < kSets; ++i)
    sets.push_back({torch::randn({w.B, w.Cg, w.S}, o), torch::randn({w.B, w.S, T}, o),
                    torch::randn({w.B, n * w.Cg, T}, o), torch::randn({w.B, T, w.S}, o)});
  torch::NoGradGuard ng;
  timed(state, w, [&](int i) {
    auto d = torch::bmm(sets[i][0], sets[i][1]);
    auto f = torch::bmm(sets[i][2], sets[i][3]);
    benchmark::DoNotOptimize(d.data_ptr());
    benchmark::DoNotOptimize(f.data_ptr());
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (!torch::cuda::is_available()) {
    std::printf("bench_cuda_field: no CUDA device: nothing measured\n");
    return 0;
  }
  if (!components().error.empty()) {
    std::printf("bench_cuda_field: %s: nothing measured\n", components().error.c_str());
    return 0;
  }
  for (const auto& w : kWorkloads) {
    const std::string n = w.name;
    benchmark::RegisterBenchmark(("cuda_field/" + n + "/cuda").c_str(), BM_Field, w, true)
        ->Unit(benchmark::kMillisecond)->UseManualTime();
    benchmark::RegisterBenchmark(("cuda_field/" + n + "/plain").c_str(), BM_Field, w, false)
        ->Unit(benchmark::kMillisecond)->UseManualTime();
    benchmark::RegisterBenchmark(("cuda_field/" + n + "/gemm_floor").c_str(), BM_GemmFloor, w)
        ->Unit(benchmark::kMillisecond)->UseManualTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
