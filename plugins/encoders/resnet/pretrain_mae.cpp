// Masked-autoencoder pre-training of the ResNet (docs/method.md §8): p x p
// input patches zeroed with probability mask_prob, a small U-Net-style decoder
// reconstructs the image, L2 loss on the masked pixels.
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include "absl/strings/str_cat.h"
#include "resnet.hpp"

namespace drift_resnet {
namespace {

namespace F = torch::nn::functional;

// Upsamples the deepest stage output step by step to the input resolution,
// concatenating the stage output (or the stem output) of each resolution and
// mixing with conv3x3-GN-ReLU; a 1x1 convolution gives the image.
class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ResNetConfig& cfg) {
    const auto& w = cfg.widths;
    for (size_t i = w.size(); i-- > 0;) {  // target: stage i-1 output, or the stem at i = 0
      const int64_t in = w[i] + (i > 0 ? w[i - 1] : w[0]);
      const int64_t out = i > 0 ? w[i - 1] : w[0];
      ups_->push_back(torch::nn::Sequential(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)),
          group_norm(cfg.groups, out), torch::nn::ReLU()));
    }
    register_module("ups", ups_);
    head_ = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(w[0], cfg.in_channels, 1)));
  }
  torch::Tensor forward(const torch::Tensor& stem, const std::vector<torch::Tensor>& stages) {
    auto h = stages.back();
    for (size_t k = 0; k < ups_->size(); ++k) {
      const size_t i = stages.size() - 1 - k;
      const auto& skip = i > 0 ? stages[i - 1] : stem;
      h = F::interpolate(h, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{skip.size(2), skip.size(3)})
                                .mode(torch::kNearest));
      h = ups_[k]->as<torch::nn::Sequential>()->forward(torch::cat({h, skip}, 1));
    }
    return head_(h);
  }

 private:
  torch::nn::ModuleList ups_;
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace

absl::Status pretrain_mae(ResNet& net, const MaeOptions& o, const drift::PretrainContext& ctx) {
  auto decoder = with_seed(static_cast<uint64_t>(o.base.seed) + 1,
                           [&] { return Decoder(net->config()); });
  decoder->to(ctx.device);
  auto params = net->parameters();
  for (const auto& p : decoder->parameters()) params.push_back(p);
  return run_pretraining(
      params, o.base, ctx, "mae_resnet", [&](const torch::Tensor& x, at::Generator& rng) {
        const int64_t B = x.size(0), H = x.size(2), W = x.size(3), p = o.patch;
        // One Bernoulli(mask_prob) per p x p patch, spread over its pixels (1 = masked).
        auto coarse = (torch::rand({B, 1, (H + p - 1) / p, (W + p - 1) / p}, rng) < o.mask_prob)
                          .to(x.dtype());
        auto mask = coarse.repeat_interleave(p, 2).repeat_interleave(p, 3)
                        .slice(2, 0, H).slice(3, 0, W).to(x.device());
        auto [stem, stages] = net->forward_stages(x * (1 - mask));
        auto pred = decoder->forward(stem, stages);
        auto err = (pred - x).pow(2) * mask;
        return err.sum() / (mask.sum() * x.size(1)).clamp_min(1.0);
      });
}

}  // namespace drift_resnet
