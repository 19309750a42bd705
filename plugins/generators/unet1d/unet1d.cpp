// `unet1d`: a 1-D temporal U-Net for action chunks, the network diffusion
// policies use (Chi et al. 2023, "ConditionalUnet1D"), as a one-step
// generator: no diffusion time step, the noise chunk goes in and an action
// chunk comes out. Read top to bottom:
//
//   noise z [n, T, A] ~ N(0, 1), viewed as [n, A, T] (channels = action dims)
//     -> down: for each width w of `widths`: two residual blocks to w
//        channels, then (except at the last) a stride-2 Conv1d halving T
//     -> mid: two residual blocks at the last width
//     -> up: for each width back up (but the last): a transposed Conv1d
//        doubling T, concatenated with the skip of that level, two residual blocks
//     -> Conv1d block -> Conv1d(1x1) to A channels -> [n, T, A]
//
// Residual block (FiLM): h1 = Mish(GroupNorm(Conv1d(h)));
// h1 = h1 * (1 + scale(c)) + shift(c); out = Mish(GroupNorm(Conv1d(h1))) + Conv1x1(h).
// The condition c [n, embed_dim] is an MLP of the flattened condition (the
// observation window, GenerateRequest::cond) plus a class embedding for
// class-conditional data; unconditional data gets a learned constant. T must
// be divisible by 2^(len(widths) - 1). The noise is drawn from req.rng on the
// CPU and moved to req.device.
#include <drift/sdk.hpp>

#include <torch/nn/modules/activation.h>
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

int64_t groups_for(int64_t ch) { return std::gcd(ch, int64_t{8}); }


struct ResBlockImpl : nn::Module {
  ResBlockImpl(int64_t in, int64_t out, int64_t kernel, int64_t embed_dim)
      : conv1(register_module("conv1", nn::Conv1d(nn::Conv1dOptions(in, out, kernel).padding(kernel / 2)))),
        norm1(register_module("norm1", nn::GroupNorm(groups_for(out), out))),
        conv2(register_module("conv2", nn::Conv1d(nn::Conv1dOptions(out, out, kernel).padding(kernel / 2)))),
        norm2(register_module("norm2", nn::GroupNorm(groups_for(out), out))),
        film(register_module("film", nn::Linear(embed_dim, 2 * out))) {
    if (in != out) skip = register_module("skip", nn::Conv1d(nn::Conv1dOptions(in, out, 1)));
  }
  Tensor forward(const Tensor& h, const Tensor& c) {
    Tensor x = torch::mish(norm1->forward(conv1->forward(h)));
    auto ss = film->forward(torch::mish(c)).unsqueeze(2).chunk(2, 1);  // [n, out, 1] each
    x = x * (1 + ss[0]) + ss[1];
    x = torch::mish(norm2->forward(conv2->forward(x)));
    return x + (skip ? skip->forward(h) : h);
  }
  nn::Conv1d conv1;
  nn::GroupNorm norm1;
  nn::Conv1d conv2;
  nn::GroupNorm norm2;
  nn::Linear film;
  nn::Conv1d skip{nullptr};
};
TORCH_MODULE(ResBlock);

class Unet1dGenerator : public drift::Generator {
 public:
  Unet1dGenerator(const drift::Params& p, const drift::GeneratorContext& ctx)
      : horizon_(ctx.sample_shape[0]), action_dim_(ctx.sample_shape[1]), n_classes_(ctx.n_classes) {
    torch::manual_seed(ctx.seed);  // initialisation is deterministic given the seed
    const int64_t embed = p.get_int("embed_dim"), kernel = p.get_int("kernel_size");
    if (!ctx.cond_shape.empty()) {
      cond_dim_ = std::accumulate(ctx.cond_shape.begin(), ctx.cond_shape.end(), int64_t{1}, std::multiplies<>());
      cond_in_ = register_module("cond_in", nn::Linear(cond_dim_, embed));
      cond_out_ = register_module("cond_out", nn::Linear(embed, embed));
    }
    if (n_classes_ > 0) class_embed_ = register_module("class_embed", nn::Embedding(n_classes_, embed));
    base_ = register_parameter("base", torch::zeros({embed}));
    const auto widths = p.get_int_list("widths");
    int64_t ch = action_dim_;
    for (size_t l = 0; l < widths.size(); ++l) {
      const std::string s = std::to_string(l);
      down_.push_back({register_module("down" + s + "a", ResBlock(ch, widths[l], kernel, embed)),
                       register_module("down" + s + "b", ResBlock(widths[l], widths[l], kernel, embed))});
      ch = widths[l];
      if (l + 1 < widths.size())
        downsample_.push_back(register_module(
            "downsample" + s, nn::Conv1d(nn::Conv1dOptions(ch, ch, 3).stride(2).padding(1))));
    }
    mid_ = {register_module("mid_a", ResBlock(ch, ch, kernel, embed)),
            register_module("mid_b", ResBlock(ch, ch, kernel, embed))};
    for (size_t l = widths.size() - 1; l-- > 0;) {
      const std::string s = std::to_string(l);
      upsample_.push_back(register_module(
          "upsample" + s, nn::ConvTranspose1d(nn::ConvTranspose1dOptions(ch, ch, 4).stride(2).padding(1))));
      up_.push_back({register_module("up" + s + "a", ResBlock(ch + widths[l], widths[l], kernel, embed)),
                     register_module("up" + s + "b", ResBlock(widths[l], widths[l], kernel, embed))});
      ch = widths[l];
    }
    final_conv_ = register_module("final_conv", nn::Conv1d(nn::Conv1dOptions(ch, ch, kernel).padding(kernel / 2)));
    final_norm_ = register_module("final_norm", nn::GroupNorm(groups_for(ch), ch));
    out_ = register_module("out", nn::Conv1d(nn::Conv1dOptions(ch, action_dim_, 1)));
  }

