// Kernel "sinkhorn": Sinkhorn drifting (arXiv 2603.12366) in the coordinates of
// docs/method.md §2. Docs: docs/guide/kernels.md.
//
// Per problem b and temperature tau (tau plays the role of the entropic
// regularisation eps; one pair of plans per temperature):
//  1. Targets, weights, distances d and the feature statistic `scale` exactly as
//     docs/method.md §2 steps 1-3 (and kernel laplace): the normalizer's feature() gives the
//     distance divisor (dn = d / divisor) and the coordinate divisor s.
//  2. Cost C = dn^2 (parameter cost = "sqeuclidean", default: entropic W2, whose
//     barycentric projection approximates the Brenier map) or C = dn
//     (cost = "euclidean": the Laplace affinity exp(-dn/tau) of the default
//     kernel, balanced by Sinkhorn instead of by one softmax per axis).
//  3. Attractive plan P+ between the generated samples (rows, masses
//     a ∝ w_gen) and the positives (columns, masses ∝ w_pos); repulsive plan P-
//     between the generated samples (rows, a) and the "negative side": the
//     generated samples themselves followed by the extra negatives `neg`
//     (columns, masses ∝ [w_gen, w_neg]). So `neg` (CFG: unconditional
//     negatives, weighted by w_neg) joins the generated side exactly as in the
//     default kernel: the repulsive measure is the w-weighted mixture of gen
//     and neg. Both plans by log-domain Sinkhorn (sinkhorn_plan.hpp) on
//     log K = -C / tau, up to `iterations` iterations or until the row-marginal
//     error (max |row sum - a_i| in units of the mean row mass) is <= `tolerance`.
//  4. Raw drift in normalized coordinates (barycentric projections):
//       F_i = sum_j P+_ij y_j / sum_j P+_ij  -  sum_k P-_ik z_k / sum_k P-_ik
//     (y = pos / s, z = [gen, neg] / s). The row conditionals P_ij / sum_j P_ij
//     do not depend on the row potential, so a generated sample of weight 0
//     still gets a drift (it is a query point only, as in the default kernel).
//     m_tau = mean(F^2) over [B, Cg, S]; V += F * drift_factor(m_tau).
//  5. goal = old / s + V.
//
// Self-mass (parameter self_mass): in P- a generated sample could send mass to
// itself at cost ~0; with finite samples that pulls its repulsive barycentre
// toward itself, so at equilibrium (gen and pos independent draws of one
// distribution) the attraction is not cancelled and the field contracts the
// samples toward the local mean (tests/test_sinkhorn.cpp, SelfMass*).
//  - "exclude" (default): the diagonal of the gen block of P- gets the cost
//    max(C of that problem) + 100 * tau, i.e. log K_ii = min(log K) - 100: the
//    diagonal is e^-100 times less attractive than the worst other pair, so it
//    receives mass only where the marginals force it (e.g. one generated sample
//    and no negatives: then the repulsive barycentre is the sample itself and
//    F = attraction only). Finite in every case, unlike an infinite cost.
//  - "keep": the plain cost (d_ii = 1e-4 raw, as docs/method.md §2 step 2); for ablations.
//
// Degenerate sides: if a problem has no positive mass (Cp = 0 or all w_pos = 0)
// its attractive barycentre is x_i itself (no attraction), likewise for the
// repulsive side; if all w_gen of a problem are 0 the rows get uniform masses.
//
// Numerics: float32 or float64 as the inputs, plain LibTorch ops on the inputs'
// device, no autograd graph. The log domain keeps far-apart inputs (every
// exp(-C/tau) underflowing) and tiny tau finite; -C/tau is clamped to
// -max/16 of the dtype so that it never reaches -inf.
#include <drift/sdk.hpp>

#include "sinkhorn_plan.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr double kSelfPenalty = 100.0;        // log K_ii = min(log K) - 100 ("exclude")

enum class Cost { kSqEuclidean, kEuclidean };
enum class SelfMass { kExclude, kKeep };

struct Config {
  int64_t iterations = 50;
  double tolerance = 1e-4;
  Cost cost = Cost::kSqEuclidean;
  SelfMass self_mass = SelfMass::kExclude;
};

