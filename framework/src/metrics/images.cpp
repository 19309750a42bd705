#include "metrics/images.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drift::metrics {
namespace {

using torch::Tensor;

// [n, D] float64 contiguous CPU copy.
Tensor rows(const Tensor& x, const char* what) {
  if (!x.defined()) throw std::invalid_argument(absl::StrCat(what, ": undefined tensor"));
  if (x.dim() != 2)
    throw std::invalid_argument(absl::StrCat(what, ": expected [n, D], got ", x.dim(), " dimensions"));
  return x.detach().to(torch::kCPU, torch::kFloat64).contiguous();
}

Tensor labels_of(const Tensor& l, int64_t n, int64_t C, const char* what) {
  if (!l.defined() || l.dim() != 1 || l.size(0) != n)
    throw std::invalid_argument(absl::StrCat(what, ": expected labels [", n, "]"));
  Tensor t = l.detach().to(torch::kCPU, torch::kInt64).contiguous();
  if (n > 0 && (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= C))
    throw std::invalid_argument(absl::StrCat(what, ": labels outside [0, ", C, ")"));
  return t;
}

// For each row of a: whether some row j of b has |a_i - b_j| <= radius_b[j].
// Blocks of rows of a keep the distance matrix at <= 4M entries.
Tensor inside_any_ball(const Tensor& a, const Tensor& b, const Tensor& radius_b) {
  const int64_t n = a.size(0), m = b.size(0);
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, m));
  std::vector<Tensor> out;
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    Tensor d = torch::cdist(a.slice(0, r0, std::min(n, r0 + block)), b);
    out.push_back((d <= radius_b.unsqueeze(0)).any(1));
  }
  return out.empty() ? torch::zeros({0}, torch::kBool) : torch::cat(out);
}

// Precision and recall of x against a reference r whose k-NN radii are r_rad.
PrecisionRecall pr_against(const Tensor& r, const Tensor& r_rad, const Tensor& x_in, int64_t k) {
  Tensor x = rows(x_in, "precision_recall: gen");
  if (x.size(1) != r.size(1))
    throw std::invalid_argument(absl::StrCat("precision_recall: features of dimension ", x.size(1),
                                             " and ", r.size(1), " differ"));
  PrecisionRecall pr;
  pr.precision = inside_any_ball(x, r, r_rad).to(torch::kFloat64).mean().item<double>();
  pr.recall = inside_any_ball(r, x, knn_radii(x, k)).to(torch::kFloat64).mean().item<double>();
  return pr;
}

}  // namespace

GaussianFit fit_gaussian(const Tensor& features) {
  Tensor x = rows(features, "fit_gaussian");
  if (x.size(0) < 2)
    throw std::invalid_argument(absl::StrCat("fit_gaussian: needs at least 2 samples, got ", x.size(0)));
  GaussianFit g;
  g.mean = x.mean(0);
  Tensor c = x - g.mean;
  g.cov = c.t().matmul(c) / static_cast<double>(x.size(0) - 1);
  return g;
}

Tensor sqrtm_psd(const Tensor& a_in) {
  Tensor a = a_in.detach().to(torch::kCPU, torch::kFloat64);
  if (a.dim() != 2 || a.size(0) != a.size(1))
    throw std::invalid_argument("sqrtm_psd: expected a square matrix");
  a = 0.5 * (a + a.t());
  auto [w, v] = torch::linalg_eigh(a);
  return (v * w.clamp_min(0).sqrt().unsqueeze(0)).matmul(v.t());
}

