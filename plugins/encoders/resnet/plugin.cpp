// The resnet encoders: `random_resnet` (random weights from a seed),
// `mae_resnet` and `contrastive_resnet` (weights pre-trained by this framework,
// docs/method.md §8, loaded from a file with a checksum). All three run the
// ResNet of resnet.hpp on the samples and return the feature set of docs/method.md
// §4 (drift/features.hpp) of its maps s1, s2, ... (and s<i>b<j>; the stem's
// map s0 when named).
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include <drift/checksum.hpp>
#include <drift/features.hpp>
#include <drift/pretrain.hpp>
#include <drift/sdk.hpp>
#include <drift/weights.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "resnet.hpp"

namespace {

using drift::ParamSpec;
using drift_resnet::ResNet;
using drift_resnet::ResNetConfig;
using EncoderOr = absl::StatusOr<std::shared_ptr<drift::FeatureEncoder>>;

// --- parameters -----------------------------------------------------------------
std::vector<ParamSpec> with_features(std::vector<ParamSpec> specs) {
  for (auto& s : drift::feature_set_params()) specs.push_back(std::move(s));
  return specs;
}

std::vector<ParamSpec> arch_params() {
  return {ParamSpec::IntList("widths", {32, 64, 128}, "Channels of each stage.").at_least(1).non_empty(),
          ParamSpec::IntList("blocks", {1, 1, 1},
                             "Basic blocks per stage (as many entries as `widths`); maps at each "
                             "stage end (s1, s2, ...) and after every 2nd block inside a stage "
                             "(s1b2, ...); the stem's full-resolution map s0 only when `maps` "
                             "names it.")
              .at_least(1)
              .non_empty(),
          ParamSpec::Int("groups", 8, "GroupNorm groups (at most; a divisor of each width).").at_least(1)};
}

std::vector<ParamSpec> pretrained_params(int64_t steps) {
  auto p = arch_params();
  p.push_back(ParamSpec::String(
      "weights", "",
      "Weights file; relative paths are relative to the experiment file. Empty: "
      "results/encoders/<encoder>-<hash of the architecture and pre-training parameters>.pt, "
      "relative to the current directory (like the results file). The dataset is not part of "
      "that name: give a path when pre-training on other data."));
  p.push_back(ParamSpec::String("sha256", "",
                                "Expected SHA-256 of the weights file; empty: the one in "
                                "<weights>.sha256, written beside it by pre-training."));
  p.push_back(ParamSpec::Bool("pretrain_if_missing", true,
                              "Pre-train (once) when the weights file does not exist; false: a "
                              "missing file is an error."));
  p.push_back(ParamSpec::Int("pretrain_steps", steps, "Pre-training steps.").at_least(1));
  p.push_back(ParamSpec::Int("pretrain_batch", 32, "Images per pre-training step.").at_least(2));
  p.push_back(ParamSpec::Float("pretrain_lr", 2e-3, "Peak AdamW learning rate of pre-training.").positive());
  p.push_back(ParamSpec::Int("pretrain_seed", 0, "Seed of pre-training's draws (data, masks, augmentations).")
                  .at_least(0));
  return p;
}

absl::StatusOr<ResNetConfig> arch_from(const drift::Params& p, const drift::EncoderContext& ctx,
                                       const std::string& who) {
  if (ctx.sample_shape.size() != 3)
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": needs image samples [C, H, W]; the data's samples have shape [",
        absl::StrJoin(ctx.sample_shape, ", "), "]"));
  ResNetConfig c;
  c.in_channels = ctx.sample_shape[0];
  c.widths = p.get_int_list("widths");
  c.blocks = p.get_int_list("blocks");
  c.groups = p.get_int("groups");
  if (c.widths.size() != c.blocks.size())
    return absl::InvalidArgumentError(absl::StrCat(who, ": 'blocks' has ", c.blocks.size(),
                                                   " entries, expected one per 'widths' entry (",
                                                   c.widths.size(), ")"));
  return c;
}

drift_resnet::PretrainOptions pretrain_options(const drift::Params& p) {
  drift_resnet::PretrainOptions o;
  o.steps = p.get_int("pretrain_steps");
  o.batch = p.get_int("pretrain_batch");
  o.lr = p.get_float("pretrain_lr");
  o.seed = p.get_int("pretrain_seed");
  return o;
}

// The feature-set options of the parameters. "s0", the stem's full-resolution
// map, is used only when `maps` names it: it has 4x the locations of s1, so it
// would multiply the cost of the field and of a feature cache if an empty
// `maps` (all maps) took it.
absl::StatusOr<drift::FeatureSetOptions> feature_options(const drift::Params& p,
                                                         const ResNetConfig& cfg,
                                                         const std::string& who) {
  auto opts = drift::feature_set_options(p, cfg.map_names(), who);
  if (opts.ok() && opts->maps.empty()) opts->maps = cfg.stage_map_names();
  return opts;
}