// log of the marginal w / sum(w) per problem ([B, N]); problems whose total is 0
// (or N = 0) get uniform masses and `present` = false.
struct Marginal {
  torch::Tensor log_m;    // [B, N]
  torch::Tensor present;  // [B] bool
};

Marginal marginal(const torch::Tensor& w) {
  const int64_t N = w.size(1);
  const torch::Tensor total = w.sum(1, /*keepdim=*/true);  // [B, 1]
  const torch::Tensor present = (total > 0).squeeze(1);
  const torch::Tensor uniform = torch::full_like(w, N > 0 ? 1.0 / static_cast<double>(N) : 0.0);
  const torch::Tensor m = torch::where(total > 0, w / total.clamp_min(1e-300), uniform);
  return {m.log(), present};
}

class SinkhornKernel : public drift::DriftKernel {
 public:
  explicit SinkhornKernel(Config c) : c_(c) {}

  drift::DriftOutputs compute(const drift::DriftInputs& in,
                              const drift::Normalizer& norm) const override {
    torch::NoGradGuard no_grad;

    // --- docs/method.md §2 steps 1-3: targets, distances, feature statistic, divisors. ---
    const drift::PreparedField p = drift::prepare_field(in, norm);
    const int64_t Cg = p.Cg, Cn = p.Cn, Cp = p.Cp;
    const torch::Tensor& old = p.old;
    const torch::Tensor C = c_.cost == Cost::kSqEuclidean ? p.dn.pow(2) : p.dn;  // [B, Cg, T]
    const torch::Tensor C_neg = C.narrow(2, 0, Cg + Cn);                         // gen, neg
    const torch::Tensor C_pos = C.narrow(2, Cg + Cn, Cp);

    // Normalized coordinates, centred on the generated samples' mean (the
    // barycentric projections are affine, so this only avoids cancellation
    // for large common offsets).
    const torch::Tensor& old_n = p.old_n;
    const torch::Tensor centre = old_n.mean(1, /*keepdim=*/true);  // [B, 1, S]
    const torch::Tensor Z_neg = p.Y_n.narrow(1, 0, Cg + Cn) - centre;  // [gen, neg] / s
    const torch::Tensor Z_pos = p.Y_n.narrow(1, Cg + Cn, Cp) - centre;  // pos / s
    const torch::Tensor X = old_n - centre;

    // --- Marginals. ---
    const Marginal rows = marginal(in.w_gen);
    const Marginal cols_pos = marginal(in.w_pos);
    const Marginal cols_neg = marginal(torch::cat({in.w_gen, in.w_neg}, 1));

    const double floor_log_k =
        old.scalar_type() == torch::kFloat32
            ? -static_cast<double>(std::numeric_limits<float>::max()) / 16
            : -std::numeric_limits<double>::max() / 16;
    const torch::Tensor diag = torch::eye(Cg, Cg + Cn, C.options().dtype(torch::kBool));

    drift::DriftAccumulator acc(p, norm);
    for (double tau : in.temperatures) {
      const torch::Tensor bary_pos =
          barycentre(C_pos, tau, floor_log_k, rows, cols_pos, Z_pos, X, /*diag=*/{});
      const torch::Tensor bary_neg =
          barycentre(C_neg, tau, floor_log_k, rows, cols_neg, Z_neg, X,
                     c_.self_mass == SelfMass::kExclude ? diag : torch::Tensor());
      // Raw drift F = bary_pos - bary_neg; V += F * drift_factor(mean(F^2)).
      acc.add(bary_pos - bary_neg);
    }
    return std::move(acc).finish();
  }

 private:
  Config c_;

