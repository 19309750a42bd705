// [eval] features / feature_samples: at each evaluation, some encoder features
// of generated and real samples and their drift norms (schemas/results.md,
// /cells/<id>/features/<name>/<step>).
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "drift/encoder.hpp"
#include "drift/kernel.hpp"
#include "drift/normalizer.hpp"
#include "drift/params.hpp"
#include "train/trainer.hpp"

namespace drift::train {

class FeatureLogger {
 public:
  // `eval`: the validated [eval] section. The names in `features` are checked
  // against what the encoder yields for one sample of `real` [n, *shape]; an
  // unknown name is an error listing the encoder's features. `real`: the real
  // samples to log beside the generated ones (the first feature_samples).
  static absl::StatusOr<FeatureLogger> create(const Params& eval, FeatureEncoder& encoder,
                                              const std::string& encoder_name,
                                              const torch::Tensor& real, torch::Device device);

  bool enabled() const { return !names_.empty(); }

  // The selected features of the first feature_samples of `gen` [n, *shape] and
  // of the real samples, encoded as one group without gradient; drift_norm from
  // the kernel with the generated samples as gen and the real ones as positives.
  FeatureLog log(int64_t step, const torch::Tensor& gen, FeatureEncoder& encoder,
                 const DriftKernel& kernel, const Normalizer& normalizer,
                 const std::vector<double>& temperatures) const;

 private:
  std::vector<std::string> names_;
  torch::Tensor real_;  // [n, *shape] on the device
  torch::Device device_ = torch::kCPU;
};

}  // namespace drift::train
