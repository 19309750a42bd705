// `conv`: a small convolutional image generator, the cheap baseline beside
// `dit`. Read top to bottom:
//
//   noise z [n, noise_channels, H / 2^levels, W / 2^levels] ~ N(0, 1)
//     -> Conv3x3 -> width channels
//     -> levels + 1 stages; each: `blocks` residual blocks with adaptive
//        GroupNorm (adaGN), then (except after the last) nearest 2x upsampling
//        and a Conv3x3 halving the channels (never below 16)
//     -> GroupNorm -> SiLU -> Conv3x3 -> [n, C, H, W]   (no output squashing)
//
// Residual block: h + Conv(SiLU(adaGN(Conv(SiLU(adaGN(h))))));
// adaGN(h) = GroupNorm(h) * (1 + scale(c)) + shift(c), scale and shift a
// Linear of SiLU(c) (FiLM).
//
// The condition c [n, embed_dim] is the sum of a learned constant, a class
// embedding (class-conditional data only) and, with use_alpha, an MLP of
// log(alpha) (alpha = 1, no guidance, when the request has none) — the `mlp`
// generator's choice of log(alpha), since alpha spans a ratio range.
// The noise is drawn from req.rng on the CPU and moved to req.device.
#include <drift/sdk.hpp>

#include <torch/nn/init.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace {

using torch::Tensor;
namespace nn = torch::nn;

constexpr int64_t kMinChannels = 16;

struct ConvConfig {
  int64_t channels, height, width;  // one sample: [C, H, W]
  int64_t width_ch, levels, blocks, noise_channels, embed_dim, n_classes;
  bool use_alpha;
  int64_t stage_channels(int64_t l) const { return std::max(width_ch >> l, kMinChannels); }
};

int64_t groups_for(int64_t ch) { return std::gcd(ch, int64_t{8}); }

nn::Conv2d conv3x3(int64_t in, int64_t out) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1));
}

// GroupNorm without affine parameters, scaled and shifted by the condition.
struct AdaGNImpl : nn::Module {
  AdaGNImpl(int64_t ch, int64_t embed_dim)
      : norm(register_module("norm", nn::GroupNorm(nn::GroupNormOptions(groups_for(ch), ch).affine(false)))),
        film(register_module("film", nn::Linear(embed_dim, 2 * ch))) {}
  Tensor forward(const Tensor& h, const Tensor& c) {
    auto ss = film(torch::silu(c)).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
    return norm(h) * (1 + ss[0]) + ss[1];
  }
  nn::GroupNorm norm;
  nn::Linear film;
};
TORCH_MODULE(AdaGN);

struct ResBlockImpl : nn::Module {
  ResBlockImpl(int64_t ch, int64_t embed_dim)
      : norm1(register_module("norm1", AdaGN(ch, embed_dim))),
        conv1(register_module("conv1", conv3x3(ch, ch))),
        norm2(register_module("norm2", AdaGN(ch, embed_dim))),
        conv2(register_module("conv2", conv3x3(ch, ch))) {}
  Tensor forward(const Tensor& h, const Tensor& c) {
    Tensor y = conv1(torch::silu(norm1(h, c)));
    y = conv2(torch::silu(norm2(y, c)));
    return h + y;
  }
  AdaGN norm1;
  nn::Conv2d conv1;
  AdaGN norm2;
  nn::Conv2d conv2;
};
TORCH_MODULE(ResBlock);

class ConvGenerator : public drift::Generator {
 public:
  ConvGenerator(const ConvConfig& c, uint64_t seed) : c_(c) {
    torch::manual_seed(seed);  // initialisation is deterministic given the seed
    base_ = register_parameter("cond_base", torch::zeros({c.embed_dim}));
    if (c.n_classes > 0) {
      y_embedder_ = register_module("y_embedder", nn::Embedding(c.n_classes, c.embed_dim));
    }
    if (c.use_alpha) {
      a_fc1_ = register_module("a_fc1", nn::Linear(1, c.embed_dim));
      a_fc2_ = register_module("a_fc2", nn::Linear(c.embed_dim, c.embed_dim));
    }
    conv_in_ = register_module("conv_in", conv3x3(c.noise_channels, c.stage_channels(0)));
    for (int64_t l = 0; l <= c.levels; ++l) {
      for (int64_t b = 0; b < c.blocks; ++b)
        blocks_.push_back(register_module(absl::StrCat("stage", l, "_block", b),
                                          ResBlock(c.stage_channels(l), c.embed_dim)));
      if (l < c.levels)
        up_.push_back(register_module(absl::StrCat("stage", l, "_up"),
                                      conv3x3(c.stage_channels(l), c.stage_channels(l + 1))));
    }
    const int64_t last = c.stage_channels(c.levels);
    norm_out_ = register_module("norm_out", nn::GroupNorm(groups_for(last), last));
    conv_out_ = register_module("conv_out", conv3x3(last, c.channels));
  }

