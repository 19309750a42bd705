// `dit`: the one-step image generator of docs/method.md §7, a DiT (Peebles &
// Xie, "Scalable Diffusion Models with Transformers", models.py) with the
// modernisations the drifting paper lists. Read top to bottom:
//
//   noise eps [n, C, H, W] ~ N(0, 1)                    (one forward pass per sample)
//     -> patchify: Conv2d(C, hidden, patch, stride patch) -> T = (H/p)(W/p) tokens
//     -> prepend `in_context` learnable tokens
//     -> depth x DiT block: adaLN-zero(RMSNorm) -> attention (QK-RMSNorm, 2-D RoPE)
//                           adaLN-zero(RMSNorm) -> SwiGLU MLP
//     -> final layer: adaLN(RMSNorm) -> Linear(hidden, p*p*C) on the patch tokens
//     -> unpatchify -> [n, C, H, W]
//
// The condition c (one vector of size hidden per sample) that drives every
// adaLN is the SUM of
//   - a class embedding (class-conditional data only),
//   - an alpha embedding (use_alpha): sinusoidal features of alpha, the CFG
//     strength, through an MLP, as DiT embeds the diffusion time. alpha is taken
//     as given (1 when the request has none, i.e. no guidance); sinusoids of
//     alpha itself rather than log(alpha) (the `mlp` generator's choice) since
//     the sinusoids are already a multi-scale code of a scalar,
//   - `style_count` random "style" embeddings: indices drawn per sample,
//     uniformly, into a learned codebook of `style_codebook` entries, summed.
//     They are extra noise entering through the condition (docs/method.md §7).
//
// adaLN-zero: every modulation Linear starts at zero, so a fresh block is the
// identity and a fresh model ignores c (and the in-context tokens). Unlike DiT,
// which predicts noise and therefore also zero-initialises its output Linear,
// the output Linear here starts Xavier-random: a zero output would put every
// sample of a fresh generator at the same point.
//
// 2-D RoPE: each head's channels are split in two halves; the first half is
// rotated by the token's row, the second by its column, each with the usual
// frequencies base^(-k / (head_dim / 4)), k < head_dim / 4 (so head_dim must be
// a multiple of 4). The in-context tokens are not rotated (angle 0).
//
// Randomness: the noise and then the style indices are drawn from req.rng on
// the CPU and moved to req.device, so CPU and GPU runs see the same noise.
#include <drift/sdk.hpp>

#include <torch/nn/init.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace {

using torch::Tensor;
namespace nn = torch::nn;

constexpr double kRopeBase = 10000.0;
constexpr int64_t kAlphaFreqDim = 256;  // sinusoidal features of alpha (DiT: frequency_embedding_size)
constexpr double kAlphaMaxPeriod = 1000.0;

// Sizes, from the parameters and the data.
struct DitConfig {
  int64_t channels, height, width;  // one sample: [C, H, W]
  int64_t hidden, depth, heads, patch, mlp_hidden, in_context, style_codebook, style_count;
  int64_t n_classes;
  bool use_alpha;
  int64_t head_dim() const { return hidden / heads; }
  int64_t grid_h() const { return height / patch; }
  int64_t grid_w() const { return width / patch; }
};

Tensor rms_norm(const Tensor& x, const Tensor& weight = {}) {
  return at::rms_norm(x, {x.size(-1)}, weight.defined() ? std::optional<Tensor>(weight) : std::nullopt,
                      1e-6);
}

// x * (1 + scale) + shift, with per-sample scale and shift [n, D] over tokens [n, T, D].
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

// Linear layers start like DiT's _basic_init: Xavier-uniform weights, zero bias.
nn::Linear xavier_linear(int64_t in, int64_t out) {
  nn::Linear l(in, out);
  nn::init::xavier_uniform_(l->weight);
  nn::init::zeros_(l->bias);
  return l;
}

