// The feature encoders (plugins/encoders): identity, random_resnet,
// mae_resnet / contrastive_resnet weights files, torchscript; training a few
// steps with each; per-feature logging into the results file.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "config/experiment.hpp"
#include "drift/checksum.hpp"
#include "drift/pretrain.hpp"
#include "drift/weights.hpp"
#include "io/h5.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"
#include "tiny_images.hpp"
#include "train/cell_file.hpp"
#include "train/trainer.hpp"

namespace {

using drift::ParamValue;
using Given = std::map<std::string, ParamValue>;

drift::runtime::Registry& registry() {
  auto& reg = drift::test::default_registry();
  drift::test::add_tiny_images(reg);
  return reg;
}

std::shared_ptr<drift::FeatureEncoder> make(const std::string& name, const Given& given,
                                            std::vector<int64_t> shape = {1, 16, 16},
                                            absl::Status* error = nullptr) {
  auto& reg = registry();
  auto p = reg.validate(drift::ComponentKind::Encoder, name, given, "test");
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return nullptr;
  drift::EncoderContext ctx;
  ctx.sample_shape = std::move(shape);
  auto e = reg.make_encoder(name, *p, ctx);
  if (error) *error = e.status();
  else EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : nullptr;
}

std::map<std::string, torch::Tensor> by_name(const std::vector<drift::Feature>& fs) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& f : fs) out[f.name] = f.value;
  return out;
}

const Given kSmall{{"widths", std::vector<int64_t>{8, 16}}, {"blocks", std::vector<int64_t>{1, 3}}};

Given with(Given g, const std::string& k, ParamValue v) {
  g[k] = std::move(v);
  return g;
}

}  // namespace

TEST(Encoders, IdentityOnImagesIsTheRawSample) {
  auto enc = make("identity", {}, {2, 4, 4});
  ASSERT_TRUE(enc);
  auto x = torch::randn({3, 5, 2, 4, 4});
  auto fs = enc->encode(x);
  ASSERT_EQ(fs.size(), 1u);
  EXPECT_EQ(fs[0].name, "raw");
  EXPECT_EQ(fs[0].value.sizes(), (std::vector<int64_t>{3, 1, 5, 32}));
  EXPECT_TRUE(torch::equal(fs[0].value[2][0][4], x[2][4].flatten()));
}

TEST(Encoders, RandomResNetFeatureSetsPerSubset) {
  // widths [8, 16], blocks [1, 3] on 16x16: maps s1 8x8, s2b2 4x4, s2 4x4.
  std::map<std::string, size_t> expected{{"a,b", 2 + 3 + 3 + 3}, {"a-c", 2 + 5 + 5 + 5},
                                         {"a-d", 2 + 7 + 5 + 5}};
  for (const auto& [subset, count] : expected) {
    auto enc = make("random_resnet", with(kSmall, "features", std::string(subset)));
    ASSERT_TRUE(enc);
    auto f = by_name(enc->encode(torch::randn({2, 3, 1, 16, 16})));
    EXPECT_EQ(f.size(), count) << subset;
    EXPECT_EQ(f["raw"].sizes(), (std::vector<int64_t>{2, 1, 3, 256}));
    EXPECT_EQ(f["x2"].sizes(), (std::vector<int64_t>{2, 1, 3, 1}));
    EXPECT_EQ(f["s1.loc"].sizes(), (std::vector<int64_t>{2, 64, 3, 8}));
    EXPECT_EQ(f["s2b2.mean"].sizes(), (std::vector<int64_t>{2, 1, 3, 16}));
    EXPECT_EQ(f["s2.std"].sizes(), (std::vector<int64_t>{2, 1, 3, 16}));
    if (subset != "a,b") EXPECT_EQ(f["s2.p2.mean"].sizes(), (std::vector<int64_t>{2, 4, 3, 16}));
    if (subset == "a-d") EXPECT_EQ(f["s1.p4.std"].sizes(), (std::vector<int64_t>{2, 4, 3, 8}));
  }
  // Map selection; an unknown map names the available ones.
  auto only = make("random_resnet", with(kSmall, "maps", std::vector<std::string>{"s2"}));
  ASSERT_TRUE(only);
  EXPECT_EQ(by_name(only->encode(torch::randn({1, 2, 1, 16, 16}))).count("s1.loc"), 0u);
  absl::Status err;
  make("random_resnet", with(kSmall, "maps", std::vector<std::string>{"s3"}), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find("no feature map \"s3\"; this encoder has s0, s1, s2b2, s2"),
            std::string::npos)
      << err;
  make("random_resnet", {}, {2}, &err);
  EXPECT_NE(err.message().find("needs image samples"), std::string::npos) << err;
}

