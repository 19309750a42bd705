// Checkpoints (framework/src/train/checkpoint.hpp): a cell stopped after step k
// and resumed from its checkpoint ends bitwise equal to the uninterrupted run;
// a checkpoint of another configuration is refused naming the difference; a
// corrupt one falls back to the previous one, then to step 0.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "config/experiment.hpp"
#include "io/h5.hpp"
#include "io/table.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"
#include "train/cell_file.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

namespace {

using drift::train::CellRecorder;
using drift::train::CheckpointHooks;
using drift::train::TrainState;

drift::config::ExperimentConfig make_cfg(const std::string& toml) {
  auto exp = drift::config::parse_experiment(toml, "/tmp/test_checkpoint.toml");
  EXPECT_TRUE(exp.ok()) << exp.status();
  auto cfg = drift::config::resolve_cell(*exp, 0, drift::test::default_registry());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  return *cfg;
}

// Low-dimensional: MLP generator, EMA (and a further one, [eval] ema_rates),
// evaluations and samples along the way.
const char* kToy = R"(
[experiment]
name = "ck"
seed = 11
[data]
dataset = "bimodal"
[generator]
plugin = "mlp"
width = 32
depth = 2
[train]
steps = 12
n_gen = 32
n_pos = 48
lr = 0.002
warmup = 3
lr_schedule = "cosine"
eval_every = 4
sample_every = 3
queue_len = 40
[eval]
n_samples = 64
ema_rates = [0.5]
)";

// Images: a class-conditional DiT with guidance (CFG negatives, alpha draws),
// EMA, the real-feature cache, per-class and global queues, feature logs.
std::string image_toml(const std::string& dir) {
  return R"(
[experiment]
name = "ck-img"
seed = 5
[data]
dataset = "images"
path = ")" + dir + R"(/set.h5"
[generator]
plugin = "dit"
hidden = 32
depth = 1
heads = 2
patch = 4
in_context = 2
[encoder]
plugin = "random_resnet"
widths = [8, 16]
blocks = [1, 1]
[kernel]
temperatures = [0.05, 0.2]
[train]
steps = 6
n_classes = 3
n_gen = 4
n_pos = 6
n_unc = 2
warmup = 1
ema = 0.9
eval_every = 2
sample_every = 2
queue_len = 8
global_queue_len = 20
queue_push = 5
feature_cache = "float32"
feature_cache_dir = ")" + dir + R"(/features"
[eval]
metrics = []
n_samples = 8
features = ["s2.mean"]
feature_samples = 8
)";
}

