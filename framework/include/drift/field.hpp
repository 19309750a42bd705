// drift SDK: the data that flows through a drift kernel (docs/method.md §2).
#pragma once

#include <torch/types.h>

#include <vector>

namespace drift {

// One batched drift problem for one feature: B independent problems, each with
// Cg generated samples, Cp positives and Cn extra negatives in S dimensions.
struct DriftInputs {
  torch::Tensor gen;    // [B, Cg, S]  generated samples (may require grad; kernels detach)
  torch::Tensor pos;    // [B, Cp, S]  positives
  torch::Tensor neg;    // [B, Cn, S]  extra negatives; Cn may be 0 (an undefined tensor means 0)
  torch::Tensor w_gen;  // [B, Cg]     kernel weights (undefined means all ones)
  torch::Tensor w_pos;  // [B, Cp]
  torch::Tensor w_neg;  // [B, Cn]
  std::vector<double> temperatures;  // all temperatures, non-empty, each > 0
};

// What a kernel returns. Everything is frozen (no autograd graph).
struct DriftOutputs {
  torch::Tensor V;       // [B, Cg, S]  sum over temperatures of the normalized drift
  torch::Tensor goal;    // [B, Cg, S]  old / coord_scale + V
  torch::Tensor m_tau;   // [n]         raw mean squared drift per temperature
  torch::Tensor scale;   // []          weighted mean pairwise distance (feature statistic)
  torch::Tensor coord_scale;  // []     s: coordinates are divided by it before V is added
};

// Fills undefined `neg` / weights with their defaults (empty / ones) and checks
// every shape, dtype and device; throws std::invalid_argument naming the tensor
// and the expected shape. Kernels receive inputs that passed this check.
DriftInputs canonicalize_drift_inputs(const DriftInputs& in);

// Per-problem loss: mean over [Cg, S] of (gen / coord_scale - goal)^2. Carries
// the gradient of `gen`; its value equals mean(V^2) per problem.
torch::Tensor drift_loss(const torch::Tensor& gen, const DriftOutputs& out);

}  // namespace drift
