// Image metrics (metrics/images.hpp) on hand-computable cases, the fixed
// evaluator (metrics/evaluator.hpp): checksum verification, the committed
// weights' test accuracy, and the TorchScript Inception path.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "config/experiment.hpp"
#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "metrics/evaluator.hpp"
#include "metrics/images.hpp"
#include "scratch_dir.hpp"
#include "io/h5.hpp"
#include "io/table.hpp"
#include "test_util.hpp"
#include "train/cell_file.hpp"
#include "train/trainer.hpp"

namespace {

using drift::metrics::GaussianFit;
using torch::Tensor;

Tensor t2(std::initializer_list<std::initializer_list<double>> rows) {
  std::vector<Tensor> r;
  for (auto row : rows) r.push_back(torch::tensor(std::vector<double>(row), torch::kFloat64));
  return torch::stack(r);
}

GaussianFit fit(Tensor mean, Tensor cov) { return GaussianFit{std::move(mean), std::move(cov)}; }

TEST(Frechet, IdenticalSetsAreZero) {
  torch::manual_seed(1);
  Tensor x = torch::randn({400, 16}, torch::kFloat64);
  EXPECT_NEAR(drift::metrics::frechet_distance(x, x), 0.0, 1e-8);
}

TEST(Frechet, DiagonalCovariances) {
  // |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2
  auto a = fit(torch::tensor({1.0, 2.0}, torch::kFloat64), t2({{4, 0}, {0, 9}}));
  auto b = fit(torch::tensor({0.0, 0.0}, torch::kFloat64), t2({{1, 0}, {0, 16}}));
  EXPECT_NEAR(drift::metrics::frechet_distance(a, b), 5.0 + 1.0 + 1.0, 1e-10);
}

TEST(Frechet, NonCommutingCovariances) {
  // S1 = diag(4, 1), S2 = S1 rotated by 45 degrees = [[2.5, 1.5], [1.5, 2.5]].
  // For a 2x2 M with positive eigenvalues tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)):
  // tr(S1 S2) = 12.5, det = 16, so FID = 5 + 5 - 2 sqrt(20.5).
  auto a = fit(torch::zeros({2}, torch::kFloat64), t2({{4, 0}, {0, 1}}));
  auto b = fit(torch::zeros({2}, torch::kFloat64), t2({{2.5, 1.5}, {1.5, 2.5}}));
  EXPECT_NEAR(drift::metrics::frechet_distance(a, b), 10.0 - 2 * std::sqrt(20.5), 1e-10);
  EXPECT_NEAR(drift::metrics::frechet_distance(b, a), 10.0 - 2 * std::sqrt(20.5), 1e-10);
}

TEST(Frechet, SqrtmSquaresBack) {
  Tensor s = t2({{2.5, 1.5, 0.2}, {1.5, 2.5, 0.1}, {0.2, 0.1, 1.0}});
  Tensor r = drift::metrics::sqrtm_psd(s);
  EXPECT_TRUE(torch::allclose(r.matmul(r), s, 1e-12, 1e-12));
}

TEST(Frechet, GrowsWithShift) {
  // A constant shift keeps the covariance: FID = |delta|^2 exactly.
  torch::manual_seed(2);
  Tensor x = torch::randn({500, 8}, torch::kFloat64);
  double prev = 0;
  for (double d : {0.1, 0.5, 1.0, 2.0}) {
    const double f = drift::metrics::frechet_distance(x, x + d);
    EXPECT_NEAR(f, 8 * d * d, 1e-8) << d;
    EXPECT_GT(f, prev);
    prev = f;
  }
}

TEST(PrecisionRecall, KnnRadii) {
  Tensor x = torch::tensor({0.0, 1.0, 3.0, 7.0, 15.0}, torch::kFloat64).unsqueeze(1);
  EXPECT_TRUE(torch::equal(drift::metrics::knn_radii(x, 1),
                           torch::tensor({1.0, 1.0, 2.0, 4.0, 8.0}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(drift::metrics::knn_radii(x, 3),
                           torch::tensor({7.0, 6.0, 4.0, 7.0, 14.0}, torch::kFloat64)));
  EXPECT_THROW(drift::metrics::knn_radii(x, 5), std::invalid_argument);
}

TEST(PrecisionRecall, ConstructedSets) {
  // real: 0..9 (k = 1 radii 1); gen: 0..4 (inside) and 100..104 (far; radii 1).
  Tensor real = torch::arange(10, torch::kFloat64).unsqueeze(1);
  Tensor gen = torch::cat({torch::arange(5, torch::kFloat64), torch::arange(100, 105, torch::kFloat64)})
                   .unsqueeze(1);
  auto pr = drift::metrics::precision_recall(real, gen, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 0.5);  // 0..4 inside, 100..104 outside
  EXPECT_DOUBLE_EQ(pr.recall, 0.6);     // real 0..5 within 1 of a gen point
  // Identical sets: both 1.
  auto same = drift::metrics::precision_recall(real, real, 3);
  EXPECT_DOUBLE_EQ(same.precision, 1.0);
  EXPECT_DOUBLE_EQ(same.recall, 1.0);
  // A collapsed generator: precise but no recall beyond its neighbourhood.
  auto collapsed = drift::metrics::precision_recall(real, torch::zeros({4, 1}, torch::kFloat64) +
                                                              torch::tensor({0.0, 0.0, 0.1, 0.1}, torch::kFloat64).unsqueeze(1), 1);
  EXPECT_DOUBLE_EQ(collapsed.precision, 1.0);
  EXPECT_DOUBLE_EQ(collapsed.recall, 0.1);  // only real 0 is within 0.1 of a gen point
}

TEST(ClassProbabilities, PerClassAccuracy) {
  // 3 classes; class 0: 2 of 3 right, class 1: 1 of 1, class 2: 1 of 2 (row 5 peaks at 0.4).
  Tensor p = t2({{0.9, 0.1, 0}, {0.6, 0.3, 0.1}, {0.2, 0.7, 0.1}, {0.1, 0.8, 0.1},
                 {0.5, 0.4, 0.1}, {0.3, 0.3, 0.4}});
  Tensor labels = torch::tensor({0, 0, 0, 1, 2, 2}, torch::kInt64);
  auto acc = drift::metrics::class_accuracy(p, labels);
  ASSERT_EQ(acc.per_class.size(), 3u);
  EXPECT_DOUBLE_EQ(acc.per_class[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(acc.per_class[1], 1.0);
  EXPECT_DOUBLE_EQ(acc.per_class[2], 0.5);
  EXPECT_DOUBLE_EQ(acc.mean, (2.0 / 3.0 + 1.0 + 0.5) / 3.0);
  // An absent class is NaN and left out of the mean.
  auto acc2 = drift::metrics::class_accuracy(p.slice(0, 0, 4), labels.slice(0, 0, 4));
  EXPECT_TRUE(std::isnan(acc2.per_class[2]));
  EXPECT_DOUBLE_EQ(acc2.mean, (2.0 / 3.0 + 1.0) / 2.0);
  EXPECT_THROW(drift::metrics::class_accuracy(p, torch::tensor({0, 0, 0, 1, 2, 3}, torch::kInt64)),
               std::invalid_argument);
}

TEST(ClassProbabilities, InceptionScore) {
  EXPECT_NEAR(drift::metrics::inception_score(torch::full({7, 10}, 0.1, torch::kFloat64)), 1.0, 1e-12);
  EXPECT_NEAR(drift::metrics::inception_score(torch::eye(10, torch::kFloat64).repeat({3, 1})), 10.0, 1e-9);
  Tensor all_one_class = torch::zeros({5, 10}, torch::kFloat64);
  all_one_class.select(1, 4).fill_(1);
  EXPECT_NEAR(drift::metrics::inception_score(all_one_class), 1.0, 1e-12);
  // p1 = (1, 0), p2 = (0.5, 0.5): marginal (0.75, 0.25).
  const double kl1 = std::log(1 / 0.75), kl2 = 0.5 * std::log(0.5 / 0.75) + 0.5 * std::log(0.5 / 0.25);
  EXPECT_NEAR(drift::metrics::inception_score(t2({{1, 0}, {0.5, 0.5}})), std::exp(0.5 * (kl1 + kl2)), 1e-12);
}

TEST(EvaluateImages, NamesFloorsAndLabels) {
  torch::manual_seed(3);
  drift::metrics::ImageEmbedding ref{torch::randn({300, 6}), torch::softmax(torch::randn({300, 10}), 1)};
  drift::metrics::ImageEmbedding floor{torch::randn({100, 6}), torch::softmax(torch::randn({100, 10}), 1)};
  drift::metrics::ImageEmbedding gen{floor.features + 3.0, floor.probs};
  Tensor labels = torch::randint(10, {100}, torch::kInt64);
  auto v = drift::metrics::evaluate_images({"fid", "precision", "recall", "accuracy", "is"}, gen,
                                           labels, ref, floor, labels);
  std::map<std::string, double> m(v.begin(), v.end());
  for (const char* k : {"fid", "fid_floor", "precision", "precision_floor", "recall", "recall_floor",
                        "accuracy", "accuracy_floor", "accuracy_0", "accuracy_9", "is", "is_floor"})
    EXPECT_TRUE(m.count(k)) << k;
  EXPECT_EQ(v[0].first, "fid");
  EXPECT_NEAR(m["fid"] - m["fid_floor"], 6 * 9.0, 5.0);  // a shift of 3 in 6 dims
  EXPECT_LT(m["precision"], m["precision_floor"]);
  EXPECT_DOUBLE_EQ(m["accuracy"], m["accuracy_floor"]);  // same probabilities and labels
  EXPECT_DOUBLE_EQ(m["is"], m["is_floor"]);
  // Unconditional samples: no accuracy.
  auto u = drift::metrics::evaluate_images({"accuracy", "is"}, gen, Tensor(), ref, floor, labels);
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].first, "is");
  EXPECT_THROW(drift::metrics::evaluate_images({"mmd"}, gen, labels, ref, floor, labels),
               std::invalid_argument);
}

// ---------------------------------------------------------------- the evaluator
TEST(Evaluator, ChecksumMismatchNamesFileAndBothHashes) {
  drift::test::ScratchDir dir("evaluator");
  const std::string path = dir / "ev.pt";
  auto ev = drift::metrics::Evaluator::untrained(5);
  auto sha = ev.save(path);
  ASSERT_TRUE(sha.ok()) << sha.status();
  const std::string wrong(64, 'a');
  auto bad = drift::metrics::Evaluator::load(path, wrong);
  ASSERT_FALSE(bad.ok());
  const std::string msg(bad.status().message());
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find(*sha), std::string::npos) << msg;
  EXPECT_NE(msg.find(wrong), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // The right hash loads the same network.
  auto good = drift::metrics::Evaluator::load(path, *sha);
  ASSERT_TRUE(good.ok()) << good.status();
  Tensor x = torch::rand({4, 1, 32, 32}) * 2 - 1;
  EXPECT_TRUE(torch::allclose(good->embed(x).probs, ev.embed(x).probs));
  EXPECT_EQ(good->embed(x).features.sizes(), (std::vector<int64_t>{4, 128}));
  // Wrong image shapes are refused with the expected shape.
  try {
    good->embed(torch::zeros({2, 3, 32, 32}));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[N, 1, 32, 32]"), std::string::npos) << e.what();
  }
}

TEST(Evaluator, CommittedWeightsReach90PercentOnTheTestSplit) {
  const std::string path = drift::metrics::default_evaluator_path();
  auto ev = drift::metrics::Evaluator::load(path);
  ASSERT_TRUE(ev.ok()) << ev.status();
  auto test = drift::data::load_fashion_mnist("test");
  ASSERT_TRUE(test.ok()) << test.status();
  auto e = ev->embed(drift::data::pixels_to_float(test->images));
  const double acc = drift::metrics::top1_accuracy(e, test->labels);
  std::cout << "evaluator test accuracy: " << acc << "\n";
  EXPECT_GE(acc, 0.90);
}

// ---------------------------------------------------------------- inside runs
TEST(Evaluator, TrainerEvaluatesImagesAtSeveralAlphas) {
  auto exp = drift::config::parse_experiment(R"(
[experiment]
seed = 1
[data]
dataset = "fashion_mnist"
[generator]
plugin = "mlp"
width = 32
depth = 1
use_alpha = true
[train]
steps = 2
n_classes = 10
n_gen = 4
n_pos = 4
n_unc = 2
cfg_alpha_max = 3.0
warmup = 1
[eval]
n_samples = 100
metrics = ["fid", "precision", "recall", "accuracy", "is", "mmd"]
cfg_alphas = [1.5, 2.5]
)", "/tmp/test_image_metrics.toml");
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto cfg = drift::config::resolve_cell(*exp, 0, drift::test::default_registry());
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  drift::train::CellRecorder rec;
  auto o = drift::train::train_cell(*cfg, drift::test::default_registry(), rec);
  ASSERT_EQ(o.status, "done") << o.error;
  const auto& t = rec.eval_table();
  ASSERT_EQ(t.rows(), 1u);
  auto val = [&](const std::string& c) { return std::get<double>(t.at(0, c)); };
  for (const char* c : {"fid", "fid_floor", "precision", "precision_floor", "recall", "recall_floor",
                        "accuracy", "accuracy_floor", "accuracy_0", "is", "is_floor", "fid/alpha_1.5",
                        "fid/alpha_2.5", "accuracy/alpha_1.5", "accuracy_9/alpha_2.5", "is/alpha_2.5"})
    EXPECT_TRUE(std::isfinite(val(c))) << c;
  EXPECT_FALSE(t.has_column("fid_floor/alpha_1.5"));
  EXPECT_FALSE(t.has_column("mmd"));  // a vector metric: skipped for images
  // An untrained generator is far from the data; real training images are not.
  EXPECT_GT(val("fid"), 5 * val("fid_floor"));
  EXPECT_GT(val("accuracy_floor"), 0.85);
  // alpha is an input of the generator: other samples, other values.
  EXPECT_NE(val("fid/alpha_1.5"), val("fid/alpha_2.5"));

  drift::test::ScratchDir dir("trainer-images");
  ASSERT_TRUE(drift::train::write_cell_file(dir / "cell.h5", *cfg, o, &rec, "").ok());
  auto f = drift::io::H5File::open_read(dir / "cell.h5");
  ASSERT_TRUE(f.ok()) << f.status();
  for (const char* a : {"1.5", "2.5"}) {
    const std::string name = std::string("cell/alpha_samples/") + a + "/0000000002";
    auto info = f->info(name);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->shape, (std::vector<int64_t>{100, 1, 32, 32})) << name;
    EXPECT_TRUE(f->is_dataset(name + "_labels")) << name;
  }
}

// ---------------------------------------------------------------- standard FID (TorchScript)
TEST(Inception, TorchScriptModuleGetsReplicatedResizedImages) {
  drift::test::ScratchDir dir("inception");
  const std::string module = dir / "inception.pt";
  // forward: asserts [B, 3, 299, 299] and returns (per-channel means, B): the
  // first tuple element is taken as the features.
  const std::string py =
      "import torch, sys\n"
      "class M(torch.nn.Module):\n"
      "    def forward(self, x):\n"
      "        assert x.shape[1] == 3 and x.shape[2] == 299 and x.shape[3] == 299\n"
      "        return (x.mean(dim=(2, 3)), x.shape[0])\n"
      "torch.jit.script(M()).save(sys.argv[1])\n";
  const std::string script = dir / "make.py";
  FILE* f = std::fopen(script.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(py.c_str(), f);
  std::fclose(f);
  std::string out;
  ASSERT_EQ(drift::test::run_command(std::string(DRIFT_SOURCE_DIR) + "/.venv/bin/python " + script +
                                         " " + module, &out), 0) << out;
  auto inc = drift::metrics::InceptionFeatures::load(module);
  ASSERT_TRUE(inc.ok()) << inc.status();
  // Constant images stay constant through the bilinear resize.
  Tensor c = torch::linspace(-1, 1, 7);
  Tensor images = c.view({7, 1, 1, 1}).expand({7, 1, 32, 32}).contiguous();
  auto feats = inc->features(images, 3);  // batches of 3, 3, 1
  ASSERT_TRUE(feats.ok()) << feats.status();
  ASSERT_EQ(feats->sizes(), (std::vector<int64_t>{7, 3}));
  EXPECT_TRUE(torch::allclose(*feats, c.unsqueeze(1).expand({7, 3}), 1e-5, 1e-6));
  // Shifted images: the FID in this feature space grows.
  EXPECT_GT(drift::metrics::frechet_distance(*feats, *inc->features(images * 0.5 + 0.4)), 0.1);

  auto missing = drift::metrics::InceptionFeatures::load(dir / "nope.pt");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find(dir / "nope.pt"), std::string::npos);
}

}  // namespace
