// Fused CPU drift field (kernel "laplace", impl = "fused"). docs/method.md §2,
// the same numbers as the plain reference in laplace.cpp.
//
// Per problem b the targets Y = [old, neg, pos] (T = Cg + Cn + Cp rows) are
// read in place through row pointers, and once more transposed and
// zero-padded: Yt [B, S, Tp], Tp = T rounded up to 32 (row i < Cg of old is
// column i of Yt).
//
//  phase 0  Yt (blocked transpose) and the weights split into negative and
//           positive columns (0 in the padding), parallel over b.
//  phase 1  d[b,i,t] = sqrt(max(sum_s (y_si - y_st)^2, 1e-8)): exact
//           differences (never |a|^2 + |b|^2 - 2ab, which loses the small
//           distances that matter at tau = 1e-3), a register tile of 4 rows x
//           32 columns over explicit 64-byte vectors; float partial sums over
//           128 coordinates are added up in double. Per-row sums of d * w
//           (double) -> scale -> norm.feature() (once, for the whole batch).
//  phase 2  per problem, with [Cg, Tp] buffers that stay in cache:
//           dn = d / divisor (+100 on the gen diagonal, 1e30 in the padding),
//           row minima rmin and column minima cmin of dn; per temperature:
//           E   e_r = exp((rmin_i - dn) / 2tau), e_c = exp((cmin_t - dn) / 2tau)
//               (one exp each), Z_r = sum_t e_r^2, Z_c = sum_i e_c^2 (both
//               softmax denominators around their maxima, numerically stable);
//           K   A = max(e_r e_c / sqrt(Z_r Z_c), sqrt(floor)) = sqrt(max(softmax_t *
//               softmax_i, floor)) exactly (floor: drift/affinity.hpp, default 1e-6;
//               with min_normalizer m > 0 first A = min(A, exp(-dn/tau) / sqrt(m))), An = A w_neg, Ap = A w_pos,
//               K = Ap rowsum(An) - An rowsum(Ap) (the padding has w = 0);
//           G   F_tau = (K @ (Y - c) - rowsum(K) (old - c)) / s, c = old row 0
//               of the problem (centring keeps this free of cancellation for
//               coordinates of order 1e3; any point near the data will do),
//               with the coordinates along the vector lanes (4 rows x 64
//               coordinates per tile), or as dot products over t when S is
//               shorter than a vector; and sum F^2 per row.
//  phase 3  m_tau = mean(F_tau^2) -> norm.drift_factor(); V = sum_tau F_tau *
//           factor_tau, goal = old / s + V.
//
// Threads: phase 2 runs one problem per task when B is large enough, else the
// stages of one problem run across threads (rows, chunks of rows). Both
// schedules call the same functions on the same fixed chunks (64 rows for the
// column sums, fixed row tiles) and every sum that crosses a chunk is added up
// serially in a fixed order, so results do not depend on the thread count.
//
// Vectors: GCC vector extensions (64 bytes: 16 floats or 8 doubles); the hot
// functions are compiled for x86-64 baseline, x86-64-v3 (AVX2/FMA) and
// x86-64-v4 (AVX-512) and picked at load time (target_clones), so the binary
// runs on any x86-64 machine. exp() is a branch-free Cody-Waite + polynomial
// evaluation (float: Cephes expf, ~1 ulp; double: degree-13 Taylor, ~2 ulp);
// arguments are clamped from below where exp would be subnormal (such a term is
// added to a sum >= 1 or lies below the affinity floor).
//
// Buffers: intermediates live in a per-calling-thread workspace that is reused
// across calls (no page faults per call after the first); V and goal are new
// tensors, or the previous call's when the caller has released them.
#include "laplace_fused.hpp"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

