// The default drift field (kernel "laplace" + normalizer "feature_drift",
// float32, temperatures {0.02, 0.05, 0.2}) on three workloads [B, Cg, Cp, Cn, S]:
//   W1 [1, 256, 256, 0, 2]     (toy 2-D training step)
//   W2 [256, 64, 64, 16, 128]  (many small problems)
//   W3 [16, 64, 64, 16, 1024]  (wide features)
// For each: impl = "plain", impl = "fused", and the GEMM floor (the two batched
// products of the same shapes through the same BLAS: [B,Cg,S]x[B,S,T] and
// [B,Cg,T]x[B,T,S] with torch::bmm). bench/compare_drift_field.sh runs this and
// the same math in PyTorch eager and torch.compile side by side.
//
// The fused kernel runs the copy for the best instruction set this CPU has, or
// the one DRIFT_FUSED_ISA=v4|v3|default forces (plugins/kernels/laplace/
// fused_isa.hpp); the output names it (context "fused_isa", and the label of
// the fused rows) with the CPU model ("cpu_model").
//
// Peak memory: `bench_drift_field --peak_rss=IMPL:W` (IMPL plain|fused, W W1|W2|W3)
// runs one call in this process and prints the growth of the maximum resident
// set size over the state before the call (run each in its own process).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fstream>

#include "../plugins/kernels/laplace/fused_isa.hpp"
#include "drift/field.hpp"
#include "runtime/registry.hpp"
#include "runtime/threads.hpp"

namespace {

struct Workload {
  const char* name;
  int64_t B, Cg, Cp, Cn, S;
};
const Workload kWorkloads[] = {
    {"W1", 1, 256, 256, 0, 2},
    {"W2", 256, 64, 64, 16, 128},
    {"W3", 16, 64, 64, 16, 1024},
};

drift::DriftInputs make_inputs(const Workload& w) {
  torch::manual_seed(0);
  drift::DriftInputs in;
  in.gen = torch::randn({w.B, w.Cg, w.S});
  in.pos = torch::randn({w.B, w.Cp, w.S}) + 0.5;
  in.neg = torch::randn({w.B, w.Cn, w.S}) - 0.5;
  in.temperatures = {0.02, 0.05, 0.2};
  return drift::canonicalize_drift_inputs(in);
}

struct Components {
  drift::runtime::Registry reg;
  std::unique_ptr<drift::DriftKernel> plain, fused;
  std::unique_ptr<drift::Normalizer> norm;
  std::string error;
  Components() {
    if (auto st = reg.load_default_paths(); !st.ok()) {
      error = std::string(st.message());
      return;
    }
    auto p = reg.validate(drift::ComponentKind::Kernel, "laplace",
                          {{"impl", drift::ParamValue(std::string("plain"))}}, "bench");
    auto f = reg.validate(drift::ComponentKind::Kernel, "laplace",
                          {{"impl", drift::ParamValue(std::string("fused"))}}, "bench");
    if (!p.ok() || !f.ok()) {
      error = "laplace has no impl parameter";
      return;
    }
    auto kp = reg.make_kernel("laplace", *p);
    auto kf = reg.make_kernel("laplace", *f);
    auto n = reg.make_normalizer("feature_drift", {});
    if (!kp.ok() || !kf.ok() || !n.ok()) {
      error = "cannot make laplace / feature_drift";
      return;
    }
    plain = std::move(*kp);
    fused = std::move(*kf);
    norm = std::move(*n);
  }
};

Components& components() {
  static Components c;
  return c;
}

// The "model name" line of /proc/cpuinfo (lscpu's Model name).
std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "unknown";
}

void BM_Field(benchmark::State& state, const Workload w, bool fused) {
  auto& c = components();
  if (!c.error.empty()) {
    state.SkipWithError(c.error.c_str());
    return;
  }
  const auto in = make_inputs(w);
  const drift::DriftKernel& k = fused ? *c.fused : *c.plain;
  torch::NoGradGuard ng;
  if (fused) state.SetLabel("isa=" + drift::laplace::fused_isa());
  for (auto _ : state) {
    auto out = k.compute(in, *c.norm);
    benchmark::DoNotOptimize(out.V.data_ptr());
  }
}

void BM_GemmFloor(benchmark::State& state, const Workload w) {
  torch::manual_seed(0);
  const int64_t T = w.Cg + w.Cn + w.Cp;
  const auto a = torch::randn({w.B, w.Cg, w.S});
  const auto yt = torch::randn({w.B, w.S, T});
  const auto k = torch::randn({w.B, w.Cg, T});
  const auto y = torch::randn({w.B, T, w.S});
  torch::NoGradGuard ng;
  for (auto _ : state) {
    auto d = torch::bmm(a, yt);
    auto f = torch::bmm(k, y);
    benchmark::DoNotOptimize(d.data_ptr());
    benchmark::DoNotOptimize(f.data_ptr());
  }
}

long max_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

int peak_rss(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string impl = spec.substr(0, colon), wname = spec.substr(colon + 1);
  auto& c = components();
  if (!c.error.empty()) {
    std::fprintf(stderr, "%s\n", c.error.c_str());
    return 1;
  }
  for (const auto& w : kWorkloads) {
    if (wname != w.name) continue;
    const auto in = make_inputs(w);
    torch::NoGradGuard ng;
    const long before = max_rss_kb();
    auto out = (impl == "fused" ? *c.fused : *c.plain).compute(in, *c.norm);
    const long after = max_rss_kb();
    std::printf("peak_rss_growth_kb %s %s %ld%s\n", impl.c_str(), w.name, after - before,
                impl == "fused" ? (" (isa " + drift::laplace::fused_isa() + ")").c_str() : "");
    return 0;
  }
  std::fprintf(stderr, "unknown workload %s\n", wname.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_threads();
  std::string isa;
  try {
    isa = drift::laplace::fused_isa();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  benchmark::AddCustomContext("fused_isa", isa);
  benchmark::AddCustomContext("cpu_model", cpu_model());
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--peak_rss=", 11) == 0) return peak_rss(argv[i] + 11);
  for (const auto& w : kWorkloads) {
    const std::string n = w.name;
    benchmark::RegisterBenchmark(("drift_field/" + n + "/plain").c_str(), BM_Field, w, false)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("drift_field/" + n + "/fused").c_str(), BM_Field, w, true)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("drift_field/" + n + "/gemm_floor").c_str(), BM_GemmFloor, w)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
