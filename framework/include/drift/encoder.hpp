// drift SDK: feature encoders (docs/method.md §4 and §8).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <string>
#include <vector>

namespace drift {

// What the framework tells an encoder when it is created: drift-run once per
// cell, then to(device), eval() and requires_grad(false) on its parameters;
// drift-pretrain and drift-probe build encoders too.
struct EncoderContext {
  std::vector<int64_t> sample_shape;  // one sample's shape
  // Derived from [experiment] seed (drift-probe: 0). Random weights that must
  // be the same in every cell and tool take their seed from a parameter.
  uint64_t seed = 0;
  std::string base_dir;  // directory of the experiment file (relative paths resolve here)
};

// One feature of a batch of samples. Each of the L locations is its own drift
// problem; all locations of one feature share one normalization scale.
//  G: independent groups of samples, as in the encoder's input (in training,
//     one per class drawn in the step; 1 when unconditional): the drift
//     problems of group g see only group g's samples.
//  L: locations; the kernel sees B = G * L problems.
//  N: samples of the group (generated, positives or negatives).
//  D: the dimension distances are measured in.
struct Feature {
  std::string name;     // stable name, used in logs and results ("raw", "s1.loc", ...)
  torch::Tensor value;  // [G, L, N, D]: G groups, L locations, N samples, D dims
};

// A frozen feature encoder. The framework encodes positives and negatives
// under torch::NoGradGuard and generated samples with gradient (gradients flow
// through the encoder into the generator; the encoder's own parameters are
// never updated by drifting). The contract (docs/guide/plugins.md, "Feature
// encoder"):
//  - Calls, from one thread, on the training device: every training step
//    encodes the generated samples, the positives and the guidance negatives
//    (inside bf16 autocast, CUDA or CPU, when [train] autocast = "bf16"; the features
//    are cast to float32 before the kernel); the feature cache ([train]
//    feature_cache) encodes the dataset in batches [1, 64, ...]; [eval]
//    features encodes [1, n, ...].
//  - Determinism. Each sample's features are a deterministic function of that
//    sample alone, whatever else is in the batch: no batch statistics, no
//    dropout, no random augmentation (the feature cache compares stored rows
//    with fresh encodings).
//  - Weights are registered parameters or buffers (moved by to(), hashed into
//    the feature cache's key), a function of the Params (and the seed).
//  - The features' names, order, L and D do not depend on G or N: the
//    trainer pairs the generated samples' features with the positives' by
//    position, and the names label the results (m_tau_<tau>/<name>).
class FeatureEncoder : public torch::nn::Module {
 public:
  // x: [G, N, *sample_shape]. Returns every feature ([G, L, N, D], x's G and
  // N), differentiable w.r.t. x.
  virtual std::vector<Feature> encode(const torch::Tensor& x) = 0;
};

}  // namespace drift
