// Fused CPU drift field (kernel "laplace", impl = "fused"). SPEC.md section 2,
// the same numbers as the plain reference in laplace.cpp.
//
// Layout: Y = [old, neg, pos] is centred per problem (c_b = mean of its rows;
// distances and F are translation-invariant, and centring keeps K @ Y - rowsum(K)
// * old free of cancellation for coordinates of order 1e3) and stored twice:
// Yc [B, T, S] for the BLAS product and, during pass 1 only, transposed and
// padded Yt [B, S, Tp] (Tp = T rounded up to 16) for the distance micro-kernel.
//
//  pass 1  d[b,i,t] = sqrt(max(sum_s (x_is - y_ts)^2, 1e-8)): exact differences
//          (never |a|^2 + |b|^2 - 2ab), a 4-row x 16-column register tile,
//          partial sums over chunks of 128 coordinates added up in double;
//          per-row weighted sums (double) -> scale -> norm.feature() (once).
//  dn      d / distance_divisor (+100 on the gen block's diagonal), in place;
//          row minima and column minima of dn (= maxima of the logits).
//  LSE     for every temperature: row and column log-sum-exp of logits = -dn/tau,
//          stored as log Z around the row / column maximum (numerically stable).
//  K       per temperature, row by row: log A = 0.5 max(logsm_t + logsm_i, log 1e-6)
//          with logsm_t + logsm_i = ((rmin_i - dn) + (cmin_t - dn)) / tau - lZr_i - lZc_t,
//          A *= w_t, K = [-An * rowsum(Ap), Ap * rowsum(An)] into one [B, Cg, T]
//          buffer; F_tau = (K @ Yc - rowsum(K) * (old - c)) / s via at::bmm into
//          F [n, B, Cg, S]; m_tau = mean(F_tau^2) (double) -> norm.drift_factor().
//  V       V = sum_tau F_tau * factor_tau, goal = old / s + V.
//
// Every row/column unit is independent: at::parallel_for over (b, row block)
// or (b, column block), so B = 1 still uses all threads; every sum that crosses
// units is stored per unit and added up serially (results do not depend on the
// thread count). Hot loops are plain loops GCC vectorises, compiled for
// x86-64 baseline, x86-64-v3 (AVX2/FMA) and x86-64-v4 (AVX-512) and picked at
// load time (target_clones), so the binary runs on any x86-64 machine.
//
// exp() is a branch-free Cody-Waite + polynomial evaluation (float: Cephes expf,
// ~1 ulp; double: degree-13 Taylor on |r| <= ln2/2, ~2 ulp) so that it
// vectorises; arguments are clamped from below where exp would be subnormal
// (every such term is added to a sum >= 1 or lies below the 1e-6 affinity floor).
#include "laplace_fused.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace drift::laplace {
namespace {

constexpr double kMinSquaredDistance = 1e-8;  // SPEC step 2
constexpr double kSelfExclusion = 100.0;      // SPEC step 4
constexpr double kMinAffinity = 1e-6;         // SPEC step 5

constexpr int kRowBlock = 4;     // distance tile rows
constexpr int kColBlock = 16;    // distance tile columns (Tp is a multiple of it)
constexpr int64_t kSChunk = 128; // coordinates summed in the compute dtype before double
constexpr int64_t kLseCols = 64; // columns per unit in the column passes
constexpr int kLanes = 16;       // partial sums of the row reductions

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DRIFT_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DRIFT_MULTIVERSION
#endif
#define DRIFT_ALWAYS_INLINE inline __attribute__((always_inline))

// ------------------------------------------------------------------ exp

DRIFT_ALWAYS_INLINE float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;  // exp(-87) = 1.6e-38, still normal
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  int32_t tb, mb;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&mb, &magic, sizeof mb);
  const int32_t ni = tb - mb;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t eb = (ni + 127) << 23;
  float e;
  std::memcpy(&e, &eb, sizeof e);
  return p * e;
}

DRIFT_ALWAYS_INLINE double fast_exp(double x) {
  x = x < -708.0 ? -708.0 : x;  // exp(-708) = 3.3e-308, still normal
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  const double t = x * 1.4426950408889634074 + magic;
  const double n = t - magic;
  int64_t tb, mb;
  std::memcpy(&tb, &t, sizeof tb);
  std::memcpy(&mb, &magic, sizeof mb);
  const int64_t ni = tb - mb;
  double r = x - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int64_t eb = (ni + 1023) << 52;
  double e;
  std::memcpy(&e, &eb, sizeof e);
  return p * e;
}

