#include "metrics/lowdim.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drift::metrics {
namespace {

using torch::Tensor;

// [n, *shape] (or [n] for 1-D samples) -> contiguous CPU float64 [n, D].
Tensor prep(const Tensor& x, const char* what) {
  if (!x.defined()) throw std::invalid_argument(absl::StrCat(what, ": undefined tensor"));
  if (x.dim() < 1) throw std::invalid_argument(absl::StrCat(what, ": expected [n, D] samples, got a scalar"));
  Tensor t = x.detach().to(torch::kCPU, torch::kFloat64);
  t = x.dim() == 1 ? t.unsqueeze(1) : t.flatten(1);
  return t.contiguous();
}

void check_pair(const Tensor& x, const Tensor& y, const char* what, int64_t min_n) {
  if (x.size(1) != y.size(1))
    throw std::invalid_argument(absl::StrCat(what, ": samples of dimension ", x.size(1), " and ",
                                             y.size(1), " differ"));
  if (x.size(0) < min_n || y.size(0) < min_n)
    throw std::invalid_argument(absl::StrCat(what, ": needs at least ", min_n,
                                             " samples in each set, got ", x.size(0), " and ",
                                             y.size(0)));
}

Tensor distances(const Tensor& a, const Tensor& b) {
  // Low D: the direct (exact) difference; high D: the matrix-product form.
  return torch::cdist(a, b, 2.0, a.size(1) <= 32 ? 2 : 0);
}

// sum over (i, j) of f(|x_i - y_j|), leaving out i == j when `same` (x is y).
// Blocks of rows keep the distance matrix at <= 4M entries.
template <class F>
double pair_sum(const Tensor& x, const Tensor& y, bool same, F f) {
  const int64_t n = x.size(0), m = y.size(0);
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, m));
  double total = 0;
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    const int64_t r1 = std::min(n, r0 + block);
    Tensor v = f(distances(x.slice(0, r0, r1), y));
    if (same) v.diagonal(r0).zero_();
    total += v.sum().item<double>();
  }
  return total;
}

double mmd_prepped(const Tensor& x, const Tensor& y, const std::vector<double>& h) {
  check_pair(x, y, "mmd", 2);
  if (h.empty()) throw std::invalid_argument("mmd: no bandwidths");
  for (double b : h)
    if (!(b > 0)) throw std::invalid_argument(absl::StrCat("mmd: bandwidth ", b, " is not > 0"));
  auto kernel = [&h](Tensor d) {
    Tensor d2 = d.square_();
    Tensor k = torch::zeros_like(d2);
    for (double b : h) k.add_(torch::mul(d2, -0.5 / (b * b)).exp_());
    return k;
  };
  const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
  const double kxx = pair_sum(x, x, true, kernel) / (n * (n - 1));
  const double kyy = pair_sum(y, y, true, kernel) / (m * (m - 1));
  const double kxy = pair_sum(x, y, false, kernel) / (n * m);
  return kxx + kyy - 2 * kxy;
}

std::vector<double> bandwidths_prepped(const Tensor& x, const Tensor& y, const MmdOptions& opt) {
  if (!opt.relative) return opt.bandwidths;
  // Evenly strided subsets of each set (symmetric in x and y): at most 1000 rows each.
  auto sub = [](const Tensor& t, int64_t k) {
    if (t.size(0) <= k) return t;
    Tensor idx = torch::linspace(0, static_cast<double>(t.size(0) - 1), k, torch::kFloat64)
                     .round()
                     .to(torch::kInt64);
    return t.index_select(0, idx);
  };
  const double med = median_pairwise_distance(torch::cat({sub(x, 1000), sub(y, 1000)}, 0), 0);
  std::vector<double> h;
  for (double b : opt.bandwidths) h.push_back(b * med);
  return h;
}

double energy_prepped(const Tensor& x, const Tensor& y) {
  check_pair(x, y, "energy_distance", 2);
  auto id = [](const Tensor& d) { return d; };
  const double n = static_cast<double>(x.size(0)), m = static_cast<double>(y.size(0));
  const double dxy = pair_sum(x, y, false, id) / (n * m);
  const double dxx = pair_sum(x, x, true, id) / (n * (n - 1));
  const double dyy = pair_sum(y, y, true, id) / (m * (m - 1));
  return 2 * dxy - dxx - dyy;
}

