// Normalizers (SPEC.md section 2 steps 3 and 5, eq. 18-25):
//  - "feature_drift" (default): feature normalization AND drift normalization;
//  - "none": raw distances, raw coordinates, raw drift.
// The variants "feature-only" and "drift-only" (SPEC section 3) are not written
// yet; each is a combination of the two halves below.
#include <drift/sdk.hpp>

#include <cmath>
#include <memory>

namespace {

constexpr double kMinScale = 1e-3;   // floor of both feature divisors
constexpr double kMinMTau = 1e-8;    // floor of m_tau in the drift factor

// distance divisor max(scale, 1e-3); coordinate divisor s = max(scale / sqrt(S), 1e-3);
// drift factor 1 / sqrt(max(m_tau, 1e-8)).
class FeatureDriftNormalizer : public drift::Normalizer {
 public:
  drift::FeatureScaling feature(const torch::Tensor& scale, int64_t S) const override {
    drift::FeatureScaling f;
    f.distance_divisor = scale.clamp_min(kMinScale);
    f.coord_divisor = (scale / std::sqrt(static_cast<double>(S))).clamp_min(kMinScale);
    return f;
  }
  torch::Tensor drift_factor(const torch::Tensor& m_tau) const override {
    return m_tau.clamp_min(kMinMTau).rsqrt();
  }
};

// Divisors 1 and factor 1: the kernel works on raw distances and returns raw drift.
class NoneNormalizer : public drift::Normalizer {
 public:
  drift::FeatureScaling feature(const torch::Tensor& scale, int64_t) const override {
    drift::FeatureScaling f;
    f.distance_divisor = torch::ones({}, scale.options());
    f.coord_divisor = torch::ones({}, scale.options());
    return f;
  }
  torch::Tensor drift_factor(const torch::Tensor& m_tau) const override {
    return torch::ones({}, m_tau.options());
  }
};

}  // namespace

DRIFT_PLUGIN("normalizer_feature_drift", r) {
  r.add_normalizer(
      "feature_drift",
      "default (SPEC 2, eq. 18-25): distances / max(scale, 1e-3), coordinates / "
      "max(scale/sqrt(S), 1e-3), each drift * 1/sqrt(max(m_tau, 1e-8))",
      {}, [](const drift::Params&) -> absl::StatusOr<std::unique_ptr<drift::Normalizer>> {
        return std::make_unique<FeatureDriftNormalizer>();
      });
  r.add_normalizer(
      "none", "no normalization: raw distances, raw coordinates, raw drift (factor 1)", {},
      [](const drift::Params&) -> absl::StatusOr<std::unique_ptr<drift::Normalizer>> {
        return std::make_unique<NoneNormalizer>();
      });
}
