// An out-of-tree encoder plugin: `random_conv`, a frozen feature encoder of
// fixed random 3x3 convolutions (stride 2, GELU) whose feature maps c1, c2, ...
// go through the SDK's feature set (drift/features.hpp: per-location vectors,
// means, standard deviations and patch statistics of every map, plus the raw
// image and its per-channel RMS). It shows the whole encoder contract of
// <drift/encoder.hpp>:
//
//  - the weights are a function of the `seed` parameter alone (their own CPU
//    generator: building the encoder shifts no other random draw), so the same
//    parameters give the same features in every cell and every process, and
//    the real-feature cache ([train] feature_cache) can key on them;
//  - they are registered buffers: they follow the module to the training
//    device and are hashed by the feature cache; there are no parameters at
//    all (drifting never updates an encoder);
//  - encode() is a deterministic function of each sample alone (no batch
//    statistics, no random augmentation), differentiable w.r.t. x, and its
//    features (names, order, L, D) do not depend on G or N;
//  - the factory refuses data it cannot encode with a one-line error.
#include <drift/sdk.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace {

using torch::Tensor;

class RandomConv : public drift::FeatureEncoder {
 public:
  RandomConv(int64_t in_channels, const std::vector<int64_t>& widths, uint64_t seed,
             drift::FeatureSetOptions opts)
      : opts_(std::move(opts)) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    int64_t c = in_channels;
    for (size_t i = 0; i < widths.size(); ++i) {
      // He scale: activations stay of order 1 from stage to stage.
      Tensor w = torch::randn({widths[i], c, 3, 3}, gen) * std::sqrt(2.0 / static_cast<double>(9 * c));
      weights_.push_back(register_buffer("w" + std::to_string(i + 1), w));
      c = widths[i];
    }
  }

  // x: [G, N, C, H, W] (G groups of N samples). Returns the feature set of the
  // maps c<i>: [G, N, widths[i-1], H / 2^i, W / 2^i] (rounded up).
  std::vector<drift::Feature> encode(const Tensor& x) override {
    const int64_t G = x.size(0), N = x.size(1);
    Tensor h = x.flatten(0, 1);  // [G * N, C, H, W]: every sample on its own
    std::vector<drift::FeatureMap> maps;
    for (size_t i = 0; i < weights_.size(); ++i) {
      h = torch::gelu(torch::conv2d(h, weights_[i], /*bias=*/{}, /*stride=*/2, /*padding=*/1));
      maps.push_back({"c" + std::to_string(i + 1), h.view({G, N, h.size(1), h.size(2), h.size(3)})});
    }
    return drift::feature_set(x, maps, opts_);
  }

 private:
  drift::FeatureSetOptions opts_;
  std::vector<Tensor> weights_;  // the registered buffers (the same tensors)
};

}  // namespace

DRIFT_PLUGIN("random_conv_example", r) {
  using drift::ParamSpec;
  std::vector<ParamSpec> params = {
      ParamSpec::IntList("widths", {16, 32},
                         "channels of each stride-2 3x3 convolution; its output is map c1, c2, ...")
          .at_least(1)
          .items(1, 4),
      ParamSpec::Int("seed", 0, "seed of the random weights (independent of the experiment seed)")
          .at_least(0)};
  // `features`, `maps` and `x2`: which features of the feature set to use.
  for (auto& s : drift::feature_set_params()) params.push_back(std::move(s));
  r.add_encoder(
      "random_conv", "fixed random stride-2 convolutions; the feature set of their maps c1, c2, ...",
      std::move(params),
      [](const drift::Params& p, const drift::EncoderContext& ctx)
          -> absl::StatusOr<std::shared_ptr<drift::FeatureEncoder>> {
        if (ctx.sample_shape.size() != 3) {
          std::string shape;
          for (int64_t d : ctx.sample_shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
          return absl::InvalidArgumentError(
              "random_conv: needs image samples [C, H, W]; the data's samples have shape [" + shape + "]");
        }
        const auto& widths = p.get_int_list("widths");
        std::vector<std::string> names;
        for (size_t i = 0; i < widths.size(); ++i) names.push_back("c" + std::to_string(i + 1));
        auto opts = drift::feature_set_options(p, names, "random_conv");
        if (!opts.ok()) return opts.status();
        return std::make_shared<RandomConv>(ctx.sample_shape[0], widths,
                                            static_cast<uint64_t>(p.get_int("seed")), *std::move(opts));
      });
}