void write_image_set(const std::string& dir) {
  auto g = at::detail::createCPUGenerator(3);
  const torch::Tensor x = torch::randint(0, 256, {90, 1, 16, 16}, g, torch::kLong).to(torch::kUInt8);
  ASSERT_TRUE(drift::io::write_h5_atomically(dir + "/set.h5", [&](drift::io::H5File& f) {
                auto st = f.write("images", x);
                return st.ok() ? f.write("labels", torch::arange(90, torch::kLong).remainder(3)) : st;
              }).ok());
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Every logged value of `b` equals `a`'s bit for bit (timings excepted).
void expect_same_logs(const CellRecorder& a, const CellRecorder& b) {
  for (const auto* which : {"train", "eval"}) {
    const auto& ta = std::string(which) == "train" ? a.train_table() : a.eval_table();
    const auto& tb = std::string(which) == "train" ? b.train_table() : b.eval_table();
    ASSERT_EQ(ta.rows(), tb.rows()) << which;
    ASSERT_EQ(ta.columns().size(), tb.columns().size()) << which;
    for (const auto& c : ta.columns()) {
      if (c.name == "seconds" || c.name.rfind("t_", 0) == 0) continue;
      ASSERT_TRUE(tb.has_column(c.name)) << which << " " << c.name;
      for (size_t r = 0; r < ta.rows(); ++r) {
        const auto& x = ta.at(r, c.name);
        const auto& y = tb.at(r, c.name);
        if (std::holds_alternative<double>(x))
          EXPECT_TRUE(same_bits(std::get<double>(x), std::get<double>(y)))
              << which << " " << c.name << " row " << r << ": " << std::get<double>(x) << " vs "
              << std::get<double>(y);
        else
          EXPECT_EQ(x, y) << which << " " << c.name << " row " << r;
      }
    }
  }
  ASSERT_EQ(a.samples().size(), b.samples().size());
  for (size_t i = 0; i < a.samples().size(); ++i) {
    EXPECT_EQ(a.samples()[i].first, b.samples()[i].first);
    EXPECT_TRUE(torch::equal(a.samples()[i].second.first, b.samples()[i].second.first)) << "samples " << i;
  }
  ASSERT_EQ(a.feature_logs().size(), b.feature_logs().size());
  for (size_t i = 0; i < a.feature_logs().size(); ++i) {
    const auto& fa = a.feature_logs()[i];
    const auto& fb = b.feature_logs()[i];
    EXPECT_EQ(fa.step, fb.step);
    ASSERT_EQ(fa.features.size(), fb.features.size());
    for (size_t j = 0; j < fa.features.size(); ++j) {
      EXPECT_TRUE(torch::equal(fa.features[j].gen, fb.features[j].gen)) << "features " << i;
      EXPECT_EQ(fa.features[j].drift_norm, fb.features[j].drift_norm);
    }
  }
  ASSERT_EQ(a.generator_state().size(), b.generator_state().size());
  ASSERT_FALSE(a.generator_state().empty());
  for (size_t i = 0; i < a.generator_state().size(); ++i)
    EXPECT_TRUE(torch::equal(a.generator_state()[i].second, b.generator_state()[i].second))
        << a.generator_state()[i].first;
}

// Trains `cfg` to the end with hooks whose stop request comes after step
// `stop_after` (0: never); checkpoints go to `ckpt`.
drift::train::CellOutcome run(const drift::config::ExperimentConfig& cfg, CellRecorder& rec,
                              const std::string& ckpt, int64_t stop_after, int64_t every_steps = 0,
                              const TrainState* resume = nullptr, std::vector<int64_t>* saved = nullptr) {
  const auto key = drift::train::checkpoint_key(cfg, drift::test::default_registry());
  int64_t last_step = 0;
  CheckpointHooks hooks;
  hooks.resume = resume;
  hooks.every_steps = every_steps;
  hooks.stop_requested = [&] { return stop_after > 0 && last_step >= stop_after; };
  hooks.save = [&](const TrainState& s) {
    if (saved) saved->push_back(s.step);
    return drift::train::write_checkpoint(ckpt, key, cfg, s, rec);
  };
  auto progress = [&](int64_t, const drift::train::StepLog& log, const drift::train::EvalLog*) {
    last_step = log.step;
  };
  return drift::train::train_cell(cfg, drift::test::default_registry(), rec, progress, nullptr, {}, hooks);
}

drift::train::LoadedCheckpoint load(const drift::config::ExperimentConfig& cfg, const std::string& ckpt) {
  std::string note;
  auto c = drift::train::load_checkpoint(ckpt, drift::train::checkpoint_key(cfg, drift::test::default_registry()),
                                         cfg, &note);
  EXPECT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->has_value()) << note;
  return std::move(**c);
}

// Stops after `stop_after`, resumes from the file, and compares with `ref`.
void stop_and_resume(const drift::config::ExperimentConfig& cfg, const CellRecorder& ref,
                     const drift::train::CellOutcome& ref_out, const std::string& ckpt, int64_t stop_after) {
  CellRecorder first;
  auto o1 = run(cfg, first, ckpt, stop_after);
  ASSERT_EQ(o1.status, "paused") << o1.error;
  EXPECT_EQ(o1.steps_done, stop_after);
  auto loaded = load(cfg, ckpt);
  EXPECT_EQ(loaded.state.step, stop_after);
  EXPECT_TRUE(loaded.note.empty()) << loaded.note;
  CellRecorder resumed = std::move(loaded.recorder);
  auto o2 = run(cfg, resumed, ckpt, 0, 0, &loaded.state);
  ASSERT_EQ(o2.status, "done") << o2.error;
  EXPECT_EQ(o2.steps_done, ref_out.steps_done);
  // The resumed cell's times include the first process's.
  EXPECT_GE(o2.cpu_time_s, loaded.state.cpu_time_s);
  EXPECT_GE(o2.wall_time_s, loaded.state.wall_time_s);
  expect_same_logs(ref, resumed);
}

}  // namespace

TEST(Checkpoint, ToyCellResumesBitForBit) {
  drift::test::ScratchDir dir("ckpt-toy");
  const auto cfg = make_cfg(kToy);
  CellRecorder ref;
  auto o = run(cfg, ref, dir / "ref.ckpt", 0);
  ASSERT_EQ(o.status, "done") << o.error;
  for (int64_t k : {1, 5, 11}) {
    SCOPED_TRACE(k);
    stop_and_resume(cfg, ref, o, dir / ("k" + std::to_string(k) + ".ckpt"), k);
  }
}

TEST(Checkpoint, ImageCellWithFeatureCacheGuidanceAndEmaResumesBitForBit) {
  drift::test::ScratchDir dir("ckpt-img");
  write_image_set(dir.path());
  const auto cfg = make_cfg(image_toml(dir.path()));
  CellRecorder ref;
  auto o = run(cfg, ref, dir / "ref.ckpt", 0);
  ASSERT_EQ(o.status, "done") << o.error;
  ASSERT_FALSE(ref.feature_logs().empty());
  stop_and_resume(cfg, ref, o, dir / "a.ckpt", 3);
}

