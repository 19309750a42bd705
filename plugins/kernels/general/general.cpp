// Kernel "general": the drift field of docs/method.md §2 with the ablation
// knobs of docs/method.md §3 (paper Table 1 and Table 11), in plain LibTorch ops.
//
// With its default parameters it computes exactly the field of kernel
// "laplace" (impl = "plain"); each parameter replaces one piece of it:
//
//  - `normalization` (step 5, how the affinities A are normalized):
//      "both"    (default) A = sqrt(max(softmax_t(logits) * softmax_i(logits), floor)):
//                softmax over the targets axis AND over the generated-sample axis,
//                geometric mean; the floor (1e-6, docs/method.md §2) and the normalizer clamp
//                are the parameters min_affinity, min_affinity_mode and
//                min_normalizer of drift/affinity.hpp, as in kernel "laplace";
//      "targets" A = softmax_t(logits): over the targets axis only;
//      "none"    A = exp(logits): the raw kernel values, no softmax.
//  - `shape` (step 5, the logits from the normalized distances dn of step 3):
//      "laplace" (default) logits = -dn / tau;
//      "gaussian"          logits = -dn^2 / (2 tau^2).
//    Self-exclusion (step 4) is applied to dn BEFORE the shape, in both shapes:
//    dn[b,i,i] += 100. For the Gaussian the self logit is then
//    -(100 + dn_ii)^2 / (2 tau^2) <= -5000 / tau^2, which excludes the self term
//    at least as strongly as the Laplace self logit -100 / tau for every
//    tau <= 50 (squaring the already-shifted distance can only push it further
//    down, never bring it back among the other targets).
//  - `attraction` a and `repulsion` r (Table 1): the raw drift per temperature is
//        F_tau = a * V+ - r * V-,
//        V+ = sum_{t in pos}      Kp[i,t] (Y_t/s - old_i/s)     (attraction),
//        V- = sum_{t in gen, neg} -Kn[i,t] (Y_t/s - old_i/s)    (repulsion),
//    with Kn, Kp exactly as in docs/method.md §2 step 5. Each part carries its own share of
//    the translation-invariance term (rowsum(Kp) * old and rowsum(Kn) * old),
//    so each is translation-invariant on its own; in code this is the
//    formula of docs/method.md §2 step 5, F = K' @ (Y/s) - rowsum(K') * (old/s) with K' = [r * Kn, a * Kp].
//    a = r = 1 is the default field bit for bit (K' = K); r = 0 is
//    attraction-only. For a != r, rowsum(K') is no longer ~0 and the field is
//    no longer anti-symmetric: that is the ablation.
//
// The normalizer is used as by kernel "laplace": feature() gives the distance
// divisor (dn = d / divisor) and the coordinate divisor s; drift_factor(m_tau)
// multiplies each temperature's combined F_tau, and m_tau = mean(F_tau^2) is
// the raw mean squared combined drift.
//
// Works in the dtype of its inputs (float32 or float64) on the inputs' device.
// Memory: O(B * Cg * T), as the plain laplace code.
#include <drift/sdk.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

// Constants of docs/method.md §2.
constexpr double kSelfExclusion = 100.0;      // step 4: added to dn[b, i, i]

enum class Normalization { kBoth, kTargets, kNone };
enum class Shape { kLaplace, kGaussian };

struct Options {
  Normalization normalization = Normalization::kBoth;
  Shape shape = Shape::kLaplace;
  double attraction = 1.0;
  double repulsion = 1.0;
  drift::AffinityFloor floor;  // "both": A = sqrt(max(softmax_t * softmax_i, floor))
};

class GeneralKernel : public drift::DriftKernel {
 public:
  explicit GeneralKernel(Options o) : o_(o) {}

  drift::DriftOutputs compute(const drift::DriftInputs& in,
                              const drift::Normalizer& norm) const override {
    torch::NoGradGuard no_grad;

    // --- Steps 1-3: targets [old, neg, pos], weights, distances, divisors. ---
    const drift::PreparedField p = drift::prepare_field(in, norm);
    const int64_t Cg = p.Cg, Cn = p.Cn;
    const torch::Tensor w_cols = p.w.unsqueeze(1);  // [B, 1, T]

    // --- Step 4: self-exclusion dn[b, i, i] += 100 (before the shape, see header). ---
    const torch::Tensor dn = p.dn + kSelfExclusion * torch::eye(Cg, p.dn.size(2), p.dn.options());

    // --- Step 5: one raw drift per temperature, normalized and summed into V. ---
    drift::DriftAccumulator acc(p, norm);
    for (double tau : in.temperatures) {
      // logits from the shape; nan_to_num maps an overflow to -inf onto the
      // lowest finite value so that the softmaxes stay defined.
      const torch::Tensor logits = torch::nan_to_num(shape_logits(dn, tau));  // [B, Cg, T]

      // Affinities from the normalization, then A *= w[b, None, t].
      const torch::Tensor A = affinities(logits) * w_cols;
      const torch::Tensor An = A.narrow(2, 0, Cg + Cn);                    // gen, neg
      const torch::Tensor Ap = A.narrow(2, Cg + Cn, A.size(2) - Cg - Cn);  // pos

      // The coefficients of docs/method.md §2 step 5, Kn = -An * rowsum(Ap), Kp = Ap * rowsum(An), then the
      // repulsion part scaled by r, the attraction part by a: K' = [r Kn, a Kp].
      const torch::Tensor Kn = -An * Ap.sum(2, /*keepdim=*/true);
      const torch::Tensor Kp = Ap * An.sum(2, /*keepdim=*/true);
      const torch::Tensor K = torch::cat({Kn * o_.repulsion, Kp * o_.attraction}, 2);

      // F_tau = a V+ - r V- = K' @ (Y/s) - rowsum(K') * (old/s): every part
      // subtracts its own rowsum, so each part is translation-invariant.
      // m_tau = mean(F^2) of the combined drift; V += F * drift_factor(m_tau).
      acc.add(p.drift_from_coefficients(K));
    }

    // --- Step 6: goal G = old / s + V (frozen). ---
    return std::move(acc).finish();
  }

