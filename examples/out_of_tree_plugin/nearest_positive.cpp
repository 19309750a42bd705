// A custom drift kernel: every generated sample is pulled straight toward its
// nearest positive, ignoring the other generated samples. It is NOT
// anti-symmetric (so it mode-collapses: that is what makes it a useful foil),
// but it shows the whole kernel contract: batched [B, C, S] inputs, all
// temperatures in one call, feature normalization and drift normalization
// delegated to the experiment's normalizer.
#include <drift/sdk.hpp>

#include <cmath>

namespace {

class NearestPositive : public drift::DriftKernel {
 public:
  explicit NearestPositive(double step) : step_(step) {}

  drift::DriftOutputs compute(const drift::DriftInputs& in,
                              const drift::Normalizer& norm) const override {
    const auto old = in.gen.detach();
    const int64_t S = old.size(2);
    // Weighted mean distance between generated samples and positives: the
    // feature statistic the normalizer turns into divisors.
    auto d = torch::cdist(old, in.pos);                            // [B, Cg, Cp]
    auto w = in.w_pos.unsqueeze(1);                                // [B, 1, Cp]
    auto scale = (d * w).mean() / w.mean();
    auto scaling = norm.feature(scale, S);
    auto s = scaling.coord_divisor;

    auto nearest = std::get<1>(d.min(/*dim=*/2));                  // [B, Cg]
    auto target = in.pos.gather(1, nearest.unsqueeze(-1).expand({-1, -1, S}));
    auto F = step_ * (target - old) / s;                           // raw drift
    auto m = F.pow(2).mean();

    drift::DriftOutputs out;
    out.V = torch::zeros_like(old);
    std::vector<torch::Tensor> m_tau;
    for (size_t t = 0; t < in.temperatures.size(); ++t) {  // temperature-free kernel
      out.V = out.V + F * norm.drift_factor(m);
      m_tau.push_back(m);
    }
    out.m_tau = torch::stack(m_tau);
    out.scale = scale;
    out.coord_scale = s;
    out.goal = old / s + out.V;
    return out;
  }

 private:
  double step_;
};

}  // namespace

DRIFT_PLUGIN("nearest_positive_example", r) {
  r.add_kernel("nearest_positive",
               "pulls each generated sample toward its nearest positive (not anti-symmetric)",
               {drift::ParamSpec::Float("step", 1.0, "fraction of the way to the nearest positive")
                    .in_range(0.0, 1.0)},
               [](const drift::Params& p) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
                 return std::make_unique<NearestPositive>(p.get_float("step"));
               });
}
