// CUDA kernels of kernel "laplace" (docs/method.md §2). No torch headers: the
// caller (laplace_cuda.cpp) owns every buffer, calls the normalizer between the
// stages and runs the matrix product K @ Yc (cuBLAS through at::bmm).
//
// Same structure and numerics as the fused CPU kernel (laplace_fused.cpp):
//
//  centre     Yc[b,t,:] = Y[b,t,:] - c_b, c_b the mean of problem b's T rows
//             (summed in double). Distances and F are translation-invariant;
//             centring keeps K @ Y - rowsum(K) * old free of cancellation for
//             coordinates of order 1e3.
//  distances  d[b,i,t] = sqrt(max(sum_s (x_is - y_ts)^2, 1e-8)) from exact
//             differences (never |a|^2 + |b|^2 - 2ab): 32x32 tiles of (i, t),
//             32 coordinates at a time through shared memory, summed in the
//             compute dtype per chunk and in double across chunks. Each block
//             writes its sum of d * w[t] (double) to a slot of its own.
//  scale      one block adds the slots up in a fixed order: scale =
//             mean(d * w) / mean(w). The caller then calls norm.feature().
//  rows       one warp per row: dn = d / distance_divisor (+100 at t = i),
//             the row minimum and, per temperature, log sum_t exp((rmin - dn)/tau).
//  columns    one thread per column: minimum over i and log-sum-exp per temperature.
//  K          one warp per (row, temperature): log A = 0.5 max(logsm_t + logsm_i,
//             log 1e-6), A *= w_t, Kn = -An rowsum(Ap), Kp = Ap rowsum(An), then
//             rowsum(K) (double) is subtracted from K[i, i]: since Yc[b, i] =
//             old_i - c_b, K' @ Yc = K @ Yc - rowsum(K) (old - c), the
//             translation-invariant form of docs/method.md §2 step 5, in ONE product for all temperatures
//             ([B, n*Cg, T] x [B, T, S], run by the caller).
//  m_tau      mean((F / s)^2) per temperature: fixed grid of block sums, added
//             up in a fixed order (results do not vary between runs). The caller
//             then calls norm.drift_factor() once per temperature.
//  combine    V = sum_k (F_k / s) * factor_k, goal = old / s + V.
//
// Every sum that crosses threads is a fixed tree (shuffles, then shared memory),
// so results are bitwise reproducible. exp/log/sqrt are the accurate CUDA ones.
#include "laplace_cuda.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace drift::laplace::cuda {
namespace {

constexpr double kMinSquaredDistance = 1e-8;  // docs/method.md §2 step 2
constexpr double kSelfExclusion = 100.0;      // docs/method.md §2 step 4

constexpr int kThreads = 256;        // every kernel's block size
constexpr int kTile = 32;            // distance tile: kTile rows x kTile columns
constexpr int kSChunk = 32;          // coordinates staged per step
constexpr int64_t kReduceBlocks = 512;  // fixed grid of the m_tau sums

struct InvTau {
  double v[kMaxTemperatures];
};

std::string launched(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return "";
  return std::string("laplace cuda: launch of ") + what + " failed: " + cudaGetErrorName(e) +
         " (" + cudaGetErrorString(e) + ")";
}

unsigned blocks_for(int64_t threads) {
  const int64_t b = (threads + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, 1 << 30)));
}

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog(double x, float) { return static_cast<float>(log(x)); }
__device__ __forceinline__ double dlog(double x, double) { return log(x); }

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_min(T v) {
  for (int o = 16; o > 0; o >>= 1) {
    const T u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u < v ? u : v;
  }
  return v;
}
// Sum over the block (a fixed tree); the result is valid in thread 0.
__device__ double block_sum(double v, double* sh) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.0;
  if (warp == 0) v = warp_sum(v);
  __syncthreads();
  return v;
}

// ------------------------------------------------------------------ stage 1

