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
// Vectors: GCC vector extensions, never wider than the target's registers.
// The vectorised stages (laplace_fused_isa.inc) are compiled once per
// instruction set: x86-64-v4 (AVX-512, 64 bytes: 16 floats or 8 doubles),
// x86-64-v3 (AVX2 + FMA, 32 bytes) and the x86-64 baseline (SSE2, 16 bytes),
// and every call runs the best one the CPU supports, or the one that
// DRIFT_FUSED_ISA=v4|v3|default forces (fused_isa.hpp), so the binary runs on
// any x86-64 machine. exp() is a branch-free Cody-Waite + polynomial
// evaluation (float: Cephes expf, ~1 ulp; double: degree-13 Taylor, ~2 ulp);
// arguments are clamped from below where exp would be subnormal (such a term is
// added to a sum >= 1 or lies below the affinity floor), and the stages with
// exponentials run with subnormal results flushed to zero (FlushSubnormals).
//
// Buffers: intermediates live in a per-calling-thread workspace that is reused
// across calls (no page faults per call after the first); V and goal are new
// tensors, or the previous call's when the caller has released them.
#include "laplace_fused.hpp"

#include "fused_isa.hpp"

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
#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif

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
constexpr int kGemmRows = 8;       // K @ Y: rows per unit of work (a multiple of the tile rows)
constexpr int kGemmVecs = 2;       // K @ Y tile (S >= one vector): vectors of coordinates
constexpr int kGemmCoords = 2;     // K @ Y tile: coordinates
constexpr int64_t kRowChunk = 64;  // rows per partial column sum (fixed: thread-count independent)

#define DRIFT_ALWAYS_INLINE inline __attribute__((always_inline))

// Stages E and K + G run with subnormal results and inputs flushed to zero
// (x86 MXCSR FTZ + DAZ, restored on return). Their exponentials reach
// exp(-87) (float) / exp(-708) (double), and their squares and products
// underflow: each such result costs a microcode assist on Intel cores (W1 ran
// 2x slower). A subnormal term is below the last bit of the sums it enters,
// or below the affinity floor; the tests hold the same tolerances with and
// without a floor.
struct FlushSubnormals {
#if defined(__x86_64__) || defined(__SSE__)
  FlushSubnormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }  // FTZ | DAZ
  ~FlushSubnormals() { _mm_setcsr(saved); }
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;
  unsigned saved;
#else
  FlushSubnormals() {}  // no FTZ control here: subnormals are computed
#endif
};

// The vectorised stages of one instruction set (laplace_fused_isa.inc).
template <typename T> struct Stages {
  const char* isa = nullptr;
  int W = 1;  // T lanes per vector
  void (*transpose_targets)(const T* const*, int64_t, int64_t, int64_t, T*) = nullptr;
  void (*dist_rows)(const T*, int64_t, int64_t, int64_t, int64_t, const T*, T*, double*) = nullptr;
  void (*prepare_rows)(T*, int64_t, int64_t, int64_t, int64_t, T, T*) = nullptr;
  void (*col_min)(const T*, int64_t, int64_t, T*) = nullptr;
  void (*center_rows)(const T* const*, int64_t, int64_t, T*) = nullptr;
  void (*exp_rows)(const T*, int64_t, int64_t, int64_t, const T*, const T*, T, T*, T*, double*,
                   double*, T*) = nullptr;
  void (*kg_rows)(T*, const T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t,
                  int64_t, const T*, const T*, const T*, const T*, T, T, T, T, T*, T*,
                  double*) = nullptr;
  void (*combine)(const T*, int64_t, int64_t, const T*, const T*, T, int64_t, int64_t, T*,
                  T*) = nullptr;
};

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DRIFT_FUSED_X86 1
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
#define DRIFT_FUSED_NS isa_v4
#define DRIFT_FUSED_BYTES 64
#include "laplace_fused_isa.inc"
#undef DRIFT_FUSED_NS
#undef DRIFT_FUSED_BYTES
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
#define DRIFT_FUSED_NS isa_v3
#define DRIFT_FUSED_BYTES 32
#include "laplace_fused_isa.inc"
#undef DRIFT_FUSED_NS
#undef DRIFT_FUSED_BYTES
#pragma GCC pop_options
#endif
#define DRIFT_FUSED_NS isa_default
#define DRIFT_FUSED_BYTES 16
#include "laplace_fused_isa.inc"
#undef DRIFT_FUSED_NS
#undef DRIFT_FUSED_BYTES

// The stages of the copy that fused_isa() names (fused_isa.hpp).
template <typename T> Stages<T> select_stages() {
  const std::string isa = fused_isa();
#ifdef DRIFT_FUSED_X86
  if (isa == "v4") return isa_v4::stages<T>("v4");
  if (isa == "v3") return isa_v3::stages<T>("v3");
#endif
  return isa_default::stages<T>("default");
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
  const Stages<T> st = select_stages<T>();
  const bool wide = S >= st.W;  // K @ Y along the coordinates, from a centred copy
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
      st.transpose_targets(rows, Tn, S, Tp, Yt + b * S * Tp);
    }
  });

  // --- Phase 1: distances and per-row sums of d * w. ---
  {
    const int64_t units_per_b = (Cg + kDistRows - 1) / kDistRows;
    at::parallel_for(0, B * units_per_b, grain_for(kDistRows * Tp * S), [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t b = u / units_per_b, i0 = (u % units_per_b) * kDistRows;
        st.dist_rows(Yt + b * S * Tp, S, Tp, i0, std::min(Cg, i0 + kDistRows), wa + b * Tp,
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
        st.prepare_rows(db, Tn, Tp, 0, Cg, inv_div, sl.rmin);
        st.col_min(db, Cg, Tp, sl.cmin);
        if (wide) st.center_rows(rowp + b * Tn, Tn, S, sl.yc);
        for (int64_t k = 0; k < n; ++k) {
          for (int64_t c = 0; c < chunks; ++c) {
            const auto [i0, i1] = chunk_rows(c);
            st.exp_rows(db, Tp, i0, i1, sl.rmin, sl.cmin, half_inv_tau[k], sl.er, sl.ec, sl.zr,
                     sl.zc + c * Tp, sl.zcp + c * Tp);
          }
          finish_rows(sl, 0, Cg);
          finish_columns(sl);
          for (int64_t c = 0; c < chunks; ++c) {
            const auto [i0, i1] = chunk_rows(c);
            st.kg_rows(sl.er, sl.ec, db, ytb, sl.yc, S, Tn, Tp, i0, i1, sl.rzr, sl.rzc, wn + b * Tp,
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
        st.prepare_rows(db, Tn, Tp, i0, i1, inv_div, sl.rmin);
      });
      st.col_min(db, Cg, Tp, sl.cmin);
      if (wide) st.center_rows(rowp + b * Tn, Tn, S, sl.yc);
      for (int64_t k = 0; k < n; ++k) {
        at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const auto [i0, i1] = chunk_rows(c);
            st.exp_rows(db, Tp, i0, i1, sl.rmin, sl.cmin, half_inv_tau[k], sl.er, sl.ec, sl.zr,
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
                             st.kg_rows(sl.er, sl.ec, db, ytb, sl.yc, S, Tn, Tp, i0, i1, sl.rzr,
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
    st.combine(F, n, total, fac.data(), oldp, sT, q0, q1, vp, gp);
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
