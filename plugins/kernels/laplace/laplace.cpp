// Kernel "laplace": the default drift field of SPEC.md section 2, written in
// plain LibTorch ops.
//
// This is the REFERENCE implementation: fused CPU and CUDA kernels are tested
// against it, so it reads top to bottom as the SPEC steps, one block per step.
// It works in the dtype of its inputs (float32 or float64; float64 reproduces
// the golden cases in ../shared/golden to ~1e-15) on the inputs' device.
//
// Memory: O(B * Cg * T) for the distance/affinity matrices (T = Cg + Cn + Cp);
// the [B, Cg, T, S] difference tensor is never materialised.
//
// Parameter `impl` picks who computes the same field:
//  - "auto" (default): the CUDA kernel (laplace_cuda.cu) for float32/float64
//    inputs on a CUDA device, the fused CPU kernel (laplace_fused.cpp) for
//    float32/float64 inputs on the CPU, this plain code for anything else (and
//    for CUDA inputs when the plugin was built without CUDA, DRIFT_WITH_CUDA=OFF).
//  - "fused": the fused CPU kernel; inputs it does not handle use the plain code.
//  - "cuda": the CUDA kernel; refused when creating the kernel if this build has
//    none, and a clear error (std::invalid_argument) for inputs it does not
//    handle (CPU tensors, other dtypes, more than 32 temperatures).
//  - "plain": always the plain code below.
#include <drift/sdk.hpp>

#include "laplace_cuda.hpp"
#include "laplace_fused.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// SPEC constants.
constexpr double kMinSquaredDistance = 1e-8;  // step 2: d = sqrt(max(||.||^2, 1e-8))
constexpr double kSelfExclusion = 100.0;      // step 4: added to dn[b, i, i]
constexpr double kMinAffinity = 1e-6;         // step 5: A = sqrt(max(. * ., 1e-6))

#ifdef DRIFT_LAPLACE_CUDA
constexpr bool kCudaBuilt = true;
#else
constexpr bool kCudaBuilt = false;
#endif

enum class Impl { kAuto, kFused, kCuda, kPlain };

class LaplaceKernel : public drift::DriftKernel {
 public:
  explicit LaplaceKernel(Impl impl) : impl_(impl) {}

  drift::DriftOutputs compute(const drift::DriftInputs& in,
                              const drift::Normalizer& norm) const override {
    switch (impl_) {
      case Impl::kAuto:
#ifdef DRIFT_LAPLACE_CUDA
        if (drift::laplace::cuda_supports(in)) return drift::laplace::compute_cuda(in, norm);
#endif
        if (drift::laplace::fused_supports(in)) return drift::laplace::compute_fused(in, norm);
        return compute_plain(in, norm);
      case Impl::kFused:
        if (drift::laplace::fused_supports(in)) return drift::laplace::compute_fused(in, norm);
        return compute_plain(in, norm);
      case Impl::kCuda:
#ifdef DRIFT_LAPLACE_CUDA
        return drift::laplace::compute_cuda(in, norm);  // throws on unsupported inputs
#else
        throw std::invalid_argument(kNoCuda);  // the factory refuses "cuda" already
#endif
      case Impl::kPlain:
        break;
    }
    return compute_plain(in, norm);
  }

  static constexpr const char* kNoCuda =
      "laplace: impl = \"cuda\" but this build of kernel_laplace has no CUDA kernel "
      "(configured with DRIFT_WITH_CUDA=OFF, or no nvcc / CUDA LibTorch was found); "
      "use impl = \"auto\"";

 private:
  Impl impl_;