template <typename T>
__global__ void __launch_bounds__(kThreads) centre_kernel(Shape sh, Buffers<T> b) {
  const int64_t Tn = sh.Tn, S = sh.S;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < sh.B * S;
       e += stride) {
    const int64_t bb = e / S, s = e % S;
    const T* g = b.gen + bb * sh.Cg * S + s;
    const T* n = b.neg + bb * sh.Cn * S + s;
    const T* p = b.pos + bb * sh.Cp * S + s;
    double c = 0.0;
    for (int64_t t = 0; t < sh.Cg; ++t) c += static_cast<double>(g[t * S]);
    for (int64_t t = 0; t < sh.Cn; ++t) c += static_cast<double>(n[t * S]);
    for (int64_t t = 0; t < sh.Cp; ++t) c += static_cast<double>(p[t * S]);
    c /= static_cast<double>(Tn);
    T* y = b.Yc + bb * Tn * S + s;
    for (int64_t t = 0; t < sh.Cg; ++t) y[t * S] = static_cast<T>(static_cast<double>(g[t * S]) - c);
    y += sh.Cg * S;
    for (int64_t t = 0; t < sh.Cn; ++t) y[t * S] = static_cast<T>(static_cast<double>(n[t * S]) - c);
    y += sh.Cn * S;
    for (int64_t t = 0; t < sh.Cp; ++t) y[t * S] = static_cast<T>(static_cast<double>(p[t * S]) - c);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) weights_kernel(Shape sh, Buffers<T> b) {
  const int64_t Tn = sh.Tn;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= sh.B * Tn) return;
  const int64_t bb = e / Tn, t = e % Tn;
  T v;
  if (t < sh.Cg) v = b.w_gen[bb * sh.Cg + t];
  else if (t < sh.Cg + sh.Cn) v = b.w_neg[bb * sh.Cn + (t - sh.Cg)];
  else v = b.w_pos[bb * sh.Cp + (t - sh.Cg - sh.Cn)];
  b.w[e] = v;
}

// One kTile x kTile tile of d for one problem; 256 threads, 2 x 2 outputs each.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    distance_kernel(Shape sh, Buffers<T> b, int64_t tiles_i, int64_t tiles_t) {
  __shared__ T xs[kTile][kSChunk + 1];
  __shared__ T ys[kTile][kSChunk + 1];
  __shared__ double red[32];
  const int64_t Tn = sh.Tn, S = sh.S;
  int64_t blk = blockIdx.x;
  const int64_t tt = blk % tiles_t;
  blk /= tiles_t;
  const int64_t ti = blk % tiles_i;
  const int64_t bb = blk / tiles_i;
  const int64_t i0 = ti * kTile, t0 = tt * kTile;
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const T* Y = b.Yc + bb * Tn * S;

  double acc[2][2] = {{0.0, 0.0}, {0.0, 0.0}};
  for (int64_t s0 = 0; s0 < S; s0 += kSChunk) {
    for (int q = threadIdx.x; q < kTile * kSChunk; q += kThreads) {
      const int r = q / kSChunk, c = q % kSChunk;
      const int64_t s = s0 + c, i = i0 + r, t = t0 + r;
      xs[r][c] = (i < sh.Cg && s < S) ? Y[i * S + s] : T(0);
      ys[r][c] = (t < Tn && s < S) ? Y[t * S + s] : T(0);
    }
    __syncthreads();
    T a00 = 0, a01 = 0, a10 = 0, a11 = 0;
#pragma unroll 8
    for (int c = 0; c < kSChunk; ++c) {
      const T x0 = xs[ty][c], x1 = xs[ty + 16][c];
      const T y0 = ys[tx][c], y1 = ys[tx + 16][c];
      T df = x0 - y0;
      a00 = fma(df, df, a00);
      df = x0 - y1;
      a01 = fma(df, df, a01);
      df = x1 - y0;
      a10 = fma(df, df, a10);
      df = x1 - y1;
      a11 = fma(df, df, a11);
    }
    acc[0][0] += static_cast<double>(a00);
    acc[0][1] += static_cast<double>(a01);
    acc[1][0] += static_cast<double>(a10);
    acc[1][1] += static_cast<double>(a11);
    __syncthreads();
  }
  double part = 0.0;
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      const int64_t i = i0 + ty + 16 * r, t = t0 + tx + 16 * c;
      if (i < sh.Cg && t < Tn) {
        const T dv = static_cast<T>(sqrt(fmax(acc[r][c], kMinSquaredDistance)));
        b.dn[(bb * sh.Cg + i) * Tn + t] = dv;
        part += static_cast<double>(dv) * static_cast<double>(b.w[bb * Tn + t]);
      }
    }
  part = block_sum(part, red);
  if (threadIdx.x == 0) b.partials[blockIdx.x] = part;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) scale_kernel(Shape sh, Buffers<T> b, int64_t nparts) {
  __shared__ double red[32];
  const int64_t nw = sh.B * sh.Tn;
  double dw = 0.0, ws = 0.0;
  for (int64_t q = threadIdx.x; q < nparts; q += blockDim.x) dw += b.partials[q];
  for (int64_t q = threadIdx.x; q < nw; q += blockDim.x) ws += static_cast<double>(b.w[q]);
  dw = block_sum(dw, red);
  ws = block_sum(ws, red);
  if (threadIdx.x == 0) {
    const double mean_w = fmax(ws / static_cast<double>(nw), static_cast<double>(FLT_MIN));
    const double cnt = static_cast<double>(sh.B * sh.Cg * sh.Tn);
    b.scale[0] = static_cast<T>(cnt > 0 ? (dw / cnt) / mean_w : 0.0);
  }
}

