// `particles`: q is a set of `count` learnable points (the paper's Fig. 3 toy).
// Initialised as a Gaussian at `center` with std `scale`, or collapsed onto the
// single point `center` (init = "point"; identical particles receive identical
// drifts, so they can only separate if they start apart: use a small `scale`
// for "collapsed on one mode").
#include <drift/sdk.hpp>

#include "absl/strings/str_cat.h"

namespace {

using torch::Tensor;

class Particles : public drift::Generator {
 public:
  Particles(int64_t count, Tensor init) : count_(count) {
    points_ = register_parameter("points", init);
  }
  Tensor generate(const drift::GenerateRequest& req) override {
    TORCH_CHECK(req.n <= count_, "particles: asked for ", req.n, " samples but there are only count = ",
                count_, " particles (set generator.count >= train.n_gen and eval.n_samples)");
    return drift::take_rows(points_.slice(0, 0, req.n), req).to(req.device);
  }

 private:
  int64_t count_;
  Tensor points_;
};

absl::StatusOr<std::shared_ptr<drift::Generator>> make(const drift::Params& p,
                                                       const drift::GeneratorContext& ctx) {
  if (ctx.n_classes > 0)
    return absl::InvalidArgumentError(
        "particles: class-conditional data is not supported (a particle set has no input)");
  if (!ctx.cond_shape.empty())
    return absl::InvalidArgumentError(
        "particles: data with conditions is not supported (a particle set has no input; use mlp)");
  const int64_t count = p.get_int("count");
  std::vector<int64_t> shape{count};
  shape.insert(shape.end(), ctx.sample_shape.begin(), ctx.sample_shape.end());
  const int64_t dim = torch::empty(ctx.sample_shape).numel();
  auto center_list = p.get_float_list("center");
  Tensor center = torch::zeros({dim});
  if (!center_list.empty()) {
    if (static_cast<int64_t>(center_list.size()) != dim)
      return absl::InvalidArgumentError(absl::StrCat(
          "particles: 'center' has ", center_list.size(), " values, expected ", dim,
          " (one per data dimension)"));
    center = torch::tensor(center_list, torch::kFloat64).to(torch::kFloat32);
  }
  center = center.view(ctx.sample_shape);
  auto gen = at::detail::createCPUGenerator(ctx.seed);
  Tensor init = center.unsqueeze(0).expand(shape).clone();
  if (p.get_string("init") == "gaussian")
    init = init + p.get_float("scale") * torch::randn(shape, gen, torch::kFloat32);
  return std::make_shared<Particles>(count, init);
}

}  // namespace

DRIFT_PLUGIN("generator_particles", r) {
  using drift::ParamSpec;
  r.add_generator(
      "particles", "a set of learnable points moved directly by the drift (Fig. 3 toy)",
      {ParamSpec::Int("count", 256, "number of particles (>= train.n_gen and eval.n_samples)").at_least(1),
       ParamSpec::String("init", "gaussian", "initialisation: Gaussian around center, or all on center")
           .one_of({"gaussian", "point"}),
       ParamSpec::FloatList("center", {}, "initial centre, one value per data dimension ([] = origin)"),
       ParamSpec::Float("scale", 1.0, "std of the Gaussian initialisation").non_negative()},
      make);
}