  Tensor generate(const drift::GenerateRequest& all) override {
    const drift::GenerateRequest req = drift::restrict_to_rows(all);
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(req.device);
    const torch::Device noise_dev = req.rng ? req.rng->device() : torch::Device(torch::kCPU);
    Tensor z = drift::take_rows(
        torch::randn({all.n, horizon_, action_dim_}, req.rng, opts.device(noise_dev)).to(req.device), all);
    // The condition vector c [n, embed].
    Tensor c = base_.unsqueeze(0).expand({req.n, -1});
    if (cond_dim_ > 0) {
      TORCH_CHECK(req.cond.defined() && req.cond.size(0) == req.n && req.cond[0].numel() == cond_dim_,
                  "unet1d: a generator conditioned on observations needs req.cond [n, ", cond_dim_, " values]");
      c = c + cond_out_->forward(torch::mish(cond_in_->forward(req.cond.to(opts).flatten(1))));
    }
    if (n_classes_ > 0) {
      TORCH_CHECK(req.labels.defined(), "unet1d: class-conditional generator needs labels");
      c = c + class_embed_->forward(req.labels.to(req.device));
    }
    Tensor h = z.transpose(1, 2);  // [n, A, T]
    std::vector<Tensor> skips;
    for (size_t l = 0; l < down_.size(); ++l) {
      h = down_[l].second->forward(down_[l].first->forward(h, c), c);
      if (l < downsample_.size()) {
        skips.push_back(h);
        h = downsample_[l]->forward(h);
      }
    }
    h = mid_.second->forward(mid_.first->forward(h, c), c);
    for (size_t u = 0; u < up_.size(); ++u) {
      h = torch::cat({upsample_[u]->forward(h), skips[skips.size() - 1 - u]}, 1);
      h = up_[u].second->forward(up_[u].first->forward(h, c), c);
    }
    h = out_->forward(torch::mish(final_norm_->forward(final_conv_->forward(h))));
    return h.transpose(1, 2).contiguous();  // [n, T, A]
  }

 private:
  int64_t horizon_, action_dim_, n_classes_, cond_dim_ = 0;
  nn::Linear cond_in_{nullptr}, cond_out_{nullptr};
  nn::Embedding class_embed_{nullptr};
  Tensor base_;
  std::vector<std::pair<ResBlock, ResBlock>> down_, up_;
  std::pair<ResBlock, ResBlock> mid_{nullptr, nullptr};
  std::vector<nn::Conv1d> downsample_;
  std::vector<nn::ConvTranspose1d> upsample_;
  nn::Conv1d final_conv_{nullptr}, out_{nullptr};
  nn::GroupNorm final_norm_{nullptr};
};

}  // namespace

DRIFT_PLUGIN("generator_unet1d", r) {
  using drift::ParamSpec;
  r.add_generator(
      "unet1d",
      "1-D temporal U-Net (diffusion policies' ConditionalUnet1D, one step) from a noise chunk to a "
      "[T, action_dim] chunk, FiLM-conditioned on the flattened condition and/or class",
      {ParamSpec::IntList("widths", {64, 128, 256}, "channels per level; T halves between levels")
           .non_empty(),
       ParamSpec::Int("kernel_size", 5, "Conv1d kernel size (odd)").in_range(1, 15),
       ParamSpec::Int("embed_dim", 128, "size of the condition vector c").at_least(1)},
      [](const drift::Params& p, const drift::GeneratorContext& ctx)
          -> absl::StatusOr<std::shared_ptr<drift::Generator>> {
        const auto& s = ctx.sample_shape;
        if (s.size() != 2)
          return absl::InvalidArgumentError(absl::StrCat(
              "unet1d: needs samples [T, action_dim] (action chunks); the dataset's samples have shape [",
              absl::StrJoin(s, ", "), "]"));
        const auto widths = p.get_int_list("widths");
        for (int64_t w : widths)
          if (w < 1) return absl::InvalidArgumentError("unet1d: 'widths' must be positive");
        const int64_t f = int64_t{1} << (widths.size() - 1);
        if (s[0] % f != 0)
          return absl::InvalidArgumentError(absl::StrCat(
              "unet1d: the chunk length T = ", s[0], " is not divisible by 2^(levels - 1) = ", f,
              " ('widths' has ", widths.size(), " levels)"));
        if (p.get_int("kernel_size") % 2 == 0)
          return absl::InvalidArgumentError("unet1d: 'kernel_size' must be odd");
        return std::make_shared<Unet1dGenerator>(p, ctx);
      });
}