// ------------------------------------------------------------------ pass 1

// out[r][c] = sum_s (X[r, s] - Yt[s, c])^2 for RB rows and kColBlock columns.
template <typename T, int RB>
DRIFT_ALWAYS_INLINE void dist_tile(const T* X, int64_t S, const T* Yt, int64_t Tp,
                                   double (&out)[RB][kColBlock]) {
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < kColBlock; ++c) out[r][c] = 0.0;
  for (int64_t s0 = 0; s0 < S; s0 += kSChunk) {
    const int64_t s1 = std::min(S, s0 + kSChunk);
    T acc[RB][kColBlock] = {};
    for (int64_t s = s0; s < s1; ++s) {
      const T* y = Yt + s * Tp;
      for (int r = 0; r < RB; ++r) {
        const T x = X[r * S + s];
        for (int c = 0; c < kColBlock; ++c) {
          const T df = x - y[c];
          acc[r][c] += df * df;
        }
      }
    }
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < kColBlock; ++c) out[r][c] += static_cast<double>(acc[r][c]);
  }
}

template <typename T, int RB>
DRIFT_ALWAYS_INLINE void dist_block(const T* X, int64_t S, const T* Yt, int64_t Tp, int64_t Tn,
                                    const T* w, T* d, double* rowsum) {
  for (int64_t c0 = 0; c0 < Tp; c0 += kColBlock) {
    double out[RB][kColBlock];
    dist_tile<T, RB>(X, S, Yt + c0, Tp, out);
    const int64_t nc = std::min<int64_t>(kColBlock, Tn - c0);
    for (int r = 0; r < RB; ++r) {
      double acc = 0.0;
      for (int64_t c = 0; c < nc; ++c) {
        const T dv = static_cast<T>(std::sqrt(std::max(out[r][c], kMinSquaredDistance)));
        d[r * Tp + c0 + c] = dv;
        acc += static_cast<double>(dv) * static_cast<double>(w[c0 + c]);
      }
      rowsum[r] += acc;
    }
  }
}

// Rows [0, nrows) of one problem: X = its centred old rows, d rows of stride Tp.
template <typename T>
DRIFT_ALWAYS_INLINE void dist_rows_impl(const T* X, int64_t nrows, int64_t S, const T* Yt,
                                        int64_t Tp, int64_t Tn, const T* w, T* d,
                                        double* rowsum) {
  int64_t r = 0;
  for (; r + kRowBlock <= nrows; r += kRowBlock)
    dist_block<T, kRowBlock>(X + r * S, S, Yt, Tp, Tn, w, d + r * Tp, rowsum + r);
  for (; r < nrows; ++r) dist_block<T, 1>(X + r * S, S, Yt, Tp, Tn, w, d + r * Tp, rowsum + r);
}

DRIFT_MULTIVERSION void dist_rows(const float* X, int64_t nrows, int64_t S, const float* Yt,
                                  int64_t Tp, int64_t Tn, const float* w, float* d,
                                  double* rowsum) {
  dist_rows_impl(X, nrows, S, Yt, Tp, Tn, w, d, rowsum);
}
DRIFT_MULTIVERSION void dist_rows(const double* X, int64_t nrows, int64_t S, const double* Yt,
                                  int64_t Tp, int64_t Tn, const double* w, double* d,
                                  double* rowsum) {
  dist_rows_impl(X, nrows, S, Yt, Tp, Tn, w, d, rowsum);
}

// ------------------------------------------------------------------ log-sum-exp