nn::Linear zero_linear(int64_t in, int64_t out) {
  nn::Linear l(in, out);
  nn::init::zeros_(l->weight);
  nn::init::zeros_(l->bias);
  return l;
}

// ------------------------------------------------------------------ 2-D RoPE

// cos and sin of the rotation angles, [in_context + H/p * W/p, head_dim].
std::pair<Tensor, Tensor> rope_tables(const DitConfig& c) {
  const int64_t quarter = c.head_dim() / 4;
  Tensor freqs = torch::pow(kRopeBase, -torch::arange(quarter, torch::kFloat64) / quarter);
  Tensor rows = torch::arange(c.grid_h(), torch::kFloat64).repeat_interleave(c.grid_w());
  Tensor cols = torch::arange(c.grid_w(), torch::kFloat64).repeat(c.grid_h());
  Tensor row_angles = rows.unsqueeze(1) * freqs;  // [T, quarter]
  Tensor col_angles = cols.unsqueeze(1) * freqs;
  Tensor angles = torch::cat({row_angles, row_angles, col_angles, col_angles}, 1);  // [T, head_dim]
  angles = torch::cat({torch::zeros({c.in_context, c.head_dim()}, torch::kFloat64), angles}, 0);
  return {torch::cos(angles).to(torch::kFloat32), torch::sin(angles).to(torch::kFloat32)};
}

// Within each half of the head channels (rows, columns), the pair (a_k, b_k)
// of its two quarters becomes (-b_k, a_k).
Tensor rotate_pairs(const Tensor& x) {
  Tensor y = x.unflatten(-1, {2, 2, x.size(-1) / 4});  // [..., axis, quarter pair, k]
  return torch::stack({-y.select(-2, 1), y.select(-2, 0)}, -2).flatten(-3);
}

Tensor apply_rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  return x * cos + rotate_pairs(x) * sin;
}

// ------------------------------------------------------------------ embedders

// alpha -> [cos(alpha f_k), sin(alpha f_k)] -> Linear -> SiLU -> Linear.
struct AlphaEmbedderImpl : nn::Module {
  explicit AlphaEmbedderImpl(int64_t hidden)
      : fc1(register_module("fc1", nn::Linear(kAlphaFreqDim, hidden))),
        fc2(register_module("fc2", nn::Linear(hidden, hidden))) {
    for (auto& l : {fc1, fc2}) {
      nn::init::normal_(l->weight, 0.0, 0.02);
      nn::init::zeros_(l->bias);
    }
  }
  Tensor forward(const Tensor& alpha /*[n]*/) {
    const int64_t half = kAlphaFreqDim / 2;
    Tensor freqs = torch::exp(-std::log(kAlphaMaxPeriod) *
                              torch::arange(half, alpha.options()) / half);
    Tensor args = alpha.unsqueeze(1) * freqs;
    Tensor features = torch::cat({torch::cos(args), torch::sin(args)}, 1);
    return fc2(torch::silu(fc1(features)));
  }
  nn::Linear fc1, fc2;
};
TORCH_MODULE(AlphaEmbedder);

// ------------------------------------------------------------------ the block

struct AttentionImpl : nn::Module {
  AttentionImpl(int64_t hidden, int64_t heads)
      : heads(heads),
        qkv(register_module("qkv", xavier_linear(hidden, 3 * hidden))),
        proj(register_module("proj", xavier_linear(hidden, hidden))),
        q_norm(register_parameter("q_norm", torch::ones({hidden / heads}))),
        k_norm(register_parameter("k_norm", torch::ones({hidden / heads}))) {}