  // Barycentric projection of every generated sample under the entropic plan
  // between the rows and the columns Z ([B, Cc, S]); problems whose column side
  // has no mass get X (no contribution). `diag` (optional, [Cg, Cc] bool) marks
  // the self pairs that get the self-mass penalty.
  torch::Tensor barycentre(const torch::Tensor& C, double tau, double floor_log_k,
                           const Marginal& rows, const Marginal& cols, const torch::Tensor& Z,
                           const torch::Tensor& X, const torch::Tensor& diag) const {
    if (C.size(2) == 0 || C.size(1) == 0) return X;
    torch::Tensor log_k = (-C / tau).clamp_min(floor_log_k);  // [B, Cg, Cc]
    if (diag.defined()) {
      // log K_ii = min over the problem of log K - 100.
      const torch::Tensor lo = std::get<0>(log_k.flatten(1).min(1)).view({-1, 1, 1});
      log_k = torch::where(diag.unsqueeze(0), (lo - kSelfPenalty).clamp_min(floor_log_k), log_k);
    }
    const drift::sinkhorn::Potentials p =
        drift::sinkhorn::solve(log_k, rows.log_m, cols.log_m, c_.iterations, c_.tolerance);
    const torch::Tensor bary = torch::bmm(drift::sinkhorn::row_conditionals(p, log_k), Z);
    return torch::where(cols.present.view({-1, 1, 1}), bary, X);
  }
};

}  // namespace

DRIFT_PLUGIN("kernel_sinkhorn", r) {
  using drift::ParamSpec;
  r.add_kernel(
      "sinkhorn",
      "Sinkhorn drifting (arXiv 2603.12366): entropic OT plans gen->pos and gen->[gen, neg] "
      "(marginals ∝ w_gen / w_pos / [w_gen, w_neg]) by log-domain Sinkhorn with eps = each "
      "temperature on the normalized cost (docs/method.md §2 steps 2-3); drift = barycentric projection "
      "onto the positives minus onto the generated side, per temperature times the "
      "normalizer's drift factor, summed",
      {ParamSpec::Int("iterations", 50,
                      "maximum Sinkhorn iterations per plan (each: row then column update)")
           .at_least(1)
           .at_most(100000),
       ParamSpec::Float("tolerance", 1e-4,
                        "stop once max |row sum - row mass| / (mean row mass) <= tolerance "
                        "(columns are exact after every iteration); 0: always run "
                        "`iterations`")
           .non_negative(),
       ParamSpec::String("cost", "sqeuclidean",
                         "\"sqeuclidean\": cost dn^2 (entropic W2); \"euclidean\": cost dn "
                         "(the Laplace affinity of the default kernel); dn = normalized "
                         "distance (docs/method.md §2 step 3)")
           .one_of({"sqeuclidean", "euclidean"}),
       ParamSpec::String("self_mass", "exclude",
                         "\"exclude\": a generated sample's own entry in the repulsive plan "
                         "costs max(cost) + 100 * tau (mass only where the marginals force "
                         "it); \"keep\": plain cost ~0 (biased at equilibrium; ablation only)")
           .one_of({"exclude", "keep"})},
      [](const drift::Params& p) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
        Config c;
        if (p.has("iterations")) c.iterations = p.get_int("iterations");
        if (p.has("tolerance")) c.tolerance = p.get_float("tolerance");
        const std::string cost = p.has("cost") ? p.get_string("cost") : "sqeuclidean";
        const std::string self = p.has("self_mass") ? p.get_string("self_mass") : "exclude";
        if (c.iterations < 1)
          return absl::InvalidArgumentError("sinkhorn: iterations must be an int >= 1, got " +
                                            std::to_string(c.iterations));
        if (!(c.tolerance >= 0))
          return absl::InvalidArgumentError("sinkhorn: tolerance must be a float >= 0");
        if (cost == "sqeuclidean") c.cost = Cost::kSqEuclidean;
        else if (cost == "euclidean") c.cost = Cost::kEuclidean;
        else
          return absl::InvalidArgumentError(
              "sinkhorn: cost must be one of \"sqeuclidean\", \"euclidean\", got \"" + cost +
              "\"");
        if (self == "exclude") c.self_mass = SelfMass::kExclude;
        else if (self == "keep") c.self_mass = SelfMass::kKeep;
        else
          return absl::InvalidArgumentError(
              "sinkhorn: self_mass must be one of \"exclude\", \"keep\", got \"" + self + "\"");
        return std::make_unique<SinkhornKernel>(c);
      });
}
