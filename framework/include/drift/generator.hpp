// drift SDK: generators (docs/method.md §1 and §7).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <optional>
#include <vector>

namespace drift {

// What the framework tells a generator when it is created: drift-run once per
// cell, on the CPU, before it moves the module with to(device); drift-export
// again, to load the stored weights into.
struct GeneratorContext {
  std::vector<int64_t> sample_shape;  // one sample's shape (Dataset::sample_shape()), e.g. {2} or {1, 32, 32}
  int64_t n_classes = 0;              // the dataset's classes in a class-conditional run; 0: unconditional
  std::vector<int64_t> cond_shape;    // one sample's continuous condition (Dataset::cond_shape()); empty: none
  uint64_t seed = 0;                  // for initialisation (derived from [experiment] seed)
};

// One request for samples. One forward pass per sample (1 NFE).
struct GenerateRequest {
  int64_t n = 0;                       // number of samples
  torch::Tensor labels;                // [n] int64 in [0, n_classes) on `device`, or undefined (unconditional)
  torch::Tensor alpha;                 // [n] float32 guidance strength on `device`, or undefined (alpha = 1)
  // [n, *cond_shape] float32 on `device`: each sample's condition (an
  // observation window), given exactly when GeneratorContext::cond_shape is
  // not empty; undefined otherwise.
  torch::Tensor cond;
  // Source of ALL randomness. Training and evaluation pass a CPU generator
  // (evaluation: seeded alike every time, so every evaluation sees the same
  // noise); nullopt (drift-export's trace): torch's default CPU generator.
  // Draw on its device, then move to `device`: a CUDA run then draws the
  // noise of a CPU run with the same seed.
  std::optional<at::Generator> rng;
  torch::Device device = torch::kCPU;  // where the samples must live (the training device)
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

// The request restricted to its rows: n = number of rows, labels, alpha and
// cond selected, rows undefined. Call it after drawing the noise of all n.
inline GenerateRequest restrict_to_rows(const GenerateRequest& req) {
  if (!req.rows.defined()) return req;
  GenerateRequest out = req;
  out.n = req.rows.numel();
  if (req.labels.defined()) out.labels = take_rows(req.labels, req);
  if (req.alpha.defined()) out.alpha = take_rows(req.alpha, req);
  if (req.cond.defined()) out.cond = take_rows(req.cond, req);
  out.rows = torch::Tensor();
  return out;
}

// A one-step generator. It is a torch::nn::Module so that the framework can
// optimise parameters(), keep an EMA copy of them, and move it to a device.
// The contract (docs/guide/plugins.md, "Generator"):
//  - State. Every trainable tensor is a registered parameter, created in the
//    constructor: the optimiser, the gradient clipping and the EMA take
//    parameters() once, before the first step. Evaluation copies the EMA
//    values into those same tensors and back (train/ema.hpp), so nothing
//    derived from them may be cached across calls. Fixed tensors are
//    registered buffers: moved by to(), stored with the weights, not
//    averaged. The names and shapes of named_parameters() and
//    named_buffers() depend only on the Params and the context: the results
//    file stores them by name and drift-export loads them into a fresh
//    instance.
//  - Calls, from one thread (the cell's). A training step: with gradient,
//    train() mode, req.rng = the cell's noise generator, inside bf16
//    autocast when [train] autocast = "bf16". Evaluations and sample dumps:
//    under NoGradGuard, eval() mode, EMA weights, float32.
//  - Determinism. The initial weights are a function of the context's seed;
//    all randomness of generate() comes from req.rng (or the default CPU
//    generator when it is nullopt): the same weights and generator state
//    give the same samples.
//  - Traceable. drift-export traces generate() on the CPU in float32 at a
//    fixed n, with rng = nullopt, alpha defined and labels defined when
//    conditional, and refuses a trace that does not reproduce the eager
//    samples: no branching on tensor values (.item(), data-dependent shapes),
//    shapes that depend on n only, no tensors outside parameters and buffers
//    (a trace bakes them in as constants), and no module, parameter or buffer
//    named after a Python keyword ("in", "def": torch.jit.load refuses them).
class Generator : public torch::nn::Module {
 public:
  // Returns [n, *sample_shape] on req.device ([m, ...] when it honours
  // req.rows), differentiable with respect to parameters(). In training
  // n = G * n_gen: G groups (one per class drawn in the step; 1 when
  // unconditional) of n_gen samples, labels and alpha constant within a
  // group; the trainer views the result as [G, n_gen, *sample_shape].
  virtual torch::Tensor generate(const GenerateRequest& req) = 0;
};

}  // namespace drift
