#include "metrics/evaluator.hpp"

#include <torch/script.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ostream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "drift/weights.hpp"
#include "io/h5.hpp"
#include "runtime/registry.hpp"

namespace drift::metrics {

// Written by `drift-train-evaluator --seed 0` (docs/guide/evaluator.md). Changing the
// weights file means changing this value: scores are only comparable between
// runs that used the same evaluator.
const char* const kEvaluatorSha256 = "e0eae1d251d8216797c0fc8ef56739a80536679e74b00a0781054647635388d7";
const char* const kEvaluatorMeta =
    "drift evaluator fmnist v1: [1,32,32] in [-1,1]; conv3x3 16-32-64 (BN, ReLU, maxpool 2), "
    "flatten 64x4x4, fc 128 + ReLU (features), dropout 0.3, fc 10";

// conv3x3 + BN + ReLU + maxpool 2, three times (32 -> 4 pixels; 16, 32, 64
// channels), flattened (1024), fc 128 + ReLU: the features; dropout and fc 10:
// the logits. About 2.7 M multiply-adds per image.
struct Evaluator::Net : torch::nn::Module {
  torch::nn::Sequential body{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop{nullptr};

  Net() {
    auto block = [](int64_t in, int64_t out) {
      torch::nn::Sequential s(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)),
          torch::nn::BatchNorm2d(out), torch::nn::ReLU(), torch::nn::MaxPool2d(2));
      return s;
    };
    torch::nn::Sequential s;
    s->extend(*block(1, 16));
    s->extend(*block(16, 32));
    s->extend(*block(32, 64));
    body = register_module("body", s);
    fc1 = register_module("fc1", torch::nn::Linear(64 * 4 * 4, kEvaluatorFeatureDim));
    drop = register_module("drop", torch::nn::Dropout(0.3));
    fc2 = register_module("fc2", torch::nn::Linear(kEvaluatorFeatureDim, kEvaluatorClasses));
  }

  // (features [B, 128], logits [B, 10])
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x) {
    auto h = body->forward(x).flatten(1);
    auto f = torch::relu(fc1->forward(h));
    return {f, fc2->forward(drop->forward(f))};
  }
};

struct InceptionFeatures::Module {
  torch::jit::Module m;
};

std::string default_evaluator_path() {
  if (const char* env = std::getenv("DRIFT_EVALUATOR"); env && *env) return env;
  return absl::StrCat(runtime::executable_dir(), "/../share/drift/", kEvaluatorFileName);
}

absl::Status check_evaluator_images(const torch::Tensor& images, const std::string& what) {
  if (!images.defined() || images.dim() != 4 || images.size(1) != 1 || images.size(2) != 32 ||
      images.size(3) != 32 || !images.is_floating_point())
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": expected float images [N, 1, 32, 32] in [-1, 1], got ",
        images.defined() ? absl::StrCat(io::dtype_name(images.scalar_type()), " ", io::shape_string(images))
                         : std::string("nothing")));
  return absl::OkStatus();
}

absl::StatusOr<Evaluator> Evaluator::load(const std::string& path, const std::string& sha256) {
  auto net = std::make_shared<Net>();
  if (auto st = load_weights(*net, path, sha256, kEvaluatorMeta); !st.ok())
    return absl::Status(st.code(), absl::StrCat("evaluator: ", st.message()));
  net->eval();
  return Evaluator(net);
}

Evaluator Evaluator::untrained(uint64_t seed) {
  torch::manual_seed(seed);
  return Evaluator(std::make_shared<Net>());
}

ImageEmbedding Evaluator::embed(const torch::Tensor& images, int64_t batch) const {
  if (auto st = check_evaluator_images(images, "evaluator"); !st.ok())
    throw std::invalid_argument(std::string(st.message()));
  torch::NoGradGuard no_grad;
  const bool was_training = net_->is_training();
  net_->eval();
  std::vector<torch::Tensor> fs, ps;
  const int64_t n = images.size(0);
  for (int64_t i = 0; i < n; i += batch) {
    auto x = images.slice(0, i, std::min(n, i + batch)).to(torch::kCPU, torch::kFloat32);
    auto [f, logits] = net_->forward(x);
    fs.push_back(f);
    ps.push_back(torch::softmax(logits, 1));
  }
  net_->train(was_training);
  ImageEmbedding e;
  e.features = n ? torch::cat(fs) : torch::zeros({0, kEvaluatorFeatureDim});
  e.probs = n ? torch::cat(ps) : torch::zeros({0, kEvaluatorClasses});
  return e;
}

absl::StatusOr<std::string> Evaluator::save(const std::string& path) const {
  return save_weights(*net_, path, kEvaluatorMeta);
}

double top1_accuracy(const ImageEmbedding& e, const torch::Tensor& labels) {
  if (e.probs.size(0) == 0) return std::nan("");
  return (e.probs.argmax(1) == labels.to(torch::kCPU, torch::kInt64)).to(torch::kFloat64).mean().item<double>();
}