// int_0^1 |F^-1(t) - G^-1(t)|^p dt for two SORTED samples.
double wp_pow_sorted(const double* a, int64_t n, const double* b, int64_t m, double p) {
  double total = 0, t = 0;
  int64_t i = 0, j = 0;
  while (i < n && j < m) {
    // Next breakpoint: min((i + 1) / n, (j + 1) / m), compared exactly in integers.
    const int64_t ei = (i + 1) * m, ej = (j + 1) * n;
    const double t_next = ei <= ej ? static_cast<double>(i + 1) / n : static_cast<double>(j + 1) / m;
    const double diff = std::abs(a[i] - b[j]);
    const double c = p == 1.0 ? diff : p == 2.0 ? diff * diff : std::pow(diff, p);
    total += (t_next - t) * c;
    t = t_next;
    if (ei <= ej) ++i;
    if (ej <= ei) ++j;
  }
  return total;
}

double sliced_prepped(const Tensor& x, const Tensor& y, const SlicedOptions& opt) {
  check_pair(x, y, "sliced_wasserstein", 1);
  if (opt.num_projections < 1)
    throw std::invalid_argument("sliced_wasserstein: num_projections must be >= 1");
  if (!(opt.p >= 1)) throw std::invalid_argument("sliced_wasserstein: p must be >= 1");
  const int64_t D = x.size(1), K = opt.num_projections;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  Tensor theta = at::randn({D, K}, g, torch::kFloat64);
  theta = theta / theta.norm(2, 0, /*keepdim=*/true).clamp_min(1e-300);
  // [K, n] and [K, m], each row sorted.
  Tensor px = std::get<0>(torch::sort(torch::matmul(x, theta).t().contiguous(), 1)).contiguous();
  Tensor py = std::get<0>(torch::sort(torch::matmul(y, theta).t().contiguous(), 1)).contiguous();
  const int64_t n = x.size(0), m = y.size(0);
  const double* pa = px.data_ptr<double>();
  const double* pb = py.data_ptr<double>();
  double sum = 0;
  for (int64_t k = 0; k < K; ++k) sum += wp_pow_sorted(pa + k * n, n, pb + k * m, m, opt.p);
  return std::pow(sum / static_cast<double>(K), 1.0 / opt.p);
}

std::vector<double> shares_prepped(const Tensor& x, const std::vector<drift::Mode>& modes) {
  const int64_t K = static_cast<int64_t>(modes.size()), n = x.size(0), D = x.size(1);
  std::vector<double> shares(static_cast<size_t>(K), 0.0);
  if (K == 0 || n == 0) return shares;
  std::vector<Tensor> cs;
  std::vector<double> radii;
  for (int64_t k = 0; k < K; ++k) {
    Tensor c = prep(modes[k].center.reshape({1, -1}), "mode_shares: mode centre");
    if (c.size(1) != D)
      throw std::invalid_argument(absl::StrCat("mode_shares: mode ", k, " has a centre of ",
                                               c.size(1), " values, samples have ", D));
    cs.push_back(c);
    radii.push_back(modes[k].radius);
  }
  Tensor d = distances(x, torch::cat(cs, 0));  // [n, K]
  Tensor r = torch::tensor(radii, torch::kFloat64).unsqueeze(0);
  Tensor masked = torch::where(d <= r, d, torch::full_like(d, std::numeric_limits<double>::infinity()));
  auto [vals, idx] = torch::min(masked, 1);
  Tensor assigned = idx.masked_select(torch::isfinite(vals));
  Tensor counts = torch::bincount(assigned, {}, K);
  for (int64_t k = 0; k < K; ++k)
    shares[k] = static_cast<double>(counts[k].item<int64_t>()) / static_cast<double>(n);
  return shares;
}

}  // namespace

double median_pairwise_distance(const Tensor& x_in, int64_t max_points) {
  Tensor x = prep(x_in, "median_pairwise_distance");
  const int64_t N = x.size(0);
  if (N < 2) return 1.0;
  if (max_points >= 2 && N > max_points) {
    Tensor idx = torch::linspace(0, static_cast<double>(N - 1), max_points, torch::kFloat64)
                     .round()
                     .to(torch::kInt64);
    x = x.index_select(0, idx);
  }
  Tensor pd = torch::pdist(x).contiguous();
  std::vector<double> v(pd.data_ptr<double>(), pd.data_ptr<double>() + pd.numel());
  auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), mid, v.end());
  if (*mid > 0) return *mid;
  const double mean = pd.mean().item<double>();
  return mean > 0 ? mean : 1.0;
}

std::vector<double> mmd_bandwidths(const Tensor& x, const Tensor& y, const MmdOptions& opt) {
  return bandwidths_prepped(prep(x, "mmd"), prep(y, "mmd"), opt);
}