  Tensor generate(const drift::GenerateRequest& req) override {
    const int64_t n = req.n, h0 = c_.height >> c_.levels, w0 = c_.width >> c_.levels;
    Tensor z = torch::randn({n, c_.noise_channels, h0, w0}, req.rng,
                            torch::TensorOptions().dtype(torch::kFloat32))
                   .to(req.device);
    // Data-parallel: the noise of all n drawn, only req.rows run.
    return forward(drift::take_rows(z, req), condition(drift::restrict_to_rows(req)));
  }

  Tensor condition(const drift::GenerateRequest& req) {
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(req.device);
    Tensor c = base_.unsqueeze(0).expand({req.n, -1});
    if (c_.n_classes > 0) {
      TORCH_CHECK(req.labels.defined(), "conv: a class-conditional generator needs labels");
      c = c + y_embedder_(req.labels.to(req.device));
    }
    if (c_.use_alpha) {
      Tensor a = req.alpha.defined() ? req.alpha.to(opts) : torch::ones({req.n}, opts);
      c = c + a_fc2_(torch::silu(a_fc1_(torch::log(a).unsqueeze(1))));
    }
    return c;
  }

  Tensor forward(const Tensor& z, const Tensor& c) {
    Tensor h = conv_in_(z);
    size_t k = 0;
    for (int64_t l = 0; l <= c_.levels; ++l) {
      for (int64_t b = 0; b < c_.blocks; ++b) h = blocks_[k++](h, c);
      if (l < c_.levels)
        h = up_[l](at::upsample_nearest2d(h, {2 * h.size(2), 2 * h.size(3)}));
    }
    return conv_out_(torch::silu(norm_out_(h)));
  }

 private:
  ConvConfig c_;
  Tensor base_;
  nn::Embedding y_embedder_{nullptr};
  nn::Linear a_fc1_{nullptr}, a_fc2_{nullptr};
  nn::Conv2d conv_in_{nullptr};
  std::vector<ResBlock> blocks_;
  std::vector<nn::Conv2d> up_;
  nn::GroupNorm norm_out_{nullptr};
  nn::Conv2d conv_out_{nullptr};
};

absl::StatusOr<std::shared_ptr<drift::Generator>> make_conv(const drift::Params& p,
                                                            const drift::GeneratorContext& ctx) {
  const auto& s = ctx.sample_shape;
  if (s.size() != 3)
    return absl::InvalidArgumentError(absl::StrCat(
        "conv: needs image samples [C, H, W]; the dataset's samples have shape [",
        absl::StrJoin(s, ", "), "] (use the mlp generator for vectors)"));
  ConvConfig c;
  c.channels = s[0];
  c.height = s[1];
  c.width = s[2];
  c.width_ch = p.get_int("width");
  c.levels = p.get_int("levels");
  c.blocks = p.get_int("blocks");
  c.noise_channels = p.get_int("noise_channels");
  c.embed_dim = p.get_int("embed_dim");
  c.use_alpha = p.get_bool("use_alpha");
  c.n_classes = ctx.n_classes;
  const int64_t f = int64_t{1} << c.levels;
  if (c.height % f != 0 || c.width % f != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "conv: levels = ", c.levels, " needs H and W divisible by 2^levels = ", f,
        "; the samples are ", c.height, "x", c.width));
  return std::make_shared<ConvGenerator>(c, ctx.seed);
}

}  // namespace

DRIFT_PLUGIN("generator_conv", r) {
  using drift::ParamSpec;
  r.add_generator(
      "conv",
      "small conv net from low-resolution noise, upsampling, residual blocks with adaptive "
      "GroupNorm on class + log alpha; images [C, H, W]",
      {ParamSpec::Int("width", 64, "channels at the lowest resolution (halved per upsampling, >= 16)")
           .at_least(1),
       ParamSpec::Int("levels", 2, "2x upsamplings; the noise is H / 2^levels x W / 2^levels")
           .in_range(0, 8),
       ParamSpec::Int("blocks", 1, "residual blocks per resolution").in_range(0, 32),
       ParamSpec::Int("noise_channels", 16, "channels of the Gaussian noise input").at_least(1),
       ParamSpec::Int("embed_dim", 128, "size of the condition vector (class + alpha)").at_least(1),
       ParamSpec::Bool("use_alpha", true, "condition on log(alpha), the CFG strength")},
      make_conv);
}
