// The pre-training stage of a cell (docs/method.md §8, drift/pretrain.hpp):
// an encoder whose weights file does not exist yet is pre-trained once, on the
// cell's dataset, and every later cell loads the file by path. drift-run
// (train_cell) and drift-pretrain both call it.
#pragma once

#include <string>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "config/experiment.hpp"
#include "drift/encoder.hpp"
#include "runtime/registry.hpp"
#include "train/phase.hpp"

namespace drift::train {

struct PretrainReport {
  bool pretrained = false;  // this call trained the weights (false: loaded, or nothing to do)
  double seconds = 0;       // time spent pre-training
  std::string weights;      // the weights file ("" for encoders without one)
};

// Nothing to do for an encoder that is not a PretrainableEncoder or already has
// its weights. Otherwise, under an exclusive lock on `<weights>.lock` (cells
// running side by side pre-train once; the others wait): loads the file if
// another process wrote it meanwhile, else builds a fresh instance of the
// cell's dataset (training split; the cell's own instance is not disturbed),
// pre-trains on `device`, writes the file and its checksum and loads it back.
// Progress goes to stderr every 5% of the steps, and to `on_phase` (phase
// "pretrain", named after the encoder): a note while it waits for the lock,
// then the step count after every step.
absl::StatusOr<PretrainReport> ensure_encoder_weights(const config::ExperimentConfig& cfg,
                                                      const runtime::Registry& reg,
                                                      FeatureEncoder& encoder,
                                                      torch::Device device,
                                                      const PhaseFn& on_phase = {});

}  // namespace drift::train