// ------------------------------------------------------------------ stage 2

template <typename T>
__global__ void __launch_bounds__(kThreads)
    row_kernel(Shape sh, Buffers<T> b, const T* dist_div, InvTau it) {
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (r >= sh.B * sh.Cg) return;  // the whole warp leaves together
  const int64_t Tn = sh.Tn, i = r % sh.Cg;
  T* row = b.dn + r * Tn;
  const T dv = dist_div[0];
  T m = INFINITY;
  for (int64_t t = lane; t < Tn; t += 32) {
    T v = row[t] / dv;
    if (t == i) v = v + static_cast<T>(kSelfExclusion);
    row[t] = v;
    m = v < m ? v : m;
  }
  m = warp_min(m);
  if (lane == 0) b.rmin[r] = m;
  for (int k = 0; k < sh.n; ++k) {
    const T itk = static_cast<T>(it.v[k]);
    double z = 0.0;
    for (int64_t t = lane; t < Tn; t += 32) z += static_cast<double>(dexp((m - row[t]) * itk));
    z = warp_sum(z);
    if (lane == 0) b.lzr[r * sh.n + k] = dlog(z, T());
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) column_kernel(Shape sh, Buffers<T> b, InvTau it) {
  const int64_t Tn = sh.Tn;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= sh.B * Tn) return;
  const int64_t bb = e / Tn, t = e % Tn;
  const T* col = b.dn + bb * sh.Cg * Tn + t;
  T m = col[0];
  for (int64_t i = 1; i < sh.Cg; ++i) {
    const T v = col[i * Tn];
    m = v < m ? v : m;
  }
  b.cmin[e] = m;
  for (int k = 0; k < sh.n; ++k) {
    const T itk = static_cast<T>(it.v[k]);
    double z = 0.0;
    for (int64_t i = 0; i < sh.Cg; ++i) z += static_cast<double>(dexp((m - col[i * Tn]) * itk));
    b.lzc[k * sh.B * Tn + e] = dlog(z, T());
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) coefficient_kernel(Shape sh, Buffers<T> b, InvTau it) {
  const int64_t rows = sh.B * sh.Cg;
  const int64_t gw = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (gw >= rows * sh.n) return;  // the whole warp leaves together
  const int64_t r = gw % rows;
  const int k = static_cast<int>(gw / rows);
  const int64_t bb = r / sh.Cg, i = r % sh.Cg;
  const int64_t Tn = sh.Tn, nneg = sh.Cg + sh.Cn;
  const T* row = b.dn + r * Tn;
  const T* cm = b.cmin + bb * Tn;
  const T* lc = b.lzc + k * sh.B * Tn + bb * Tn;
  const T* w = b.w + bb * Tn;
  const T rm = b.rmin[r], lr = b.lzr[r * sh.n + k], itk = static_cast<T>(it.v[k]);
  // log of the floor of softmax_t * softmax_i (-inf: none; default log 1e-6, docs/method.md §2).
  const T log_floor = static_cast<T>(sh.log_min_product);
  T* Krow = b.K + ((bb * sh.n + k) * sh.Cg + i) * Tn;

  // A[t] = exp(0.5 max(logsm_t + logsm_i, log floor)) * w[t]; rowsums of An and Ap.
  double s_neg = 0.0, s_pos = 0.0;
  for (int64_t t = lane; t < Tn; t += 32) {
    const T d = row[t];
    T a = ((rm - d) + (cm[t] - d)) * itk - (lr + lc[t]);
    a = a < log_floor ? log_floor : a;
    const T v = dexp(static_cast<T>(0.5) * a) * w[t];
    Krow[t] = v;
    if (t < nneg) s_neg += static_cast<double>(v);
    else s_pos += static_cast<double>(v);
  }
  s_neg = warp_sum(s_neg);
  s_pos = warp_sum(s_pos);
  // Kn = -An * rowsum(Ap), Kp = Ap * rowsum(An); rk = rowsum(K).
  const T fn = static_cast<T>(-s_pos), fp = static_cast<T>(s_neg);
  double rk = 0.0;
  for (int64_t t = lane; t < Tn; t += 32) {
    const T kv = Krow[t] * (t < nneg ? fn : fp);
    Krow[t] = kv;
    rk += static_cast<double>(kv);
  }
  rk = warp_sum(rk);
  // K'[i, i] = K[i, i] - rk, written by the lane that owns column i.
  if (i % 32 == lane) Krow[i] = static_cast<T>(static_cast<double>(Krow[i]) - rk);
}

// ------------------------------------------------------------------ stages 3, 4

template <typename T>
__global__ void __launch_bounds__(kThreads)
    square_sum_kernel(Shape sh, Buffers<T> b, const T* coord_div) {
  __shared__ double red[32];
  const int k = blockIdx.y;
  const int64_t per = sh.Cg * sh.S, total = sh.B * per;
  const T s = coord_div[0];
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const int64_t bb = e / per, rem = e % per;
    const T v = b.F[(bb * sh.n + k) * per + rem] / s;
    acc += static_cast<double>(v) * static_cast<double>(v);
  }
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) b.partials[k * gridDim.x + blockIdx.x] = acc;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) m_tau_kernel(Shape sh, Buffers<T> b, int64_t nparts) {
  __shared__ double red[32];
  const int k = blockIdx.x;
  double acc = 0.0;
  for (int64_t q = threadIdx.x; q < nparts; q += blockDim.x) acc += b.partials[k * nparts + q];
  acc = block_sum(acc, red);
  if (threadIdx.x == 0) {
    const double denom = static_cast<double>(sh.B * sh.Cg * sh.S);
    b.m_tau[k] = static_cast<T>(denom > 0 ? acc / denom : 0.0);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(Shape sh, Buffers<T> b, const T* coord_div, const T* factors) {
  const int64_t per = sh.Cg * sh.S, total = sh.B * per;
  const T s = coord_div[0];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const int64_t bb = e / per, rem = e % per;
    const T* f = b.F + bb * sh.n * per + rem;
    T v = 0;
    for (int k = 0; k < sh.n; ++k) v = v + (f[k * per] / s) * factors[k];
    b.V[e] = v;
    b.goal[e] = b.gen[e] / s + v;
  }
}

InvTau inverse_temperatures(const Shape& sh, const double* temperatures) {
  InvTau it{};
  for (int k = 0; k < sh.n && k < kMaxTemperatures; ++k) it.v[k] = 1.0 / temperatures[k];
  return it;
}

int64_t distance_blocks(const Shape& sh) {
  const int64_t tiles_i = (sh.Cg + kTile - 1) / kTile, tiles_t = (sh.Tn + kTile - 1) / kTile;
  return sh.B * tiles_i * tiles_t;
}

int64_t square_sum_blocks(const Shape& sh) {
  const int64_t need = (sh.B * sh.Cg * sh.S + kThreads - 1) / kThreads;
  return std::max<int64_t>(1, std::min(need, kReduceBlocks));
}

}  // namespace

