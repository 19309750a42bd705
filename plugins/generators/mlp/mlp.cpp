// `mlp`: a one-step generator for low-dimensional data (docs/method.md §7,
// "small problems use an MLP"). noise -> [Linear -> act] x depth -> Linear.
// Optional conditioning: a learned class embedding (when the data has classes),
// log(alpha) (the CFG strength), and the flattened continuous condition (a
// policy's observation window, when the data has conditions), concatenated to
// the noise.
//
// Initialisation: PyTorch's default Linear init, then the output layer's
// weights are multiplied by `init_scale` and, when `init_center` is given, its
// bias is set to that point: the initial samples are a cloud around
// init_center whose spread is init_scale times the default one, so an MLP can
// start "between the modes", "far away" or "on one mode" as the paper's Fig. 3
// particles do. Both are only the starting point; every weight is trained.
#include <drift/sdk.hpp>

#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <numeric>

namespace {

using torch::Tensor;

Tensor activate(const std::string& name, const Tensor& x) {
  if (name == "relu") return torch::relu(x);
  if (name == "gelu") return torch::gelu(x);
  if (name == "tanh") return torch::tanh(x);
  return torch::silu(x);
}

class MlpGenerator : public drift::Generator {
 public:
  MlpGenerator(const drift::Params& p, const drift::GeneratorContext& ctx)
      : shape_(ctx.sample_shape),
        noise_dim_(p.get_int("noise_dim")),
        activation_(p.get_string("activation")),
        n_classes_(ctx.n_classes),
        use_alpha_(p.get_bool("use_alpha")) {
    out_dim_ = std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<>());
    if (!ctx.cond_shape.empty())
      cond_dim_ = std::accumulate(ctx.cond_shape.begin(), ctx.cond_shape.end(), int64_t{1}, std::multiplies<>());
    torch::manual_seed(ctx.seed);  // initialisation is deterministic given the seed
    int64_t in = noise_dim_;
    if (n_classes_ > 0) {
      embed_ = register_module("embed", torch::nn::Embedding(n_classes_, p.get_int("embed_dim")));
      in += p.get_int("embed_dim");
    }
    if (use_alpha_) in += 1;
    in += cond_dim_;
    const int64_t width = p.get_int("width");
    for (int64_t i = 0; i < p.get_int("depth"); ++i) {
      hidden_.push_back(register_module("hidden" + std::to_string(i), torch::nn::Linear(in, width)));
      in = width;
    }
    out_ = register_module("out", torch::nn::Linear(in, out_dim_));
    torch::NoGradGuard no_grad;
    const double scale = p.get_float("init_scale");
    if (scale != 1.0) out_->weight.mul_(scale);
    const auto& center = p.get_float_list("init_center");
    if (!center.empty()) {  // its length is checked by the factory
      out_->bias.copy_(torch::tensor(center, torch::kFloat64).to(torch::kFloat32));
    }
  }

  Tensor generate(const drift::GenerateRequest& all) override {
    // Data-parallel: the noise of all n drawn, only all.rows run.
    const drift::GenerateRequest req = drift::restrict_to_rows(all);
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(req.device);
    // The noise is drawn where req.rng lives (the framework passes a CPU
    // generator) and then moved to req.device: a CUDA run sees the same noise
    // as a CPU run with the same seed, and CUDA needs no generator of its own.
    const torch::Device noise_dev = req.rng ? req.rng->device() : torch::Device(torch::kCPU);
    Tensor h = drift::take_rows(
        torch::randn({all.n, noise_dim_}, req.rng, opts.device(noise_dev)).to(req.device), all);
    if (n_classes_ > 0) {
      TORCH_CHECK(req.labels.defined(), "mlp: class-conditional generator needs labels");
      h = torch::cat({h, embed_->forward(req.labels.to(req.device))}, 1);
    }
    if (use_alpha_) {
      Tensor a = req.alpha.defined() ? req.alpha.to(opts) : torch::ones({req.n}, opts);
      h = torch::cat({h, torch::log(a).unsqueeze(1)}, 1);
    }
    if (cond_dim_ > 0) {
      TORCH_CHECK(req.cond.defined() && req.cond.size(0) == req.n && req.cond[0].numel() == cond_dim_,
                  "mlp: a generator conditioned on observations needs req.cond [n, ", cond_dim_, " values]");
      h = torch::cat({h, req.cond.to(opts).flatten(1)}, 1);
    }
    for (auto& layer : hidden_) h = activate(activation_, layer->forward(h));
    std::vector<int64_t> shape{req.n};
    shape.insert(shape.end(), shape_.begin(), shape_.end());
    return out_->forward(h).view(shape);
  }

 private:
  std::vector<int64_t> shape_;
  int64_t noise_dim_, out_dim_ = 1, cond_dim_ = 0;
  std::string activation_;
  int64_t n_classes_;
  bool use_alpha_;
  torch::nn::Embedding embed_{nullptr};
  std::vector<torch::nn::Linear> hidden_;
  torch::nn::Linear out_{nullptr};
};

}  // namespace

DRIFT_PLUGIN("generator_mlp", r) {
  using drift::ParamSpec;
  r.add_generator(
      "mlp", "MLP from Gaussian noise (optionally + class embedding + log alpha + the flattened condition) to a sample",
      {ParamSpec::Int("noise_dim", 32, "dimension of the Gaussian noise input").at_least(1),
       ParamSpec::Int("width", 256, "hidden width").at_least(1),
       ParamSpec::Int("depth", 3, "number of hidden layers").in_range(1, 64),
       ParamSpec::String("activation", "silu", "hidden activation").one_of({"silu", "relu", "gelu", "tanh"}),
       ParamSpec::Int("embed_dim", 32, "class embedding size (class-conditional data only)").at_least(1),
       ParamSpec::Bool("use_alpha", false, "condition on log(alpha), the CFG strength"),
       ParamSpec::Float("init_scale", 1.0,
                        "multiplies the output layer's initial weights: the spread of the "
                        "initial samples relative to the default initialisation")
           .non_negative(),
       ParamSpec::FloatList("init_center", {},
                            "initial output-layer bias: the centre of the initial samples (one "
                            "value per sample coordinate); []: the default initialisation")},
      [](const drift::Params& p, const drift::GeneratorContext& ctx)
          -> absl::StatusOr<std::shared_ptr<drift::Generator>> {
        const auto& center = p.get_float_list("init_center");
        const int64_t dim = std::accumulate(ctx.sample_shape.begin(), ctx.sample_shape.end(),
                                            int64_t{1}, std::multiplies<>());
        if (!center.empty() && static_cast<int64_t>(center.size()) != dim)
          return absl::InvalidArgumentError(
              "mlp: 'init_center' has " + std::to_string(center.size()) + " values, expected " +
              std::to_string(dim) + " (one per sample coordinate) or [] (default)");
        return std::make_shared<MlpGenerator>(p, ctx);
      });
}