// The 64-byte vector types below are passed between always-inline functions
// only; GCC's note that their ABI differs without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace drift::laplace {
namespace {

constexpr double kMinSquaredDistance = 1e-8;  // docs/method.md §2 step 2
constexpr double kSelfExclusion = 100.0;      // docs/method.md §2 step 4
constexpr double kPadDistance = 1e30;         // dn in the padding columns

constexpr int64_t kColAlign = 32;  // Tp is a multiple of it (2 float / 4 double vectors)
constexpr int kDistRows = 4;       // distance tile: rows
constexpr int64_t kSChunk = 128;   // coordinates summed in the compute dtype before double
constexpr int kGemmRows = 8;       // K @ Y tile (S < one vector): rows
constexpr int kGemmRowsWide = 8;   // K @ Y tile (S >= one vector): rows
constexpr int kGemmVecs = 2;       // K @ Y tile (S >= one vector): vectors of coordinates
constexpr int kGemmCoords = 2;     // K @ Y tile: coordinates
constexpr int64_t kRowChunk = 64;  // rows per partial column sum (fixed: thread-count independent)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DRIFT_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DRIFT_MULTIVERSION
#endif
#define DRIFT_ALWAYS_INLINE inline __attribute__((always_inline))

// ------------------------------------------------------------------ vectors

typedef float vf __attribute__((vector_size(64)));
typedef double vd __attribute__((vector_size(64)));
typedef int32_t vi32 __attribute__((vector_size(64)));
typedef int64_t vi64 __attribute__((vector_size(64)));

template <typename T> struct Vec;
template <> struct Vec<float> {
  using type = vf;
  static constexpr int W = 16;
};
template <> struct Vec<double> {
  using type = vd;
  static constexpr int W = 8;
};

template <typename T> using V = typename Vec<T>::type;

template <typename T> DRIFT_ALWAYS_INLINE V<T> vload(const T* p) {
  V<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T> DRIFT_ALWAYS_INLINE void vstore(T* p, V<T> v) { std::memcpy(p, &v, sizeof v); }
template <typename T> DRIFT_ALWAYS_INLINE V<T> vset(T x) { return V<T>{} + x; }
template <typename T> DRIFT_ALWAYS_INLINE V<T> vmax(V<T> a, V<T> b) { return a < b ? b : a; }
template <typename T> DRIFT_ALWAYS_INLINE V<T> vmin(V<T> a, V<T> b) { return a < b ? a : b; }
template <typename T> DRIFT_ALWAYS_INLINE double hsum(V<T> v) {
  double s = 0.0;
  for (int l = 0; l < Vec<T>::W; ++l) s += static_cast<double>(v[l]);
  return s;
}
template <typename T> DRIFT_ALWAYS_INLINE T hmin(V<T> v) {
  T m = v[0];
  for (int l = 1; l < Vec<T>::W; ++l) m = v[l] < m ? v[l] : m;
  return m;
}

DRIFT_ALWAYS_INLINE vf vexp(vf x) {
  x = vmax<float>(x, vset(-87.0f));        // exp(-87) = 1.6e-38, still normal
  const vf magic = vset(12582912.0f);      // 1.5 * 2^23: adding it rounds to an integer
  const vf t = x * 1.44269504088896341f + magic;
  const vf n = t - magic;
  const vi32 ni = reinterpret_cast<const vi32&>(t) - reinterpret_cast<const vi32&>(magic);
  vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = vset(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const vi32 eb = (ni + 127) << 23;
  return p * reinterpret_cast<const vf&>(eb);
}

DRIFT_ALWAYS_INLINE vd vexp(vd x) {
  x = vmax<double>(x, vset(-708.0));  // exp(-708) = 3.3e-308, still normal
  const vd magic = vset(6755399441055744.0);  // 1.5 * 2^52
  const vd t = x * 1.4426950408889634074 + magic;
  const vd n = t - magic;
  const vi64 ni = reinterpret_cast<const vi64&>(t) - reinterpret_cast<const vi64&>(magic);
  vd r = x - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  vd p = vset(1.0 / 6227020800.0);  // 1/13!
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
  const vi64 eb = (ni + 1023) << 52;
  return p * reinterpret_cast<const vd&>(eb);
}

// ------------------------------------------------------------------ phase 1

// acc[r][v] = sum over s in [s0, s1) of (Yt[s, i0 + r] - Yt[s, c0 + v W + lane])^2
// for RB rows and kColAlign columns (Yt: the problem's [S, Tp] block, pointers
// already offset), summed in the compute dtype.
template <typename T, int RB>
DRIFT_ALWAYS_INLINE void dist_sums(const T* xcol, const T* ycol, int64_t s0, int64_t s1,
                                   int64_t Tp, V<T> (&acc)[RB][kColAlign / Vec<T>::W]) {
  constexpr int W = Vec<T>::W, NV = kColAlign / W;
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V<T>{};
  for (int64_t s = s0; s < s1; ++s) {
    V<T> y[NV];
    for (int v = 0; v < NV; ++v) y[v] = vload(ycol + s * Tp + v * W);
    for (int r = 0; r < RB; ++r) {
      const T x = xcol[s * Tp + r];
      for (int v = 0; v < NV; ++v) {
        const V<T> df = y[v] - x;
        acc[r][v] += df * df;
      }
    }
  }
}

// out[r][c]: the squared distances over all S coordinates, partial sums of
// kSChunk coordinates added up in double.
template <typename T, int RB>
DRIFT_ALWAYS_INLINE void dist_tile(const T* xcol, const T* ycol, int64_t S, int64_t Tp,
                                   double (&out)[RB][kColAlign]) {
  constexpr int W = Vec<T>::W, NV = kColAlign / W;
  for (int r = 0; r < RB; ++r)
    for (int c = 0; c < kColAlign; ++c) out[r][c] = 0.0;
  for (int64_t s0 = 0; s0 < S; s0 += kSChunk) {
    V<T> acc[RB][NV];
    dist_sums<T, RB>(xcol, ycol, s0, std::min(S, s0 + kSChunk), Tp, acc);
    for (int r = 0; r < RB; ++r)
      for (int v = 0; v < NV; ++v)
        for (int l = 0; l < W; ++l) out[r][v * W + l] += static_cast<double>(acc[r][v][l]);
  }
}

// The same for S <= kSChunk: the float sums are final, stored straight into d.
template <typename T, int RB>
DRIFT_ALWAYS_INLINE void dist_tile_short(const T* xcol, const T* ycol, int64_t S, int64_t Tp,
                                         T* d) {
  constexpr int W = Vec<T>::W, NV = kColAlign / W;
  V<T> acc[RB][NV];
  dist_sums<T, RB>(xcol, ycol, 0, S, Tp, acc);
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) vstore(d + r * Tp + v * W, acc[r][v]);
}

// Distances of rows [i, i + RB) to every column (stride Tp), squared.
template <typename T, int RB>
DRIFT_ALWAYS_INLINE void dist_block(const T* Yt, int64_t S, int64_t Tp, int64_t i, T* d) {
  for (int64_t c0 = 0; c0 < Tp; c0 += kColAlign) {
    if (S <= kSChunk) {
      dist_tile_short<T, RB>(Yt + i, Yt + c0, S, Tp, d + i * Tp + c0);
      continue;
    }
    double out[RB][kColAlign];
    dist_tile<T, RB>(Yt + i, Yt + c0, S, Tp, out);
    for (int r = 0; r < RB; ++r)
      for (int c = 0; c < kColAlign; ++c) d[(i + r) * Tp + c0 + c] = static_cast<T>(out[r][c]);
  }
}

// d[i, t] = sqrt(max(d[i, t], 1e-8)) in place; returns sum_t d w. A plain
// loop: GCC vectorises sqrt there (this file is compiled with -fno-math-errno),
// not lane by lane in a vector type.
template <typename T>
DRIFT_ALWAYS_INLINE double finish_row(T* row, const T* w, int64_t Tp) {
  constexpr int W = Vec<T>::W;
  const T min_sq = static_cast<T>(kMinSquaredDistance);
  for (int64_t t = 0; t < Tp; ++t) {
    const T q = row[t] < min_sq ? min_sq : row[t];
    row[t] = std::sqrt(q);
  }
  V<T> acc{};
  for (int64_t t = 0; t < Tp; t += W) acc += vload(row + t) * vload(w + t);
  return hsum<T>(acc);
}

// Rows [i0, i1) of one problem: d rows (stride Tp) and rowsum_dw[i] = sum_t d w.
template <typename T>
DRIFT_ALWAYS_INLINE void dist_rows_impl(const T* Yt, int64_t S, int64_t Tp, int64_t i0,
                                        int64_t i1, const T* w, T* d, double* rowsum_dw) {
  int64_t i = i0;
  for (; i + kDistRows <= i1; i += kDistRows) {
    dist_block<T, kDistRows>(Yt, S, Tp, i, d);
    for (int r = 0; r < kDistRows; ++r) rowsum_dw[i + r] = finish_row(d + (i + r) * Tp, w, Tp);
  }
  for (; i < i1; ++i) {
    dist_block<T, 1>(Yt, S, Tp, i, d);
    rowsum_dw[i] = finish_row(d + i * Tp, w, Tp);
  }
}

DRIFT_MULTIVERSION void dist_rows(const float* Yt, int64_t S, int64_t Tp,
                                                  int64_t i0, int64_t i1, const float* w,
                                                  float* d, double* rowsum_dw) {
  dist_rows_impl(Yt, S, Tp, i0, i1, w, d, rowsum_dw);
}
DRIFT_MULTIVERSION void dist_rows(const double* Yt, int64_t S, int64_t Tp,
                                                  int64_t i0, int64_t i1, const double* w,
                                                  double* d, double* rowsum_dw) {
  dist_rows_impl(Yt, S, Tp, i0, i1, w, d, rowsum_dw);
}

// ------------------------------------------------------------------ phase 2

// Rows [i0, i1): dn = d / div in place, +100 on the diagonal (i < Cg is also
// column i), kPadDistance in the padding [Tn, Tp); rmin[i] = row minimum.
template <typename T>
DRIFT_ALWAYS_INLINE void prepare_rows_impl(T* d, int64_t Tn, int64_t Tp, int64_t i0, int64_t i1,
                                           T inv_div, T* rmin) {
  constexpr int W = Vec<T>::W;
  for (int64_t i = i0; i < i1; ++i) {
    T* row = d + i * Tp;
    for (int64_t t = 0; t < Tp; t += W) vstore(row + t, vload(row + t) * inv_div);
    for (int64_t t = Tn; t < Tp; ++t) row[t] = static_cast<T>(kPadDistance);
    row[i] = row[i] + static_cast<T>(kSelfExclusion);
    V<T> m = vload(row);
    for (int64_t t = W; t < Tp; t += W) m = vmin<T>(m, vload(row + t));
    rmin[i] = hmin<T>(m);
  }
}
DRIFT_MULTIVERSION void prepare_rows(float* d, int64_t Tn, int64_t Tp, int64_t i0, int64_t i1,
                                     float inv_div, float* rmin) {
  prepare_rows_impl(d, Tn, Tp, i0, i1, inv_div, rmin);
}
DRIFT_MULTIVERSION void prepare_rows(double* d, int64_t Tn, int64_t Tp, int64_t i0, int64_t i1,
                                     double inv_div, double* rmin) {
  prepare_rows_impl(d, Tn, Tp, i0, i1, inv_div, rmin);
}

template <typename T>
DRIFT_ALWAYS_INLINE void col_min_impl(const T* dn, int64_t Cg, int64_t Tp, T* cmin) {
  constexpr int W = Vec<T>::W;
  for (int64_t t = 0; t < Tp; t += W) vstore(cmin + t, vload(dn + t));
  for (int64_t i = 1; i < Cg; ++i)
    for (int64_t t = 0; t < Tp; t += W)
      vstore(cmin + t, vmin<T>(vload(cmin + t), vload(dn + i * Tp + t)));
}
DRIFT_MULTIVERSION void col_min(const float* dn, int64_t Cg, int64_t Tp, float* cmin) {
  col_min_impl(dn, Cg, Tp, cmin);
}
DRIFT_MULTIVERSION void col_min(const double* dn, int64_t Cg, int64_t Tp, double* cmin) {
  col_min_impl(dn, Cg, Tp, cmin);
}

// Stage E for rows [i0, i1) (one chunk of at most kRowChunk rows):
// er = exp((rmin_i - dn) h), ec = exp((cmin_t - dn) h) with h = 1 / (2 tau);
// zr[i] = sum_t er^2; zc[t] = sum over the chunk's rows of ec^2 (double).
template <typename T>
DRIFT_ALWAYS_INLINE void exp_rows_impl(const T* dn, int64_t Tp, int64_t i0, int64_t i1,
                                       const T* rmin, const T* cmin, T h, T* er, T* ec,
                                       double* zr, double* zc, T* zc_part) {
  constexpr int W = Vec<T>::W;
  for (int64_t t = 0; t < Tp; t += W) vstore(zc_part + t, V<T>{});
  for (int64_t i = i0; i < i1; ++i) {
    const T* row = dn + i * Tp;
    const V<T> rm = vset(rmin[i]);
    V<T> acc{};
    for (int64_t t = 0; t < Tp; t += W) {
      const V<T> x = vload(row + t);
      const V<T> a = vexp((rm - x) * h);
      const V<T> b = vexp((vload(cmin + t) - x) * h);
      vstore(er + i * Tp + t, a);
      vstore(ec + i * Tp + t, b);
      acc += a * a;
      vstore(zc_part + t, vload(zc_part + t) + b * b);
    }
    zr[i] = hsum<T>(acc);
  }
  for (int64_t t = 0; t < Tp; ++t) zc[t] = static_cast<double>(zc_part[t]);
}
DRIFT_MULTIVERSION void exp_rows(const float* dn, int64_t Tp, int64_t i0, int64_t i1,
                                 const float* rmin, const float* cmin, float h, float* er,
                                 float* ec, double* zr, double* zc, float* zc_part) {
  exp_rows_impl(dn, Tp, i0, i1, rmin, cmin, h, er, ec, zr, zc, zc_part);
}
DRIFT_MULTIVERSION void exp_rows(const double* dn, int64_t Tp, int64_t i0, int64_t i1,
                                 const double* rmin, const double* cmin, double h, double* er,
                                 double* ec, double* zr, double* zc, double* zc_part) {
  exp_rows_impl(dn, Tp, i0, i1, rmin, cmin, h, er, ec, zr, zc, zc_part);
}

// Stage K + G for rows [i0, i1): K written over er, then
// F[i, s] = (sum_t K[i,t] Yt[s,t] - rowsum(K)_i Yt[s,i]) * inv_s, fsq[i] = sum_s F^2.
template <typename T>
DRIFT_ALWAYS_INLINE void k_rows(T* er, const T* ec, const T* dn, int64_t Tp, int64_t i0,
                                int64_t i1, const T* rzr, const T* rzc, const T* wn, const T* wp,
                                T a_min, T inv_tau, T inv_sqrt_m, T* rk) {
  constexpr int W = Vec<T>::W;
  const V<T> floor = vset(a_min);  // sqrt of the floor of softmax_t * softmax_i (0: none)
  // min_normalizer m > 0: A = k / sqrt(max(R C, m)) = min(k / sqrt(R C), k / sqrt(m)),
  // k = exp(-dn / tau) (drift/affinity.hpp).
  const bool clamp = inv_sqrt_m > 0;
  const V<T> itau = vset(inv_tau), ism = vset(inv_sqrt_m);
  for (int64_t i = i0; i < i1; ++i) {
    T* k = er + i * Tp;
    const T* c = ec + i * Tp;
    const T fr = rzr[i];
    V<T> sn{}, sp{};
    const T* drow = dn + i * Tp;
    for (int64_t t = 0; t < Tp; t += W) {
      V<T> a = vload(k + t) * vload(c + t) * fr * vload(rzc + t);
      if (clamp) a = vmin<T>(a, vexp(-vload(drow + t) * itau) * ism);
      a = vmax<T>(a, floor);
      vstore(k + t, a);
      sn += a * vload(wn + t);
      sp += a * vload(wp + t);
    }
    const T s_neg = static_cast<T>(hsum<T>(sn)), s_pos = static_cast<T>(hsum<T>(sp));
    V<T> sk{};
    for (int64_t t = 0; t < Tp; t += W) {
      // K = Ap rowsum(An) - An rowsum(Ap)
      const V<T> kk = vload(k + t) * (vload(wp + t) * s_neg - vload(wn + t) * s_pos);
      vstore(k + t, kk);
      sk += kk;
    }
    rk[i] = static_cast<T>(hsum<T>(sk));
  }
}

template <typename T, int RB, int SB>
DRIFT_ALWAYS_INLINE void gemm_tile(const T* K, const T* Yt, int64_t Tp, double (&out)[RB][SB]) {
  constexpr int W = Vec<T>::W;
  V<T> acc[RB][SB];
  for (int r = 0; r < RB; ++r)
    for (int q = 0; q < SB; ++q) acc[r][q] = V<T>{};
  for (int64_t t = 0; t < Tp; t += W) {
    V<T> y[SB];
    for (int q = 0; q < SB; ++q) y[q] = vload(Yt + q * Tp + t) - Yt[q * Tp];  // centre: column 0
    for (int r = 0; r < RB; ++r) {
      const V<T> k = vload(K + r * Tp + t);
      for (int q = 0; q < SB; ++q) acc[r][q] += k * y[q];
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int q = 0; q < SB; ++q) out[r][q] = hsum<T>(acc[r][q]);
}

template <typename T, int RB>
DRIFT_ALWAYS_INLINE void g_rows(const T* K, const T* Yt, int64_t S, int64_t Tp, int64_t i0,
                                const T* rk, T inv_s, T* F, double* fsq) {
  double sq[RB] = {};
  int64_t s = 0;
  for (; s + kGemmCoords <= S; s += kGemmCoords) {
    double out[RB][kGemmCoords];
    gemm_tile<T, RB, kGemmCoords>(K + i0 * Tp, Yt + s * Tp, Tp, out);
    for (int r = 0; r < RB; ++r)
      for (int q = 0; q < kGemmCoords; ++q) {
        const T v = static_cast<T>(
            (out[r][q] - static_cast<double>(rk[i0 + r]) * static_cast<double>(Yt[(s + q) * Tp + i0 + r] - Yt[(s + q) * Tp])) *
            static_cast<double>(inv_s));
        F[(i0 + r) * S + s + q] = v;
        sq[r] += static_cast<double>(v) * static_cast<double>(v);
      }
  }
  for (; s < S; ++s) {
    double out[RB][1];
    gemm_tile<T, RB, 1>(K + i0 * Tp, Yt + s * Tp, Tp, out);
    for (int r = 0; r < RB; ++r) {
      const T v = static_cast<T>(
          (out[r][0] - static_cast<double>(rk[i0 + r]) * static_cast<double>(Yt[s * Tp + i0 + r] - Yt[s * Tp])) *
          static_cast<double>(inv_s));
      F[(i0 + r) * S + s] = v;
      sq[r] += static_cast<double>(v) * static_cast<double>(v);
    }
  }
  for (int r = 0; r < RB; ++r) fsq[i0 + r] = sq[r];
}

// Wide coordinates (S >= one vector): F rows [i0, i0 + RB) as K @ (Y - c)
// with the coordinates along the vector lanes (Y: the problem's target rows,
// c: its centre), kGemmVecs vectors per tile, then the same epilogue as g_rows.
template <typename T, int RB, int NV>
DRIFT_ALWAYS_INLINE void gs_tile(const T* K, const T* Yc, int64_t Tn, int64_t Tp, int64_t S,
                                 int64_t i0, int64_t s0, const T* rk, T inv_s, T* F,
                                 V<T> (&sq)[RB]) {
  constexpr int W = Vec<T>::W;
  V<T> acc[RB][NV];
  for (int r = 0; r < RB; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V<T>{};
  for (int64_t t = 0; t < Tn; ++t) {
    V<T> y[NV];
    for (int v = 0; v < NV; ++v) y[v] = vload(Yc + t * S + s0 + v * W);
    for (int r = 0; r < RB; ++r) {
      const T k = K[(i0 + r) * Tp + t];
      for (int v = 0; v < NV; ++v) acc[r][v] += k * y[v];
    }
  }
  for (int r = 0; r < RB; ++r) {
    const T rkr = rk[i0 + r];
    for (int v = 0; v < NV; ++v) {
      const V<T> oc = vload(Yc + (i0 + r) * S + s0 + v * W);  // old - c
      const V<T> f = (acc[r][v] - rkr * oc) * inv_s;
      vstore(F + (i0 + r) * S + s0 + v * W, f);
      sq[r] += f * f;
    }
  }
}

template <typename T, int RB>
DRIFT_ALWAYS_INLINE void gs_rows(const T* K, const T* Yc, int64_t Tn, int64_t Tp, int64_t S,
                                 int64_t i0, const T* rk, T inv_s, T* F, double* fsq) {
  constexpr int W = Vec<T>::W;
  V<T> sq[RB];
  for (int r = 0; r < RB; ++r) sq[r] = V<T>{};
  int64_t s0 = 0;
  for (; s0 + kGemmVecs * W <= S; s0 += kGemmVecs * W)
    gs_tile<T, RB, kGemmVecs>(K, Yc, Tn, Tp, S, i0, s0, rk, inv_s, F, sq);
  for (; s0 + W <= S; s0 += W) gs_tile<T, RB, 1>(K, Yc, Tn, Tp, S, i0, s0, rk, inv_s, F, sq);
  double tail[RB] = {};
  for (; s0 < S; ++s0)  // the last S % W coordinates
    for (int r = 0; r < RB; ++r) {
      double acc = 0.0;
      for (int64_t t = 0; t < Tn; ++t)
        acc += static_cast<double>(K[(i0 + r) * Tp + t]) * static_cast<double>(Yc[t * S + s0]);
      const T f = static_cast<T>(
          (acc - static_cast<double>(rk[i0 + r]) * static_cast<double>(Yc[(i0 + r) * S + s0])) *
          static_cast<double>(inv_s));
      F[(i0 + r) * S + s0] = f;
      tail[r] += static_cast<double>(f) * static_cast<double>(f);
    }
  for (int r = 0; r < RB; ++r) fsq[i0 + r] = hsum<T>(sq[r]) + tail[r];
}

template <typename T>
DRIFT_ALWAYS_INLINE void kg_rows_impl(T* er, const T* ec, const T* dn, const T* Yt, const T* Yc,
                                      int64_t S,
                                      int64_t Tn, int64_t Tp, int64_t i0, int64_t i1,
                                      const T* rzr, const T* rzc, const T* wn, const T* wp,
                                      T a_min, T inv_tau, T inv_sqrt_m, T inv_s, T* rk, T* F,
                                      double* fsq) {
  k_rows(er, ec, dn, Tp, i0, i1, rzr, rzc, wn, wp, a_min, inv_tau, inv_sqrt_m, rk);
  int64_t i = i0;
  if (S >= Vec<T>::W) {  // coordinates along the lanes
    for (; i + kGemmRowsWide <= i1; i += kGemmRowsWide)
      gs_rows<T, kGemmRowsWide>(er, Yc, Tn, Tp, S, i, rk, inv_s, F, fsq);
    for (; i < i1; ++i) gs_rows<T, 1>(er, Yc, Tn, Tp, S, i, rk, inv_s, F, fsq);
  } else {  // few coordinates: dot products over t
    for (; i + kGemmRows <= i1; i += kGemmRows) g_rows<T, kGemmRows>(er, Yt, S, Tp, i, rk, inv_s, F, fsq);
    for (; i < i1; ++i) g_rows<T, 1>(er, Yt, S, Tp, i, rk, inv_s, F, fsq);
  }
}
DRIFT_MULTIVERSION void kg_rows(float* er, const float* ec, const float* dn, const float* Yt,
                                const float* Yc, int64_t S, int64_t Tn, int64_t Tp, int64_t i0, int64_t i1,
                                const float* rzr, const float* rzc, const float* wn,
                                const float* wp, float a_min, float inv_tau, float inv_sqrt_m,
                                float inv_s, float* rk, float* F, double* fsq) {
  kg_rows_impl(er, ec, dn, Yt, Yc, S, Tn, Tp, i0, i1, rzr, rzc, wn, wp, a_min, inv_tau, inv_sqrt_m,
               inv_s, rk, F, fsq);
}
DRIFT_MULTIVERSION void kg_rows(double* er, const double* ec, const double* dn, const double* Yt,
                                const double* Yc, int64_t S, int64_t Tn, int64_t Tp, int64_t i0,
                                int64_t i1, const double* rzr, const double* rzc,
                                const double* wn, const double* wp, double a_min, double inv_tau,
                                double inv_sqrt_m, double inv_s, double* rk, double* F,
                                double* fsq) {
  kg_rows_impl(er, ec, dn, Yt, Yc, S, Tn, Tp, i0, i1, rzr, rzc, wn, wp, a_min, inv_tau, inv_sqrt_m,
               inv_s, rk, F, fsq);
}

// ------------------------------------------------------------------ phases 0 and 3

// One problem's targets centred on its first row (old row 0; translation
// invariance makes any point near the data a valid centre): Yc [Tn, S].
template <typename T>
DRIFT_ALWAYS_INLINE void center_rows_impl(const T* const* rows, int64_t Tn, int64_t S, T* Yc) {
  const T* c = rows[0];
  for (int64_t t = 0; t < Tn; ++t) {
    const T* y = rows[t];
    T* o = Yc + t * S;
    for (int64_t s = 0; s < S; ++s) o[s] = y[s] - c[s];
  }
}
DRIFT_MULTIVERSION void center_rows(const float* const* rows, int64_t Tn, int64_t S, float* Yc) {
  center_rows_impl(rows, Tn, S, Yc);
}
DRIFT_MULTIVERSION void center_rows(const double* const* rows, int64_t Tn, int64_t S,
                                    double* Yc) {
  center_rows_impl(rows, Tn, S, Yc);
}

// One problem's targets (Tn rows of S), transposed and zero-padded: Yt [S, Tp].
// Distances need no centring (exact differences); the centre used by K @ Y is
// applied there.
template <typename T>
DRIFT_ALWAYS_INLINE void transpose_targets_impl(const T* const* rows, int64_t Tn, int64_t S,
                                                int64_t Tp, T* Yt) {
  constexpr int64_t kBlk = 16;  // transpose in 16 x 16 blocks
  T tile[kBlk][kBlk];
  for (int64_t t0 = 0; t0 < Tp; t0 += kBlk)
    for (int64_t s0 = 0; s0 < S; s0 += kBlk) {
      const int64_t ns = std::min(kBlk, S - s0);
      for (int64_t t = 0; t < kBlk; ++t) {
        if (t0 + t < Tn) {
          const T* y = rows[t0 + t] + s0;
          for (int64_t q = 0; q < ns; ++q) tile[t][q] = y[q];
        } else {
          for (int64_t q = 0; q < ns; ++q) tile[t][q] = T(0);
        }
      }
      for (int64_t q = 0; q < ns; ++q)
        for (int64_t t = 0; t < kBlk; ++t) Yt[(s0 + q) * Tp + t0 + t] = tile[t][q];
    }
}
// In-register transpose of a 16 x 16 float block: four rounds of swapping the
// off-diagonal h x h sub-blocks of every 2h x 2h block (h = 8, 4, 2, 1). In a
// pair of rows (i, i + h), the top row takes the bottom row's columns without
// bit h into its columns with bit h, and the bottom row the top row's columns
// with bit h into its columns without it.
DRIFT_ALWAYS_INLINE void transpose16(vf (&r)[16]) {
  for (int i = 0; i < 16; ++i)
    if (!(i & 8)) {
      const vf a = r[i], b = r[i + 8];
      r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
      r[i + 8] = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
  for (int i = 0; i < 16; ++i)
    if (!(i & 4)) {
      const vf a = r[i], b = r[i + 4];
      r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
      r[i + 4] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
  for (int i = 0; i < 16; ++i)
    if (!(i & 2)) {
      const vf a = r[i], b = r[i + 2];
      r[i] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
      r[i + 2] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
  for (int i = 0; i < 16; ++i)
    if (!(i & 1)) {
      const vf a = r[i], b = r[i + 1];
      r[i] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
      r[i + 1] = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    }
}

DRIFT_MULTIVERSION void transpose_targets(const float* const* rows, int64_t Tn, int64_t S,
                                          int64_t Tp, float* Yt) {
  const int64_t S16 = S / 16 * 16;
  for (int64_t t0 = 0; t0 < Tp; t0 += 16) {
    for (int64_t s0 = 0; s0 < S16; s0 += 16) {
      vf r[16];
      for (int t = 0; t < 16; ++t) r[t] = t0 + t < Tn ? vload(rows[t0 + t] + s0) : vf{};
      transpose16(r);
      for (int q = 0; q < 16; ++q) vstore(Yt + (s0 + q) * Tp + t0, r[q]);
    }
    for (int64_t s = S16; s < S; ++s)
      for (int64_t t = t0; t < t0 + 16; ++t) Yt[s * Tp + t] = t < Tn ? rows[t][s] : 0.0f;
  }
}
DRIFT_MULTIVERSION void transpose_targets(const double* const* rows, int64_t Tn, int64_t S,
                                          int64_t Tp, double* Yt) {
  transpose_targets_impl(rows, Tn, S, Tp, Yt);
}

// V[q] = sum_k F[k][q] fac[k], goal[q] = old[q] / s + V[q] for q in [q0, q1).
template <typename T>
DRIFT_ALWAYS_INLINE void combine_impl(const T* F, int64_t n, int64_t total, const T* fac,
                                      const T* old, T s, int64_t q0, int64_t q1, T* V, T* goal) {
  for (int64_t q = q0; q < q1; ++q) V[q] = F[q] * fac[0];
  for (int64_t k = 1; k < n; ++k) {
    const T f = fac[k];
    const T* Fk = F + k * total;
    for (int64_t q = q0; q < q1; ++q) V[q] = V[q] + Fk[q] * f;
  }
  for (int64_t q = q0; q < q1; ++q) goal[q] = old[q] / s + V[q];
}
DRIFT_MULTIVERSION void combine(const float* F, int64_t n, int64_t total, const float* fac,
                                const float* old, float s, int64_t q0, int64_t q1, float* V,
                                float* goal) {
  combine_impl(F, n, total, fac, old, s, q0, q1, V, goal);
}
DRIFT_MULTIVERSION void combine(const double* F, int64_t n, int64_t total, const double* fac,
                                const double* old, double s, int64_t q0, int64_t q1, double* V,
                                double* goal) {
  combine_impl(F, n, total, fac, old, s, q0, q1, V, goal);
}

// ------------------------------------------------------------------ workspace

// Intermediates of one call, carved out of one 64-byte aligned block that the
// calling thread keeps between calls.
class Workspace {
 public:
  void reserve(size_t bytes) {
    if (bytes <= cap_) return;
    buf_.reset(static_cast<char*>(::operator new(bytes, std::align_val_t(64))));
    cap_ = bytes;
  }
  char* data() { return buf_.get(); }

 private:
  struct Free {
    void operator()(char* p) const { ::operator delete(p, std::align_val_t(64)); }
  };
  std::unique_ptr<char, Free> buf_;
  size_t cap_ = 0;
};

struct Layout {
  size_t bytes = 0;
  template <typename U> size_t add(int64_t n) {
    const size_t at = bytes;
    bytes += (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(U) + 63) / 64 * 64;
    return at;
  }
};

// ------------------------------------------------------------------ driver

int64_t grain_for(int64_t work_per_unit) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_unit));
}

template <typename T>
DriftOutputs fused_impl(const DriftInputs& in, const Normalizer& norm, const AffinityFloor& af) {
  const auto dtype = in.gen.scalar_type();
  const auto opts = torch::TensorOptions().dtype(dtype).device(torch::kCPU);
  const int64_t B = in.gen.size(0), Cg = in.gen.size(1), S = in.gen.size(2);
  const int64_t Cn = in.neg.size(1), Cp = in.pos.size(1);
  const int64_t Tn = Cg + Cn + Cp, nneg = Cg + Cn;
  const int64_t Tp = (Tn + kColAlign - 1) / kColAlign * kColAlign;
  const int64_t n = static_cast<int64_t>(in.temperatures.size());
  const int64_t chunks = (Cg + kRowChunk - 1) / kRowChunk;
  const int nthreads = std::max(1, at::get_num_threads());
  // One problem per task when there are enough problems to keep every thread busy.
  const bool per_problem = B >= 2 * nthreads;
  const int64_t nbuf = per_problem ? nthreads : 1;  // sets of per-problem buffers

  const torch::Tensor old = in.gen.detach().contiguous();
  const torch::Tensor neg = in.neg.contiguous(), pos = in.pos.contiguous();
  const torch::Tensor w_gen = in.w_gen.contiguous(), w_neg = in.w_neg.contiguous(),
                      w_pos = in.w_pos.contiguous();
  const T* oldp = old.data_ptr<T>();

  // --- Workspace. ---
  Layout L;
  const bool wide = S >= Vec<T>::W;  // K @ Y along the coordinates, from a centred copy
  const size_t o_rows = L.add<const T*>(B * Tn), o_yt = L.add<T>(B * S * Tp), o_d = L.add<T>(B * Cg * Tp),
               o_f = L.add<T>(n * B * Cg * S), o_wn = L.add<T>(B * Tp), o_wp = L.add<T>(B * Tp), o_wa = L.add<T>(B * Tp),
               o_rdw = L.add<double>(B * Cg), o_fsq = L.add<double>(n * B * Cg),
               o_rmin = L.add<T>(nbuf * Cg), o_cmin = L.add<T>(nbuf * Tp),
               o_er = L.add<T>(nbuf * Cg * Tp), o_ec = L.add<T>(nbuf * Cg * Tp),
               o_zr = L.add<double>(nbuf * Cg), o_rzr = L.add<T>(nbuf * Cg),
               o_zc = L.add<double>(nbuf * chunks * Tp), o_zcp = L.add<T>(nbuf * chunks * Tp),
               o_rzc = L.add<T>(nbuf * Tp), o_rk = L.add<T>(nbuf * Cg),
               o_yc = L.add<T>(wide ? nbuf * Tn * S : 0);
  static thread_local Workspace ws;
  ws.reserve(L.bytes);
  char* base = ws.data();
  auto at_ = [&](size_t off) { return base + off; };
  T* Yt = reinterpret_cast<T*>(at_(o_yt));
  const T** rowp = reinterpret_cast<const T**>(at_(o_rows));  // [B][Tn] target rows
  T* d = reinterpret_cast<T*>(at_(o_d));
  T* F = reinterpret_cast<T*>(at_(o_f));
  T* wn = reinterpret_cast<T*>(at_(o_wn));
  T* wp = reinterpret_cast<T*>(at_(o_wp));
  T* wa = reinterpret_cast<T*>(at_(o_wa));
  double* rowsum_dw = reinterpret_cast<double*>(at_(o_rdw));
  double* fsq = reinterpret_cast<double*>(at_(o_fsq));

  // --- Phase 0: weights split into negatives / positives (0 in the padding);
  // target row pointers, centres, and the centred, transposed targets Yt. ---
  const T* wg = w_gen.data_ptr<T>();
  const T* wq = w_neg.data_ptr<T>();
  const T* wo = w_pos.data_ptr<T>();
  const T* negp = neg.data_ptr<T>();
  const T* posp = pos.data_ptr<T>();
  at::parallel_for(0, B, grain_for(Tn * S), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* wnb = wn + b * Tp;
      T* wpb = wp + b * Tp;
      for (int64_t t = 0; t < Tp; ++t) {
        wnb[t] = t < Cg ? wg[b * Cg + t] : t < nneg ? wq[b * Cn + t - Cg] : T(0);
        wpb[t] = (t >= nneg && t < Tn) ? wo[b * Cp + t - nneg] : T(0);
        wa[b * Tp + t] = wnb[t] + wpb[t];  // one of the two is 0
      }
      const T** rows = rowp + b * Tn;
      for (int64_t t = 0; t < Tn; ++t)
        rows[t] = t < Cg     ? oldp + (b * Cg + t) * S
                  : t < nneg ? negp + (b * Cn + t - Cg) * S
                             : posp + (b * Cp + t - nneg) * S;
      transpose_targets(rows, Tn, S, Tp, Yt + b * S * Tp);
    }
  });

  // --- Phase 1: distances and per-row sums of d * w. ---
  {
    const int64_t units_per_b = (Cg + kDistRows - 1) / kDistRows;
    at::parallel_for(0, B * units_per_b, grain_for(kDistRows * Tp * S), [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t b = u / units_per_b, i0 = (u % units_per_b) * kDistRows;
        dist_rows(Yt + b * S * Tp, S, Tp, i0, std::min(Cg, i0 + kDistRows), wa + b * Tp,
                  d + b * Cg * Tp, rowsum_dw + b * Cg);
      }
    });
  }
  double sum_dw = 0.0;
  for (int64_t r = 0; r < B * Cg; ++r) sum_dw += rowsum_dw[r];

  // --- Phase 1b: scale = mean(d * w) / mean(w) (one scalar), then the normalizer. ---
  double sum_w = 0.0;
  for (const torch::Tensor* wt : {&w_gen, &w_neg, &w_pos}) {
    const T* p = wt->data_ptr<T>();
    for (int64_t k = 0; k < wt->numel(); ++k) sum_w += static_cast<double>(p[k]);
  }
  const double mean_w = std::max(sum_w / static_cast<double>(B * Tn),
                                 static_cast<double>(std::numeric_limits<float>::min()));
  const double cnt = static_cast<double>(B * Cg * Tn);
  const torch::Tensor scale = torch::scalar_tensor(cnt > 0 ? (sum_dw / cnt) / mean_w : 0.0, opts);
  const FeatureScaling fs = norm.feature(scale, S);
  const torch::Tensor s_t = fs.coord_divisor.to(torch::kCPU, dtype).reshape({});
  const double s = s_t.item<double>();
  const double dist_div = fs.distance_divisor.to(torch::kCPU, dtype).item<double>();
  const T inv_div = static_cast<T>(1.0 / dist_div);
  const T inv_s = static_cast<T>(1.0 / s);

  std::vector<T> half_inv_tau(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) half_inv_tau[k] = static_cast<T>(0.5 / in.temperatures[k]);
  // A >= sqrt(floor of softmax_t * softmax_i); 0: no floor.
  const T a_min = static_cast<T>(std::sqrt(af.product_floor(Cg, Tn)));
  // The normalizer clamp (0: none): A <= exp(-dn / tau) / sqrt(min_normalizer).
  const T inv_sqrt_m = af.min_normalizer > 0 ? static_cast<T>(1.0 / std::sqrt(af.min_normalizer)) : T(0);

  // --- Phase 2: per problem b, with buffer set `slot`. ---
  struct Slot {
    T *rmin, *cmin, *er, *ec, *rzr, *rzc, *zcp, *rk, *yc;
    double *zr, *zc;
  };
  auto slot = [&](int64_t k) {
    Slot sl;
    sl.rmin = reinterpret_cast<T*>(at_(o_rmin)) + k * Cg;
    sl.cmin = reinterpret_cast<T*>(at_(o_cmin)) + k * Tp;
    sl.er = reinterpret_cast<T*>(at_(o_er)) + k * Cg * Tp;
    sl.ec = reinterpret_cast<T*>(at_(o_ec)) + k * Cg * Tp;
    sl.zr = reinterpret_cast<double*>(at_(o_zr)) + k * Cg;
    sl.rzr = reinterpret_cast<T*>(at_(o_rzr)) + k * Cg;
    sl.zc = reinterpret_cast<double*>(at_(o_zc)) + k * chunks * Tp;
    sl.zcp = reinterpret_cast<T*>(at_(o_zcp)) + k * chunks * Tp;
    sl.rzc = reinterpret_cast<T*>(at_(o_rzc)) + k * Tp;
    sl.rk = reinterpret_cast<T*>(at_(o_rk)) + k * Cg;
    sl.yc = reinterpret_cast<T*>(at_(o_yc)) + (wide ? k * Tn * S : 0);
    return sl;
  };
  // Column sums of one temperature: chunks added in order; 1 / sqrt(Z).
  auto finish_columns = [&](const Slot& sl) {
    for (int64_t t = 0; t < Tp; ++t) {
      double z = 0.0;
      for (int64_t c = 0; c < chunks; ++c) z += sl.zc[c * Tp + t];
      sl.rzc[t] = static_cast<T>(1.0 / std::sqrt(z));
    }
  };
  auto finish_rows = [&](const Slot& sl, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) sl.rzr[i] = static_cast<T>(1.0 / std::sqrt(sl.zr[i]));
  };
  auto chunk_rows = [&](int64_t c) {
    return std::pair<int64_t, int64_t>{c * kRowChunk, std::min(Cg, (c + 1) * kRowChunk)};
  };