int64_t workspace_doubles(const Shape& sh) {
  return std::max(distance_blocks(sh), static_cast<int64_t>(sh.n) * square_sum_blocks(sh));
}

template <typename T>
std::string distances(const Shape& sh, const Buffers<T>& b, CUstream_st* stream) {
  if (sh.n < 1 || sh.n > kMaxTemperatures)
    return "laplace cuda: " + std::to_string(sh.n) + " temperatures, expected 1 to " +
           std::to_string(kMaxTemperatures);
  const int64_t Tn = sh.Tn;
  centre_kernel<T><<<blocks_for(sh.B * sh.S), kThreads, 0, stream>>>(sh, b);
  if (auto e = launched("centre_kernel"); !e.empty()) return e;
  weights_kernel<T><<<blocks_for(sh.B * Tn), kThreads, 0, stream>>>(sh, b);
  if (auto e = launched("weights_kernel"); !e.empty()) return e;
  const int64_t tiles_i = (sh.Cg + kTile - 1) / kTile, tiles_t = (Tn + kTile - 1) / kTile;
  const int64_t nblk = distance_blocks(sh);
  if (nblk > (int64_t{1} << 31) - 1) return "laplace cuda: problem too large for one grid";
  distance_kernel<T><<<static_cast<unsigned>(nblk), kThreads, 0, stream>>>(sh, b, tiles_i, tiles_t);
  if (auto e = launched("distance_kernel"); !e.empty()) return e;
  scale_kernel<T><<<1, kThreads, 0, stream>>>(sh, b, nblk);
  return launched("scale_kernel");
}

