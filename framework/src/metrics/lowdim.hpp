// Sample-based metrics between two sets of low-dimensional samples.
//
// Inputs are float tensors x [n, *shape] and y [m, *shape] on any device; they
// are flattened to [n, D] and computed on the CPU in float64. Pairwise sums are
// computed in blocks, so memory stays small for n, m in the tens of thousands
// (time is O(n m D)). Shape mismatches and too few samples throw
// std::invalid_argument.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "drift/dataset.hpp"

namespace drift::metrics {

// ---------------------------------------------------------------- MMD
struct MmdOptions {
  // Gaussian kernel k(a, b) = sum_h exp(-|a - b|^2 / (2 h^2)) over these bandwidths.
  std::vector<double> bandwidths = {0.25, 0.5, 1.0, 2.0, 4.0};
  // true: each bandwidth is multiplied by the median pairwise distance of the
  // pooled samples (see median_pairwise_distance); false: used as given.
  bool relative = true;
};

// Median of |a - b| over distinct pairs of the rows of `x` [N, D]. Above
// `max_points` rows, an evenly strided subset of max_points rows is used
// (deterministic; max_points <= 0: all rows). Falls back to the mean pairwise distance, then to 1, when
// the median is 0 (more than half of the pairs coincide).
double median_pairwise_distance(const torch::Tensor& x, int64_t max_points = 2000);

// The absolute bandwidths MMD uses for x vs y: opt.bandwidths, times the median
// pairwise distance of the pooled samples when opt.relative (pooled: evenly
// strided subsets of at most 1000 rows of x and of y, so the result is
// symmetric in x and y).
std::vector<double> mmd_bandwidths(const torch::Tensor& x, const torch::Tensor& y,
                                   const MmdOptions& opt = {});

// Squared MMD, UNBIASED estimator (U-statistic: the i == j terms of the k(x,x')
// and k(y,y') means are left out), so its expectation is exactly 0 when x and y
// come from one distribution and a single value can be slightly negative. The
// kernel is the bandwidth sum above (its value at distance 0 is the number of
// bandwidths). Needs n, m >= 2.
double mmd(const torch::Tensor& x, const torch::Tensor& y, const MmdOptions& opt = {});

// ---------------------------------------------------------------- energy distance
// 2 E|X - Y| - E|X - X'| - E|Y - Y'| with Euclidean |.|. The within-set means
// are U-statistics (i != j), so the estimate is unbiased (can be slightly
// negative). Two point masses at a and b give exactly 2 |a - b|. Needs n, m >= 2.
double energy_distance(const torch::Tensor& x, const torch::Tensor& y);

// ---------------------------------------------------------------- sliced Wasserstein
struct SlicedOptions {
  int64_t num_projections = 128;  // K directions, uniform on the unit sphere S^{D-1}
  double p = 2.0;                 // order of the Wasserstein distance, >= 1
  uint64_t seed = 0;              // directions are drawn from a CPU generator with this seed
};

// Exact p-Wasserstein distance W_p between the empirical distributions of two
// 1-D samples (any sizes): (int_0^1 |F^-1(t) - G^-1(t)|^p dt)^(1/p).
double wasserstein_1d(std::vector<double> a, std::vector<double> b, double p = 2.0);

// Sliced Wasserstein distance SW_p = (mean_k W_p(<x, th_k>, <y, th_k>)^p)^(1/p)
// over K random unit directions th_k (the same directions for a given seed and
// D). Each 1-D distance is exact (wasserstein_1d). A constant shift y = x + delta
// gives W_p(th) = |<th, delta>| exactly, so SW_2 -> |delta| / sqrt(D) and
// SW_1 -> |delta| E|th_1| as K grows; in D = 1 SW_p = |delta| exactly.
double sliced_wasserstein(const torch::Tensor& x, const torch::Tensor& y,
                          const SlicedOptions& opt = {});

// ---------------------------------------------------------------- modes
// For each mode k, the share of the n samples assigned to it. A sample is
// assigned to the nearest centre among the modes whose radius contains it
// (|x - center_k| <= radius_k); a sample outside every mode's radius is
// assigned to none. The shares therefore sum to 1 - (share of "none") <= 1.
// With disjoint balls this is "nearest centre, if within its radius". n = 0
// gives all zeros.
std::vector<double> mode_shares(const torch::Tensor& x, const std::vector<drift::Mode>& modes);

// The number of modes k with shares[k] >= targets[k] / 2 (a mode of target 0
// always counts). Sizes must match.
int64_t modes_covered(const std::vector<double>& shares, const std::vector<double>& targets);

// ---------------------------------------------------------------- entry point
// The metric names evaluate_lowdim accepts.
const std::vector<std::string>& lowdim_metric_names();  // {"mmd", "energy", "sliced_w", "mode_share"}

// For each requested metric, in the order requested:
//   "mmd", "energy", "sliced_w": (name, metric(gen, real_a)) then
//       (name + "_floor", metric(real_b, real_a)). real_b is a second real
//       sample independent of real_a, of the same size as gen, so the floor is
//       the value a perfect generator would get. Both use the same kernel / the
//       same projections: MMD bandwidths relative to the median pairwise
//       distance of cat(gen, real_a); sliced_w directions from `seed`.
//   "mode_share" (only when `modes` is non-empty): ("mode_share_<k>", share of
//       gen) and ("mode_target_<k>", modes[k].weight) for each k, then
//       ("modes_covered", count).
// An unknown name throws std::invalid_argument naming it and the valid ones.
std::vector<std::pair<std::string, double>> evaluate_lowdim(
    const std::vector<std::string>& metrics, const torch::Tensor& gen, const torch::Tensor& real_a,
    const torch::Tensor& real_b, const std::vector<drift::Mode>& modes, uint64_t seed);

}  // namespace drift::metrics