  Tensor forward(const Tensor& x /*[n, T, D]*/, const Tensor& cos, const Tensor& sin) {
    const int64_t n = x.size(0), T = x.size(1), D = x.size(2);
    Tensor qkv_ = qkv(x).view({n, T, 3, heads, D / heads}).permute({2, 0, 3, 1, 4});
    Tensor q = apply_rope(rms_norm(qkv_[0], q_norm), cos, sin);  // [n, heads, T, head_dim]
    Tensor k = apply_rope(rms_norm(qkv_[1], k_norm), cos, sin);
    Tensor o = at::scaled_dot_product_attention(q, k, qkv_[2]);
    return proj(o.transpose(1, 2).reshape({n, T, D}));
  }
  int64_t heads;
  nn::Linear qkv, proj;
  Tensor q_norm, k_norm;  // QK-norm: learnable RMSNorm weights over the head channels
};
TORCH_MODULE(Attention);

// SwiGLU: W2 (silu(W1 x) * W3 x); W1 and W3 as one Linear.
struct SwiGLUImpl : nn::Module {
  SwiGLUImpl(int64_t hidden, int64_t mlp_hidden)
      : w13(register_module("w13", xavier_linear(hidden, 2 * mlp_hidden))),
        w2(register_module("w2", xavier_linear(mlp_hidden, hidden))) {}
  Tensor forward(const Tensor& x) {
    auto ab = w13(x).chunk(2, -1);
    return w2(torch::silu(ab[0]) * ab[1]);
  }
  nn::Linear w13, w2;
};
TORCH_MODULE(SwiGLU);

struct DiTBlockImpl : nn::Module {
  DiTBlockImpl(const DitConfig& c)
      : attn(register_module("attn", Attention(c.hidden, c.heads))),
        mlp(register_module("mlp", SwiGLU(c.hidden, c.mlp_hidden))),
        adaLN_modulation(register_module("adaLN_modulation", zero_linear(c.hidden, 6 * c.hidden))) {}

  Tensor forward(Tensor x, const Tensor& c, const Tensor& cos, const Tensor& sin) {
    auto m = adaLN_modulation(torch::silu(c)).chunk(6, 1);
    const Tensor &shift_msa = m[0], &scale_msa = m[1], &gate_msa = m[2];
    const Tensor &shift_mlp = m[3], &scale_mlp = m[4], &gate_mlp = m[5];
    x = x + gate_msa.unsqueeze(1) * attn(modulate(rms_norm(x), shift_msa, scale_msa), cos, sin);
    x = x + gate_mlp.unsqueeze(1) * mlp(modulate(rms_norm(x), shift_mlp, scale_mlp));
    return x;
  }
  Attention attn;
  SwiGLU mlp;
  nn::Linear adaLN_modulation;
};
TORCH_MODULE(DiTBlock);

struct FinalLayerImpl : nn::Module {
  FinalLayerImpl(int64_t hidden, int64_t out)
      : adaLN_modulation(register_module("adaLN_modulation", zero_linear(hidden, 2 * hidden))),
        linear(register_module("linear", xavier_linear(hidden, out))) {}
  Tensor forward(const Tensor& x, const Tensor& c) {
    auto m = adaLN_modulation(torch::silu(c)).chunk(2, 1);
    return linear(modulate(rms_norm(x), m[0], m[1]));
  }
  nn::Linear adaLN_modulation, linear;
};
TORCH_MODULE(FinalLayer);

// ------------------------------------------------------------------ the generator

