// Real samples for a training step (SPEC.md section 6): per-class FIFO queues
// and one global queue, refilled every step with the newest real samples and
// sampled without replacement.
#pragma once

#include <deque>
#include <vector>

#include "drift/dataset.hpp"

namespace drift::train {

class RealPool {
 public:
  // queue_len: per-class capacity, global_len: global capacity, push: samples
  // drawn from the dataset per refill(). Capacities grow to what one step needs.
  RealPool(Dataset& data, int64_t num_classes, int64_t queue_len, int64_t global_len, int64_t push,
           at::Generator rng);
  // Pushes `push` new samples into the queues (call once per step).
  void refill();
  // n samples of class c without replacement (pulls more data until the class
  // queue holds at least n). Returns [n, *shape].
  torch::Tensor sample_class(int64_t c, int64_t n);
  // n samples of any class from the global queue, without replacement.
  torch::Tensor sample_any(int64_t n);

 private:
  void push_batch(int64_t n);
  torch::Tensor take(std::deque<torch::Tensor>& q, int64_t n);
  Dataset& data_;
  int64_t queue_len_, global_len_, push_;
  at::Generator rng_;
  std::vector<std::deque<torch::Tensor>> per_class_;
  std::deque<torch::Tensor> global_;
};

}  // namespace drift::train
