// Sample-based metrics for images, computed on an embedding of the images
// (the fixed evaluator's features and class probabilities, metrics/evaluator.hpp,
// or a user's TorchScript Inception network's features):
//
//   fid        Fréchet distance between Gaussian fits of the features
//   precision  share of generated samples inside the real k-NN manifold   (Kynkäänniemi et al. 2019)
//   recall     share of real samples inside the generated k-NN manifold
//   accuracy   per-class accuracy of class-conditional samples under the evaluator
//   is         Inception-Score analogue exp(E_x KL(p(y|x) || p(y))) from the evaluator
//
// and each metric's floor: the same metric of real training images (as many as
// generated ones) against the same reference (the real test images), i.e. the
// value a generator that reproduces the data distribution would get.
//
// Tensors may live on any device; everything is computed on the CPU in float64.
// Wrong shapes and too few samples throw std::invalid_argument.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace drift::metrics {

// ---------------------------------------------------------------- Fréchet distance
// Mean [D] and covariance [D, D] (unbiased, divided by n - 1) of features [n, D], float64.
struct GaussianFit {
  torch::Tensor mean;
  torch::Tensor cov;
};
GaussianFit fit_gaussian(const torch::Tensor& features);  // needs n >= 2

// Square root of a symmetric positive semi-definite matrix by symmetric
// eigendecomposition in float64 (negative eigenvalues from rounding clamp to 0).
torch::Tensor sqrtm_psd(const torch::Tensor& a);

// |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), with
// tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2)) (symmetric, so exact
// eigendecompositions suffice). Clamped at 0 against rounding.
double frechet_distance(const GaussianFit& a, const GaussianFit& b);
// Of two feature sets [n, D], [m, D].
double frechet_distance(const torch::Tensor& fa, const torch::Tensor& fb);

// ---------------------------------------------------------------- precision / recall
// The k-NN radius of each row of x: its distance to its k-th nearest other row
// (needs n > k).
torch::Tensor knn_radii(const torch::Tensor& x, int64_t k);

struct PrecisionRecall {
  double precision = 0;  // share of gen rows within the radius of some real row
  double recall = 0;     // share of real rows within the radius of some gen row
};
// Kynkäänniemi et al. 2019: each set's manifold is the union of balls around its
// rows with their k-NN radii (within the set). Needs more than k rows in each.
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& gen, int64_t k = 3);

// ---------------------------------------------------------------- evaluator class probabilities
// probs [n, C] (rows sum to 1), labels [n] int64 in [0, C).
struct ClassAccuracy {
  double mean = 0;                // mean over the classes that occur in labels
  std::vector<double> per_class;  // [C]: share of class-c samples classified as c; NaN if absent
};
ClassAccuracy class_accuracy(const torch::Tensor& probs, const torch::Tensor& labels);

// exp(mean_i KL(p_i || mean_j p_j)): 1 when every sample gets the same
// distribution, C when each sample is certain and the classes are used equally.
double inception_score(const torch::Tensor& probs);

// ---------------------------------------------------------------- entry point
// One set of images as a feature extractor sees it.
struct ImageEmbedding {
  torch::Tensor features;  // [n, D]
  torch::Tensor probs;     // [n, C] class probabilities, or undefined (no classifier head)
};

// "fid", "precision", "recall", "accuracy", "is".
const std::vector<std::string>& image_metric_names();
bool is_image_metric(const std::string& name);

// The requested metrics against a fixed reference, for one generated set after
// another (the reference's Gaussian fit and k-NN radii, and every floor, are
// computed once). evaluate() returns, for each requested metric in the order
// requested, (name, value of gen against ref) then (name + "_floor", value of
// floor against ref):
//   fid, precision, recall: features of gen / floor against those of ref;
//   accuracy: ("accuracy", mean per-class accuracy of gen under gen_labels),
//     ("accuracy_floor", the same for floor under floor_labels), then
//     ("accuracy_<c>", class c's accuracy of gen) for each class; skipped when
//     gen_labels is undefined (unconditional samples);
//   is: the Inception-Score analogue of gen, and of floor.
// The constructor throws std::invalid_argument for an unknown name (naming
// the valid ones), and for accuracy / is when an embedding has no probs.
class ImageMetrics {
 public:
  ImageMetrics(std::vector<std::string> metrics, ImageEmbedding ref, ImageEmbedding floor,
               torch::Tensor floor_labels, int64_t k = 3);
  std::vector<std::pair<std::string, double>> evaluate(const ImageEmbedding& gen,
                                                       const torch::Tensor& gen_labels) const;
  const std::vector<std::string>& metrics() const { return metrics_; }

 private:
  std::vector<std::string> metrics_;
  ImageEmbedding ref_, floor_;
  torch::Tensor floor_labels_;
  int64_t k_;
  GaussianFit ref_fit_;
  torch::Tensor ref_rows_, ref_radii_;
  std::vector<std::pair<std::string, double>> floors_;  // (metric, floor value), computed once
};

// ImageMetrics(metrics, ref, floor, floor_labels, k).evaluate(gen, gen_labels).
std::vector<std::pair<std::string, double>> evaluate_images(
    const std::vector<std::string>& metrics, const ImageEmbedding& gen,
    const torch::Tensor& gen_labels, const ImageEmbedding& ref, const ImageEmbedding& floor,
    const torch::Tensor& floor_labels, int64_t k = 3);

}  // namespace drift::metrics
