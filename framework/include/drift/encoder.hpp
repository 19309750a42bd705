// drift SDK: feature encoders (docs/method.md sections 4 and 8).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <vector>

namespace drift {

struct EncoderContext {
  std::vector<int64_t> sample_shape;  // one sample's shape
  uint64_t seed = 0;
  std::string base_dir;  // directory of the experiment file (relative paths resolve here)
};

// One feature of a batch of samples. Each of the L locations is its own drift
// problem; all locations of one feature share one normalization scale.
struct Feature {
  std::string name;     // stable name, used in logs and results ("raw", "s1.loc", ...)
  torch::Tensor value;  // [G, L, N, D]: G groups, L locations, N samples, D dims
};

// A frozen feature encoder. The framework encodes positives and negatives
// under torch::NoGradGuard and generated samples with gradient (gradients flow
// through the encoder into the generator; the encoder's own parameters are
// never updated by drifting).
class FeatureEncoder : public torch::nn::Module {
 public:
  // x: [G, N, *sample_shape]. Returns every feature, differentiable w.r.t. x.
  virtual std::vector<Feature> encode(const torch::Tensor& x) = 0;
};

}  // namespace drift