double frechet_distance(const GaussianFit& a, const GaussianFit& b) {
  if (a.mean.numel() != b.mean.numel())
    throw std::invalid_argument(absl::StrCat("frechet_distance: features of dimension ",
                                             a.mean.numel(), " and ", b.mean.numel(), " differ"));
  Tensor s1 = a.cov.to(torch::kFloat64), s2 = b.cov.to(torch::kFloat64);
  Tensor r1 = sqrtm_psd(s1);
  Tensor m = r1.matmul(s2).matmul(r1);
  m = 0.5 * (m + m.t());
  const double tr_sqrt = torch::linalg_eigvalsh(m).clamp_min(0).sqrt().sum().item<double>();
  const double dmu = (a.mean.to(torch::kFloat64) - b.mean.to(torch::kFloat64)).square().sum().item<double>();
  const double d = dmu + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr_sqrt;
  return std::max(0.0, d);
}

double frechet_distance(const Tensor& fa, const Tensor& fb) {
  return frechet_distance(fit_gaussian(fa), fit_gaussian(fb));
}

Tensor knn_radii(const Tensor& x_in, int64_t k) {
  Tensor x = rows(x_in, "knn_radii");
  const int64_t n = x.size(0);
  if (k < 1 || n <= k)
    throw std::invalid_argument(absl::StrCat("knn_radii: needs k >= 1 and more than k = ", k,
                                             " samples, got ", n));
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / n);
  std::vector<Tensor> out;
  for (int64_t r0 = 0; r0 < n; r0 += block) {
    const int64_t r1 = std::min(n, r0 + block);
    Tensor d = torch::cdist(x.slice(0, r0, r1), x);
    // The row's own distance (0) is the smallest: the k-th other row is at index k.
    out.push_back(std::get<0>(torch::topk(d, k + 1, 1, /*largest=*/false, /*sorted=*/true)).select(1, k));
  }
  return torch::cat(out);
}

PrecisionRecall precision_recall(const Tensor& real_in, const Tensor& gen_in, int64_t k) {
  Tensor real = rows(real_in, "precision_recall: real");
  return pr_against(real, knn_radii(real, k), gen_in, k);
}

