// A generator whose output turns NaN after `healthy_steps` calls: the training
// loop must stop the cell with status "diverged". With `escape_scale` > 0 the
// output is instead multiplied by that (finite) factor: a runaway with finite
// loss, which [train] runaway_factor must catch.
#include <drift/sdk.hpp>

#include <limits>

namespace {
class NanAfter : public drift::Generator {
 public:
  NanAfter(int64_t healthy, double escape, int64_t dim) : healthy_(healthy), escape_(escape) {
    w_ = register_parameter("w", torch::randn({dim}));
  }
  torch::Tensor generate(const drift::GenerateRequest& req) override {
    auto x = torch::randn({req.n, w_.size(0)}, req.rng) + w_;
    if (torch::GradMode::is_enabled() && ++calls_ > healthy_)
      x = x * (escape_ > 0 ? escape_ : std::numeric_limits<float>::quiet_NaN());
    return x;
  }
 private:
  int64_t healthy_, calls_ = 0;
  double escape_;
  torch::Tensor w_;
};
}  // namespace

DRIFT_PLUGIN("nan_generator_test_plugin", r) {
  r.add_generator("nan_after", "Gaussian noise + a learnable shift that turns NaN after some steps (test)",
                  {drift::ParamSpec::Int("healthy_steps", 3, "training calls before NaN").at_least(0),
                   drift::ParamSpec::Float("escape_scale", 0.0,
                                           "> 0: multiply by this instead of NaN (finite runaway)")
                       .non_negative()},
                  [](const drift::Params& p, const drift::GeneratorContext& ctx)
                      -> absl::StatusOr<std::shared_ptr<drift::Generator>> {
                    return std::make_shared<NanAfter>(p.get_int("healthy_steps"),
                                                      p.get_float("escape_scale"),
                                                      ctx.sample_shape.at(0));
                  });
}
