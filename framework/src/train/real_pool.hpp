// Real samples for a training step (docs/method.md §6): per-class FIFO queues
// and one global queue, refilled every step with the newest real samples and
// sampled without replacement.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "drift/dataset.hpp"

namespace drift::train {
struct TrainState;
}

namespace drift::train {

// Samples drawn from the pool: the images, and their positions in the dataset
// when it is finite and indexed (DataBatch::index; undefined otherwise).
struct RealSamples {
  torch::Tensor x;      // [n, *shape]
  torch::Tensor index;  // [n] int64, or undefined
};

class RealPool {
 public:
  // queue_len: per-class capacity, global_len: global capacity, push: samples
  // drawn from the dataset per refill(). Capacities grow to what one step needs.
  RealPool(Dataset& data, int64_t num_classes, int64_t queue_len, int64_t global_len, int64_t push,
           at::Generator rng);
  // Pushes `push` new samples into the queues (call once per step).
  void refill();
  // n samples of class c without replacement (pulls more data until the class
  // queue holds at least n). x: [n, *shape].
  RealSamples sample_class(int64_t c, int64_t n);
  // n samples of any class from the global queue, without replacement.
  RealSamples sample_any(int64_t n);

  // The queues, their capacities and the random stream, as tensors named
  // "<prefix>..." (train/checkpoint.hpp); load() restores them exactly.
  void save(TrainState& state, const std::string& prefix) const;
  absl::Status load(const TrainState& state, const std::string& prefix);

 private:
  struct Entry {
    torch::Tensor x;  // [*shape]
    int64_t index;    // position in the dataset, -1: none
  };
  void push_batch(int64_t n);
  RealSamples take(std::deque<Entry>& q, int64_t n);
  Dataset& data_;
  int64_t queue_len_, global_len_, push_;
  at::Generator rng_;
  std::vector<std::deque<Entry>> per_class_;
  std::deque<Entry> global_;
};

}  // namespace drift::train