class DiT : public drift::Generator {
 public:
  explicit DiT(const DitConfig& c, uint64_t seed) : c_(c) {
    torch::manual_seed(seed);  // initialisation is deterministic given the seed
    x_embedder_ = register_module(
        "x_embedder",
        nn::Conv2d(nn::Conv2dOptions(c.channels, c.hidden, c.patch).stride(c.patch)));
    // DiT: initialise the patch embedding like a Linear (Xavier on [D, C p p]).
    nn::init::xavier_uniform_(x_embedder_->weight.view({c.hidden, -1}));
    nn::init::zeros_(x_embedder_->bias);
    in_context_ = register_parameter("in_context", torch::randn({c.in_context, c.hidden}) * 0.02);
    if (c.n_classes > 0) {
      y_embedder_ = register_module("y_embedder", nn::Embedding(c.n_classes, c.hidden));
      nn::init::normal_(y_embedder_->weight, 0.0, 0.02);
    }
    if (c.use_alpha) a_embedder_ = register_module("a_embedder", AlphaEmbedder(c.hidden));
    if (c.style_count > 0) {
      style_embedder_ = register_module("style_embedder", nn::Embedding(c.style_codebook, c.hidden));
      nn::init::normal_(style_embedder_->weight, 0.0, 0.02);
    }
    for (int64_t i = 0; i < c.depth; ++i)
      blocks_.push_back(register_module("blocks" + std::to_string(i), DiTBlock(c)));
    final_layer_ = register_module("final_layer",
                                   FinalLayer(c.hidden, c.patch * c.patch * c.channels));
    auto [cos, sin] = rope_tables(c);
    rope_cos_ = register_buffer("rope_cos", cos);
    rope_sin_ = register_buffer("rope_sin", sin);
  }

  Tensor generate(const drift::GenerateRequest& req) override {
    const int64_t n = req.n;
    auto cpu = torch::TensorOptions().dtype(torch::kFloat32);
    Tensor noise = torch::randn({n, c_.channels, c_.height, c_.width}, req.rng, cpu).to(req.device);
    Tensor styles;
    if (c_.style_count > 0)
      styles = torch::randint(c_.style_codebook, {n, c_.style_count}, req.rng,
                              torch::TensorOptions().dtype(torch::kLong))
                   .to(req.device);
    // Data-parallel: the noise and styles of all n drawn, only req.rows run.
    if (styles.defined()) styles = drift::take_rows(styles, req);
    return forward(drift::take_rows(noise, req), condition(drift::restrict_to_rows(req), styles));
  }

  // The condition c [n, hidden] (see the top of this file). An unconditional
  // model without alpha and styles gets c = 0.
  Tensor condition(const drift::GenerateRequest& req, const Tensor& styles) {
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(req.device);
    Tensor c = torch::zeros({req.n, c_.hidden}, opts);
    if (c_.n_classes > 0) {
      TORCH_CHECK(req.labels.defined(), "dit: a class-conditional generator needs labels");
      c = c + y_embedder_(req.labels.to(req.device));
    }
    if (c_.use_alpha)
      c = c + a_embedder_(req.alpha.defined() ? req.alpha.to(opts) : torch::ones({req.n}, opts));
    if (c_.style_count > 0) c = c + style_embedder_(styles).sum(1);
    return c;
  }

  // noise [n, C, H, W], condition [n, hidden] -> samples [n, C, H, W].
  Tensor forward(const Tensor& noise, const Tensor& c) {
    const int64_t n = noise.size(0), p = c_.patch;
    Tensor x = x_embedder_(noise).flatten(2).transpose(1, 2);  // [n, T, D], row-major patches
    x = torch::cat({in_context_.unsqueeze(0).expand({n, -1, -1}), x}, 1);
    for (auto& block : blocks_) x = block(x, c, rope_cos_, rope_sin_);
    x = final_layer_(x, c).slice(1, c_.in_context);  // [n, T, p * p * C]
    // unpatchify: [n, h, w, p, p, C] -> [n, C, h * p, w * p]
    x = x.reshape({n, c_.grid_h(), c_.grid_w(), p, p, c_.channels});
    return x.permute({0, 5, 1, 3, 2, 4}).reshape({n, c_.channels, c_.height, c_.width});
  }

 private:
  DitConfig c_;
  nn::Conv2d x_embedder_{nullptr};
  Tensor in_context_;
  nn::Embedding y_embedder_{nullptr};
  AlphaEmbedder a_embedder_{nullptr};
  nn::Embedding style_embedder_{nullptr};
  std::vector<DiTBlock> blocks_;
  FinalLayer final_layer_{nullptr};
  Tensor rope_cos_, rope_sin_;
};

