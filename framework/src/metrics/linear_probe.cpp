#include "metrics/linear_probe.hpp"

#include <torch/nn/functional/loss.h>
#include <torch/optim/lbfgs.h>

#include <stdexcept>
#include <string>

namespace drift::metrics {
namespace {

double accuracy(const torch::Tensor& logits, const torch::Tensor& y) {
  return logits.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
}

struct Linear {
  torch::Tensor w, b;  // [F, C], [C]
  torch::Tensor operator()(const torch::Tensor& x) const { return torch::addmm(b, x, w); }
};

Linear fit(const torch::Tensor& x, const torch::Tensor& y, int64_t classes, double decay, int64_t iterations) {
  Linear m{torch::zeros({x.size(1), classes}, torch::kFloat64).requires_grad_(true),
           torch::zeros({classes}, torch::kFloat64).requires_grad_(true)};
  torch::optim::LBFGS opt({m.w, m.b}, torch::optim::LBFGSOptions(1.0)
                                          .max_iter(iterations)
                                          .history_size(20)
                                          .line_search_fn("strong_wolfe"));
  auto closure = [&]() -> torch::Tensor {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(m(x), y) + 0.5 * decay * m.w.square().sum();
    loss.backward();
    return loss;
  };
  opt.step(closure);
  m.w = m.w.detach();
  m.b = m.b.detach();
  return m;
}

}  // namespace

torch::Tensor probe_features(FeatureEncoder& encoder, const torch::Tensor& x, int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x.size(0); i += batch) {
    const torch::Tensor xb = x.slice(0, i, std::min(x.size(0), i + batch));
    std::vector<torch::Tensor> parts;
    for (const auto& f : encoder.encode(xb.unsqueeze(0)))  // [1, L, n, D]
      parts.push_back(f.value[0].mean(0).to(torch::kCPU, torch::kFloat32));  // [n, D]
    rows.push_back(torch::cat(parts, 1));
  }
  return torch::cat(rows, 0);
}

ProbeResult linear_probe(const torch::Tensor& fit_x, const torch::Tensor& fit_y, const torch::Tensor& val_x,
                         const torch::Tensor& val_y, const torch::Tensor& test_x, const torch::Tensor& test_y,
                         int64_t classes, const std::vector<double>& decays, int64_t iterations) {
  if (fit_x.dim() != 2 || val_x.dim() != 2 || test_x.dim() != 2 || fit_x.size(1) != val_x.size(1) ||
      fit_x.size(1) != test_x.size(1))
    throw std::invalid_argument("linear_probe: features must be [n, F] with the same F in all three sets");
  if (decays.empty()) throw std::invalid_argument("linear_probe: no weight decay to try");
  torch::NoGradGuard outer;
  // Standardised with the fit set's statistics (constant features stay 0).
  const torch::Tensor fx = fit_x.to(torch::kFloat64);
  const torch::Tensor mean = fx.mean(0), std = fx.std(0).clamp_min(1e-8);
  auto norm = [&](const torch::Tensor& t) { return (t.to(torch::kFloat64) - mean) / std; };
  const torch::Tensor xf = norm(fit_x), xv = norm(val_x), xt = norm(test_x);
  const torch::Tensor yf = fit_y.to(torch::kLong), yv = val_y.to(torch::kLong), yt = test_y.to(torch::kLong);

  ProbeResult r;
  r.features = fit_x.size(1);
  r.val_accuracy = -1;
  Linear best;
  for (double d : decays) {
    Linear m;
    {
      torch::AutoGradMode grad(true);
      m = fit(xf, yf, classes, d, iterations);
    }
    const double acc = accuracy(m(xv), yv);
    r.val_accuracy_per_decay.push_back(acc);
    if (acc > r.val_accuracy) {
      r.val_accuracy = acc;
      r.weight_decay = d;
      best = m;
    }
  }
  r.test_accuracy = accuracy(best(xt), yt);
  return r;
}

}  // namespace drift::metrics
