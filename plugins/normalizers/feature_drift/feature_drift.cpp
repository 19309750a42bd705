// Normalizers (docs/method.md §2 steps 3 and 5, eq. 18-25; variants of docs/method.md
// §3), each a combination of two independent halves:
//  - the feature half (how distances and coordinates are divided):
//      normalized: distance divisor max(scale, 1e-3), coordinate divisor
//                  s = max(scale / sqrt(S), 1e-3)             (eq. 18-21)
//      raw:        both divisors 1
//  - the drift half (the factor each per-temperature raw drift F_tau gets):
//      normalized: 1 / sqrt(max(m_tau, 1e-8))                 (eq. 23-25)
//      raw:        1
//
//   name            feature half   drift half
//   "feature_drift" normalized     normalized   (default)
//   "feature_only"  normalized     raw
//   "drift_only"    raw            normalized
//   "none"          raw            raw
#include <drift/sdk.hpp>

#include <cmath>
#include <memory>

namespace {

constexpr double kMinScale = 1e-3;  // floor of both feature divisors
constexpr double kMinMTau = 1e-8;   // floor of m_tau in the drift factor

drift::FeatureScaling normalized_feature(const torch::Tensor& scale, int64_t S) {
  drift::FeatureScaling f;
  f.distance_divisor = scale.clamp_min(kMinScale);
  f.coord_divisor = (scale / std::sqrt(static_cast<double>(S))).clamp_min(kMinScale);
  return f;
}

drift::FeatureScaling raw_feature(const torch::Tensor& scale, int64_t) {
  drift::FeatureScaling f;
  f.distance_divisor = torch::ones({}, scale.options());
  f.coord_divisor = torch::ones({}, scale.options());
  return f;
}

torch::Tensor normalized_drift(const torch::Tensor& m_tau) {
  return m_tau.clamp_min(kMinMTau).rsqrt();
}

torch::Tensor raw_drift(const torch::Tensor& m_tau) { return torch::ones({}, m_tau.options()); }

using FeatureHalf = drift::FeatureScaling (*)(const torch::Tensor&, int64_t);
using DriftHalf = torch::Tensor (*)(const torch::Tensor&);

class CombinedNormalizer : public drift::Normalizer {
 public:
  CombinedNormalizer(FeatureHalf feature, DriftHalf drift) : feature_(feature), drift_(drift) {}
  drift::FeatureScaling feature(const torch::Tensor& scale, int64_t S) const override {
    return feature_(scale, S);
  }
  torch::Tensor drift_factor(const torch::Tensor& m_tau) const override { return drift_(m_tau); }

 private:
  FeatureHalf feature_;
  DriftHalf drift_;
};

void add(drift::Registrar& r, const char* name, const char* doc, FeatureHalf feature,
         DriftHalf drift) {
  r.add_normalizer(name, doc, {},
                   [feature, drift](const drift::Params&)
                       -> absl::StatusOr<std::unique_ptr<drift::Normalizer>> {
                     return std::make_unique<CombinedNormalizer>(feature, drift);
                   });
}

}  // namespace

DRIFT_PLUGIN("normalizer_feature_drift", r) {
  add(r, "feature_drift",
      "default (docs/method.md §2, eq. 18-25): distances / max(scale, 1e-3), coordinates / "
      "max(scale/sqrt(S), 1e-3), each drift * 1/sqrt(max(m_tau, 1e-8))",
      normalized_feature, normalized_drift);
  add(r, "feature_only",
      "feature normalization only: distances / max(scale, 1e-3), coordinates / "
      "max(scale/sqrt(S), 1e-3), raw drift (factor 1)",
      normalized_feature, raw_drift);
  add(r, "drift_only",
      "drift normalization only: raw distances and coordinates (divisors 1), each drift * "
      "1/sqrt(max(m_tau, 1e-8))",
      raw_feature, normalized_drift);
  add(r, "none", "no normalization: raw distances, raw coordinates, raw drift (factor 1)",
      raw_feature, raw_drift);
}
