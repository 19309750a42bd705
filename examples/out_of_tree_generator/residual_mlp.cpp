// An out-of-tree generator plugin: `residual_mlp`, a one-step generator made
// of residual MLP blocks, conditioned on the class (a learned embedding) and on
// the guidance strength alpha (sinusoidal features of log(alpha) at fixed
// frequencies). It shows the whole generator contract of <drift/generator.hpp>:
//
//  - every trainable tensor is a registered parameter (the optimiser, the EMA
//    copy, the results file and drift-export see exactly parameters() and
//    buffers(); a tensor kept in a plain member is invisible to all four);
//  - fixed tensors (here the alpha frequencies) are registered buffers, so that
//    they follow the module to the training device and into the export;
//  - the initialisation is a function of GeneratorContext::seed alone;
//  - generate() draws its noise from req.rng where the framework gives one
//    (training and evaluation pass a CPU generator) and from torch's default
//    CPU generator otherwise (drift-export), moves it to req.device, honours
//    req.rows (data-parallel training), and uses only tensor operations whose
//    shapes depend on the batch size alone: drift-export can trace it.
#include <drift/sdk.hpp>

#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace {

using torch::Tensor;

// Runs f() with torch's default CPU generator seeded with `seed`, then puts its
// state back: the initial weights are a function of the seed alone, and
// building the generator shifts no other random draw.
template <class F>
void with_seed(uint64_t seed, F f) {
  auto gen = at::detail::getDefaultCPUGenerator();
  const Tensor state = gen.get_state();
  gen.set_current_seed(seed);
  f();
  gen.set_state(state);
}

// h + fc2(silu(fc1(LayerNorm(h)))). fc2 starts at zero: every block starts as
// the identity, so a deep stack trains like a shallow one at first.
struct ResidualBlockImpl : torch::nn::Module {
  explicit ResidualBlockImpl(int64_t width)
      : norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})))),
        fc1(register_module("fc1", torch::nn::Linear(width, 2 * width))),
        fc2(register_module("fc2", torch::nn::Linear(2 * width, width))) {
    torch::NoGradGuard no_grad;
    fc2->weight.zero_();
    fc2->bias.zero_();
  }
  Tensor forward(const Tensor& h) { return h + fc2(torch::silu(fc1(norm(h)))); }

  torch::nn::LayerNorm norm;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(ResidualBlock);

class ResidualMlp : public drift::Generator {
 public:
  ResidualMlp(const drift::Params& p, const drift::GeneratorContext& ctx)
      : shape_(ctx.sample_shape), noise_dim_(p.get_int("noise_dim")), n_classes_(ctx.n_classes) {
    const int64_t out_dim =
        std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<>());
    const int64_t width = p.get_int("width");
    const int64_t n_freq = p.get_int("alpha_frequencies");
    // All parameters are created here, in the constructor: the framework takes
    // parameters() once, for the optimiser and the EMA copy, before training.
    with_seed(ctx.seed, [&] {
      int64_t in = noise_dim_ + 2 * n_freq;
      if (n_classes_ > 0) {
        embed_ = register_module("embed", torch::nn::Embedding(n_classes_, p.get_int("embed_dim")));
        in += p.get_int("embed_dim");
      }
      stem_ = register_module("stem", torch::nn::Linear(in, width));
      for (int64_t b = 0; b < p.get_int("blocks"); ++b)
        blocks_.push_back(register_module("block" + std::to_string(b), ResidualBlock(width)));
      head_ = register_module("head", torch::nn::Linear(width, out_dim));
    });
    // Not trained, but part of the model: a buffer (moved with the module,
    // stored with the weights, a constant of the export). 1, 2, 4, ...
    if (n_freq > 0)
      freqs_ = register_buffer("alpha_freqs", torch::pow(2.0, torch::arange(n_freq, torch::kFloat32)));
  }

  Tensor generate(const drift::GenerateRequest& all) override {
    // Data-parallel training: the noise of all n samples is drawn, as in one
    // process, and only the rows all.rows asks for are computed.
    const drift::GenerateRequest req = drift::restrict_to_rows(all);
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    // The noise is drawn where req.rng lives (the trainer passes a CPU
    // generator; drift-export none, which is torch's default CPU generator)
    // and moved: a CUDA run sees the noise of a CPU run with the same seed.
    const torch::Device noise_dev = all.rng ? all.rng->device() : torch::Device(torch::kCPU);
    const Tensor z = torch::randn({all.n, noise_dim_}, all.rng, f32.device(noise_dev));
    std::vector<Tensor> parts{drift::take_rows(z, all).to(req.device)};
    if (n_classes_ > 0) {
      TORCH_CHECK(req.labels.defined(), "residual_mlp: a class-conditional generator needs labels");
      parts.push_back(embed_(req.labels.to(req.device)));
    }
    if (freqs_.defined()) {
      // alpha undefined: no guidance (alpha = 1, log alpha = 0).
      const Tensor a = req.alpha.defined() ? req.alpha.to(req.device, torch::kFloat32)
                                           : torch::ones({req.n}, f32.device(req.device));
      const Tensor phase = torch::log(a).unsqueeze(1) * freqs_;  // [n, K]
      parts.push_back(torch::sin(phase));
      parts.push_back(torch::cos(phase));
    }
    Tensor h = stem_(torch::cat(parts, 1));  // [n, width]
    for (auto& block : blocks_) h = block(h);
    std::vector<int64_t> shape{req.n};
    shape.insert(shape.end(), shape_.begin(), shape_.end());
    return head_(h).view(shape);  // [n, *sample_shape]
  }

 private:
  std::vector<int64_t> shape_;
  int64_t noise_dim_, n_classes_;
  torch::nn::Embedding embed_{nullptr};
  torch::nn::Linear stem_{nullptr}, head_{nullptr};
  std::vector<ResidualBlock> blocks_;
  Tensor freqs_;
};

}  // namespace

DRIFT_PLUGIN("residual_mlp_example", r) {
  using drift::ParamSpec;
  r.add_generator(
      "residual_mlp",
      "residual MLP from Gaussian noise (+ class embedding + sinusoidal features of log alpha)",
      {ParamSpec::Int("noise_dim", 16, "dimension of the Gaussian noise input").at_least(1),
       ParamSpec::Int("width", 64, "width of the residual stream").at_least(1),
       ParamSpec::Int("blocks", 2, "residual blocks").in_range(0, 32),
       ParamSpec::Int("embed_dim", 16, "class embedding size (class-conditional runs only)").at_least(1),
       ParamSpec::Int("alpha_frequencies", 4,
                      "sin and cos of log(alpha) at frequencies 1, 2, 4, ...: this many; 0: not "
                      "conditioned on the guidance strength")
           .in_range(0, 16)},
      [](const drift::Params& p, const drift::GeneratorContext& ctx)
          -> absl::StatusOr<std::shared_ptr<drift::Generator>> {
        // Checks that need the context (the data) go here; an error is one
        // line that drift-run prints as the cell's error.
        if (ctx.sample_shape.size() != 1) {
          std::string shape;
          for (int64_t d : ctx.sample_shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
          return absl::InvalidArgumentError("residual_mlp: needs vector samples [D]; the data's samples have shape [" +
                                            shape + "] (use the conv or dit generator for images)");
        }
        return std::make_shared<ResidualMlp>(p, ctx);
      });
}
