// drift SDK: the steps of docs/method.md §2 that every plain drift kernel
// shares, so that a kernel plugin writes only what makes it different (how the
// coefficients of each temperature come from the normalized distances).
//
//   drift::PreparedField p = drift::prepare_field(in, norm);   // steps 1-3
//   drift::DriftAccumulator acc(p, norm);
//   for (double tau : in.temperatures) {
//     torch::Tensor K = ...;                                    // [B, Cg, T] from p.dn
//     acc.add(p.drift_from_coefficients(K));                    // step 5's tail
//   }
//   return std::move(acc).finish();                             // step 6
//
// Used by the plain kernels laplace (impl = "plain"), general, mmd and
// sinkhorn; the fused CPU and CUDA kernels compute the same quantities in
// their own passes and are tested against laplace's plain path.
#pragma once

#include <torch/types.h>

#include <vector>

#include "drift/field.hpp"
#include "drift/normalizer.hpp"

namespace drift {

// docs/method.md §2 steps 1-3 for canonical inputs (canonicalize_drift_inputs).
// T = Cg + Cn + Cp targets in the order [generated, extra negatives, positives].
struct PreparedField {
  int64_t Cg = 0, Cn = 0, Cp = 0, S = 0;
  torch::Tensor old;    // [B, Cg, S]  stopgrad(gen)
  torch::Tensor Y;      // [B, T, S]   targets [old, neg, pos]
  torch::Tensor w;      // [B, T]      their weights [w_gen, w_neg, w_pos]
  torch::Tensor d;      // [B, Cg, T]  sqrt(max(||old_i - Y_t||^2, 1e-8))   (step 2)
  torch::Tensor scale;  // []          mean(d * w[b, None, t]) / mean(w)     (step 3)
  torch::Tensor dn;     // [B, Cg, T]  d / the normalizer's distance divisor; the self
                        //             term is NOT excluded here (step 4 is the kernel's)
  torch::Tensor s;      // []          the normalizer's coordinate divisor, in old's dtype
  torch::Tensor Y_n;    // [B, T, S]   Y / s
  torch::Tensor old_n;  // [B, Cg, S]  old / s

  // The raw drift of one temperature from coefficients K [B, Cg, T]:
  // F = K @ Y_n - rowsum(K) * old_n, i.e. F_i = sum_t K[i,t] (Y_n[t] - old_n[i])
  // (translation-invariant whatever rowsum(K) is).
  torch::Tensor drift_from_coefficients(const torch::Tensor& K) const;
};

// Steps 1-3: targets and weights, exact-difference distances (no
// |a|^2 + |b|^2 - 2ab cancellation for large coordinates), the feature
// statistic and the normalizer's two divisors. Works in the inputs' dtype and
// device; builds no autograd graph.
PreparedField prepare_field(const DriftInputs& in, const Normalizer& norm);

// Step 5's tail and step 6: for each temperature's raw drift F [B, Cg, S]
// (normalized coordinates), m_tau = mean(F^2) and V += F * drift_factor(m_tau);
// finish() returns V, goal = old_n + V, the m_tau of every temperature in the
// order added, scale and coord_scale.
class DriftAccumulator {
 public:
  DriftAccumulator(const PreparedField& p, const Normalizer& norm);
  void add(const torch::Tensor& F);
  DriftOutputs finish() &&;

 private:
  const PreparedField& p_;
  const Normalizer& norm_;
  torch::Tensor V_;
  std::vector<torch::Tensor> m_taus_;
};

}  // namespace drift