// --- encoding -------------------------------------------------------------------
std::vector<drift::Feature> encode_with(ResNet& net, const drift::FeatureSetOptions& o,
                                        const torch::Tensor& x) {
  const int64_t G = x.size(0), N = x.size(1);
  auto flat = x.reshape({G * N, x.size(2), x.size(3), x.size(4)});
  std::vector<drift::FeatureMap> maps;
  for (auto& [name, m] : net->forward(flat))
    maps.push_back({name, m.view({G, N, m.size(1), m.size(2), m.size(3)})});
  return drift::feature_set(x, maps, o);
}

void freeze(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.set_requires_grad(false);
  m.eval();
}

// random_resnet: weights drawn from `seed` (drift_resnet::with_seed: building
// the encoder does not shift other draws).
class RandomResNet : public drift::FeatureEncoder {
 public:
  RandomResNet(const ResNetConfig& cfg, drift::FeatureSetOptions o, uint64_t seed) : opts_(std::move(o)) {
    net_ = register_module("net", drift_resnet::with_seed(seed, [&] { return ResNet(cfg); }));
    freeze(*this);
  }
  std::vector<drift::Feature> encode(const torch::Tensor& x) override {
    return encode_with(net_, opts_, x);
  }

 private:
  drift::FeatureSetOptions opts_;
  ResNet net_{nullptr};
};

// mae_resnet / contrastive_resnet.
class PretrainedResNet : public drift::PretrainableEncoder {
 public:
  using Method = std::function<absl::Status(ResNet&, const drift::PretrainContext&)>;
  // The initial weights (what pre-training starts from) are drawn from `seed`.
  PretrainedResNet(const ResNetConfig& cfg, drift::FeatureSetOptions o, std::string path,
                   std::string sha256, std::string meta, uint64_t seed, Method method)
      : opts_(std::move(o)), path_(std::move(path)), sha256_(std::move(sha256)),
        meta_(std::move(meta)), method_(std::move(method)) {
    net_ = register_module("net", drift_resnet::with_seed(seed, [&] { return ResNet(cfg); }));
    freeze(*this);
  }
  std::vector<drift::Feature> encode(const torch::Tensor& x) override {
    if (!loaded_) throw std::logic_error(path_ + ": encoder used before its weights were loaded");
    return encode_with(net_, opts_, x);
  }
  std::string weights_path() const override { return path_; }
  bool has_weights() const override { return loaded_; }
  absl::Status pretrain(const drift::PretrainContext& ctx) override {
    net_->to(ctx.device);
    net_->train();
    for (auto& p : net_->parameters()) p.set_requires_grad(true);
    auto st = method_(net_, ctx);
    net_->to(torch::kCPU);
    freeze(*this);
    if (!st.ok()) return st;
    auto sha = drift::save_weights(*net_, path_, meta_);
    return sha.ok() ? absl::OkStatus() : sha.status();
  }
  absl::Status load_weights() override {
    auto st = drift::load_weights(*net_, path_, sha256_, meta_);
    loaded_ = st.ok();
    return st;
  }

 private:
  drift::FeatureSetOptions opts_;
  std::string path_, sha256_, meta_;
  Method method_;
  ResNet net_{nullptr};
  bool loaded_ = false;
};

std::string resolve_path(const std::string& given, const std::string& base_dir,
                         const std::string& component, const std::string& meta) {
  if (given.empty()) {
    char buf[4096];
    std::string cwd = ::getcwd(buf, sizeof buf) ? buf : ".";
    return absl::StrCat(cwd, "/results/encoders/", component, "-",
                        drift::sha256_hex(meta.data(), meta.size()).substr(0, 12), ".pt");
  }
  if (given.front() == '/' || base_dir.empty()) return given;
  return base_dir + "/" + given;
}

