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
  const torch::Tensor index =
      b.index.defined() ? b.index.to(torch::kCPU, torch::kLong).contiguous() : torch::Tensor();
  const int64_t* ip = index.defined() ? index.data_ptr<int64_t>() : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    Entry e{b.x[i], ip ? ip[i] : -1};
    int64_t c = b.labels.defined() ? b.labels[i].item<int64_t>() : 0;
    if (c < 0 || c >= static_cast<int64_t>(per_class_.size()))
      throw std::runtime_error("dataset returned label " + std::to_string(c) + " outside [0, " +
                               std::to_string(per_class_.size()) + ")");
    auto& q = per_class_[c];
    q.push_back(e);
    if (static_cast<int64_t>(q.size()) > queue_len_) q.pop_front();
    global_.push_back(e);
    if (static_cast<int64_t>(global_.size()) > global_len_) global_.pop_front();
  }
}

void RealPool::refill() { push_batch(push_); }

RealSamples RealPool::take(std::deque<Entry>& q, int64_t n) {
  auto perm = torch::randperm(static_cast<int64_t>(q.size()), rng_, torch::kLong);
  std::vector<torch::Tensor> out;
  std::vector<int64_t> index;
  out.reserve(n);
  index.reserve(n);
  bool indexed = true;
  auto idx = perm.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const Entry& e = q[idx[i]];
    out.push_back(e.x);
    index.push_back(e.index);
    indexed = indexed && e.index >= 0;
  }
  RealSamples s;
  s.x = torch::stack(out);
  if (indexed) s.index = torch::tensor(index, torch::kLong);
  return s;
}

RealSamples RealPool::sample_class(int64_t c, int64_t n) {
  auto& q = per_class_.at(c);
  queue_len_ = std::max(queue_len_, n);
  for (int guard = 0; static_cast<int64_t>(q.size()) < n; ++guard) {
    if (guard > 10000)
      throw std::runtime_error("class " + std::to_string(c) + " never appears in the data");
    push_batch(std::max<int64_t>(push_, n));
  }
  return take(q, n);
}

RealSamples RealPool::sample_any(int64_t n) {
  global_len_ = std::max(global_len_, n);
  while (static_cast<int64_t>(global_.size()) < n) push_batch(std::max<int64_t>(push_, n));
  return take(global_, n);
}

}  // namespace drift::train