TEST(Encoders, RandomResNetStemMapOnlyWhenNamed) {
  // s0 is the stem's output: full resolution (16x16 locations), widths[0] = 8
  // channels, after a ReLU. The default (all maps) leaves it out.
  auto all = make("random_resnet", kSmall);
  ASSERT_TRUE(all);
  auto x = torch::randn({2, 3, 1, 16, 16});
  auto f_all = by_name(all->encode(x));
  for (const auto& [name, v] : f_all) EXPECT_NE(name.rfind("s0.", 0), 0u) << name;
  auto with_s0 = make("random_resnet", with(kSmall, "maps", std::vector<std::string>{"s0", "s1"}));
  ASSERT_TRUE(with_s0);
  auto f = by_name(with_s0->encode(x));
  EXPECT_EQ(f.size(), 2 + 7 + 7);  // raw, x2; s0 and s1 with (a)-(d) each
  EXPECT_EQ(f["s0.loc"].sizes(), (std::vector<int64_t>{2, 256, 3, 8}));
  EXPECT_EQ(f["s0.p2.mean"].sizes(), (std::vector<int64_t>{2, 64, 3, 8}));
  EXPECT_EQ(f["s0.p4.std"].sizes(), (std::vector<int64_t>{2, 16, 3, 8}));
  EXPECT_GE(f["s0.loc"].min().item<float>(), 0.0f);
  EXPECT_GT(f["s0.loc"].max().item<float>(), 0.0f);
  // The stage maps are the same with or without s0 (same weights, same input).
  EXPECT_TRUE(torch::equal(f["s1.loc"], f_all["s1.loc"]));
}

TEST(Encoders, RandomResNetDeterministicGivenSeedAndLeavesGlobalRngAlone) {
  torch::manual_seed(5);
  auto r1 = torch::rand({4});
  torch::manual_seed(5);
  auto a = make("random_resnet", with(kSmall, "seed", int64_t{3}));
  auto r2 = torch::rand({4});
  EXPECT_TRUE(torch::equal(r1, r2)) << "building the encoder moved the global generator";
  auto b = make("random_resnet", with(kSmall, "seed", int64_t{3}));
  auto c = make("random_resnet", with(kSmall, "seed", int64_t{4}));
  auto x = torch::randn({1, 4, 1, 16, 16});
  auto fa = by_name(a->encode(x)), fb = by_name(b->encode(x)), fc = by_name(c->encode(x));
  EXPECT_TRUE(torch::equal(fa["s2.loc"], fb["s2.loc"]));
  EXPECT_FALSE(torch::allclose(fa["s2.loc"], fc["s2.loc"]));
}

TEST(Encoders, FrozenButDifferentiableWithRespectToTheInput) {
  auto enc = make("random_resnet", kSmall);
  ASSERT_TRUE(enc);
  ASSERT_FALSE(enc->parameters().empty());
  for (const auto& p : enc->parameters()) EXPECT_FALSE(p.requires_grad());
  auto x = torch::randn({1, 3, 1, 16, 16}, torch::requires_grad());
  for (const auto& f : enc->encode(x)) {
    if (x.grad().defined()) x.mutable_grad().zero_();
    (f.value * torch::randn(f.value.sizes())).sum().backward({}, /*retain_graph=*/true);
    ASSERT_TRUE(x.grad().defined()) << f.name;
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>()) << f.name;
    EXPECT_GT(x.grad().abs().sum().item<double>(), 0) << f.name;
  }
}

