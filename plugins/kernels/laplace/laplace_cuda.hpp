// CUDA implementation of kernel "laplace" (docs/method.md §2), impl = "cuda"
// (and impl = "auto" on CUDA tensors). Same numbers as the plain LibTorch
// reference in laplace.cpp and the fused CPU kernel (float32 ~1e-6 relative,
// float64 ~1e-13).
//
// Two layers, so that nvcc never sees a torch header:
//  - drift::laplace::cuda_supports / compute_cuda: the torch-facing entry
//    points (laplace_cuda.cpp). They allocate every buffer with the caching
//    allocator, call the normalizer between the stages exactly as the plain code
//    does (feature() once, drift_factor() once per temperature, with 0-d tensors
//    that stay on the device), run K @ Y through at::bmm (cuBLAS, fp32 without
//    TF32), and throw std::runtime_error naming the CUDA call that failed.
//  - drift::laplace::cuda::*: the raw kernels (laplace_cuda.cu) on device
//    pointers, launched on the caller's stream; each returns "" or an error
//    message naming the launch that failed. See laplace_cuda.cu for the algorithm.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

struct CUstream_st;  // cudaStream_t without the CUDA headers

namespace drift {
struct AffinityFloor;
struct DriftInputs;
struct DriftOutputs;
class Normalizer;
}  // namespace drift

namespace drift::laplace {

// True when compute_cuda() handles these (canonicalized) inputs: every tensor on
// one CUDA device, strided, float32 or float64, at most cuda::kMaxTemperatures
// temperatures.
bool cuda_supports(const DriftInputs& in);

// Why compute_cuda() would refuse these inputs ("" when it would not).
std::string cuda_unsupported_reason(const DriftInputs& in);

// The default drift field on the GPU for inputs that passed
// canonicalize_drift_inputs() and cuda_supports(). The affinity floor is
// floor.product_floor(Cg, T); floor.min_normalizer must be 0.
DriftOutputs compute_cuda(const DriftInputs& in, const Normalizer& norm,
                          const AffinityFloor& floor);

namespace cuda {

constexpr int kMaxTemperatures = 32;

struct Shape {
  int64_t B = 0, Cg = 0, Cn = 0, Cp = 0, S = 0;
  int64_t Tn = 0;  // Cg + Cn + Cp: targets per problem
  int n = 0;       // number of temperatures
  // log of the floor of softmax_t * softmax_i (drift/affinity.hpp; default log 1e-6,
  // docs/method.md §2); -infinity: no floor.
  double log_min_product = -std::numeric_limits<double>::infinity();
};

// Device buffers of one call, all contiguous and owned by the caller.
template <typename T>
struct Buffers {
  const T* gen = nullptr;    // [B, Cg, S]
  const T* neg = nullptr;    // [B, Cn, S]
  const T* pos = nullptr;    // [B, Cp, S]
  const T* w_gen = nullptr;  // [B, Cg]
  const T* w_neg = nullptr;  // [B, Cn]
  const T* w_pos = nullptr;  // [B, Cp]
  T* Yc = nullptr;           // [B, T, S]  targets [old, neg, pos] minus their per-problem mean
  T* w = nullptr;            // [B, T]     weights [w_gen, w_neg, w_pos]
  T* dn = nullptr;           // [B, Cg, T] distances, then normalized distances (+100 diagonal)
  T* rmin = nullptr;         // [B * Cg]   row minima of dn
  T* lzr = nullptr;          // [B * Cg, n] row log-sum-exp (around the row maximum logit)
  T* cmin = nullptr;         // [B * T]    column minima of dn
  T* lzc = nullptr;          // [n, B * T] column log-sum-exp
  T* K = nullptr;            // [B, n * Cg, T] coefficients, rowsum(K) taken off the diagonal
  T* F = nullptr;            // [B, n * Cg, S] K @ Yc (written by the caller between stages)
  double* partials = nullptr;  // workspace_doubles(shape) doubles
  T* scale = nullptr;        // [1]  weighted mean distance
  T* m_tau = nullptr;        // [n]  mean squared raw drift per temperature
  T* V = nullptr;            // [B, Cg, S]
  T* goal = nullptr;         // [B, Cg, S]
};

// Doubles of scratch `partials` must hold for this shape.
int64_t workspace_doubles(const Shape& sh);

// Stage 1: Yc, w, dn = distances (docs/method.md §2 step 2) and scale (step 3).
template <typename T>
std::string distances(const Shape& sh, const Buffers<T>& b, CUstream_st* stream);

// Stage 2: dn /= *dist_div, +100 on the gen diagonal (step 4); row and column
// log-sum-exp; K for every temperature (step 5) into b.K.
template <typename T>
std::string coefficients(const Shape& sh, const Buffers<T>& b, const T* dist_div,
                         const double* temperatures, CUstream_st* stream);

// Stage 3 (after the caller filled b.F = K @ Yc): m_tau = mean((F / s)^2).
template <typename T>
std::string mean_squares(const Shape& sh, const Buffers<T>& b, const T* coord_div,
                         CUstream_st* stream);

// Stage 4: V = sum_k (F_k / s) * factors[k]; goal = old / s + V.
template <typename T>
std::string combine(const Shape& sh, const Buffers<T>& b, const T* coord_div, const T* factors,
                    CUstream_st* stream);

}  // namespace cuda
}  // namespace drift::laplace