// One row of dn (length Tn) and its minimum: lZ[k] = log sum_t exp((rmin - dn_t) / tau_k).
template <typename T>
DRIFT_ALWAYS_INLINE void row_lse_impl(const T* dn, int64_t Tn, T rmin, const T* inv_tau,
                                      int64_t n, T* lZ) {
  for (int64_t k = 0; k < n; ++k) {
    const T it = inv_tau[k];
    // kLanes partial sums (a fixed order, so the loop vectorises without -ffast-math)
    double part[kLanes] = {};
    int64_t t = 0;
    for (; t + kLanes <= Tn; t += kLanes)
      for (int l = 0; l < kLanes; ++l)
        part[l] += static_cast<double>(fast_exp((rmin - dn[t + l]) * it));
    double z = 0.0;
    for (int l = 0; l < kLanes; ++l) z += part[l];
    for (; t < Tn; ++t) z += static_cast<double>(fast_exp((rmin - dn[t]) * it));
    lZ[k] = static_cast<T>(std::log(z));
  }
}
DRIFT_MULTIVERSION void row_lse(const float* dn, int64_t Tn, float rmin, const float* inv_tau,
                                int64_t n, float* lZ) {
  row_lse_impl(dn, Tn, rmin, inv_tau, n, lZ);
}
DRIFT_MULTIVERSION void row_lse(const double* dn, int64_t Tn, double rmin, const double* inv_tau,
                                int64_t n, double* lZ) {
  row_lse_impl(dn, Tn, rmin, inv_tau, n, lZ);
}

// Columns [0, nc) of dn (rows of stride Tp): their minima cmin and, per
// temperature k, lZ[k * lz_stride + c] = log sum_i exp((cmin_c - dn_ic) / tau_k).
template <typename T>
DRIFT_ALWAYS_INLINE void col_lse_impl(const T* dn, int64_t Cg, int64_t Tp, int64_t nc,
                                      const T* inv_tau, int64_t n, T* cmin, T* lZ,
                                      int64_t lz_stride) {
  for (int64_t c = 0; c < nc; ++c) cmin[c] = dn[c];
  for (int64_t i = 1; i < Cg; ++i) {
    const T* row = dn + i * Tp;
    for (int64_t c = 0; c < nc; ++c) cmin[c] = row[c] < cmin[c] ? row[c] : cmin[c];
  }
  double z[kLseCols];
  for (int64_t k = 0; k < n; ++k) {
    const T it = inv_tau[k];
    for (int64_t c = 0; c < nc; ++c) z[c] = 0.0;
    for (int64_t i = 0; i < Cg; ++i) {
      const T* row = dn + i * Tp;
      for (int64_t c = 0; c < nc; ++c)
        z[c] += static_cast<double>(fast_exp((cmin[c] - row[c]) * it));
    }
    for (int64_t c = 0; c < nc; ++c) lZ[k * lz_stride + c] = static_cast<T>(std::log(z[c]));
  }
}
DRIFT_MULTIVERSION void col_lse(const float* dn, int64_t Cg, int64_t Tp, int64_t nc,
                                const float* inv_tau, int64_t n, float* cmin, float* lZ,
                                int64_t lz_stride) {
  col_lse_impl(dn, Cg, Tp, nc, inv_tau, n, cmin, lZ, lz_stride);
}
DRIFT_MULTIVERSION void col_lse(const double* dn, int64_t Cg, int64_t Tp, int64_t nc,
                                const double* inv_tau, int64_t n, double* cmin, double* lZ,
                                int64_t lz_stride) {
  col_lse_impl(dn, Cg, Tp, nc, inv_tau, n, cmin, lZ, lz_stride);
}

// ------------------------------------------------------------------ coefficients

// A[t] = exp(0.5 max(logsm_t + logsm_i, log 1e-6)) * w[t] for t in [t0, t1); returns sum A.
template <typename T>
DRIFT_ALWAYS_INLINE double affinities(const T* dn, int64_t t0, int64_t t1, T rmin, T lZr,
                                      const T* cmin, const T* lZc, T it, const T* w, T* A) {
  const T log_floor = static_cast<T>(std::log(kMinAffinity));
  double part[kLanes] = {};
  int64_t t = t0;
  for (; t + kLanes <= t1; t += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const int64_t u = t + l;
      T a = ((rmin - dn[u]) + (cmin[u] - dn[u])) * it - (lZr + lZc[u]);
      a = a < log_floor ? log_floor : a;
      const T v = fast_exp(static_cast<T>(0.5) * a) * w[u];
      A[u] = v;
      part[l] += static_cast<double>(v);
    }
  double sum = 0.0;
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  for (; t < t1; ++t) {
    T a = ((rmin - dn[t]) + (cmin[t] - dn[t])) * it - (lZr + lZc[t]);
    a = a < log_floor ? log_floor : a;
    const T v = fast_exp(static_cast<T>(0.5) * a) * w[t];
    A[t] = v;
    sum += static_cast<double>(v);
  }
  return sum;
}

