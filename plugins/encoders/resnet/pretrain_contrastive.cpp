// SimCLR-style contrastive pre-training of the ResNet: two augmented views of
// every image, a projection head on the pooled last stage, NT-Xent loss.
#include <torch/nn/functional/loss.h>
#include <torch/nn/functional/normalization.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

#include "resnet.hpp"

namespace drift_resnet {
namespace {

namespace F = torch::nn::functional;

// A random view of x [B, C, H, W]: shifted by up to `shift` pixels in each
// direction (padded with the batch's smallest value, the background of images
// such as Fashion-MNIST), flipped horizontally with probability `flip`, plus
// Gaussian noise of std `noise`.
torch::Tensor augment(const torch::Tensor& x, const ContrastiveOptions& o, at::Generator& rng) {
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3), s = o.shift;
  auto padded = F::pad(x, F::PadFuncOptions({s, s, s, s}).value(x.min().item<double>()));
  auto offsets = torch::randint(0, 2 * s + 1, {B, 2}, rng, torch::kLong);
  auto flips = torch::rand({B}, rng) < o.flip;
  std::vector<torch::Tensor> views;
  views.reserve(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t dy = offsets[b][0].item<int64_t>(), dx = offsets[b][1].item<int64_t>();
    auto v = padded[b].slice(1, dy, dy + H).slice(2, dx, dx + W);
    if (flips[b].item<bool>()) v = v.flip({2});
    views.push_back(v);
  }
  auto out = torch::stack(views);
  if (o.noise > 0) out = out + o.noise * torch::randn(out.sizes(), rng).to(out.device());
  return out;
}

// NT-Xent (normalized temperature-scaled cross entropy) of two views' embeddings
// z1, z2 [B, d]: each embedding's positive is the other view of its image, the
// other 2B - 2 embeddings are its negatives.
torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature) {
  const int64_t B = z1.size(0);
  auto z = F::normalize(torch::cat({z1, z2}), F::NormalizeFuncOptions().dim(1));
  auto sim = z.matmul(z.t()) / temperature;
  sim = sim.masked_fill(torch::eye(2 * B, sim.options().dtype(torch::kBool)), -1e9);
  auto idx = torch::arange(2 * B, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
  auto target = (idx + B) % (2 * B);
  return F::cross_entropy(sim, target);
}

}  // namespace

absl::Status pretrain_contrastive(ResNet& net, const ContrastiveOptions& o,
                                  const drift::PretrainContext& ctx) {
  const int64_t w = net->config().widths.back();
  auto head = with_seed(static_cast<uint64_t>(o.base.seed) + 1, [&] {
    return torch::nn::Sequential(torch::nn::Linear(w, w), torch::nn::ReLU(),
                                 torch::nn::Linear(w, o.proj_dim));
  });
  head->to(ctx.device);
  auto params = net->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  auto embed = [&](const torch::Tensor& v) {
    return head->forward(net->forward_stages(v).second.back().mean({2, 3}));
  };
  return run_pretraining(params, o.base, ctx, "contrastive_resnet",
                         [&](const torch::Tensor& x, at::Generator& rng) {
                           auto cpu = x.to(torch::kCPU);
                           auto v1 = augment(cpu, o, rng).to(x.device());
                           auto v2 = augment(cpu, o, rng).to(x.device());
                           return nt_xent(embed(v1), embed(v2), o.temperature);
                         });
}

}  // namespace drift_resnet