ClassAccuracy class_accuracy(const Tensor& probs_in, const Tensor& labels_in) {
  Tensor p = rows(probs_in, "class_accuracy: probs");
  const int64_t n = p.size(0), C = p.size(1);
  Tensor labels = labels_of(labels_in, n, C, "class_accuracy");
  Tensor correct = (p.argmax(1) == labels).to(torch::kFloat64);
  Tensor hits = torch::zeros({C}, torch::kFloat64).index_add_(0, labels, correct);
  Tensor counts = torch::bincount(labels, {}, C).to(torch::kFloat64);
  ClassAccuracy acc;
  double sum = 0;
  int64_t present = 0;
  for (int64_t c = 0; c < C; ++c) {
    const double cnt = counts[c].item<double>();
    if (cnt == 0) {
      acc.per_class.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    acc.per_class.push_back(hits[c].item<double>() / cnt);
    sum += acc.per_class.back();
    ++present;
  }
  acc.mean = present ? sum / static_cast<double>(present) : std::numeric_limits<double>::quiet_NaN();
  return acc;
}

double inception_score(const Tensor& probs_in) {
  Tensor p = rows(probs_in, "inception_score");
  if (p.size(0) < 1) throw std::invalid_argument("inception_score: no samples");
  Tensor marginal = p.mean(0, /*keepdim=*/true);
  // p log(p / marginal) with 0 log 0 = 0.
  Tensor kl = torch::where(p > 0, p * (p.clamp_min(1e-300).log() - marginal.clamp_min(1e-300).log()),
                           torch::zeros_like(p))
                  .sum(1);
  return std::exp(kl.mean().item<double>());
}

const std::vector<std::string>& image_metric_names() {
  static const std::vector<std::string> names = {"fid", "precision", "recall", "accuracy", "is"};
  return names;
}

bool is_image_metric(const std::string& name) {
  const auto& v = image_metric_names();
  return std::find(v.begin(), v.end(), name) != v.end();
}

ImageMetrics::ImageMetrics(std::vector<std::string> metrics, ImageEmbedding ref,
                           ImageEmbedding floor, Tensor floor_labels, int64_t k)
    : metrics_(std::move(metrics)), ref_(std::move(ref)), floor_(std::move(floor)),
      floor_labels_(std::move(floor_labels)), k_(k) {
  for (const auto& m : metrics_) {
    if (!is_image_metric(m))
      throw std::invalid_argument(absl::StrCat("unknown image metric \"", m, "\"; valid: ",
                                               absl::StrJoin(image_metric_names(), ", ")));
    if ((m == "accuracy" || m == "is") && (!ref_.probs.defined() || !floor_.probs.defined()))
      throw std::invalid_argument(absl::StrCat("image metric \"", m,
                                               "\" needs class probabilities (the evaluator's)"));
  }
  auto wants = [&](const char* name) {
    return std::find(metrics_.begin(), metrics_.end(), name) != metrics_.end();
  };
  if (wants("fid")) {
    ref_fit_ = fit_gaussian(ref_.features);
    floors_.emplace_back("fid", frechet_distance(fit_gaussian(floor_.features), ref_fit_));
  }
  if (wants("precision") || wants("recall")) {
    ref_rows_ = rows(ref_.features, "precision_recall: ref");
    ref_radii_ = knn_radii(ref_rows_, k_);
    PrecisionRecall pr = pr_against(ref_rows_, ref_radii_, floor_.features, k_);
    floors_.emplace_back("precision", pr.precision);
    floors_.emplace_back("recall", pr.recall);
  }
  if (wants("accuracy") && floor_labels_.defined())
    floors_.emplace_back("accuracy", class_accuracy(floor_.probs, floor_labels_).mean);
  if (wants("is")) floors_.emplace_back("is", inception_score(floor_.probs));
}

std::vector<std::pair<std::string, double>> ImageMetrics::evaluate(const ImageEmbedding& gen,
                                                                   const Tensor& gen_labels) const {
  auto floor_of = [&](const std::string& m) {
    for (const auto& [name, v] : floors_)
      if (name == m) return v;
    return std::numeric_limits<double>::quiet_NaN();
  };
  auto need_probs = [](const ImageEmbedding& e, const std::string& m) {
    if (!e.probs.defined())
      throw std::invalid_argument(absl::StrCat("image metric \"", m,
                                               "\" needs class probabilities (the evaluator's)"));
  };
  std::vector<std::pair<std::string, double>> out;
  std::optional<PrecisionRecall> pr;
  for (const auto& m : metrics_) {
    if (m == "fid") {
      out.emplace_back(m, frechet_distance(fit_gaussian(gen.features), ref_fit_));
    } else if (m == "precision" || m == "recall") {
      if (!pr) pr = pr_against(ref_rows_, ref_radii_, gen.features, k_);
      out.emplace_back(m, m == "precision" ? pr->precision : pr->recall);
    } else if (m == "accuracy") {
      if (!gen_labels.defined()) continue;
      need_probs(gen, m);
      ClassAccuracy a = class_accuracy(gen.probs, gen_labels);
      out.emplace_back(m, a.mean);
      out.emplace_back("accuracy_floor", floor_of(m));
      for (size_t c = 0; c < a.per_class.size(); ++c)
        out.emplace_back(absl::StrCat("accuracy_", c), a.per_class[c]);
      continue;
    } else if (m == "is") {
      need_probs(gen, m);
      out.emplace_back(m, inception_score(gen.probs));
    }
    out.emplace_back(m + "_floor", floor_of(m));
  }
  return out;
}

std::vector<std::pair<std::string, double>> evaluate_images(
    const std::vector<std::string>& metrics, const ImageEmbedding& gen, const Tensor& gen_labels,
    const ImageEmbedding& ref, const ImageEmbedding& floor, const Tensor& floor_labels, int64_t k) {
  return ImageMetrics(metrics, ref, floor, floor_labels, k).evaluate(gen, gen_labels);
}

}  // namespace drift::metrics