// K[t] *= f for t in [t0, t1); returns the sum of the new K[t].
template <typename T>
DRIFT_ALWAYS_INLINE double scale_sum(T* K, int64_t t0, int64_t t1, T f) {
  double part[kLanes] = {};
  int64_t t = t0;
  for (; t + kLanes <= t1; t += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const T k = K[t + l] * f;
      K[t + l] = k;
      part[l] += static_cast<double>(k);
    }
  double sum = 0.0;
  for (int l = 0; l < kLanes; ++l) sum += part[l];
  for (; t < t1; ++t) {
    const T k = K[t] * f;
    K[t] = k;
    sum += static_cast<double>(k);
  }
  return sum;
}

// One row of K for one temperature; returns rowsum(K) (double).
template <typename T>
DRIFT_ALWAYS_INLINE double k_row_impl(const T* dn, int64_t Tn, int64_t nneg, T rmin, T lZr,
                                      const T* cmin, const T* lZc, T it, const T* w, T* K) {
  const double s_neg = affinities(dn, 0, nneg, rmin, lZr, cmin, lZc, it, w, K);
  const double s_pos = affinities(dn, nneg, Tn, rmin, lZr, cmin, lZc, it, w, K);
  // Kn = -An * rowsum(Ap), Kp = Ap * rowsum(An)
  return scale_sum(K, 0, nneg, static_cast<T>(-s_pos)) +
         scale_sum(K, nneg, Tn, static_cast<T>(s_neg));
}
DRIFT_MULTIVERSION double k_row(const float* dn, int64_t Tn, int64_t nneg, float rmin, float lZr,
                                const float* cmin, const float* lZc, float it, const float* w,
                                float* K) {
  return k_row_impl(dn, Tn, nneg, rmin, lZr, cmin, lZc, it, w, K);
}
DRIFT_MULTIVERSION double k_row(const double* dn, int64_t Tn, int64_t nneg, double rmin,
                                double lZr, const double* cmin, const double* lZc, double it,
                                const double* w, double* K) {
  return k_row_impl(dn, Tn, nneg, rmin, lZr, cmin, lZc, it, w, K);
}

// ------------------------------------------------------------------ driver

int64_t grain_for(int64_t work_per_unit) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_unit));
}

