// Exponential moving average of a module's parameters; evaluation uses it.
#pragma once

#include <torch/nn/module.h>

#include <vector>

namespace drift::train {

class Ema {
 public:
  explicit Ema(torch::nn::Module& m);
  // shadow = decay * shadow + (1 - decay) * param
  void update(double decay);
  // Swaps the module's parameters with the EMA copy (call twice to swap back).
  void swap();
  // The EMA copy of each parameter, in the module's parameter order.
  const std::vector<torch::Tensor>& shadow() const { return shadow_; }
  // Replaces the EMA copy (same count and shapes as shadow()).
  void set_shadow(const std::vector<torch::Tensor>& values);
  // RAII: the module holds the EMA weights for the scope's lifetime.
  class Scope {
   public:
    explicit Scope(Ema& e) : e_(e) { e_.swap(); }
    ~Scope() { e_.swap(); }
   private:
    Ema& e_;
  };

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> shadow_;
};

}  // namespace drift::train