  if (per_problem) {
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      const Slot sl = slot(std::min<int64_t>(at::get_thread_num(), nbuf - 1));
      for (int64_t b = b0; b < b1; ++b) {
        T* db = d + b * Cg * Tp;
        const T* ytb = Yt + b * S * Tp;
        prepare_rows(db, Tn, Tp, 0, Cg, inv_div, sl.rmin);
        col_min(db, Cg, Tp, sl.cmin);
        if (wide) center_rows(rowp + b * Tn, Tn, S, sl.yc);
        for (int64_t k = 0; k < n; ++k) {
          for (int64_t c = 0; c < chunks; ++c) {
            const auto [i0, i1] = chunk_rows(c);
            exp_rows(db, Tp, i0, i1, sl.rmin, sl.cmin, half_inv_tau[k], sl.er, sl.ec, sl.zr,
                     sl.zc + c * Tp, sl.zcp + c * Tp);
          }
          finish_rows(sl, 0, Cg);
          finish_columns(sl);
          for (int64_t c = 0; c < chunks; ++c) {
            const auto [i0, i1] = chunk_rows(c);
            kg_rows(sl.er, sl.ec, db, ytb, sl.yc, S, Tn, Tp, i0, i1, sl.rzr, sl.rzc, wn + b * Tp,
                    wp + b * Tp, a_min, 2 * half_inv_tau[k], inv_sqrt_m, inv_s, sl.rk, F + (k * B + b) * Cg * S, fsq + k * B * Cg + b * Cg);
          }
        }
      }
    });
  } else {
    // Few problems: the stages of each problem run across threads.
    const Slot sl = slot(0);
    for (int64_t b = 0; b < B; ++b) {
      T* db = d + b * Cg * Tp;
      const T* ytb = Yt + b * S * Tp;
      at::parallel_for(0, Cg, grain_for(Tp), [&](int64_t i0, int64_t i1) {
        prepare_rows(db, Tn, Tp, i0, i1, inv_div, sl.rmin);
      });
      col_min(db, Cg, Tp, sl.cmin);
      if (wide) center_rows(rowp + b * Tn, Tn, S, sl.yc);
      for (int64_t k = 0; k < n; ++k) {
        at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const auto [i0, i1] = chunk_rows(c);
            exp_rows(db, Tp, i0, i1, sl.rmin, sl.cmin, half_inv_tau[k], sl.er, sl.ec, sl.zr,
                     sl.zc + c * Tp, sl.zcp + c * Tp);
          }
        });
        finish_rows(sl, 0, Cg);
        finish_columns(sl);
        // Units of kGemmRows rows inside fixed chunks, so that the tiles (and
        // their rounding) are the same as in the per-problem schedule.
        at::parallel_for(0, chunks * ((kRowChunk + kGemmRows - 1) / kGemmRows), grain_for(Tp * S),
                         [&](int64_t u0, int64_t u1) {
                           constexpr int64_t per_chunk = (kRowChunk + kGemmRows - 1) / kGemmRows;
                           for (int64_t u = u0; u < u1; ++u) {
                             const auto [c0, c1] = chunk_rows(u / per_chunk);
                             const int64_t i0 = c0 + (u % per_chunk) * kGemmRows;
                             if (i0 >= c1) continue;
                             const int64_t i1 = std::min(c1, i0 + kGemmRows);
                             kg_rows(sl.er, sl.ec, db, ytb, sl.yc, S, Tn, Tp, i0, i1, sl.rzr,
                                     sl.rzc, wn + b * Tp, wp + b * Tp, a_min,
                                     2 * half_inv_tau[k], inv_sqrt_m, inv_s, sl.rk,
                                     F + (k * B + b) * Cg * S, fsq + k * B * Cg + b * Cg);
                           }
                         });
      }
    }
  }

  // --- Phase 3: m_tau = mean(F_tau^2) -> drift factor; V and goal. ---
  std::vector<double> factor(static_cast<size_t>(n));
  std::vector<torch::Tensor> m_tau_t;
  const double denom = static_cast<double>(B * Cg * S);
  for (int64_t k = 0; k < n; ++k) {
    double tot = 0.0;
    for (int64_t r = 0; r < B * Cg; ++r) tot += fsq[k * B * Cg + r];
    const torch::Tensor mt = torch::scalar_tensor(denom > 0 ? tot / denom : 0.0, opts);
    factor[k] = norm.drift_factor(mt).to(torch::kCPU, dtype).item<double>();
    m_tau_t.push_back(mt);
  }
  // V and goal go to the caller. Memory of the previous call's outputs is reused
  // once nothing but this cache refers to it (fresh pages for every call cost
  // as much as a pass over the data in page faults). Never freed: no tensor
  // destructor runs at thread exit.
  static thread_local torch::Tensor* cache = new torch::Tensor[2];
  auto output = [&](torch::Tensor& c) {
    if (!(c.defined() && c.use_count() == 1 && c.storage().use_count() == 1 &&
          c.sizes() == torch::IntArrayRef{B, Cg, S}))
      c = torch::empty({B, Cg, S}, opts);
    return c;
  };
  torch::Tensor Vt = output(cache[0]);
  torch::Tensor goal = output(cache[1]);
  T* vp = Vt.data_ptr<T>();
  T* gp = goal.data_ptr<T>();
  std::vector<T> fac(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) fac[k] = static_cast<T>(factor[k]);
  const T sT = static_cast<T>(s);
  const int64_t total = B * Cg * S;
  at::parallel_for(0, total, 16384, [&](int64_t q0, int64_t q1) {
    combine(F, n, total, fac.data(), oldp, sT, q0, q1, vp, gp);
  });

  DriftOutputs out;
  out.V = Vt;
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

DriftOutputs compute_fused(const DriftInputs& in, const Normalizer& norm,
                           const AffinityFloor& floor) {
  torch::NoGradGuard no_grad;
  if (in.gen.scalar_type() == torch::kFloat64) return fused_impl<double>(in, norm, floor);
  return fused_impl<float>(in, norm, floor);
}

}  // namespace drift::laplace