TEST(Checkpoint, StopAfterTheLastStepChangesNothing) {
  drift::test::ScratchDir dir("ckpt-last");
  const auto cfg = make_cfg(kToy);
  CellRecorder rec;
  auto o = run(cfg, rec, dir / "c.ckpt", 12);
  EXPECT_EQ(o.status, "done");
  EXPECT_NE(::access((dir / "c.ckpt").c_str(), F_OK), 0);  // nothing to resume: none written
}

// Periodic checkpoints every 4 steps; the last one (step 8) is the file, the
// one before (step 4) its .prev: what is left after a kill -9 at step 10.
// Resuming from either ends equal to the uninterrupted run.
TEST(Checkpoint, PeriodicCheckpointsKeepThePreviousAndEitherResumes) {
  drift::test::ScratchDir dir("ckpt-every");
  const auto cfg = make_cfg(kToy);
  CellRecorder ref;
  std::vector<int64_t> saved;
  auto o = run(cfg, ref, dir / "c.ckpt", 0, 4, nullptr, &saved);
  ASSERT_EQ(o.status, "done");
  EXPECT_EQ(saved, (std::vector<int64_t>{4, 8}));  // none after the last step (12)
  auto newest = load(cfg, dir / "c.ckpt");
  EXPECT_EQ(newest.state.step, 8);
  // The newest made unreadable: the previous one is used, and the note says so.
  { std::ofstream(dir / "c.ckpt", std::ios::trunc) << "not an HDF5 file"; }
  auto prev = load(cfg, dir / "c.ckpt");
  EXPECT_EQ(prev.state.step, 4);
  EXPECT_NE(prev.note.find("c.ckpt is unreadable"), std::string::npos) << prev.note;
  EXPECT_NE(prev.note.find("resuming from " + dir / "c.ckpt.prev at step 4"), std::string::npos) << prev.note;
  CellRecorder resumed = std::move(prev.recorder);
  ASSERT_EQ(resumed.train_table().rows(), 4u);
  auto o2 = run(cfg, resumed, dir / "d.ckpt", 0, 0, &prev.state);
  ASSERT_EQ(o2.status, "done") << o2.error;
  expect_same_logs(ref, resumed);
  // Both unreadable (the previous one truncated): step 0, and the note says why.
  {
    std::ifstream in(dir / "c.ckpt.prev", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "c.ckpt.prev", std::ios::trunc | std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  std::string note;
  auto none = drift::train::load_checkpoint(
      dir / "c.ckpt", drift::train::checkpoint_key(cfg, drift::test::default_registry()), cfg, &note);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  EXPECT_NE(note.find("starting from step 0"), std::string::npos) << note;
  EXPECT_EQ(note.find('\n'), std::string::npos) << note;
}

TEST(Checkpoint, AnotherConfigurationOrVersionIsRefusedNamingTheDifference) {
  drift::test::ScratchDir dir("ckpt-key");
  const auto cfg = make_cfg(kToy);
  CellRecorder rec;
  ASSERT_EQ(run(cfg, rec, dir / "c.ckpt", 5).status, "paused");
  // Another learning rate.
  std::string other = kToy;
  other.replace(other.find("lr = 0.002"), 10, "lr = 0.003");
  std::string note;
  const auto other_cfg = make_cfg(other);
  auto c = drift::train::load_checkpoint(
      dir / "c.ckpt", drift::train::checkpoint_key(other_cfg, drift::test::default_registry()), other_cfg, &note);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(c.status().message());
  EXPECT_NE(msg.find(dir / "c.ckpt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[train] lr = 0.002 there, lr = 0.003 here"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--restart"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // Another plugin file or framework version: the key's field named.
  auto key = drift::train::checkpoint_key(cfg, drift::test::default_registry());
  for (auto& [field, value] : key)
    if (field == "plugin.generator") value = "mlp from /elsewhere/libother.so (sha256 0123456789abcdef)";
  c = drift::train::load_checkpoint(dir / "c.ckpt", key, cfg, &note);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("generator is 'mlp"), std::string::npos) << c.status();
  EXPECT_NE(std::string(c.status().message()).find("/elsewhere/libother.so"), std::string::npos) << c.status();
  key = drift::train::checkpoint_key(cfg, drift::test::default_registry());
  for (auto& [field, value] : key)
    if (field == "layout") value = "999";
  c = drift::train::load_checkpoint(dir / "c.ckpt", key, cfg, &note);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("state layout is version 1"), std::string::npos) << c.status();
}

// A framework upgrade that adds a key (here: a checkpoint written before
// [train] ema_warmup existed) resumes a paused cell when the key is left at its
// default, and refuses it, naming the key, when the cell sets it.
TEST(Checkpoint, AKeyAddedSinceAtItsDefaultResumes) {
  drift::test::ScratchDir dir("ckpt-upgrade");
  const auto cfg = make_cfg(kToy);
  auto before = cfg;  // what an older drift-run resolved: no ema_warmup line
  const std::string line = "ema_warmup = 10.0\n";
  const size_t at = before.resolved_toml.find(line);
  ASSERT_NE(at, std::string::npos) << before.resolved_toml;
  before.resolved_toml.erase(at, line.size());
  CellRecorder rec;
  ASSERT_EQ(run(before, rec, dir / "c.ckpt", 5).status, "paused");
  std::string note;
  auto c = drift::train::load_checkpoint(dir / "c.ckpt", drift::train::checkpoint_key(cfg, drift::test::default_registry()),
                                         cfg, &note);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_value()) << note;
  EXPECT_EQ((*c)->state.step, 5);
  std::string set = kToy;
  set.replace(set.find("lr = 0.002"), 10, "lr = 0.002\nema_warmup = 3.0");
  const auto set_cfg = make_cfg(set);
  c = drift::train::load_checkpoint(dir / "c.ckpt", drift::train::checkpoint_key(set_cfg, drift::test::default_registry()),
                                    set_cfg, &note);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(c.status().message()).find("[train] ema_warmup not set there, ema_warmup = 3.0 here"), std::string::npos)
      << c.status();
}

