// The fixed evaluator: a small CNN classifier of 32x32x1 Fashion-MNIST images
// in [-1, 1], trained once by `drift-train-evaluator` (docs/guide/evaluator.md) and
// kept in the repository (framework/assets/evaluator_fmnist.pt, installed to
// <prefix>/share/drift/). Its penultimate layer (128 values) is the feature
// space of "FID" and precision/recall; its class probabilities give per-class
// accuracy and the Inception-Score analogue (metrics/images.hpp). Loading
// verifies the file's SHA-256 against the value compiled in below, so scores
// are comparable across machines and runs.
//
// Also here: a user's TorchScript Inception network for the standard FID.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "metrics/images.hpp"

namespace drift::metrics {

// The committed weights: file name and SHA-256.
inline constexpr const char* kEvaluatorFileName = "evaluator_fmnist.pt";
extern const char* const kEvaluatorSha256;
// What the weights are (stored in the file and checked at load).
extern const char* const kEvaluatorMeta;
inline constexpr int64_t kEvaluatorFeatureDim = 128;
inline constexpr int64_t kEvaluatorClasses = 10;

// $DRIFT_EVALUATOR if set, else <dir of the executable>/../share/drift/evaluator_fmnist.pt
// (the build tree and the install tree both have it there).
std::string default_evaluator_path();

// Refuses anything but float [n, 1, 32, 32]; `what` names the input in the error.
absl::Status check_evaluator_images(const torch::Tensor& images, const std::string& what);

class Evaluator {
 public:
  // Loads weights, verifying their SHA-256 against `sha256` first; a mismatch
  // is one line naming the file and both hashes.
  static absl::StatusOr<Evaluator> load(const std::string& path = default_evaluator_path(),
                                        const std::string& sha256 = kEvaluatorSha256);
  // Freshly initialised weights (torch::manual_seed(seed) before construction).
  static Evaluator untrained(uint64_t seed);

  // Features [n, 128] and class probabilities [n, 10] of images [n, 1, 32, 32]
  // in [-1, 1] (any device; computed on the CPU in float32, in batches, in
  // eval mode, without gradient). Wrong shapes throw std::invalid_argument.
  ImageEmbedding embed(const torch::Tensor& images, int64_t batch = 500) const;

  // Writes the weights (and <path>.sha256); returns the SHA-256.
  absl::StatusOr<std::string> save(const std::string& path) const;

  struct Net;
  Net& net() const { return *net_; }

 private:
  explicit Evaluator(std::shared_ptr<Net> net) : net_(std::move(net)) {}
  std::shared_ptr<Net> net_;
};

// Training of the evaluator (drift-train-evaluator).
struct EvaluatorTraining {
  int64_t epochs = 4;
  int64_t batch = 128;
  double lr = 2e-3;           // Adam, cosine decay to 0 over all steps
  double weight_decay = 1e-4;
  uint64_t seed = 0;
  bool hflip = true;          // random horizontal flips of the training images
};
struct EvaluatorReport {
  double test_accuracy = 0;
  double train_seconds = 0;
  int64_t steps = 0;
};
// Trains `ev` on (train_x [N, 1, 32, 32] float in [-1, 1], train_y [N] int64)
// and reports the accuracy on (test_x, test_y). Progress lines go to `log` (may be null).
absl::StatusOr<EvaluatorReport> train_evaluator(Evaluator& ev, const torch::Tensor& train_x,
                                                const torch::Tensor& train_y,
                                                const torch::Tensor& test_x,
                                                const torch::Tensor& test_y,
                                                const EvaluatorTraining& opt, std::ostream* log);

// Share of images whose most probable class is their label.
double top1_accuracy(const ImageEmbedding& e, const torch::Tensor& labels);

// The image metrics of Fashion-MNIST samples under the evaluator: the
// reference is the whole test split (read from `data_dir`, embedded once), or
// the held-out "validation" part of the training split (`reference`), the
// floor set `floor_images` (real training images, as many as will be
// generated; labels for the accuracy floor, or undefined). Errors name the
// missing data file or the bad metric name.
absl::StatusOr<ImageMetrics> fashion_mnist_image_metrics(const Evaluator& ev,
                                                         const std::vector<std::string>& metrics,
                                                         const torch::Tensor& floor_images,
                                                         const torch::Tensor& floor_labels,
                                                         int64_t k = 3,
                                                         const std::string& data_dir = "",
                                                         const std::string& reference = "test");

// ---------------------------------------------------------------- standard FID
// A user's TorchScript Inception network (e.g. pytorch-fid's FID Inception
// exported with torch.jit.script/trace). Each image [1, 32, 32] in [-1, 1] is
// replicated to 3 channels and resized (bilinear) to 299x299, still in
// [-1, 1], and fed as float32 [B, 3, 299, 299]; the features are the module's
// forward output (the first element when it returns a tuple or list),
// flattened to [B, D].
class InceptionFeatures {
 public:
  // Errors name the file (missing, not TorchScript).
  static absl::StatusOr<InceptionFeatures> load(const std::string& path);
  // Features [n, D]; a forward that fails or returns no tensor is an error naming the file.
  absl::StatusOr<torch::Tensor> features(const torch::Tensor& images, int64_t batch = 50) const;

  struct Module;

 private:
  InceptionFeatures(std::shared_ptr<Module> m, std::string path) : m_(std::move(m)), path_(std::move(path)) {}
  std::shared_ptr<Module> m_;
  std::string path_;
};

}  // namespace drift::metrics
