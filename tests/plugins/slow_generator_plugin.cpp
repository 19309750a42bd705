// A generator that sleeps `sleep_ms` per training call (and may hold on to
// `alloc_mb` more memory per call): a long-running cell for the tests that
// interrupt or kill a sweep while cells are running.
#include <drift/sdk.hpp>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace {
class Slow : public drift::Generator {
 public:
  Slow(int64_t sleep_ms, int64_t alloc_mb, int64_t dim) : sleep_ms_(sleep_ms), alloc_mb_(alloc_mb) {
    w_ = register_parameter("w", torch::zeros({dim}));
  }
  torch::Tensor generate(const drift::GenerateRequest& req) override {
    if (torch::GradMode::is_enabled()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
      if (alloc_mb_ > 0) {
        held_.emplace_back(new char[alloc_mb_ << 20]);
        std::memset(held_.back().get(), 1, alloc_mb_ << 20);  // really touch it
      }
    }
    return torch::randn({req.n, w_.size(0)}, req.rng) + w_;
  }

 private:
  int64_t sleep_ms_, alloc_mb_;
  std::vector<std::unique_ptr<char[]>> held_;
  torch::Tensor w_;
};
}  // namespace

DRIFT_PLUGIN("slow_generator_test_plugin", r) {
  r.add_generator("slow", "Gaussian noise + a learnable shift, sleeping in every training call (test)",
                  {drift::ParamSpec::Int("sleep_ms", 100, "milliseconds to sleep per training call").at_least(0),
                   drift::ParamSpec::Int("alloc_mb", 0, "MiB to allocate (and keep) per training call").at_least(0)},
                  [](const drift::Params& p, const drift::GeneratorContext& ctx)
                      -> absl::StatusOr<std::shared_ptr<drift::Generator>> {
                    return std::make_shared<Slow>(p.get_int("sleep_ms"), p.get_int("alloc_mb"),
                                                  ctx.sample_shape.at(0));
                  });
}
