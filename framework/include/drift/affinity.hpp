// drift SDK: the doubly normalized affinity of docs/method.md §2 step 5 and
// its floors, shared by the kernels that compute it (laplace's plain, fused
// and CUDA paths, general with normalization = "both").
//
//   A = sqrt(max(softmax_t(logits) * softmax_i(logits), floor))
//     = k / sqrt(rowsum(k) * colsum(k))   with k = exp(logits), above the floor
//
// docs/method.md §2 gives an absolute floor of 1e-6 (the golden cases use it). At toy batch
// shapes it is not harmless: with T targets per row and Cg rows, a uniform
// affinity product is 1 / (Cg * T), which is below 1e-6 as soon as Cg * T >
// 1e6 (512 particles and 1024 targets: 1.9e-6). Every distant target then gets
// the same floored affinity, the attraction of a sample points to the
// positives' mean, and tight toy initialisations collapse onto the midpoint of
// the modes (docs/guide/kernels.md, "The affinity floor"). Hence the parameters:
//
//   min_affinity       the floor (default 1e-6; 0: none)
//   min_affinity_mode  "absolute" (default): floor = min_affinity;
//                      "relative": floor = min_affinity / (Cg * T), a fraction
//                      of the uniform product, whatever the batch shape
//   min_normalizer     clamp of rowsum(k) * colsum(k) before the square root
//                      (the authors' toy demo clamps at 1e-12); default 0: none
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "drift/params.hpp"

namespace drift {

struct AffinityFloor {
  double min_affinity = 1e-6;
  bool relative = false;
  double min_normalizer = 0.0;

  // The floor of softmax_t * softmax_i for problems of Cg rows and T columns
  // (0: no floor).
  double product_floor(int64_t Cg, int64_t T) const;
};

// A kernel's own parameter declarations followed by the three above.
std::vector<ParamSpec> with_affinity_floor_params(std::vector<ParamSpec> own);

// Reads them from a kernel's (validated) params; missing names keep the
// defaults. Errors name the kernel and the key.
absl::StatusOr<AffinityFloor> affinity_floor_from_params(const Params& p,
                                                         const std::string& kernel);

// A [B, Cg, T] from logits [B, Cg, T] (before any per-target weight), in the
// log domain, so that far-apart inputs (every exp(logits) underflowing) stay
// finite: log A = 0.5 * max(log softmax_t + log softmax_i, log floor), and with
// min_normalizer > 0, log A = 0.5 * max(2 logits - max(lse_t + lse_i,
// log min_normalizer), log floor). With the default floor this is bit for bit
// the formula of docs/method.md §2 step 5.
torch::Tensor doubly_normalized_affinity(const torch::Tensor& logits, const AffinityFloor& f);

}  // namespace drift
