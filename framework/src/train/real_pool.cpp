#include "train/real_pool.hpp"

#include "absl/strings/str_cat.h"
#include "train/checkpoint.hpp"

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

namespace {

// A queue as [n, *shape] samples and [n] dataset positions (-1: none).
void save_queue(TrainState& state, const std::string& name, const std::deque<torch::Tensor>& xs,
                const std::vector<int64_t>& index) {
  std::vector<torch::Tensor> v(xs.begin(), xs.end());
  if (!v.empty()) state.put(name + "/x", torch::stack(v));
  state.put(name + "/index", torch::tensor(index, torch::kLong));
}

}  // namespace

void RealPool::save(TrainState& state, const std::string& prefix) const {
  auto save_entries = [&](const std::string& name, const std::deque<Entry>& q) {
    std::deque<torch::Tensor> xs;
    std::vector<int64_t> index;
    for (const Entry& e : q) {
      xs.push_back(e.x);
      index.push_back(e.index);
    }
    save_queue(state, name, xs, index);
  };
  for (size_t c = 0; c < per_class_.size(); ++c) save_entries(absl::StrCat(prefix, "class_", c), per_class_[c]);
  save_entries(prefix + "global", global_);
  state.put(prefix + "capacity", torch::tensor({queue_len_, global_len_}, torch::kLong));
  state.put(prefix + "rng", rng_.get_state());
}

absl::Status RealPool::load(const TrainState& state, const std::string& prefix) {
  auto load_entries = [&](const std::string& name, std::deque<Entry>& q) -> absl::Status {
    auto index = state.get(name + "/index");
    if (!index.ok()) return index.status();
    q.clear();
    const int64_t n = index->numel();
    if (n == 0) return absl::OkStatus();
    auto x = state.get(name + "/x");
    if (!x.ok()) return x.status();
    if (x->size(0) != n)
      return absl::InvalidArgumentError(absl::StrCat("the checkpoint's ", name, " holds ", x->size(0),
                                                     " samples but ", n, " positions"));
    const torch::Tensor ix = index->to(torch::kLong).contiguous();
    for (int64_t i = 0; i < n; ++i) q.push_back(Entry{(*x)[i], ix.data_ptr<int64_t>()[i]});
    return absl::OkStatus();
  };
  for (size_t c = 0; c < per_class_.size(); ++c)
    if (auto st = load_entries(absl::StrCat(prefix, "class_", c), per_class_[c]); !st.ok()) return st;
  if (auto st = load_entries(prefix + "global", global_); !st.ok()) return st;
  auto cap = state.get(prefix + "capacity");
  if (!cap.ok()) return cap.status();
  if (cap->numel() != 2) return absl::InvalidArgumentError("the checkpoint's pool capacity is not [2]");
  queue_len_ = (*cap)[0].item<int64_t>();
  global_len_ = (*cap)[1].item<int64_t>();
  auto rng = state.get(prefix + "rng");
  if (!rng.ok()) return rng.status();
  rng_.set_state(*rng);
  return absl::OkStatus();
}

}  // namespace drift::train
