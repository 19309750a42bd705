// Kernel "mmd": the MMD-derived drift field of docs/method.md §3 (paper App. C.2),
// in plain LibTorch ops: the gradient field of MMD^2 with an UNNORMALIZED
// Gaussian kernel (no softmax anywhere).
//
// Formula. With the Gaussian kernel k(x, y) = exp(-||x - y||^2 / (2 tau^2)),
// weighted empirical measures p = sum_p w_p delta(y_p) / W_p (positives) and
// q = sum_n w_n delta(y_n) / W_n (negatives: the generated samples and the extra
// negatives, as in docs/method.md §2 step 1), and grad_x k(x, y) = k(x, y) (y - x) / tau^2,
// the drift of generated sample x_i is
//
//   V_tau(x_i) = 1/tau^2 * [ sum_{t in pos} w_t k(x_i, y_t) (y_t - x_i) / W_p
//                          - sum_{t in gen+neg, t != i} w_t k(x_i, y_t) (y_t - x_i) / W_n(i) ]
//   W_p = sum_{t in pos} w_t,   W_n(i) = sum_{t in gen+neg, t != i} w_t,
//
// i.e. V = -(Cg / 2) * grad_{x_i} MMD^2_u(q, p) for equal weights (MMD^2_u: the
// unbiased estimate, whose q-q term leaves out the pairs (i, i)); the weights
// generalize it to weighted measures, so that CFG weights on the extra
// negatives (docs/method.md §5) make q the guided mixture. A sum with zero total
// weight (no positives, or no other negative) contributes 0.
//
// Self-exclusion: the self column (t = i in the generated block) gets kernel
// weight exactly 0 and is left out of W_n(i). (Its direction y_i - x_i is 0
// anyway; the point is that it must not count in the negatives' mass.)
//
// Normalizer, as for the other kernels: the kernel is evaluated on the
// normalized distances dn = d / distance_divisor (so the temperatures mean the
// same as for laplace), the directions on the normalized coordinates Y / s, and
// each temperature's raw drift F_tau = V_tau is multiplied by
// drift_factor(m_tau) with m_tau = mean(F_tau^2) and summed. With normalizer
// "none" (divisors 1, factor 1) V is exactly the formula above in input units,
// summed over temperatures. (With feature normalization the exact gradient of
// MMD^2 in normalized coordinates differs from F_tau by the positive constant
// (s / distance_divisor)^2 per feature, which drift normalization removes.)
//
// Like the default field it is anti-symmetric when the generated samples carry
// weight 0 (swap positives and negatives and V flips sign), and it vanishes in
// expectation when q = p. Unlike the softmax kernels its attraction decays with
// distance as k does: far from the data it is weak.
//
// Works in the dtype of its inputs (float32 or float64) on the inputs' device.
// Memory: O(B * Cg * T).
#include <drift/sdk.hpp>

#include <memory>
#include <utility>
#include <vector>

namespace {

class MmdKernel : public drift::DriftKernel {
 public:
  drift::DriftOutputs compute(const drift::DriftInputs& in,
                              const drift::Normalizer& norm) const override {
    torch::NoGradGuard no_grad;

    // --- docs/method.md §2 steps 1-3: targets Y = [old, neg, pos], weights w, distances,
    // feature normalization (drift/field_steps.hpp). ---
    const drift::PreparedField p = drift::prepare_field(in, norm);
    const int64_t Cg = p.Cg, Cn = p.Cn;
    const int64_t T = p.Y.size(1);
    const torch::Tensor dn2 = p.dn.square();

    // --- Self-exclusion: per-row column weights with w[i, i] = 0 in the gen block. ---
    const torch::Tensor not_self = 1.0 - torch::eye(Cg, T, p.old.options());  // [Cg, T]
    const torch::Tensor wc = p.w.unsqueeze(1) * not_self;                     // [B, Cg, T]
    // Each column divided by its side's total weight: negatives (gen, neg) by
    // W_n(i), positives by W_p. A side with zero total weight contributes 0.
    const torch::Tensor wn = wc.narrow(2, 0, Cg + Cn);
    const torch::Tensor wp = wc.narrow(2, Cg + Cn, T - Cg - Cn);
    const torch::Tensor coef =
        torch::cat({-wn / safe_total(wn), wp / safe_total(wp)}, 2);  // [B, Cg, T]

    drift::DriftAccumulator acc(p, norm);
    for (double tau : in.temperatures) {
      // K[i,t] = +-w_t k(x_i, y_t) / W / tau^2; all k may underflow to 0 (then F = 0).
      const torch::Tensor k = (-dn2 / (2.0 * tau * tau)).exp();
      const torch::Tensor K = coef * k / (tau * tau);
      // F_tau = sum_t K[i,t] (y_t - x_i) in normalized coordinates;
      // V += F_tau * drift_factor(mean(F_tau^2)).
      acc.add(p.drift_from_coefficients(K));
    }
    return std::move(acc).finish();
  }

 private:
  // Row totals [B, Cg, 1], with 0 replaced by 1 (the row's weights are then all 0).
  static torch::Tensor safe_total(const torch::Tensor& wside) {
    const torch::Tensor tot = wside.sum(2, /*keepdim=*/true);
    return torch::where(tot > 0, tot, torch::ones_like(tot));
  }
};

}  // namespace

DRIFT_PLUGIN("kernel_mmd", r) {
  r.add_kernel("mmd",
               "MMD-derived field (docs/method.md §3, App. C.2): gradient field of MMD^2 with the "
               "unnormalized Gaussian kernel exp(-dn^2/(2 tau^2)), no softmax; weighted means "
               "over positives minus over negatives (self excluded), times 1/tau^2",
               {}, [](const drift::Params&) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
                 return std::make_unique<MmdKernel>();
               });
}