 private:
  Options o_;

  torch::Tensor shape_logits(const torch::Tensor& dn, double tau) const {
    switch (o_.shape) {
      case Shape::kGaussian:
        return -dn.square() / (2.0 * tau * tau);
      case Shape::kLaplace:
        break;
    }
    return -dn / tau;
  }

  // A from the logits [B, Cg, T], before the weights.
  torch::Tensor affinities(const torch::Tensor& logits) const {
    switch (o_.normalization) {
      case Normalization::kNone:
        // Raw kernel values; all of them may underflow to 0 (then K = 0, F = 0).
        return logits.exp();
      case Normalization::kTargets:
        return torch::softmax(logits, /*dim=*/2);
      case Normalization::kBoth:
        break;
    }
    // In the log domain (drift/affinity.hpp), so far-apart inputs (every
    // exp(logits) underflowing) stay finite.
    return drift::doubly_normalized_affinity(logits, o_.floor);
  }
};

}  // namespace

DRIFT_PLUGIN("kernel_general", r) {
  r.add_kernel(
      "general",
      "drift field of docs/method.md §2 with the ablations of §3 (plain LibTorch ops): kernel "
      "normalization (both/targets/none), shape (laplace/gaussian), field a*V+ - r*V- with "
      "attraction a and repulsion r; the defaults equal kernel laplace",
      drift::with_affinity_floor_params({drift::ParamSpec::String("normalization", "both",
                                "\"both\": softmax over targets AND generated samples, "
                                "geometric mean (docs/method.md §2, default); \"targets\": softmax over "
                                "the targets only; \"none\": raw exp(logits)")
           .one_of({"both", "targets", "none"}),
       drift::ParamSpec::String("shape", "laplace",
                                "\"laplace\": logits = -dn/tau (default); \"gaussian\": "
                                "logits = -dn^2/(2 tau^2); dn = normalized distance with the "
                                "self term excluded (+100) in both")
           .one_of({"laplace", "gaussian"}),
       drift::ParamSpec::Float("attraction", 1.0,
                               "a: factor of the attraction part V+ (positives) in "
                               "a*V+ - r*V-; a != r breaks anti-symmetry (Table 1)")
           .non_negative(),
       drift::ParamSpec::Float("repulsion", 1.0,
                               "r: factor of the repulsion part V- (generated samples and "
                               "negatives) in a*V+ - r*V-; 0 = attraction only")
           .non_negative()}),
      [](const drift::Params& p) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
        // Params normally come validated (defaults filled in); an empty Params
        // gives the defaults.
        Options o;
        const std::string n = p.has("normalization") ? p.get_string("normalization") : "both";
        if (n == "both") o.normalization = Normalization::kBoth;
        else if (n == "targets") o.normalization = Normalization::kTargets;
        else if (n == "none") o.normalization = Normalization::kNone;
        else
          return absl::InvalidArgumentError(
              "general: normalization must be one of \"both\", \"targets\", \"none\", got \"" +
              n + "\"");
        const std::string sh = p.has("shape") ? p.get_string("shape") : "laplace";
        if (sh == "laplace") o.shape = Shape::kLaplace;
        else if (sh == "gaussian") o.shape = Shape::kGaussian;
        else
          return absl::InvalidArgumentError(
              "general: shape must be one of \"laplace\", \"gaussian\", got \"" + sh + "\"");
        if (p.has("attraction")) o.attraction = p.get_float("attraction");
        if (p.has("repulsion")) o.repulsion = p.get_float("repulsion");
        if (!(o.attraction >= 0.0) || !(o.repulsion >= 0.0) || !std::isfinite(o.attraction) ||
            !std::isfinite(o.repulsion))
          return absl::InvalidArgumentError(
              "general: attraction and repulsion must be finite floats >= 0");
        absl::StatusOr<drift::AffinityFloor> floor = drift::affinity_floor_from_params(p, "general");
        if (!floor.ok()) return floor.status();
        o.floor = *floor;
        return std::make_unique<GeneralKernel>(o);
      });
}
