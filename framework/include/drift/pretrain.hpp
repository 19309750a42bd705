// drift SDK: encoders whose weights are trained by the framework (docs/method.md §8).
//
// An encoder plugin whose model needs pre-training (a masked autoencoder, a
// contrastive encoder) derives from PretrainableEncoder instead of
// FeatureEncoder. Its factory builds the model and loads the weights file when
// it exists; when it does not, the framework (drift-run before a cell trains,
// or drift-pretrain) calls pretrain() once — the model code stays in the
// plugin — and every later cell loads the file by path:
//
//   auto enc = registry.make_encoder(...);                 // weights loaded if present
//   if (auto* p = dynamic_cast<PretrainableEncoder*>(enc.get()); p && !p->has_weights()) {
//     p->pretrain(ctx);                                    // writes weights_path() + checksum
//     p->load_weights();                                   // verifies what was written
//   }
//
// Pre-training hyperparameters (steps, batch size, learning rate, seed,
// masking, temperature, ...) are the encoder's own parameters, so that the
// resolved configuration of every cell records how its weights were made and
// the weights are a function of those parameters and the data.
#pragma once

#include <functional>
#include <string>

#include <torch/types.h>

#include "absl/status/status.h"
#include "drift/dataset.hpp"
#include "drift/encoder.hpp"

namespace drift {

struct PretrainContext {
  Dataset* data = nullptr;  // the images to train on (a cell's [data], training split)
  torch::Device device = torch::kCPU;
  // Called after each step: (step, steps, loss of that step).
  std::function<void(int64_t, int64_t, double)> progress;
};

class PretrainableEncoder : public FeatureEncoder {
 public:
  ~PretrainableEncoder() override;  // out of line: the type's identity lives in drift_sdk

  // Absolute path of the weights file this encoder loads (and pretrain() writes).
  virtual std::string weights_path() const = 0;
  // True once weights are loaded; encode() must not be used before.
  virtual bool has_weights() const = 0;
  // Trains the model from its current weights and writes weights_path() and its
  // checksum file (drift/weights.hpp). Does not change has_weights().
  virtual absl::Status pretrain(const PretrainContext& ctx) = 0;
  // Loads weights_path(), verifying its checksum; errors name the file.
  virtual absl::Status load_weights() = 0;
};

}  // namespace drift