  drift::DriftOutputs compute_plain(const drift::DriftInputs& in,
                                    const drift::Normalizer& norm) const {
    torch::NoGradGuard no_grad;  // the framework already does this; be safe when called directly
    const int64_t Cg = in.gen.size(1);
    const int64_t Cn = in.neg.size(1);
    const int64_t S = in.gen.size(2);

    // --- Step 1: old = stopgrad(gen); targets Y = [old, neg, pos], weights w. ---
    const torch::Tensor old = in.gen.detach();
    const torch::Tensor Y = torch::cat({old, in.neg, in.pos}, /*dim=*/1);     // [B, T, S]
    const torch::Tensor w = torch::cat({in.w_gen, in.w_neg, in.w_pos}, 1);  // [B, T]
    const torch::Tensor w_cols = w.unsqueeze(1);                           // [B, 1, T]

    // --- Step 2: d[b,i,t] = sqrt(max(||old[b,i] - Y[b,t]||^2, 1e-8)). ---
    // cdist with compute_mode 2 ("donot_use_mm_for_euclid_dist") sums the squared
    // differences directly; the |a|^2 + |b|^2 - 2ab shortcut would cancel
    // catastrophically for coordinates of order 1e3.
    const torch::Tensor sq = torch::cdist(old, Y, /*p=*/2.0, /*compute_mode=*/2).pow(2);
    const torch::Tensor d = sq.clamp_min(kMinSquaredDistance).sqrt();  // [B, Cg, T]

    // --- Step 3: feature normalization. ---
    // scale = mean(d * w[b, None, t]) / mean(w): ONE scalar over the whole batch.
    // (The tiny floor only matters when every weight is 0; scale is then 0.)
    const torch::Tensor mean_w = w.mean().clamp_min(std::numeric_limits<float>::min());
    const torch::Tensor scale = (d * w_cols).mean() / mean_w;  // []
    // The normalizer turns it into the distance divisor (default max(scale, 1e-3))
    // and the coordinate divisor s (default max(scale / sqrt(S), 1e-3)).
    const drift::FeatureScaling fs = norm.feature(scale, S);
    const torch::Tensor s = fs.coord_divisor.to(old.dtype());
    torch::Tensor dn = d / fs.distance_divisor.to(old.dtype());  // [B, Cg, T]

    // --- Step 4: self-exclusion: dn[b, i, i] += 100 in the generated block. ---
    // eye(Cg, T) is 1 exactly at (i, i) for i < Cg, i.e. on the gen block's diagonal.
    dn = dn + kSelfExclusion * torch::eye(Cg, dn.size(2), dn.options());

    // Coordinates in normalized units (used by every temperature).
    const torch::Tensor Y_n = Y / s;      // [B, T, S]
    const torch::Tensor old_n = old / s;  // [B, Cg, S]

    // --- Step 5: one raw drift per temperature, normalized and summed into V. ---
    torch::Tensor V = torch::zeros_like(old);
    std::vector<torch::Tensor> m_taus;
    m_taus.reserve(in.temperatures.size());
    const double log_min_affinity = std::log(kMinAffinity);
    for (double tau : in.temperatures) {
      // logits = -dn / tau. For absurdly small tau the quotient can overflow to
      // -inf; nan_to_num maps it to the dtype's lowest finite value so that the
      // softmaxes below stay defined.
      const torch::Tensor logits = torch::nan_to_num(-dn / tau);  // [B, Cg, T]

      // A = sqrt(max(softmax_t(logits) * softmax_i(logits), 1e-6)), evaluated in
      // the log domain: log A = 0.5 * max(logsm_t + logsm_i, log 1e-6). Far-apart
      // inputs (all exp(logits) underflowing) then still give finite values.
      const torch::Tensor log_sm_t = torch::log_softmax(logits, /*dim=*/2);  // over targets
      const torch::Tensor log_sm_i = torch::log_softmax(logits, /*dim=*/1);  // over gen samples
      torch::Tensor A = (0.5 * (log_sm_t + log_sm_i).clamp_min(log_min_affinity)).exp();

      // A *= w[b, None, t]; negatives = first Cg + Cn columns (gen, neg), positives = last Cp.
      A = A * w_cols;
      const torch::Tensor An = A.narrow(2, 0, Cg + Cn);               // [B, Cg, Cg+Cn]
      const torch::Tensor Ap = A.narrow(2, Cg + Cn, A.size(2) - Cg - Cn);  // [B, Cg, Cp]

      // Kn = -An * rowsum(Ap), Kp = Ap * rowsum(An); K = [Kn, Kp].
      const torch::Tensor Kn = -An * Ap.sum(2, /*keepdim=*/true);
      const torch::Tensor Kp = Ap * An.sum(2, /*keepdim=*/true);
      const torch::Tensor K = torch::cat({Kn, Kp}, 2);  // [B, Cg, T]

      // F_tau = K @ (Y / s) - rowsum(K) * (old / s): raw drift, normalized coordinates.
      // rowsum(K) is zero up to rounding; subtracting it keeps F translation-invariant.
      const torch::Tensor F = torch::bmm(K, Y_n) - K.sum(2, /*keepdim=*/true) * old_n;

      // m_tau = mean(F^2) over [B, Cg, S]; V += F * drift_factor(m_tau)
      // (default factor 1 / sqrt(max(m_tau, 1e-8))).
      const torch::Tensor m_tau = F.pow(2).mean();
      V = V + F * norm.drift_factor(m_tau).to(F.dtype());
      m_taus.push_back(m_tau);
    }

    // --- Step 6: goal G = old / s + V (frozen). The loss is drift::drift_loss(). ---
    drift::DriftOutputs out;
    out.V = V;
    out.goal = old_n + V;
    out.m_tau = torch::stack(m_taus);
    out.scale = scale;
    out.coord_scale = s;
    return out;
  }
};

}  // namespace

DRIFT_PLUGIN("kernel_laplace", r) {
  r.add_kernel("laplace",
               "default drift field (SPEC 2): Laplace kernel exp(-d/tau), softmax over targets "
               "and samples, all temperatures summed (CUDA kernel, fused CPU kernel, or the "
               "plain LibTorch reference)",
               {drift::ParamSpec::String("impl", "auto",
                                         "\"auto\": CUDA kernel for CUDA tensors, fused CPU "
                                         "kernel for CPU tensors (float32/float64; other inputs "
                                         "use \"plain\"); \"fused\": fused CPU kernel; "
                                         "\"cuda\": CUDA kernel only (error elsewhere, and in "
                                         "builds without CUDA); \"plain\": reference "
                                         "implementation in LibTorch ops")
                    .one_of({"auto", "fused", "cuda", "plain"})},
               [](const drift::Params& p) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
                 // Params normally come validated (defaults filled in); callers that
                 // pass an empty Params get the default.
                 const std::string impl = p.has("impl") ? p.get_string("impl") : "auto";
                 Impl which;
                 if (impl == "auto") which = Impl::kAuto;
                 else if (impl == "fused") which = Impl::kFused;
                 else if (impl == "cuda") which = Impl::kCuda;
                 else if (impl == "plain") which = Impl::kPlain;
                 else
                   return absl::InvalidArgumentError("laplace: impl must be one of \"auto\", "
                                                     "\"fused\", \"cuda\", \"plain\", got \"" +
                                                     impl + "\"");
                 if (which == Impl::kCuda && !kCudaBuilt)
                   return absl::FailedPreconditionError(LaplaceKernel::kNoCuda);
                 return std::make_unique<LaplaceKernel>(which);
               });
}
