// drift SDK: drift kernels (docs/method.md §2 and §3).
#pragma once

#include "drift/field.hpp"
#include "drift/normalizer.hpp"

namespace drift {

// A drift kernel computes the drifting field of one feature for a whole batch of
// problems and ALL temperatures in one call, so that a fused CPU or CUDA kernel
// can replace a plain one without any caller changing. Inputs have passed
// canonicalize_drift_inputs(). Implementations must not build an autograd graph
// (the framework calls them under torch::NoGradGuard) and must return finite
// values for collapsed inputs and for all kernel weights underflowing.
// Called from one thread: in training once per feature per step (B = groups x
// locations of that feature, Cg = n_gen, Cp = n_pos, Cn = n_unc, S = D), and
// at [eval] features evaluations, on the training device in float32;
// drift-field also passes float64. compute() is const: no state between
// calls, no random numbers. docs/guide/kernels.md.
class DriftKernel {
 public:
  virtual ~DriftKernel() = default;
  virtual DriftOutputs compute(const DriftInputs& in, const Normalizer& norm) const = 0;
};

}  // namespace drift
