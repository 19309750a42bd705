// Kernel "laplace": the default drift field of docs/method.md §2, written in
// plain LibTorch ops.
//
// This is the REFERENCE implementation: fused CPU and CUDA kernels are tested
// against it, so it reads top to bottom as the steps of docs/method.md §2, one block per step.
// It works in the dtype of its inputs (float32 or float64; float64 reproduces
// the golden cases in tests/golden to ~1e-15) on the inputs' device.
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
//
// The affinity floor (drift/affinity.hpp: min_affinity, min_affinity_mode,
// min_normalizer) is a parameter of every path; the default is the 1e-6 of
// docs/method.md §2 step 5. The fused and CUDA kernels take min_affinity in either mode; the
// fused kernel also takes min_normalizer > 0 (the authors' toy-demo clamp);
// the CUDA kernel does not ("auto" computes it with the plain code on CUDA
// tensors, "cuda" refuses it).
#include <drift/sdk.hpp>

#include "laplace_cuda.hpp"
#include "laplace_fused.hpp"

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// Constants of docs/method.md §2.
constexpr double kSelfExclusion = 100.0;      // step 4: added to dn[b, i, i]

#ifdef DRIFT_LAPLACE_CUDA
constexpr bool kCudaBuilt = true;
#else
constexpr bool kCudaBuilt = false;
#endif

enum class Impl { kAuto, kFused, kCuda, kPlain };

class LaplaceKernel : public drift::DriftKernel {
 public:
  LaplaceKernel(Impl impl, drift::AffinityFloor floor) : impl_(impl), floor_(floor) {}

  drift::DriftOutputs compute(const drift::DriftInputs& in,
                              const drift::Normalizer& norm) const override {
    // The CUDA kernel takes the floor, not the normalizer clamp.
    const bool cuda_ok = !(floor_.min_normalizer > 0.0);
    switch (impl_) {
      case Impl::kAuto:
#ifdef DRIFT_LAPLACE_CUDA
        if (cuda_ok && drift::laplace::cuda_supports(in))
          return drift::laplace::compute_cuda(in, norm, floor_);
#endif
        if (drift::laplace::fused_supports(in))
          return drift::laplace::compute_fused(in, norm, floor_);
        return compute_plain(in, norm);
      case Impl::kFused:
        if (drift::laplace::fused_supports(in))
          return drift::laplace::compute_fused(in, norm, floor_);
        return compute_plain(in, norm);
      case Impl::kCuda:
#ifdef DRIFT_LAPLACE_CUDA
        // The factory refuses min_normalizer > 0 with "cuda"; compute_cuda throws on
        // unsupported inputs.
        return drift::laplace::compute_cuda(in, norm, floor_);
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
  drift::AffinityFloor floor_;

  drift::DriftOutputs compute_plain(const drift::DriftInputs& in,
                                    const drift::Normalizer& norm) const {
    torch::NoGradGuard no_grad;  // the framework already does this; be safe when called directly

    // --- Steps 1-3: targets Y = [old, neg, pos] and weights w, distances d, the
    // feature statistic and the normalizer's divisors (drift/field_steps.hpp). ---
    const drift::PreparedField p = drift::prepare_field(in, norm);
    const int64_t Cg = p.Cg, Cn = p.Cn;
    const torch::Tensor w_cols = p.w.unsqueeze(1);  // [B, 1, T]

    // --- Step 4: self-exclusion: dn[b, i, i] += 100 in the generated block. ---
    // eye(Cg, T) is 1 exactly at (i, i) for i < Cg, i.e. on the gen block's diagonal.
    const torch::Tensor dn = p.dn + kSelfExclusion * torch::eye(Cg, p.dn.size(2), p.dn.options());

    // --- Step 5: one raw drift per temperature, normalized and summed into V. ---
    drift::DriftAccumulator acc(p, norm);
    for (double tau : in.temperatures) {
      // logits = -dn / tau. For absurdly small tau the quotient can overflow to
      // -inf; nan_to_num maps it to the dtype's lowest finite value so that the
      // softmaxes below stay defined.
      const torch::Tensor logits = torch::nan_to_num(-dn / tau);  // [B, Cg, T]

      // A = sqrt(max(softmax_t(logits) * softmax_i(logits), floor)) (default floor
      // 1e-6, docs/method.md §2), evaluated in the log domain (drift/affinity.hpp): far-apart
      // inputs (all exp(logits) underflowing) still give finite values.
      torch::Tensor A = drift::doubly_normalized_affinity(logits, floor_);

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
      // m_tau = mean(F^2) over [B, Cg, S]; V += F * drift_factor(m_tau)
      // (default factor 1 / sqrt(max(m_tau, 1e-8))).
      acc.add(p.drift_from_coefficients(K));
    }

    // --- Step 6: goal G = old / s + V (frozen). The loss is drift::drift_loss(). ---
    return std::move(acc).finish();
  }
};

}  // namespace

DRIFT_PLUGIN("kernel_laplace", r) {
  r.add_kernel("laplace",
               "default drift field (docs/method.md §2): Laplace kernel exp(-d/tau), softmax over targets "
               "and samples, all temperatures summed (CUDA kernel, fused CPU kernel, or the "
               "plain LibTorch reference)",
               drift::with_affinity_floor_params({drift::ParamSpec::String("impl", "auto",
                                         "\"auto\": CUDA kernel for CUDA tensors, fused CPU "
                                         "kernel for CPU tensors (float32/float64; other inputs "
                                         "use \"plain\"); \"fused\": fused CPU kernel; "
                                         "\"cuda\": CUDA kernel only (error elsewhere, and in "
                                         "builds without CUDA); \"plain\": reference "
                                         "implementation in LibTorch ops")
                    .one_of({"auto", "fused", "cuda", "plain"})}),
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
                 absl::StatusOr<drift::AffinityFloor> floor =
                     drift::affinity_floor_from_params(p, "laplace");
                 if (!floor.ok()) return floor.status();
                 if (which == Impl::kCuda && floor->min_normalizer > 0.0)
                   return absl::InvalidArgumentError(
                       "laplace: impl = \"cuda\" does not compute min_normalizer > 0; use "
                       "impl = \"auto\" or \"plain\"");
                 return std::make_unique<LaplaceKernel>(which, *floor);
               });
}
