// The ResNet (GroupNorm, basic blocks) of resnet.hpp.
#include "resnet.hpp"

#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drift_resnet {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t groups) {
    conv1_ = register_module("conv1", conv(in, out, 3, stride));
    gn1_ = register_module("gn1", group_norm(groups, out));
    conv2_ = register_module("conv2", conv(out, out, 3, 1));
    gn2_ = register_module("gn2", group_norm(groups, out));
    if (stride != 1 || in != out)
      shortcut_ = register_module(
          "shortcut", torch::nn::Sequential(conv(in, out, 1, stride), group_norm(groups, out)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = torch::relu(gn1_(conv1_(x)));
    h = gn2_(conv2_(h));
    return torch::relu(h + (shortcut_ ? shortcut_->forward(x) : x));
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::GroupNorm gn1_{nullptr}, gn2_{nullptr};
  torch::nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(BasicBlock);

}  // namespace

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(std::gcd(groups, channels), channels));
}

std::string ResNetConfig::describe() const {
  return absl::StrCat("resnet in=", in_channels, " widths=[", absl::StrJoin(widths, ","),
                      "] blocks=[", absl::StrJoin(blocks, ","), "] groups=", groups);
}

std::vector<std::string> ResNetConfig::map_names() const {
  std::vector<std::string> out{"s0"};
  for (auto& name : stage_map_names()) out.push_back(std::move(name));
  return out;
}

std::vector<std::string> ResNetConfig::stage_map_names() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < blocks.size(); ++i)
    for (int64_t j = 1; j <= blocks[i]; ++j) {
      if (j == blocks[i]) out.push_back(absl::StrCat("s", i + 1));
      else if (j % 2 == 0) out.push_back(absl::StrCat("s", i + 1, "b", j));
    }
  return out;
}

ResNetImpl::ResNetImpl(const ResNetConfig& cfg) : cfg_(cfg) {
  stem_ = register_module("stem", torch::nn::Sequential(conv(cfg.in_channels, cfg.widths[0], 3, 1),
                                                        group_norm(cfg.groups, cfg.widths[0]),
                                                        torch::nn::ReLU()));
  int64_t in = cfg.widths[0];
  for (size_t i = 0; i < cfg.widths.size(); ++i) {
    torch::nn::ModuleList stage;
    for (int64_t j = 0; j < cfg.blocks[i]; ++j) {
      stage->push_back(BasicBlock(in, cfg.widths[i], j == 0 ? 2 : 1, cfg.groups));
      in = cfg.widths[i];
    }
    stages_.push_back(register_module(absl::StrCat("stage", i + 1), stage));
  }
}

std::vector<std::pair<std::string, torch::Tensor>> ResNetImpl::forward(const torch::Tensor& x) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto h = stem_->forward(x);
  out.emplace_back("s0", h);
  for (size_t i = 0; i < stages_.size(); ++i) {
    const int64_t n = static_cast<int64_t>(stages_[i]->size());
    for (int64_t j = 1; j <= n; ++j) {
      h = stages_[i][j - 1]->as<BasicBlock>()->forward(h);
      if (j == n) out.emplace_back(absl::StrCat("s", i + 1), h);
      else if (j % 2 == 0) out.emplace_back(absl::StrCat("s", i + 1, "b", j), h);
    }
  }
  return out;
}

std::pair<torch::Tensor, std::vector<torch::Tensor>> ResNetImpl::forward_stages(
    const torch::Tensor& x) {
  auto stem = stem_->forward(x);
  std::vector<torch::Tensor> outs;
  auto h = stem;
  for (auto& stage : stages_) {
    for (const auto& block : *stage) h = block->as<BasicBlock>()->forward(h);
    outs.push_back(h);
  }
  return {stem, outs};
}

}  // namespace drift_resnet

// --- the pre-training loop ------------------------------------------------------
namespace drift_resnet {

absl::Status run_pretraining(
    const std::vector<torch::Tensor>& params, const PretrainOptions& o,
    const drift::PretrainContext& ctx, const std::string& what,
    const std::function<torch::Tensor(const torch::Tensor&, at::Generator&)>& loss) {
  if (ctx.data == nullptr)
    return absl::InvalidArgumentError(what + ": pre-training needs a dataset");
  auto data_rng = at::detail::createCPUGenerator(static_cast<uint64_t>(o.seed) * 7919ULL + 1);
  auto aug_rng = at::detail::createCPUGenerator(static_cast<uint64_t>(o.seed) * 7919ULL + 2);
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(o.lr).weight_decay(1e-4));
  const int64_t warmup = std::max<int64_t>(1, o.steps / 20);
  for (int64_t step = 1; step <= o.steps; ++step) {
    double lr = step <= warmup ? o.lr * step / warmup
                               : 0.5 * o.lr * (1 + std::cos(M_PI * (step - warmup) /
                                                            std::max<int64_t>(1, o.steps - warmup)));
    for (auto& g : opt.param_groups())
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    auto batch = ctx.data->sample(o.batch, data_rng).x.to(ctx.device);
    auto l = loss(batch, aug_rng);
    opt.zero_grad();
    l.backward();
    opt.step();
    const double v = l.item<double>();
    if (!std::isfinite(v))
      return absl::InternalError(absl::StrCat(what, ": pre-training loss is ", v, " at step ", step));
    if (ctx.progress) ctx.progress(step, o.steps, v);
  }
  return absl::OkStatus();
}

}  // namespace drift_resnet
