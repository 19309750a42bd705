// Batched entropic optimal transport by Sinkhorn iterations in the log domain,
// used by kernel "sinkhorn" (sinkhorn.cpp) and, header-only, by its tests
// (tests/test_sinkhorn.cpp checks the marginals of exactly this solver).
//
// Problem b: the plan P[b] = exp(f[b,i] + log_k[b,i,j] + g[b,j]) with row sums
// a[b,i] and column sums c[b,j] (probability vectors given as logs; a zero mass
// is log 0 = -inf). log_k = -cost / eps. Every row of log_k must have a finite
// entry where log_c is finite, and every column one where log_a is finite.
//
// Each iteration updates f (rows exact), then g (columns exact). The marginal
// error is the largest |row sum - a_i| divided by the mean row mass 1/R, i.e.
// measured in units of the mass of an average row (the columns are exact after
// every g update). The loop stops once it is <= tol, or after max_iters
// iterations.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace drift::sinkhorn {

struct Potentials {
  torch::Tensor f;            // [B, R]
  torch::Tensor g;            // [B, C]
  int64_t iterations = 0;     // (f, g) updates done
  double marginal_error = 0;  // of the returned (f, g), as defined above
};

// Row-sum error of the plan given by (f, g): R * max |exp(f + lse_r) - a|.
inline double row_error(const torch::Tensor& f, const torch::Tensor& lse_r,
                        const torch::Tensor& log_a) {
  const int64_t R = f.size(1);
  if (R == 0 || f.numel() == 0) return 0.0;
  return (static_cast<double>(R) * ((f + lse_r).exp() - log_a.exp()).abs().max())
      .item<double>();
}

inline Potentials solve(const torch::Tensor& log_k, const torch::Tensor& log_a,
                        const torch::Tensor& log_c, int64_t max_iters, double tol) {
  torch::NoGradGuard no_grad;
  Potentials p;
  p.f = torch::zeros_like(log_a);
  // g = 0, except -inf for columns of zero mass: they must not count in the
  // first row update either (otherwise the iterates, though not the limit,
  // depend on columns that carry no mass).
  p.g = torch::where(torch::isfinite(log_c), torch::zeros_like(log_c), log_c);
  for (int64_t it = 0;; ++it) {
    // log of the row sums of exp(log_k + g) (the row sums of P are exp(f + lse_r)).
    const torch::Tensor lse_r = torch::logsumexp(log_k + p.g.unsqueeze(1), /*dim=*/2);
    if (it > 0) {
      p.marginal_error = row_error(p.f, lse_r, log_a);
      if (p.marginal_error <= tol) break;
    }
    if (it == max_iters) break;
    p.f = log_a - lse_r;
    p.g = log_c - torch::logsumexp(log_k + p.f.unsqueeze(2), /*dim=*/1);
    p.iterations = it + 1;
  }
  return p;
}

// The plan itself, [B, R, C] (tests; the kernel only needs row conditionals).
inline torch::Tensor plan(const Potentials& p, const torch::Tensor& log_k) {
  return (p.f.unsqueeze(2) + log_k + p.g.unsqueeze(1)).exp();
}

// Row i's conditional distribution P[i, j] / sum_j P[i, j] = softmax_j(log_k + g):
// it does not depend on f, so it is defined for rows of zero mass as well.
inline torch::Tensor row_conditionals(const Potentials& p, const torch::Tensor& log_k) {
  return torch::softmax(log_k + p.g.unsqueeze(1), /*dim=*/2);
}

}  // namespace drift::sinkhorn
