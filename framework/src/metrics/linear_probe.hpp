// Linear-probe accuracy of a frozen encoder (how SSL papers measure an
// encoder's quality; the x-axis of the paper's Table 3): a multinomial
// logistic regression on the encoder's features of labelled images, its
// weight decay chosen on a validation set, its accuracy reported on a test set.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "drift/encoder.hpp"

namespace drift::metrics {

// The probe's representation of images x [N, C, H, W]: every feature of the
// encoder averaged over its locations (global average pooling of per-location
// and patch features; global ones as they are), concatenated: [N, F] float32
// on the CPU. Encodes in batches of `batch` without gradient.
torch::Tensor probe_features(FeatureEncoder& encoder, const torch::Tensor& x, int64_t batch = 500);

struct ProbeResult {
  double weight_decay = 0;     // the one chosen on the validation set
  double val_accuracy = 0;     // of that weight decay
  double test_accuracy = 0;    // of the classifier fitted with it
  int64_t features = 0;        // F
  std::vector<double> val_accuracy_per_decay;  // in the order of `decays`
};

// Fits a softmax classifier on (fit_x [n, F], fit_y [n] in [0, classes)) for
// each weight decay (L2 on the weights, full-batch L-BFGS on standardised
// features), keeps the one with the best validation accuracy, and reports its
// test accuracy. Deterministic.
ProbeResult linear_probe(const torch::Tensor& fit_x, const torch::Tensor& fit_y, const torch::Tensor& val_x,
                         const torch::Tensor& val_y, const torch::Tensor& test_x, const torch::Tensor& test_y,
                         int64_t classes, const std::vector<double>& decays = {1e-4, 1e-3, 1e-2, 1e-1},
                         int64_t iterations = 150);

}  // namespace drift::metrics