// The factory of mae_resnet / contrastive_resnet: builds the net, loads the
// weights when the file exists; otherwise leaves them to the framework's
// pre-training stage (or fails when pretrain_if_missing is false).
EncoderOr make_pretrained(const std::string& component, const drift::Params& p,
                          const drift::EncoderContext& ctx, const std::string& method_desc,
                          PretrainedResNet::Method method) {
  auto cfg = arch_from(p, ctx, component);
  if (!cfg.ok()) return cfg.status();
  auto opts = feature_options(p, *cfg, component);
  if (!opts.ok()) return opts.status();
  const std::string meta = absl::StrCat(cfg->describe(), " | ", method_desc);
  const std::string path = resolve_path(p.get_string("weights"), ctx.base_dir, component, meta);
  auto enc = std::make_shared<PretrainedResNet>(*cfg, *opts, path, p.get_string("sha256"), meta,
                                                static_cast<uint64_t>(p.get_int("pretrain_seed")),
                                                std::move(method));
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
    if (auto st = enc->load_weights(); !st.ok()) return st;
  } else if (!p.get_bool("pretrain_if_missing")) {
    return absl::NotFoundError(absl::StrCat(
        path, ": weights file of ", component,
        " not found (run drift-pretrain, or set pretrain_if_missing = true)"));
  }
  return enc;
}

}  // namespace

DRIFT_PLUGIN("encoder_resnet", r) {
  r.add_encoder(
      "random_resnet",
      "ResNet (GroupNorm, basic blocks) with random weights from `seed`; the feature set of "
      "its stage maps",
      with_features([] {
        auto p = arch_params();
        p.push_back(ParamSpec::Int("seed", 0, "Seed of the random weights (independent of the "
                                              "experiment seed).")
                        .at_least(0));
        return p;
      }()),
      [](const drift::Params& p, const drift::EncoderContext& ctx) -> EncoderOr {
        auto cfg = arch_from(p, ctx, "random_resnet");
        if (!cfg.ok()) return cfg.status();
        auto opts = feature_options(p, *cfg, "random_resnet");
        if (!opts.ok()) return opts.status();
        return std::make_shared<RandomResNet>(*cfg, *opts, static_cast<uint64_t>(p.get_int("seed")));
      });

  r.add_encoder(
      "mae_resnet",
      "ResNet pre-trained here as a masked autoencoder (2x2 patches masked, L2 on them); "
      "weights file + SHA-256",
      with_features([] {
        auto p = pretrained_params(400);
        p.push_back(ParamSpec::Float("mask_prob", 0.5, "Probability that a patch is masked.")
                        .above(0)
                        .below(1));
        p.push_back(ParamSpec::Int("mask_patch", 2, "Side of the masked patches, in pixels.").at_least(1));
        return p;
      }()),
      [](const drift::Params& p, const drift::EncoderContext& ctx) -> EncoderOr {
        drift_resnet::MaeOptions o;
        o.base = pretrain_options(p);
        o.mask_prob = p.get_float("mask_prob");
        o.patch = p.get_int("mask_patch");
        std::string desc = absl::StrCat("mae steps=", o.base.steps, " batch=", o.base.batch,
                                        " lr=", o.base.lr, " seed=", o.base.seed,
                                        " mask_prob=", o.mask_prob, " patch=", o.patch);
        return make_pretrained("mae_resnet", p, ctx, desc,
                               [o](ResNet& net, const drift::PretrainContext& c) {
                                 return drift_resnet::pretrain_mae(net, o, c);
                               });
      });

  r.add_encoder(
      "contrastive_resnet",
      "ResNet pre-trained here with SimCLR (shift/flip/noise views, NT-Xent); weights file + "
      "SHA-256",
      with_features([] {
        auto p = pretrained_params(400);
        p.push_back(ParamSpec::Float("temperature", 0.5, "NT-Xent temperature.").positive());
        p.push_back(ParamSpec::Int("shift", 4, "Largest random shift of a view, in pixels.").at_least(0));
        p.push_back(ParamSpec::Float("flip", 0.5, "Probability of a horizontal flip.").in_range(0, 1));
        p.push_back(ParamSpec::Float("noise", 0.1, "Std of the Gaussian noise added to a view.").non_negative());
        p.push_back(ParamSpec::Int("proj_dim", 64, "Output size of the projection head.").at_least(1));
        return p;
      }()),
      [](const drift::Params& p, const drift::EncoderContext& ctx) -> EncoderOr {
        drift_resnet::ContrastiveOptions o;
        o.base = pretrain_options(p);
        o.temperature = p.get_float("temperature");
        o.shift = p.get_int("shift");
        o.flip = p.get_float("flip");
        o.noise = p.get_float("noise");
        o.proj_dim = p.get_int("proj_dim");
        std::string desc = absl::StrCat(
            "simclr steps=", o.base.steps, " batch=", o.base.batch, " lr=", o.base.lr,
            " seed=", o.base.seed, " temperature=", o.temperature, " shift=", o.shift,
            " flip=", o.flip, " noise=", o.noise, " proj_dim=", o.proj_dim);
        return make_pretrained("contrastive_resnet", p, ctx, desc,
                               [o](ResNet& net, const drift::PretrainContext& c) {
                                 return drift_resnet::pretrain_contrastive(net, o, c);
                               });
      });
}
