#include "train/ema.hpp"

#include <torch/types.h>

namespace drift::train {

Ema::Ema(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) {
    params_.push_back(p);
    shadow_.push_back(p.detach().clone());
  }
}

void Ema::update(double decay) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) shadow_[i].lerp_(params_[i].detach(), 1.0 - decay);
}

void Ema::set_shadow(const std::vector<torch::Tensor>& values) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(values.size() == shadow_.size(), "EMA: ", values.size(), " values for ", shadow_.size(),
              " parameters");
  for (size_t i = 0; i < shadow_.size(); ++i) shadow_[i].copy_(values[i]);
}

void Ema::swap() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto tmp = params_[i].detach().clone();
    params_[i].copy_(shadow_[i]);
    shadow_[i].copy_(tmp);
  }
}

}  // namespace drift::train