absl::StatusOr<std::shared_ptr<drift::Generator>> make_dit(const drift::Params& p,
                                                           const drift::GeneratorContext& ctx) {
  const auto& s = ctx.sample_shape;
  if (s.size() != 3)
    return absl::InvalidArgumentError(absl::StrCat(
        "dit: needs image samples [C, H, W]; the dataset's samples have shape [",
        absl::StrJoin(s, ", "), "] (use the mlp generator for vectors)"));
  DitConfig c;
  c.channels = s[0];
  c.height = s[1];
  c.width = s[2];
  c.hidden = p.get_int("hidden");
  c.depth = p.get_int("depth");
  c.heads = p.get_int("heads");
  c.patch = p.get_int("patch");
  c.mlp_hidden = std::llround(c.hidden * p.get_float("mlp_ratio") * 2.0 / 3.0);
  c.in_context = p.get_int("in_context");
  c.style_codebook = p.get_int("style_codebook");
  c.style_count = p.get_int("style_count");
  c.use_alpha = p.get_bool("use_alpha");
  c.n_classes = ctx.n_classes;
  if (c.hidden % c.heads != 0)
    return absl::InvalidArgumentError(absl::StrCat("dit: hidden = ", c.hidden,
                                                   " is not divisible by heads = ", c.heads));
  if (c.head_dim() % 4 != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "dit: head dimension hidden / heads = ", c.hidden, " / ", c.heads, " = ", c.head_dim(),
        " is not divisible by 4 (2-D RoPE rotates channel pairs along rows and along columns)"));
  if (c.height % c.patch != 0 || c.width % c.patch != 0)
    return absl::InvalidArgumentError(absl::StrCat("dit: patch = ", c.patch,
                                                   " does not divide the sample size ", c.height,
                                                   "x", c.width, " (H and W must be multiples of patch)"));
  if (c.mlp_hidden < 1)
    return absl::InvalidArgumentError(absl::StrCat("dit: mlp_ratio = ", p.get_float("mlp_ratio"),
                                                   " gives an empty SwiGLU layer for hidden = ",
                                                   c.hidden));
  return std::make_shared<DiT>(c, ctx.seed);
}

}  // namespace

DRIFT_PLUGIN("generator_dit", r) {
  using drift::ParamSpec;
  r.add_generator(
      "dit",
      "DiT on patchified noise (docs/method.md §7): adaLN-zero on class + alpha + random style codes, "
      "RMSNorm, SwiGLU, 2-D RoPE, QK-norm, in-context tokens; images [C, H, W]",
      {ParamSpec::Int("hidden", 128, "token width (divisible by heads)").at_least(4),
       ParamSpec::Int("depth", 4, "number of DiT blocks").in_range(1, 128),
       ParamSpec::Int("heads", 4, "attention heads; hidden / heads must be a multiple of 4 (2-D RoPE)")
           .at_least(1),
       ParamSpec::Int("patch", 4, "patch size p: H and W must be multiples of p").at_least(1),
       ParamSpec::Float("mlp_ratio", 4.0,
                        "SwiGLU width = round(2/3 * mlp_ratio * hidden) (the parameter count of a "
                        "GELU MLP of width mlp_ratio * hidden)")
           .positive(),
       ParamSpec::Int("in_context", 16, "learnable tokens prepended to the patch tokens").at_least(0),
       ParamSpec::Int("style_codebook", 64, "entries of the learned style codebook").at_least(1),
       ParamSpec::Int("style_count", 32,
                      "random style indices drawn per sample; their embeddings are summed into the "
                      "condition (0: none)")
           .at_least(0),
       ParamSpec::Bool("use_alpha", true,
                       "condition on alpha, the CFG strength (sinusoidal embedding; alpha = 1 "
                       "when not given)")},
      make_dit);
}