template <typename T>
std::string coefficients(const Shape& sh, const Buffers<T>& b, const T* dist_div,
                         const double* temperatures, CUstream_st* stream) {
  const InvTau it = inverse_temperatures(sh, temperatures);
  const int64_t rows = sh.B * sh.Cg;
  row_kernel<T><<<blocks_for(rows * 32), kThreads, 0, stream>>>(sh, b, dist_div, it);
  if (auto e = launched("row_kernel"); !e.empty()) return e;
  column_kernel<T><<<blocks_for(sh.B * sh.Tn), kThreads, 0, stream>>>(sh, b, it);
  if (auto e = launched("column_kernel"); !e.empty()) return e;
  coefficient_kernel<T><<<blocks_for(rows * sh.n * 32), kThreads, 0, stream>>>(sh, b, it);
  return launched("coefficient_kernel");
}

template <typename T>
std::string mean_squares(const Shape& sh, const Buffers<T>& b, const T* coord_div,
                         CUstream_st* stream) {
  const int64_t g = square_sum_blocks(sh);
  square_sum_kernel<T><<<dim3(static_cast<unsigned>(g), static_cast<unsigned>(sh.n)), kThreads, 0,
                         stream>>>(sh, b, coord_div);
  if (auto e = launched("square_sum_kernel"); !e.empty()) return e;
  m_tau_kernel<T><<<static_cast<unsigned>(sh.n), kThreads, 0, stream>>>(sh, b, g);
  return launched("m_tau_kernel");
}

template <typename T>
std::string combine(const Shape& sh, const Buffers<T>& b, const T* coord_div, const T* factors,
                    CUstream_st* stream) {
  const int64_t total = sh.B * sh.Cg * sh.S;
  const unsigned g = std::min<unsigned>(blocks_for(total), 65535u * 8u);
  combine_kernel<T><<<g, kThreads, 0, stream>>>(sh, b, coord_div, factors);
  return launched("combine_kernel");
}

#define DRIFT_INSTANTIATE(T)                                                                   \
  template std::string distances<T>(const Shape&, const Buffers<T>&, CUstream_st*);            \
  template std::string coefficients<T>(const Shape&, const Buffers<T>&, const T*,              \
                                       const double*, CUstream_st*);                           \
  template std::string mean_squares<T>(const Shape&, const Buffers<T>&, const T*, CUstream_st*); \
  template std::string combine<T>(const Shape&, const Buffers<T>&, const T*, const T*,         \
                                  CUstream_st*);
DRIFT_INSTANTIATE(float)
DRIFT_INSTANTIATE(double)
#undef DRIFT_INSTANTIATE

}  // namespace drift::laplace::cuda
