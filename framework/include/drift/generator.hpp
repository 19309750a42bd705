// drift SDK: generators (SPEC.md sections 1 and 7).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <optional>
#include <vector>

namespace drift {

// What the framework tells a generator when it is created.
struct GeneratorContext {
  std::vector<int64_t> sample_shape;  // one sample's shape, e.g. {2} or {1, 32, 32}
  int64_t n_classes = 0;              // 0: unconditional
  uint64_t seed = 0;                  // for initialisation
};

// One request for samples. One forward pass per sample (1 NFE).
struct GenerateRequest {
  int64_t n = 0;                       // number of samples
  torch::Tensor labels;                // [n] int64 class labels, or undefined (unconditional)
  torch::Tensor alpha;                 // [n] float guidance strength, or undefined (alpha = 1)
  std::optional<at::Generator> rng;    // source of the noise (nullopt: the default generator)
  torch::Device device = torch::kCPU;  // where the samples must live
};

// A one-step generator. It is a torch::nn::Module so that the framework can
// optimise parameters(), keep an EMA copy of them, and move it to a device.
class Generator : public torch::nn::Module {
 public:
  // Returns [n, *sample_shape], differentiable with respect to parameters().
  virtual torch::Tensor generate(const GenerateRequest& req) = 0;
};

}  // namespace drift
