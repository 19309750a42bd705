#include "train/real_pool.hpp"

#include <stdexcept>
#include <string>

namespace drift::train {

RealPool::RealPool(Dataset& data, int64_t num_classes, int64_t queue_len, int64_t global_len,
                   int64_t push, at::Generator rng)
    : data_(data), queue_len_(queue_len), global_len_(global_len), push_(push), rng_(std::move(rng)),
      per_class_(static_cast<size_t>(std::max<int64_t>(num_classes, 1))) {}

void RealPool::push_batch(int64_t n) {
  DataBatch b = data_.sample(n, rng_);
  for (int64_t i = 0; i < n; ++i) {
    auto x = b.x[i];
    int64_t c = b.labels.defined() ? b.labels[i].item<int64_t>() : 0;
    if (c < 0 || c >= static_cast<int64_t>(per_class_.size()))
      throw std::runtime_error("dataset returned label " + std::to_string(c) + " outside [0, " +
                               std::to_string(per_class_.size()) + ")");
    auto& q = per_class_[c];
    q.push_back(x);
    if (static_cast<int64_t>(q.size()) > queue_len_) q.pop_front();
    global_.push_back(x);
    if (static_cast<int64_t>(global_.size()) > global_len_) global_.pop_front();
  }
}

void RealPool::refill() { push_batch(push_); }

torch::Tensor RealPool::take(std::deque<torch::Tensor>& q, int64_t n) {
  auto perm = torch::randperm(static_cast<int64_t>(q.size()), rng_, torch::kLong);
  std::vector<torch::Tensor> out;
  out.reserve(n);
  auto idx = perm.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) out.push_back(q[idx[i]]);
  return torch::stack(out);
}

torch::Tensor RealPool::sample_class(int64_t c, int64_t n) {
  auto& q = per_class_.at(c);
  queue_len_ = std::max(queue_len_, n);
  for (int guard = 0; static_cast<int64_t>(q.size()) < n; ++guard) {
    if (guard > 10000)
      throw std::runtime_error("class " + std::to_string(c) + " never appears in the data");
    push_batch(std::max<int64_t>(push_, n));
  }
  return take(q, n);
}

torch::Tensor RealPool::sample_any(int64_t n) {
  global_len_ = std::max(global_len_, n);
  while (static_cast<int64_t>(global_.size()) < n) push_batch(std::max<int64_t>(push_, n));
  return take(global_, n);
}

}  // namespace drift::train
