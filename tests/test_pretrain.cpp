// Pre-training in this framework (docs/method.md §8): the MAE and SimCLR
// losses of the resnet encoders fall on a small image set; the pre-training
// stage trains a missing weights file once and loads an existing one;
// drift-pretrain does the same for an experiment file.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <numeric>

#include "config/experiment.hpp"
#include "drift/pretrain.hpp"
#include "drift/weights.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"
#include "tiny_images.hpp"
#include "train/pretrain_stage.hpp"

namespace {

using drift::ParamValue;
using Given = std::map<std::string, ParamValue>;

drift::runtime::Registry& registry() {
  auto& reg = drift::test::default_registry();
  drift::test::add_tiny_images(reg);
  return reg;
}

std::shared_ptr<drift::FeatureEncoder> make(const std::string& name, const Given& given) {
  auto p = registry().validate(drift::ComponentKind::Encoder, name, given, "test");
  EXPECT_TRUE(p.ok()) << p.status();
  drift::EncoderContext ctx;
  ctx.sample_shape = {1, 16, 16};
  auto e = registry().make_encoder(name, *p, ctx);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : nullptr;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
}

// Pre-trains `name` for `steps` steps on tiny_images; returns the loss of every step.
std::vector<double> pretrain_losses(const std::string& name, Given g, int64_t steps,
                                    const std::string& path) {
  g["weights"] = path;
  g["widths"] = std::vector<int64_t>{8, 16};
  g["blocks"] = std::vector<int64_t>{1, 1};
  g["pretrain_steps"] = steps;
  g["pretrain_batch"] = int64_t{32};
  auto enc = make(name, g);
  auto* pre = dynamic_cast<drift::PretrainableEncoder*>(enc.get());
  EXPECT_NE(pre, nullptr);
  if (!pre) return {};
  drift::test::TinyImages data;
  drift::PretrainContext ctx;
  ctx.data = &data;
  std::vector<double> losses;
  ctx.progress = [&](int64_t step, int64_t total, double loss) {
    EXPECT_EQ(step, static_cast<int64_t>(losses.size()) + 1);
    EXPECT_EQ(total, steps);
    losses.push_back(loss);
  };
  auto st = pre->pretrain(ctx);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE(pre->load_weights().ok());
  return losses;
}

}  // namespace

TEST(Pretrain, MaeLossFalls) {
  drift::test::ScratchDir dir("mae");
  auto losses = pretrain_losses("mae_resnet", {}, 60, dir / "mae.pt");
  ASSERT_EQ(losses.size(), 60u);
  const double first = mean(losses, 0, 5), last = mean(losses, 50, 60);
  std::cout << "MAE loss: first 5 steps " << first << ", last 10 " << last << "\n";
  EXPECT_LT(last, 0.5 * first);
}

TEST(Pretrain, ContrastiveLossFalls) {
  drift::test::ScratchDir dir("simclr");
  auto losses = pretrain_losses("contrastive_resnet", {{"temperature", 0.2}}, 60, dir / "simclr.pt");
  ASSERT_EQ(losses.size(), 60u);
  const double first = mean(losses, 0, 5), last = mean(losses, 50, 60);
  std::cout << "NT-Xent loss: first 5 steps " << first << ", last 10 " << last
            << " (log(2B - 1) = " << std::log(63.0) << ")\n";
  EXPECT_LT(last, first - 0.2);
}

TEST(Pretrain, SameParametersSameWeights) {
  // (The files' bytes differ: LibTorch archives carry a random serialization id.)
  drift::test::ScratchDir dir("det");
  pretrain_losses("mae_resnet", {}, 3, dir / "a.pt");
  pretrain_losses("mae_resnet", {}, 3, dir / "b.pt");
  pretrain_losses("mae_resnet", {{"pretrain_seed", int64_t{1}}}, 3, dir / "c.pt");
  auto features = [&](const std::string& file, int64_t seed) {
    auto enc = make("mae_resnet", {{"weights", dir / file},
                                   {"widths", std::vector<int64_t>{8, 16}},
                                   {"blocks", std::vector<int64_t>{1, 1}},
                                   {"pretrain_steps", int64_t{3}},
                                   {"pretrain_batch", int64_t{32}},
                                   {"pretrain_seed", seed},
                                   {"pretrain_if_missing", false}});
    torch::manual_seed(0);
    return enc->encode(torch::randn({1, 2, 1, 16, 16})).back().value;
  };
  auto a = features("a.pt", 0), b = features("b.pt", 0), c = features("c.pt", 1);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a, c));
}