absl::StatusOr<EvaluatorReport> train_evaluator(Evaluator& ev, const torch::Tensor& train_x,
                                                const torch::Tensor& train_y,
                                                const torch::Tensor& test_x,
                                                const torch::Tensor& test_y,
                                                const EvaluatorTraining& opt, std::ostream* log) {
  if (auto st = check_evaluator_images(train_x, "training images"); !st.ok()) return st;
  if (auto st = check_evaluator_images(test_x, "test images"); !st.ok()) return st;
  if (train_y.dim() != 1 || train_y.size(0) != train_x.size(0) || test_y.dim() != 1 ||
      test_y.size(0) != test_x.size(0))
    return absl::InvalidArgumentError("train_evaluator: expected one label per image");
  if (opt.epochs < 1 || opt.batch < 1) return absl::InvalidArgumentError("train_evaluator: epochs and batch must be >= 1");
  const auto t0 = std::chrono::steady_clock::now();
  auto& net = ev.net();
  net.train();
  torch::manual_seed(opt.seed);
  at::Generator rng = at::detail::createCPUGenerator(opt.seed + 1);
  torch::optim::Adam adam(net.parameters(),
                          torch::optim::AdamOptions(opt.lr).weight_decay(opt.weight_decay));
  const int64_t n = train_x.size(0);
  const int64_t per_epoch = n / opt.batch;  // the last partial batch is dropped
  const int64_t total = per_epoch * opt.epochs;
  auto labels = train_y.to(torch::kInt64);
  EvaluatorReport rep;
  for (int64_t epoch = 0; epoch < opt.epochs; ++epoch) {
    auto perm = torch::randperm(n, rng, torch::kLong);
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t b = 0; b < per_epoch; ++b) {
      const double lr = 0.5 * opt.lr * (1 + std::cos(M_PI * static_cast<double>(rep.steps) / total));
      for (auto& g : adam.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      auto idx = perm.slice(0, b * opt.batch, (b + 1) * opt.batch);
      auto x = train_x.index_select(0, idx).to(torch::kFloat32);
      auto y = labels.index_select(0, idx);
      if (opt.hflip) {
        auto flip = torch::rand({opt.batch, 1, 1, 1}, rng) < 0.5;
        x = torch::where(flip, x.flip({3}), x);
      }
      auto [f, logits] = net.forward(x);
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      adam.zero_grad();
      loss.backward();
      adam.step();
      ++rep.steps;
      loss_sum += loss.item<double>();
      correct += (logits.argmax(1) == y).sum().item<int64_t>();
      if (log && (b + 1) % 100 == 0)
        *log << absl::StrFormat("  epoch %d step %d/%d: loss %.4f (%.0f s)\n", epoch + 1, b + 1, per_epoch,
                                loss_sum / (b + 1),
                                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count())
             << std::flush;
    }
    if (log) {
      auto acc = top1_accuracy(ev.embed(test_x), test_y);
      net.train();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      *log << absl::StrFormat("epoch %d/%d: train loss %.4f, train acc %.4f, test acc %.4f (%.0f s)\n",
                              epoch + 1, opt.epochs, loss_sum / per_epoch,
                              static_cast<double>(correct) / (per_epoch * opt.batch), acc, s)
           << std::flush;
    }
  }
  net.eval();
  rep.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rep.test_accuracy = top1_accuracy(ev.embed(test_x), test_y);
  return rep;
}

absl::StatusOr<ImageMetrics> fashion_mnist_image_metrics(const Evaluator& ev,
                                                         const std::vector<std::string>& metrics,
                                                         const torch::Tensor& floor_images,
                                                         const torch::Tensor& floor_labels, int64_t k,
                                                         const std::string& data_dir,
                                                         const std::string& reference) {
  if (auto st = check_evaluator_images(floor_images, "floor images"); !st.ok()) return st;
  auto test = data::load_fashion_mnist(reference, data_dir.empty() ? data::kFashionMnistDir : data_dir);
  if (!test.ok()) return test.status();
  try {
    return ImageMetrics(metrics, ev.embed(data::pixels_to_float(test->images)), ev.embed(floor_images),
                        floor_labels, k);
  } catch (const std::invalid_argument& e) {
    return absl::InvalidArgumentError(e.what());
  }
}

// ---------------------------------------------------------------- standard FID
absl::StatusOr<InceptionFeatures> InceptionFeatures::load(const std::string& path) {
  auto m = std::make_shared<Module>();
  try {
    m->m = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot load as a TorchScript Inception module: ", msg));
  }
  m->m.eval();
  return InceptionFeatures(m, path);
}

absl::StatusOr<torch::Tensor> InceptionFeatures::features(const torch::Tensor& images, int64_t batch) const {
  if (auto st = check_evaluator_images(images, path_ + ": Inception input"); !st.ok()) return st;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  const int64_t n = images.size(0);
  for (int64_t i = 0; i < n; i += batch) {
    auto x = images.slice(0, i, std::min(n, i + batch)).to(torch::kCPU, torch::kFloat32);
    x = torch::nn::functional::interpolate(
        x.expand({-1, 3, -1, -1}),
        torch::nn::functional::InterpolateFuncOptions()
            .size(std::vector<int64_t>{299, 299})
            .mode(torch::kBilinear)
            .align_corners(false));
    c10::IValue y;
    try {
      y = m_->m.forward({x.contiguous()});
    } catch (const std::exception& e) {
      std::string msg = e.what();
      if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
      return absl::InvalidArgumentError(absl::StrCat(path_, ": forward failed on [", x.size(0),
                                                     ", 3, 299, 299] float32: ", msg));
    }
    if (y.isTuple() && !y.toTupleRef().elements().empty()) y = y.toTupleRef().elements()[0];
    else if (y.isList() && !y.toListRef().empty()) y = y.toListRef()[0];
    if (!y.isTensor())
      return absl::InvalidArgumentError(
          absl::StrCat(path_, ": forward returned ", y.tagKind(), ", expected a tensor [B, D]"));
    auto t = y.toTensor();
    if (t.dim() < 1 || t.size(0) != x.size(0))
      return absl::InvalidArgumentError(absl::StrCat(path_, ": forward returned shape ",
                                                     io::shape_string(t), ", expected [", x.size(0), ", D]"));
    out.push_back(t.reshape({t.size(0), -1}).to(torch::kFloat32));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path_, ": no images"));
  return torch::cat(out);
}

}  // namespace drift::metrics