double mmd(const Tensor& x_in, const Tensor& y_in, const MmdOptions& opt) {
  Tensor x = prep(x_in, "mmd"), y = prep(y_in, "mmd");
  check_pair(x, y, "mmd", 2);
  return mmd_prepped(x, y, bandwidths_prepped(x, y, opt));
}

double energy_distance(const Tensor& x, const Tensor& y) {
  return energy_prepped(prep(x, "energy_distance"), prep(y, "energy_distance"));
}

double wasserstein_1d(std::vector<double> a, std::vector<double> b, double p) {
  if (a.empty() || b.empty()) throw std::invalid_argument("wasserstein_1d: empty sample");
  if (!(p >= 1)) throw std::invalid_argument("wasserstein_1d: p must be >= 1");
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const double w = wp_pow_sorted(a.data(), static_cast<int64_t>(a.size()), b.data(),
                                 static_cast<int64_t>(b.size()), p);
  return std::pow(w, 1.0 / p);
}

double sliced_wasserstein(const Tensor& x, const Tensor& y, const SlicedOptions& opt) {
  return sliced_prepped(prep(x, "sliced_wasserstein"), prep(y, "sliced_wasserstein"), opt);
}

std::vector<double> mode_shares(const Tensor& x, const std::vector<drift::Mode>& modes) {
  return shares_prepped(prep(x, "mode_shares"), modes);
}

int64_t modes_covered(const std::vector<double>& shares, const std::vector<double>& targets) {
  if (shares.size() != targets.size())
    throw std::invalid_argument(absl::StrCat("modes_covered: ", shares.size(), " shares but ",
                                             targets.size(), " targets"));
  int64_t c = 0;
  for (size_t k = 0; k < shares.size(); ++k)
    if (shares[k] >= 0.5 * targets[k]) ++c;
  return c;
}

const std::vector<std::string>& lowdim_metric_names() {
  static const std::vector<std::string> names = {"mmd", "energy", "sliced_w", "mode_share"};
  return names;
}

std::vector<std::pair<std::string, double>> evaluate_lowdim(
    const std::vector<std::string>& metrics, const Tensor& gen_in, const Tensor& real_a_in,
    const Tensor& real_b_in, const std::vector<drift::Mode>& modes, uint64_t seed) {
  const auto& valid = lowdim_metric_names();
  for (const auto& m : metrics)
    if (std::find(valid.begin(), valid.end(), m) == valid.end())
      throw std::invalid_argument(absl::StrCat("unknown low-dimensional metric \"", m,
                                               "\"; valid: ", absl::StrJoin(valid, ", ")));
  Tensor gen = prep(gen_in, "evaluate_lowdim: gen");
  Tensor ra = prep(real_a_in, "evaluate_lowdim: real_a");
  Tensor rb = prep(real_b_in, "evaluate_lowdim: real_b");
  std::vector<std::pair<std::string, double>> out;
  for (const auto& m : metrics) {
    if (m == "mmd") {
      check_pair(gen, ra, "mmd", 2);
      const std::vector<double> h = bandwidths_prepped(gen, ra, MmdOptions{});
      out.emplace_back("mmd", mmd_prepped(gen, ra, h));
      out.emplace_back("mmd_floor", mmd_prepped(rb, ra, h));
    } else if (m == "energy") {
      out.emplace_back("energy", energy_prepped(gen, ra));
      out.emplace_back("energy_floor", energy_prepped(rb, ra));
    } else if (m == "sliced_w") {
      SlicedOptions o;
      o.seed = seed;
      out.emplace_back("sliced_w", sliced_prepped(gen, ra, o));
      out.emplace_back("sliced_w_floor", sliced_prepped(rb, ra, o));
    } else if (m == "mode_share") {
      if (modes.empty()) continue;
      const std::vector<double> s = shares_prepped(gen, modes);
      std::vector<double> targets;
      for (size_t k = 0; k < modes.size(); ++k) {
        out.emplace_back(absl::StrCat("mode_share_", k), s[k]);
        out.emplace_back(absl::StrCat("mode_target_", k), modes[k].weight);
        targets.push_back(modes[k].weight);
      }
      out.emplace_back("modes_covered", static_cast<double>(modes_covered(s, targets)));
      double in_modes = 0;
      for (double x : s) in_modes += x;
      out.emplace_back("mode_share_none", 1.0 - in_modes);  // within no mode's radius
    }
  }
  return out;
}

}  // namespace drift::metrics
