// drift SDK: datasets (real samples p).
#pragma once

#include <torch/types.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace drift {

// What the framework tells a dataset when it is created: drift-run once per
// cell, and a fresh instance for encoder pre-training; drift-export creates
// one only to read sample_shape() and num_classes().
struct DatasetContext {
  uint64_t seed = 0;  // the cell's [experiment] seed
  std::string base_dir;  // directory of the experiment file (relative paths resolve here)
  std::string split = "train";  // "train" or "test"; fashion_mnist also "fit" / "validation"
};

struct DataBatch {
  torch::Tensor x;       // [n, *sample_shape] float32
  torch::Tensor labels;  // [n] int64 in [0, num_classes()), or undefined for unlabelled data
  // [n] int64: each sample's position in a finite, indexed dataset (what get()
  // takes back), or undefined for datasets that are not (size() == 0).
  torch::Tensor index;
  // [n, *cond_shape()] float32: what each sample is conditioned on (a policy's
  // observation window for its action chunk), or undefined for datasets
  // without conditions (cond_shape() empty).
  torch::Tensor cond;
};

// A known mode of a mixture: lets metrics report each mode's share.
struct Mode {
  torch::Tensor center;  // [*sample_shape]
  double weight = 0;     // target share, the weights sum to 1
  double radius = 0;     // a sample within `radius` of the centre counts as covering it
};

// Real data (docs/guide/plugins.md, "Dataset"). Every call is on the CPU,
// from one thread; the trainer moves the samples to the training device.
// sample() is called by the per-class queues every step ([train]
// queue_push samples), for the positives of unconditional runs, and at the
// start of a cell for the evaluation's real samples, each time with a CPU
// generator seeded from the cell seed: all its randomness must come from
// `rng`, so that the same generator state gives the same batch.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::vector<int64_t> sample_shape() const = 0;
  virtual int64_t num_classes() const = 0;  // 0: unlabelled
  // The shape of one sample's continuous condition (DataBatch::cond), e.g.
  // {obs_horizon, obs_dim} for demonstrations; empty (the default): none. A
  // dataset with conditions trains a generator conditioned on them ([train]
  // n_cond groups per step, positives formed by the [formation] component);
  // it must be finite and indexed (size() > 0) and fill cond in sample() and get().
  virtual std::vector<int64_t> cond_shape() const { return {}; }
  // n samples drawn i.i.d. (or without replacement for finite sets), deterministic given rng.
  virtual DataBatch sample(int64_t n, at::Generator& rng) = 0;
  // Known mixture modes, empty where there are none.
  virtual std::vector<Mode> modes() const { return {}; }

  // Finite, indexed datasets (a fixed set of samples, say images): how many
  // samples there are; their sample() batches fill DataBatch::index. 0 (the
  // default): not such a set (samples drawn from a distribution), and get()
  // cannot be used. What the framework caches per sample (the real-feature
  // cache, [train] feature_cache) needs it.
  virtual int64_t size() const { return 0; }
  // The samples at positions `index` ([n] int64, each in [0, size())), in that
  // order, with their labels and `index` itself; it does not touch what
  // sample() draws next. The default throws std::logic_error (size() == 0).
  virtual DataBatch get(const torch::Tensor& /*index*/) {
    throw std::logic_error("Dataset::get: this dataset is not finite and indexed (size() == 0)");
  }

  // Sampling state kept in the dataset rather than in `rng` (an epoch's order
  // and the position in it, say), for checkpoints: after set_state(state()),
  // the next sample() calls draw what they would have drawn. Named CPU tensors;
  // set_state() throws std::invalid_argument on state it cannot take. A dataset
  // whose sample() depends on `rng` alone keeps the defaults (no state).
  virtual std::vector<std::pair<std::string, torch::Tensor>> state() const { return {}; }
  virtual void set_state(const std::vector<std::pair<std::string, torch::Tensor>>& /*state*/) {}
};

}  // namespace drift
