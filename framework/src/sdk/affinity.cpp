#include "drift/affinity.hpp"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace drift {

double AffinityFloor::product_floor(int64_t Cg, int64_t T) const {
  if (!(min_affinity > 0.0)) return 0.0;
  if (!relative) return min_affinity;
  const double cells = static_cast<double>(Cg) * static_cast<double>(T);
  return cells > 0 ? min_affinity / cells : min_affinity;
}

std::vector<ParamSpec> with_affinity_floor_params(std::vector<ParamSpec> own) {
  std::vector<ParamSpec> floor = {
      ParamSpec::Float("min_affinity", 1e-6,
                       "floor of softmax_t * softmax_i in A = sqrt(max(., floor)) (docs/method.md §2 step "
                       "5: 1e-6); 0: no floor. At toy batch shapes the absolute 1e-6 floors "
                       "every distant target and collapses tight initialisations "
                       "(docs/guide/kernels.md)")
          .non_negative(),
      ParamSpec::String("min_affinity_mode", "absolute",
                        "\"absolute\": the floor is min_affinity; \"relative\": min_affinity "
                        "/ (Cg * T), a fraction of the uniform affinity product of a problem "
                        "with Cg generated samples and T targets")
          .one_of({"absolute", "relative"}),
      ParamSpec::Float("min_normalizer", 0.0,
                       "clamp of rowsum(k) * colsum(k), k = exp(logits), before the square "
                       "root in A = k / sqrt(rowsum * colsum) (the authors' toy demo: "
                       "1e-12); 0: none")
          .non_negative(),
  };
  for (ParamSpec& f : floor) own.push_back(std::move(f));
  return own;
}

absl::StatusOr<AffinityFloor> affinity_floor_from_params(const Params& p,
                                                         const std::string& kernel) {
  AffinityFloor f;
  if (p.has("min_affinity")) f.min_affinity = p.get_float("min_affinity");
  if (p.has("min_normalizer")) f.min_normalizer = p.get_float("min_normalizer");
  if (p.has("min_affinity_mode")) {
    const std::string m = p.get_string("min_affinity_mode");
    if (m == "relative") f.relative = true;
    else if (m != "absolute")
      return absl::InvalidArgumentError(absl::StrCat(
          kernel, ": min_affinity_mode must be \"absolute\" or \"relative\", got \"", m, "\""));
  }
  if (!(f.min_affinity >= 0.0) || !std::isfinite(f.min_affinity))
    return absl::InvalidArgumentError(
        absl::StrCat(kernel, ": min_affinity must be a finite float >= 0, got ", f.min_affinity));
  if (!(f.min_normalizer >= 0.0) || !std::isfinite(f.min_normalizer))
    return absl::InvalidArgumentError(absl::StrCat(
        kernel, ": min_normalizer must be a finite float >= 0, got ", f.min_normalizer));
  return f;
}

torch::Tensor doubly_normalized_affinity(const torch::Tensor& logits, const AffinityFloor& f) {
  torch::NoGradGuard no_grad;
  const double floor = f.product_floor(logits.size(1), logits.size(2));
  torch::Tensor log_prod;  // log(softmax_t * softmax_i), or its clamped-normalizer form
  if (f.min_normalizer > 0.0) {
    const torch::Tensor lse_t = torch::logsumexp(logits, /*dim=*/2, /*keepdim=*/true);
    const torch::Tensor lse_i = torch::logsumexp(logits, /*dim=*/1, /*keepdim=*/true);
    log_prod = 2.0 * logits - (lse_t + lse_i).clamp_min(std::log(f.min_normalizer));
  } else {
    log_prod = torch::log_softmax(logits, /*dim=*/2) + torch::log_softmax(logits, /*dim=*/1);
  }
  if (floor > 0.0) log_prod = log_prod.clamp_min(std::log(floor));
  return (0.5 * log_prod).exp();
}

}  // namespace drift
