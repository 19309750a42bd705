// drift SDK: generators (docs/method.md sections 1 and 7).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <optional>
#include <vector>

namespace drift {

// What the framework tells a generator when it is created.
struct GeneratorContext {
  std::vector<int64_t> sample_shape;  // one sample's shape, e.g. {2} or {1, 32, 32}
  int64_t n_classes = 0;              // 0: unconditional
  uint64_t seed = 0;                  // for initialisation
};

// One request for samples. One forward pass per sample (1 NFE).
struct GenerateRequest {
  int64_t n = 0;                       // number of samples
  torch::Tensor labels;                // [n] int64 class labels, or undefined (unconditional)
  torch::Tensor alpha;                 // [n] float guidance strength, or undefined (alpha = 1)
  std::optional<at::Generator> rng;    // source of the noise (nullopt: the default generator)
  torch::Device device = torch::kCPU;  // where the samples must live
  // Data-parallel training ([train] nproc > 1): [m] int64 indices into the n
  // samples, or undefined (all n). A generator that honours it draws the noise
  // of all n samples from `rng` exactly as it would without it, and returns
  // only these rows ([m, ...], labels and alpha still given for all n): so
  // each rank gets exactly its rows of the one-process batch, and runs only
  // those through the network. One that ignores it returns all n; the
  // framework then selects the rows itself (the same result, but every rank
  // pays for the whole batch).
  torch::Tensor rows;
};

// For a generator that honours GenerateRequest::rows: `t`, drawn for all n
// samples (noise, style indices), restricted to the requested rows (t itself
// when rows is undefined). The rows are moved to t's device.
inline torch::Tensor take_rows(const torch::Tensor& t, const GenerateRequest& req) {
  return req.rows.defined() ? t.index_select(0, req.rows.to(t.device())) : t;
}

// The request restricted to its rows: n = number of rows, labels and alpha
// selected, rows undefined. Call it after drawing the noise of all n.
inline GenerateRequest restrict_to_rows(const GenerateRequest& req) {
  if (!req.rows.defined()) return req;
  GenerateRequest out = req;
  out.n = req.rows.numel();
  if (req.labels.defined()) out.labels = take_rows(req.labels, req);
  if (req.alpha.defined()) out.alpha = take_rows(req.alpha, req);
  out.rows = torch::Tensor();
  return out;
}

// A one-step generator. It is a torch::nn::Module so that the framework can
// optimise parameters(), keep an EMA copy of them, and move it to a device.
class Generator : public torch::nn::Module {
 public:
  // Returns [n, *sample_shape], differentiable with respect to parameters().
  virtual torch::Tensor generate(const GenerateRequest& req) = 0;
};

}  // namespace drift