TEST(Pretrain, StageTrainsOnceThenLoads) {
  drift::test::ScratchDir dir("stage");
  const std::string toml = R"(
[data]
dataset = "tiny_images"
[generator]
plugin = "mlp"
[encoder]
plugin = "mae_resnet"
widths = [8, 16]
blocks = [1, 1]
pretrain_steps = 3
pretrain_batch = 8
weights = "w/enc.pt"
)";
  auto exp = drift::config::parse_experiment(toml, dir / "x.toml");
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto cfg = drift::config::resolve_cell(*exp, 0, registry());
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  drift::EncoderContext ectx;
  ectx.sample_shape = {1, 16, 16};
  ectx.base_dir = dir.path();  // relative weights resolve against the experiment file's folder
  auto enc = registry().make_encoder("mae_resnet", cfg->encoder.params, ectx);
  ASSERT_TRUE(enc.ok()) << enc.status();
  auto first = drift::train::ensure_encoder_weights(*cfg, registry(), **enc, torch::kCPU);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->pretrained);
  EXPECT_EQ(first->weights, dir / "w/enc.pt");
  EXPECT_TRUE(dynamic_cast<drift::PretrainableEncoder*>(enc->get())->has_weights());

  auto enc2 = registry().make_encoder("mae_resnet", cfg->encoder.params, ectx);
  ASSERT_TRUE(enc2.ok()) << enc2.status();
  auto second = drift::train::ensure_encoder_weights(*cfg, registry(), **enc2, torch::kCPU);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->pretrained);

  // Not pre-trainable: nothing to do.
  auto id = registry().make_encoder("identity", {}, ectx);
  auto none = drift::train::ensure_encoder_weights(*cfg, registry(), **id, torch::kCPU);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->weights, "");
}

TEST(Pretrain, DriftPretrainCommandOnFashionMnist) {
  if (!std::ifstream("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Debian package dataset-fashion-mnist not installed";
  drift::test::ScratchDir dir("cli");
  {
    std::ofstream f(dir / "p.toml");
    f << "[data]\ndataset = \"fashion_mnist\"\n[generator]\nplugin = \"mlp\"\n"
         "[encoder]\nplugin = \"contrastive_resnet\"\nwidths = [4, 8]\nblocks = [1, 1]\n"
         "pretrain_steps = 2\npretrain_batch = 4\nweights = \"enc.pt\"\n"
         "[grid]\n\"train.lr\" = [0.001, 0.002]\n";
  }
  const std::string exe = std::string(DRIFT_BINARY_DIR) + "/bin/drift-pretrain ";
  std::string out;
  ASSERT_EQ(drift::test::run_command(exe + dir / "p.toml", &out), 0) << out;
  // Two cells, one weights file: trained once.
  EXPECT_NE(out.find("cell 0: contrastive_resnet " + dir / "enc.pt" + " pre-trained in"), std::string::npos) << out;
  EXPECT_EQ(out.find("cell 1:"), std::string::npos) << out;
  EXPECT_TRUE(std::ifstream(dir / "enc.pt.sha256").good());
  ASSERT_EQ(drift::test::run_command(exe + dir / "p.toml", &out), 0) << out;
  EXPECT_NE(out.find("exists (checksum verified)"), std::string::npos) << out;
  EXPECT_EQ(drift::test::run_command(exe + "--cells 7 " + dir / "p.toml", &out), 2) << out;
}
