// drift SDK: normalization schemes (docs/method.md §2 steps 3 and 5, eq. 18-25).
#pragma once

#include <torch/types.h>

#include "drift/params.hpp"

namespace drift {

// Divisors that feature normalization applies to one feature.
struct FeatureScaling {
  torch::Tensor distance_divisor;  // []  distances are divided by it (default: max(scale, 1e-3))
  torch::Tensor coord_divisor;     // []  coordinates are divided by it (s)
};

// A normalizer is asked twice per feature, both times with small tensors, so a
// fused kernel can call it between its own passes:
//  - feature(): from the weighted mean pairwise distance `scale` (a 0-d tensor)
//    and the feature dimension S, how to divide distances and coordinates;
//  - drift_factor(): from m_tau (a 0-d tensor, raw mean squared drift of one
//    temperature), the factor each raw drift F_tau is multiplied by.
// Both are called inside DriftKernel::compute, from its thread, without
// gradient, with tensors on the inputs' device and dtype; each returned
// tensor holds one number (the fused kernels read it as a scalar). const and
// deterministic: the same inputs give the same divisors and factors.
class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual FeatureScaling feature(const torch::Tensor& scale, int64_t S) const = 0;
  virtual torch::Tensor drift_factor(const torch::Tensor& m_tau) const = 0;
};

}  // namespace drift