template <typename T>
DriftOutputs fused_impl(const DriftInputs& in, const Normalizer& norm) {
  const auto dtype = in.gen.scalar_type();
  const auto opts = torch::TensorOptions().dtype(dtype).device(torch::kCPU);
  const int64_t B = in.gen.size(0), Cg = in.gen.size(1), S = in.gen.size(2);
  const int64_t Cn = in.neg.size(1), Cp = in.pos.size(1);
  const int64_t Tn = Cg + Cn + Cp, nneg = Cg + Cn;
  const int64_t Tp = (Tn + kColBlock - 1) / kColBlock * kColBlock;
  const int64_t n = static_cast<int64_t>(in.temperatures.size());

  const torch::Tensor old = in.gen.detach().contiguous();
  const torch::Tensor w_t = torch::cat({in.w_gen, in.w_neg, in.w_pos}, 1).contiguous();  // [B, T]
  const T* w = w_t.data_ptr<T>();

  // --- Step 1: centred targets Yc = Y - c_b (c_b: mean of the T rows, in double). ---
  torch::Tensor Yc = torch::cat({old, in.neg, in.pos}, 1).contiguous();  // [B, T, S], fresh
  std::vector<double> centre(static_cast<size_t>(B * S), 0.0);
  {
    T* y = Yc.data_ptr<T>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        double* c = centre.data() + b * S;
        T* yb = y + b * Tn * S;
        for (int64_t t = 0; t < Tn; ++t)
          for (int64_t s = 0; s < S; ++s) c[s] += static_cast<double>(yb[t * S + s]);
        for (int64_t s = 0; s < S; ++s) c[s] /= static_cast<double>(Tn);
        for (int64_t t = 0; t < Tn; ++t)
          for (int64_t s = 0; s < S; ++s)
            yb[t * S + s] = static_cast<T>(static_cast<double>(yb[t * S + s]) - c[s]);
      }
    });
  }
  const T* yc = Yc.data_ptr<T>();

  // --- Step 2: pass 1, distances d [B, Cg, Tp] and per-row weighted sums. ---
  torch::Tensor d_t = torch::empty({B, Cg, Tp}, opts);
  T* d = d_t.data_ptr<T>();
  std::vector<double> rowsum_dw(static_cast<size_t>(B * Cg), 0.0);
  {
    torch::Tensor Yt_t = torch::zeros({B, S, Tp}, opts);  // transposed, zero-padded
    T* yt = Yt_t.data_ptr<T>();
    at::parallel_for(0, B * S, grain_for(Tn), [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t b = u / S, s = u % S;
        const T* src = yc + b * Tn * S + s;
        T* dst = yt + u * Tp;
        for (int64_t t = 0; t < Tn; ++t) dst[t] = src[t * S];
      }
    });
    const int64_t rows_per_unit = kRowBlock;
    const int64_t units_per_b = (Cg + rows_per_unit - 1) / rows_per_unit;
    at::parallel_for(0, B * units_per_b, grain_for(rows_per_unit * Tp * S),
                     [&](int64_t u0, int64_t u1) {
                       for (int64_t u = u0; u < u1; ++u) {
                         const int64_t b = u / units_per_b;
                         const int64_t r0 = (u % units_per_b) * rows_per_unit;
                         const int64_t nr = std::min(rows_per_unit, Cg - r0);
                         dist_rows(yc + (b * Tn + r0) * S, nr, S, yt + b * S * Tp, Tp, Tn,
                                   w + b * Tn, d + (b * Cg + r0) * Tp,
                                   rowsum_dw.data() + b * Cg + r0);
                       }
                     });
  }

  // --- Step 3: scale = mean(d * w) / mean(w) (one scalar), then the normalizer. ---
  double sum_dw = 0.0, sum_w = 0.0;
  for (double v : rowsum_dw) sum_dw += v;
  for (int64_t k = 0; k < B * Tn; ++k) sum_w += static_cast<double>(w[k]);
  const double mean_w = std::max(sum_w / static_cast<double>(B * Tn),
                                 static_cast<double>(std::numeric_limits<float>::min()));
  const double cnt = static_cast<double>(B * Cg * Tn);
  const torch::Tensor scale = torch::scalar_tensor(cnt > 0 ? (sum_dw / cnt) / mean_w : 0.0, opts);
  const FeatureScaling fs = norm.feature(scale, S);
  const torch::Tensor s_t = fs.coord_divisor.to(torch::kCPU, dtype).reshape({});
  const double s = s_t.item<double>();
  const double dist_div = fs.distance_divisor.to(torch::kCPU, dtype).item<double>();

  // --- Step 4: dn = d / divisor (+100 on the gen diagonal) in place; row minima. ---
  std::vector<T> rmin(static_cast<size_t>(B * Cg));
  at::parallel_for(0, B * Cg, grain_for(Tn), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* row = d + r * Tp;
      const T dv = static_cast<T>(dist_div);
      for (int64_t t = 0; t < Tn; ++t) row[t] = row[t] / dv;
      const int64_t i = r % Cg;
      row[i] = row[i] + static_cast<T>(kSelfExclusion);
      T m = row[0];
      for (int64_t t = 1; t < Tn; ++t) m = row[t] < m ? row[t] : m;
      rmin[r] = m;
    }
  });

  // Per-temperature 1/tau in the compute dtype.
  std::vector<T> inv_tau(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) inv_tau[k] = static_cast<T>(1.0 / in.temperatures[k]);

  // --- Step 5a: log-sum-exp per row (over targets) and per column (over gen samples). ---
  std::vector<T> lZr(static_cast<size_t>(n * B * Cg));  // [B*Cg][n]
  at::parallel_for(0, B * Cg, grain_for(n * Tn), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      row_lse(d + r * Tp, Tn, rmin[r], inv_tau.data(), n, lZr.data() + r * n);
  });
  std::vector<T> cmin(static_cast<size_t>(B * Tp));
  std::vector<T> lZc(static_cast<size_t>(n * B * Tp));  // [n][B][Tp]
  const int64_t col_units_per_b = (Tn + kLseCols - 1) / kLseCols;
  at::parallel_for(0, B * col_units_per_b, grain_for(n * Cg * kLseCols), [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t b = u / col_units_per_b, c0 = (u % col_units_per_b) * kLseCols;
      const int64_t nc = std::min(kLseCols, Tn - c0);
      col_lse(d + b * Cg * Tp + c0, Cg, Tp, nc, inv_tau.data(), n, cmin.data() + b * Tp + c0,
              lZc.data() + b * Tp + c0, B * Tp);
    }
  });

  // --- Step 5b: per temperature, K row by row, F_tau = (K @ Yc - rowsum(K) (old - c)) / s. ---
  torch::Tensor K_t = torch::empty({B, Cg, Tn}, opts);
  T* K = K_t.data_ptr<T>();
  torch::Tensor F_all = torch::empty({n, B, Cg, S}, opts);
  T* F = F_all.data_ptr<T>();
  std::vector<double> rk(static_cast<size_t>(B * Cg));
  std::vector<double> fsq(static_cast<size_t>(B * Cg));
  std::vector<double> m_tau(static_cast<size_t>(n)), factor(static_cast<size_t>(n));
  std::vector<torch::Tensor> m_tau_t;
  const T* oldp = old.data_ptr<T>();
  for (int64_t k = 0; k < n; ++k) {
    at::parallel_for(0, B * Cg, grain_for(2 * Tn), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / Cg;
        rk[r] = k_row(d + r * Tp, Tn, nneg, rmin[r], lZr[r * n + k], cmin.data() + b * Tp,
                      lZc.data() + k * B * Tp + b * Tp, inv_tau[k], w + b * Tn, K + r * Tn);
      }
    });
    torch::Tensor Fk = F_all[k];
    at::bmm_out(Fk, K_t, Yc);
    at::parallel_for(0, B * Cg, grain_for(2 * S), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / Cg;
        T* f = F + (k * B * Cg + r) * S;
        const T* o = oldp + r * S;
        const double* c = centre.data() + b * S;
        const double rkr = rk[r];
        double acc = 0.0;
        for (int64_t q = 0; q < S; ++q) {
          const double oc = static_cast<double>(o[q]) - c[q];
          const T v = static_cast<T>((static_cast<double>(f[q]) - rkr * oc) /
                                     s);
          f[q] = v;
          acc += static_cast<double>(v) * static_cast<double>(v);
        }
        fsq[r] = acc;
      }
    });
    double tot = 0.0;
    for (double v : fsq) tot += v;
    const double denom = static_cast<double>(B * Cg * S);
    const torch::Tensor mt = torch::scalar_tensor(denom > 0 ? tot / denom : 0.0, opts);
    factor[k] = norm.drift_factor(mt).to(torch::kCPU, dtype).item<double>();
    m_tau_t.push_back(mt);
  }

  // --- Step 6: V = sum_tau F_tau * factor_tau; goal = old / s + V. ---
  torch::Tensor V = torch::empty({B, Cg, S}, opts);
  torch::Tensor goal = torch::empty({B, Cg, S}, opts);
  T* vp = V.data_ptr<T>();
  T* gp = goal.data_ptr<T>();
  std::vector<T> fac(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) fac[k] = static_cast<T>(factor[k]);
  const T sT = static_cast<T>(s);
  at::parallel_for(0, B * Cg * S, 16384, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      T v = 0;
      for (int64_t k = 0; k < n; ++k) v = v + F[k * B * Cg * S + q] * fac[k];
      vp[q] = v;
      gp[q] = oldp[q] / sT + v;
    }
  });

  DriftOutputs out;
  out.V = V;
  out.goal = goal;
  out.m_tau = torch::stack(m_tau_t);
  out.scale = scale;
  out.coord_scale = s_t;
  return out;
}

}  // namespace

bool fused_supports(const DriftInputs& in) {
  const auto dt = in.gen.scalar_type();
  if (dt != torch::kFloat32 && dt != torch::kFloat64) return false;
  for (const torch::Tensor* t : {&in.gen, &in.pos, &in.neg, &in.w_gen, &in.w_pos, &in.w_neg}) {
    if (!t->defined() || !t->device().is_cpu() || t->layout() != torch::kStrided ||
        t->scalar_type() != dt)
      return false;
  }
  return !in.temperatures.empty();
}

DriftOutputs compute_fused(const DriftInputs& in, const Normalizer& norm) {
  torch::NoGradGuard no_grad;
  if (in.gen.scalar_type() == torch::kFloat64) return fused_impl<double>(in, norm);
  return fused_impl<float>(in, norm);
}

}  // namespace drift::laplace
