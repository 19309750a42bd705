// A generator that kills its own process after `healthy_steps` training calls:
// abort() (SIGABRT), raise(SIGSEGV), raise(SIGKILL) (what the OOM killer
// sends) or exit(3); or that throws (mode "throw": the cell process lives and
// records the failure itself, with what it logged so far). The sweep runner
// must record the cell as failed, with the signal or the error and the tail of
// its stderr, and go on with the other cells.
#include <drift/sdk.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace {
class CrashAfter : public drift::Generator {
 public:
  CrashAfter(int64_t healthy, std::string mode, int64_t dim) : healthy_(healthy), mode_(std::move(mode)) {
    w_ = register_parameter("w", torch::zeros({dim}));
  }
  torch::Tensor generate(const drift::GenerateRequest& req) override {
    if (torch::GradMode::is_enabled() && ++calls_ > healthy_) {
      std::fprintf(stderr, "crash_after: training call %lld, crashing with %s\n",
                   static_cast<long long>(calls_), mode_.c_str());
      std::fflush(stderr);
      if (mode_ == "abort") std::abort();
      if (mode_ == "segv") std::raise(SIGSEGV);
      if (mode_ == "kill") std::raise(SIGKILL);
      if (mode_ == "throw")
        throw std::runtime_error("crash_after: training call " + std::to_string(calls_) + " throws");
      std::exit(3);
    }
    return torch::randn({req.n, w_.size(0)}, req.rng) + w_;
  }

 private:
  int64_t healthy_, calls_ = 0;
  std::string mode_;
  torch::Tensor w_;
};
}  // namespace

DRIFT_PLUGIN("crash_generator_test_plugin", r) {
  r.add_generator("crash_after", "Gaussian noise + a learnable shift that kills its process after some steps (test)",
                  {drift::ParamSpec::Int("healthy_steps", 3, "training calls before the crash").at_least(0),
                   drift::ParamSpec::String("mode", "abort", "how to die: abort, segv, kill (SIGKILL), exit (status 3) or throw")
                       .one_of({"abort", "segv", "kill", "exit", "throw"})},
                  [](const drift::Params& p, const drift::GeneratorContext& ctx)
                      -> absl::StatusOr<std::shared_ptr<drift::Generator>> {
                    return std::make_shared<CrashAfter>(p.get_int("healthy_steps"), p.get_string("mode"),
                                                        ctx.sample_shape.at(0));
                  });
}
