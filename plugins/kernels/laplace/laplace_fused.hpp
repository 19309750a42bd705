// Fused CPU implementation of kernel "laplace" (docs/method.md §2), selected with
// the kernel parameter impl = "fused" (or "auto", the default, on CPU tensors).
// Same numbers as the plain LibTorch reference in laplace.cpp (float32: ~1e-6
// relative, float64: ~1e-13): one [B, Cg, T] distance buffer, per-problem
// [Cg, T] buffers that stay in cache, its own vectorised products for K @ Y.
// See laplace_fused.cpp for the algorithm.
#pragma once

#include <drift/affinity.hpp>
#include <drift/field.hpp>
#include <drift/normalizer.hpp>

namespace drift::laplace {

// True when compute_fused() handles these (canonicalized) inputs: every tensor on
// the CPU, strided, float32 or float64. Anything else (CUDA, half, ...) is
// computed by the plain implementation instead.
bool fused_supports(const DriftInputs& in);

// The default drift field for inputs that passed canonicalize_drift_inputs() and
// fused_supports(). Calls norm.feature() once and norm.drift_factor() once per
// temperature, exactly like the plain implementation. The affinity floor is
// floor.product_floor(Cg, T), the normalizer clamp floor.min_normalizer.
DriftOutputs compute_fused(const DriftInputs& in, const Normalizer& norm,
                           const AffinityFloor& floor = {});

}  // namespace drift::laplace