// How often a cell checkpoints is not part of what it computes: changing it
// reruns nothing, and it cannot be a grid axis.
TEST(Checkpoint, CheckpointKeysAreNotPartOfTheCellConfiguration) {
  const auto plain = make_cfg(kToy);
  std::string with = kToy;
  with.replace(with.find("[eval]"), 6, "checkpoint_every = 5\ncheckpoint_minutes = 2.5\nkeep_checkpoint = true\n[eval]");
  const auto cfg = make_cfg(with);
  EXPECT_EQ(cfg.resolved_toml, plain.resolved_toml);
  EXPECT_EQ(cfg.train.get_int("checkpoint_every"), 5);
  EXPECT_EQ(cfg.train.get_float("checkpoint_minutes"), 2.5);
  auto exp = drift::config::parse_experiment(std::string(kToy) + "[grid]\n\"train.checkpoint_every\" = [1, 2]\n",
                                             "/tmp/g.toml");
  ASSERT_FALSE(exp.ok());
  EXPECT_NE(std::string(exp.status().message()).find("'checkpoint_every' is not part of a cell's configuration"),
            std::string::npos)
      << exp.status();
}

// On a GPU: the random streams include the device's default generator; the
// resumed cell ends within float tolerance of the uninterrupted one (CUDA
// kernels need not be bitwise reproducible). Skipped without a CUDA device.
TEST(Checkpoint, CudaCellResumesWithinTolerance) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "no CUDA device: resuming on the GPU is NOT checked here (run "
                    "scripts/gpu/device_check.sh on a GPU machine)";
  drift::test::ScratchDir dir("ckpt-cuda");
  std::string toml = kToy;
  toml.replace(toml.find("seed = 11"), 9, "seed = 11\ndevice = \"cuda\"");
  const auto cfg = make_cfg(toml);
  CellRecorder ref, first;
  ASSERT_EQ(run(cfg, ref, dir / "ref.ckpt", 0).status, "done");
  ASSERT_EQ(run(cfg, first, dir / "c.ckpt", 5).status, "paused");
  auto loaded = load(cfg, dir / "c.ckpt");
  ASSERT_TRUE(loaded.state.has("rng/default_cuda"));
  CellRecorder resumed = std::move(loaded.recorder);
  auto o = run(cfg, resumed, dir / "d.ckpt", 0, 0, &loaded.state);
  ASSERT_EQ(o.status, "done") << o.error;
  ASSERT_EQ(ref.train_table().rows(), resumed.train_table().rows());
  for (size_t r = 0; r < ref.train_table().rows(); ++r) {
    const double a = std::get<double>(ref.train_table().at(r, "loss"));
    const double b = std::get<double>(resumed.train_table().at(r, "loss"));
    EXPECT_NEAR(a, b, 1e-4 * std::abs(a)) << "loss row " << r;
  }
  for (size_t i = 0; i < ref.generator_state().size(); ++i)
    EXPECT_TRUE(torch::allclose(ref.generator_state()[i].second, resumed.generator_state()[i].second, 1e-4, 1e-5))
        << ref.generator_state()[i].first;
}