TEST(Encoders, PretrainedWeightsRoundTripAndChecksumErrors) {
  drift::test::ScratchDir dir("weights");
  const std::string path = dir / "sub/mae.pt";
  Given g = with(with(kSmall, "weights", path), "pretrain_steps", int64_t{3});
  g["pretrain_batch"] = int64_t{8};

  // Missing file without pre-training: an error naming the file.
  absl::Status err;
  make("mae_resnet", with(g, "pretrain_if_missing", false), {1, 16, 16}, &err);
  EXPECT_EQ(err.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(err.message().find(path + ": weights file of mae_resnet not found"), std::string::npos) << err;

  // Pre-train (a few steps) and write.
  auto enc = make("mae_resnet", g);
  ASSERT_TRUE(enc);
  auto* pre = dynamic_cast<drift::PretrainableEncoder*>(enc.get());
  ASSERT_NE(pre, nullptr);
  EXPECT_FALSE(pre->has_weights());
  EXPECT_EQ(pre->weights_path(), path);
  drift::test::TinyImages data;
  drift::PretrainContext ctx;
  ctx.data = &data;
  ASSERT_TRUE(pre->pretrain(ctx).ok());
  ASSERT_TRUE(pre->load_weights().ok());
  std::ifstream sum(drift::checksum_path(path));
  std::string hex, file;
  sum >> hex >> file;
  EXPECT_EQ(hex, *drift::sha256_file(path));
  EXPECT_EQ(file, "mae.pt");

  // A second encoder loads the same weights: same features.
  auto again = make("mae_resnet", g);
  ASSERT_TRUE(again);
  EXPECT_TRUE(dynamic_cast<drift::PretrainableEncoder*>(again.get())->has_weights());
  auto x = torch::randn({1, 2, 1, 16, 16});
  EXPECT_TRUE(torch::equal(by_name(enc->encode(x))["s2.loc"], by_name(again->encode(x))["s2.loc"]));
  // ... unless its random init is what it returns: a fresh random_resnet differs.
  EXPECT_FALSE(torch::equal(by_name(make("random_resnet", kSmall)->encode(x))["s2.loc"],
                            by_name(again->encode(x))["s2.loc"]));

  // The checksum given as a parameter must match too.
  make("mae_resnet", with(g, "sha256", std::string(64, '0')), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find(path + ": SHA-256 is " + hex + ", expected 0000"), std::string::npos) << err;
  EXPECT_TRUE(make("mae_resnet", with(g, "sha256", hex)));
  // Other architecture or pre-training parameters, same file: refused, naming both.
  make("mae_resnet", with(g, "mask_prob", 0.25), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find(path + ": weights are for \""), std::string::npos) << err;
  EXPECT_NE(err.message().find("mask_prob=0.25"), std::string::npos) << err;
  // A changed file no longer matches its checksum file.
  { std::ofstream(path, std::ios::app) << "x"; }
  make("mae_resnet", g, {1, 16, 16}, &err);
  EXPECT_EQ(err.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(err.message().find("(from " + path + ".sha256)"), std::string::npos) << err;
  // No checksum file at all.
  std::remove(drift::checksum_path(path).c_str());
  make("mae_resnet", g, {1, 16, 16}, &err);
  EXPECT_NE(err.message().find(path + ".sha256: checksum file of " + path + " not found"),
            std::string::npos)
      << err;
}

TEST(Encoders, TorchScriptMatchesTheModuleRunInPython) {
  drift::test::ScratchDir dir("torchscript");
  std::string out;
  const std::string cmd = std::string(DRIFT_SOURCE_DIR) + "/.venv/bin/python " + DRIFT_SOURCE_DIR +
                          "/tests/make_torchscript_encoder.py " + dir.path();
  ASSERT_EQ(drift::test::run_command(cmd, &out), 0) << out;
  auto check = drift::io::H5File::open_read(dir / "check.h5");
  ASSERT_TRUE(check.ok()) << check.status();
  auto x = *check->read("x");    // [3, 1, 16, 16]
  auto c1 = *check->read("c1");  // [3, 4, 8, 8]
  auto c2 = *check->read("c2");  // [3, 8, 4, 4]

  Given g{{"path", dir / "encoder.pt"}, {"outputs", std::vector<std::string>{"c1", "c2"}}};
  auto enc = make("torchscript", g);
  ASSERT_TRUE(enc);
  auto f = by_name(enc->encode(x.unsqueeze(0)));
  // <map>.loc[0, h * W + w, n, c] = map[n, c, h, w]
  EXPECT_TRUE(torch::allclose(f["c1.loc"][0], c1.permute({2, 3, 0, 1}).reshape({64, 3, 4}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(f["c2.loc"][0], c2.permute({2, 3, 0, 1}).reshape({16, 3, 8}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(f["c2.mean"][0][0], c2.mean({2, 3}), 1e-5, 1e-6));
  EXPECT_EQ(f.size(), 2u + 7 + 5);

  // The tuple-returning export of the same module gives the same features.
  auto tup = make("torchscript", with(g, "path", dir / "encoder_tuple.pt"));
  ASSERT_TRUE(tup);
  EXPECT_TRUE(torch::allclose(by_name(tup->encode(x.unsqueeze(0)))["c2.p2.std"], f["c2.p2.std"]));

  // Differentiable w.r.t. the input, module frozen.
  auto xg = x.unsqueeze(0).clone().requires_grad_(true);
  by_name(enc->encode(xg))["c2.std"].sum().backward();
  EXPECT_GT(xg.grad().abs().sum().item<double>(), 0);
  for (const auto& p : enc->parameters()) EXPECT_FALSE(p.requires_grad());

  absl::Status err;
  make("torchscript", with(g, "outputs", std::vector<std::string>{"c1", "c9"}), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find("the module's output has no 'c9'; it has c1, c2"), std::string::npos) << err;
  make("torchscript", with(g, "path", dir / "nope.pt"), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find(dir / "nope.pt" + ": TorchScript module file not found"), std::string::npos) << err;
  make("torchscript", with(g, "path", dir / "check.h5"), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find("not a TorchScript module file"), std::string::npos) << err;
  make("torchscript", with(g, "sha256", std::string(64, 'a')), {1, 16, 16}, &err);
  EXPECT_NE(err.message().find("SHA-256 is"), std::string::npos) << err;
}

namespace {

drift::config::ExperimentConfig cell_cfg(const std::string& encoder_section) {
  const std::string toml = R"(
[experiment]
name = "enc"
seed = 1
[data]
dataset = "tiny_images"
[generator]
plugin = "mlp"
width = 32
depth = 1
[train]
steps = 3
n_gen = 8
n_pos = 8
warmup = 1
eval_every = 0
[eval]
metrics = []
n_samples = 16
features = ["raw", "s2.mean", "s1.p2.std"]
feature_samples = 6
)" + encoder_section;
  auto exp = drift::config::parse_experiment(toml, "/tmp/test_encoders.toml");
  EXPECT_TRUE(exp.ok()) << exp.status();
  auto cfg = drift::config::resolve_cell(*exp, 0, registry());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  return *cfg;
}

}  // namespace

TEST(Encoders, TrainCellStepsFiniteWithEachEncoder) {
  drift::test::ScratchDir dir("enc-train");
  std::string out;
  ASSERT_EQ(drift::test::run_command(std::string(DRIFT_SOURCE_DIR) + "/.venv/bin/python " +
                                         DRIFT_SOURCE_DIR + "/tests/make_torchscript_encoder.py " +
                                         dir.path(),
                                     &out),
            0)
      << out;
  const std::string small = "widths = [8, 16]\nblocks = [1, 1]\n";
  const std::string pre = small + "pretrain_steps = 4\npretrain_batch = 8\n";
  std::vector<std::pair<std::string, std::string>> encoders{
      {"random_resnet", "[encoder]\nplugin = \"random_resnet\"\n" + small},
      {"mae_resnet", "[encoder]\nplugin = \"mae_resnet\"\nweights = \"" + dir / "mae.pt" + "\"\n" + pre},
      {"contrastive_resnet", "[encoder]\nplugin = \"contrastive_resnet\"\nweights = \"" +
                                 dir / "con.pt" + "\"\n" + pre},
      {"torchscript", "[encoder]\nplugin = \"torchscript\"\npath = \"" + dir / "encoder.pt" +
                          "\"\noutputs = [\"s1\", \"s2\"]\n"}};
  // The torchscript module's maps are called c1, c2: rename them to s1, s2 by
  // position through its tuple export, so that one [eval] features list fits all.
  encoders.back().second = "[encoder]\nplugin = \"torchscript\"\npath = \"" + dir / "encoder_tuple.pt" +
                           "\"\noutputs = [\"s1\", \"s2\"]\n";
  for (const auto& [name, section] : encoders) {
    auto cfg = cell_cfg(section);
    drift::train::CellRecorder rec;
    auto o = drift::train::train_cell(cfg, registry(), rec);
    ASSERT_EQ(o.status, "done") << name << ": " << o.error;
    const auto& t = rec.train_table();
    ASSERT_EQ(t.rows(), 3u) << name;
    for (size_t r = 0; r < t.rows(); ++r)
      EXPECT_TRUE(std::isfinite(std::get<double>(t.at(r, "loss")))) << name;
    std::set<std::string> cols;
    for (const auto& c : t.columns()) cols.insert(c.name);
    EXPECT_TRUE(cols.count("m_tau_0.05/s2.loc")) << name;
    if (name == "mae_resnet" || name == "contrastive_resnet") {
      EXPECT_GT(o.pretrain_time_s, 0) << name;
      EXPECT_TRUE(std::ifstream(dir / (name == "mae_resnet" ? "mae.pt" : "con.pt")).good());
    }
    // Per-feature logging: the three named features of 6 samples, at the last step.
    ASSERT_EQ(rec.feature_logs().size(), 1u) << name;
    const auto& fl = rec.feature_logs()[0];
    EXPECT_EQ(fl.step, 3);
    ASSERT_EQ(fl.features.size(), 3u) << name;
    EXPECT_EQ(fl.features[1].name, "s2.mean");
    EXPECT_EQ(fl.features[0].gen.sizes(), (std::vector<int64_t>{6, 1, 256}));
    EXPECT_EQ(fl.features[0].real.sizes(), (std::vector<int64_t>{6, 1, 256}));
    EXPECT_EQ(fl.features[2].gen.size(0), 6);
    EXPECT_EQ(fl.features[2].gen.size(1), 16);  // s1 is 8x8: 16 patches of 2x2
    ASSERT_EQ(fl.features[1].drift_norm.size(), 3u);
    for (double v : fl.features[1].drift_norm) EXPECT_TRUE(std::isfinite(v) && v > 0) << name;
  }
  // The pre-trained weights are reused by the next cell (no pre-training).
  drift::train::CellRecorder rec;
  auto o = drift::train::train_cell(cell_cfg(encoders[1].second), registry(), rec);
  ASSERT_EQ(o.status, "done") << o.error;
  EXPECT_EQ(o.pretrain_time_s, 0);
}

TEST(Encoders, FeatureLogsInTheResultsFile) {
  auto cfg = cell_cfg("[encoder]\nplugin = \"random_resnet\"\nwidths = [8, 16]\nblocks = [1, 1]\n");
  drift::train::CellRecorder rec;
  auto o = drift::train::train_cell(cfg, registry(), rec);
  ASSERT_EQ(o.status, "done") << o.error;
  drift::test::ScratchDir dir("enc-h5");
  ASSERT_TRUE(drift::train::write_cell_file(dir / "c.h5", cfg, o, &rec, "").ok());
  auto f = drift::io::H5File::open_read(dir / "c.h5");
  ASSERT_TRUE(f.ok()) << f.status();
  auto names = f->list("cell/features");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(std::set<std::string>(names->begin(), names->end()),
            (std::set<std::string>{"raw", "s2.mean", "s1.p2.std"}));
  auto gen = f->read("cell/features/s1.p2.std/0000000003/gen");
  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_EQ(gen->sizes(), (std::vector<int64_t>{6, 16, 8}));
  EXPECT_TRUE(torch::equal(*gen, rec.feature_logs()[0].features[2].gen));
  auto dn = f->read("cell/features/s1.p2.std/0000000003/drift_norm");
  ASSERT_TRUE(dn.ok()) << dn.status();
  EXPECT_EQ(dn->scalar_type(), torch::kFloat64);
  EXPECT_EQ(dn->numel(), 3);
  EXPECT_EQ(*f->read_int_attr("cell/features/s1.p2.std/0000000003", "step"), 3);

  // A feature the encoder does not have is an error before training, listing them.
  auto bad = cell_cfg("[encoder]\nplugin = \"identity\"\n");
  drift::train::CellRecorder r2;
  auto ob = drift::train::train_cell(bad, registry(), r2);
  EXPECT_EQ(ob.status, "failed");
  EXPECT_NE(ob.error.find("[eval] features: encoder 'identity' has no feature \"s2.mean\"; it has raw"),
            std::string::npos)
      << ob.error;
}
