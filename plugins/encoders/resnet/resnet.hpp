// The ResNet of the resnet encoders (docs/method.md §8): GroupNorm, basic
// blocks, configurable stages; and its two pre-training methods.
//
//   stem:     conv3x3(C -> widths[0]), GroupNorm, ReLU          (full resolution)
//   stage i:  blocks[i] basic blocks of width widths[i]; the first has stride 2
//   block:    conv3x3(stride) GN ReLU conv3x3 GN, + shortcut (conv1x1(stride) GN
//             when the shape changes), ReLU
//
// Feature maps (names used by the feature set, drift/features.hpp): "s<i>" at
// the end of stage i (1-based), and "s<i>b<j>" after every 2nd block j inside
// stage i that is not its last. A 32x32 input with 3 stages gives s1 16x16,
// s2 8x8, s3 4x4.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "drift/params.hpp"
#include "drift/pretrain.hpp"

namespace drift_resnet {

struct ResNetConfig {
  int64_t in_channels = 1;
  std::vector<int64_t> widths{32, 64, 128};
  std::vector<int64_t> blocks{1, 1, 1};
  int64_t groups = 8;
  // "resnet in=1 widths=[32,64,128] blocks=[2,2,2] groups=8": identifies weights.
  std::string describe() const;
  // The feature map names, in the order forward() returns them ("s0" first).
  std::vector<std::string> map_names() const;
  // The stage maps: map_names() without "s0".
  std::vector<std::string> stage_map_names() const;
};

class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetConfig& cfg);
  // x: [B, C, H, W] -> the named maps [B, C_i, H_i, W_i] (see above).
  std::vector<std::pair<std::string, torch::Tensor>> forward(const torch::Tensor& x);
  // The full-resolution stem output and every stage's output (for the decoder).
  std::pair<torch::Tensor, std::vector<torch::Tensor>> forward_stages(const torch::Tensor& x);
  const ResNetConfig& config() const { return cfg_; }

 private:
  ResNetConfig cfg_;
  torch::nn::Sequential stem_{nullptr};
  std::vector<torch::nn::ModuleList> stages_;
};
TORCH_MODULE(ResNet);

// Runs f() with LibTorch's default CPU generator seeded with `seed` (module
// initialisers draw from it) and restores the generator's state afterwards, so
// that building a module is deterministic and does not shift other draws.
template <class F>
auto with_seed(uint64_t seed, F f) {
  auto gen = at::detail::getDefaultCPUGenerator();
  auto state = gen.get_state();
  gen.set_current_seed(seed);
  auto out = f();
  gen.set_state(state);
  return out;
}

// GroupNorm with at most `groups` groups that divide `channels`.
torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels);

// --- pre-training (docs/method.md §8) -----------------------------------------
struct PretrainOptions {
  int64_t steps = 400;
  int64_t batch = 32;
  double lr = 1e-3;
  int64_t seed = 0;
};

// The loop both methods share: AdamW (weight decay 1e-4) over `params`, linear
// warm-up over the first 5% of the steps then cosine decay, one batch of
// `o.batch` images from ctx.data per step (on ctx.device), `loss(batch, rng)`,
// ctx.progress after each step. A non-finite loss stops with an error.
absl::Status run_pretraining(
    const std::vector<torch::Tensor>& params, const PretrainOptions& o,
    const drift::PretrainContext& ctx, const std::string& what,
    const std::function<torch::Tensor(const torch::Tensor&, at::Generator&)>& loss);

// Masked autoencoder: p x p input patches zeroed with probability mask_prob, a
// U-Net-style decoder (upsampling through the stage outputs, skips
// concatenated) reconstructs the input; L2 loss on the masked pixels only.
struct MaeOptions {
  PretrainOptions base;
  double mask_prob = 0.5;
  int64_t patch = 2;
};
absl::Status pretrain_mae(ResNet& net, const MaeOptions& o, const drift::PretrainContext& ctx);

// SimCLR: two augmented views per image (random shift by up to `shift` pixels
// with zero padding, horizontal flip with probability `flip`, Gaussian noise of
// std `noise`), a 2-layer projection head on the globally pooled last stage,
// NT-Xent loss with temperature `temperature`.
struct ContrastiveOptions {
  PretrainOptions base;
  double temperature = 0.5;
  int64_t shift = 4;
  double flip = 0.5;
  double noise = 0.1;
  int64_t proj_dim = 64;
};
absl::Status pretrain_contrastive(ResNet& net, const ContrastiveOptions& o,
                                  const drift::PretrainContext& ctx);

}  // namespace drift_resnet
