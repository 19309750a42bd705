// Fused CPU implementation of kernel "laplace" (SPEC.md section 2), selected with
// the kernel parameter impl = "fused" (the default). Same numbers as the plain
// LibTorch reference in laplace.cpp (float32: ~1e-6 relative, float64: ~1e-14),
// computed in two passes over [B, Cg, T] with one [B, Cg, T] distance buffer,
// one [B, Cg, T] coefficient buffer reused per temperature, and BLAS (at::bmm)
// for K @ Y. See laplace_fused.cpp for the algorithm.
#pragma once

#include <drift/field.hpp>
#include <drift/normalizer.hpp>

namespace drift::laplace {

// True when compute_fused() handles these (canonicalized) inputs: every tensor on
// the CPU, strided, float32 or float64. Anything else (CUDA, half, ...) is
// computed by the plain implementation instead.
bool fused_supports(const DriftInputs& in);

// The default drift field for inputs that passed canonicalize_drift_inputs() and
// fused_supports(). Calls norm.feature() once and norm.drift_factor() once per
// temperature, exactly like the plain implementation.
DriftOutputs compute_fused(const DriftInputs& in, const Normalizer& norm);

}  // namespace drift::laplace
