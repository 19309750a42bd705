#include "train/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "config/schema.hpp"
#include "dist/comm.hpp"
#include "drift/field.hpp"
#include "metrics/evaluator.hpp"
#include "metrics/images.hpp"
#include "metrics/lowdim.hpp"
#include "train/checkpoint.hpp"
#include "train/ema.hpp"
#include "train/feature_cache.hpp"
#include "train/feature_log.hpp"
#include "train/policy_eval.hpp"
#include "train/pretrain_stage.hpp"
#include "train/real_pool.hpp"
#include "train/schedule.hpp"

namespace drift::train {
namespace {

using Clock = std::chrono::steady_clock;
// CPU seconds (user + system, all threads) this process has used.
double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

at::Generator cpu_rng(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// Seeds derived from the cell seed, one stream per purpose, so that changing
// one setting (say, eval size) does not shift the training noise.
enum Stream : uint64_t { kInit = 0, kNoise = 1, kData = 2, kEval = 3, kCfg = 4, kMetric = 5 };
uint64_t stream_seed(int64_t seed, Stream s) {
  return static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(s) * 7919ULL + 17ULL;
}

// Flattens [G, L, N, D] features into the kernel's [B = G*L, N, D].
torch::Tensor as_problems(const torch::Tensor& f) {
  return f.reshape({f.size(0) * f.size(1), f.size(2), f.size(3)});
}

// alpha ~ alpha^-k on [lo, hi] by inverse CDF (docs/method.md §5); with
// probability p1, alpha = 1.
double draw_alpha(at::Generator& rng, double lo, double hi, double k, double p1) {
  double u = torch::rand({1}, rng, torch::kFloat64).item<double>();
  double v = torch::rand({1}, rng, torch::kFloat64).item<double>();
  if (u < p1 || hi <= lo) return lo <= 1.0 ? 1.0 : lo;
  if (std::abs(k - 1.0) < 1e-12) return lo * std::pow(hi / lo, v);
  double a = std::pow(lo, 1.0 - k), b = std::pow(hi, 1.0 - k);
  return std::pow(a + v * (b - a), 1.0 / (1.0 - k));
}

// [train] autocast = "bf16": generator and encoder forward passes of the
// training step under bf16 autocast on the device that trains (CUDA or CPU),
// for the scope of one object.
class Bf16Autocast {
 public:
  Bf16Autocast(bool on, at::DeviceType device) : on_(on), device_(device) {
    if (!on_) return;
    prev_enabled_ = at::autocast::is_autocast_enabled(device_);
    prev_dtype_ = at::autocast::get_autocast_dtype(device_);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~Bf16Autocast() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, prev_enabled_);
    at::autocast::set_autocast_dtype(device_, prev_dtype_);
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool on_;
  at::DeviceType device_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// Whether this CPU computes bf16 natively (x86: AVX512_BF16 or AMX-BF16);
// elsewhere bf16 autocast on the CPU is emulated and slower than float32.
bool cpu_has_native_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
#else
  return false;
#endif
}

// The drift field always runs in float32 (or float64): reduced-precision
// features (bf16 autocast) are cast up, differentiably, before the kernel.
torch::Tensor field_precision(const torch::Tensor& t) {
  return t.is_floating_point() && t.element_size() < 4 ? t.to(torch::kFloat32) : t;
}

bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// The runaway check of [train] runaway_factor: empty when the generated
// training samples x ([N, ...]) stay within `factor` times the positives'
// ([G, n_pos, ...]) spread of the positives' mean, else the one-line reason.
// Spread = RMS distance of a positive from that mean; with no spread (a single
// positive, constant data) there is no scale to compare with and no check.
std::string runaway_check(const torch::Tensor& x, const torch::Tensor& pos, double factor) {
  torch::NoGradGuard no_grad;
  const torch::Tensor p = pos.detach().flatten(0, 1).flatten(1).to(torch::kFloat64);  // [Np, D]
  const torch::Tensor g = x.detach().flatten(1).to(torch::kFloat64);                  // [N, D]
  const torch::Tensor centre = p.mean(0, /*keepdim=*/true);
  const double spread = (p - centre).square().sum(1).mean().sqrt().item<double>();
  const double dist = (g - centre).square().sum(1).mean().sqrt().item<double>();
  if (!(spread > 0) || !(dist > factor * spread)) return {};
  return absl::StrFormat(
      "the generated samples ran away from the data: their RMS distance from the positives' "
      "mean is %.4g, more than runaway_factor = %g times the positives' spread %.4g "
      "([train] runaway_factor; 0 turns the check off)",
      dist, factor, spread);
}

// Data parallelism: every feature of one rank's share [G, L, n, D] (n samples
// per group) all-gathered along the sample axis, in one collective: rank r's
// samples land at [r*n, (r+1)*n) of each group, which is where they sit in
// the one-process batch. Detached (the drift field is computed without
// gradient).
std::vector<Feature> gather_features(const std::vector<Feature>& local, dist::Comm& comm, int64_t step,
                                     const std::string& what) {
  if (comm.world() == 1) return local;
  std::vector<torch::Tensor> flat;
  std::vector<int64_t> widths;
  for (const auto& f : local) {
    const auto& v = f.value;  // [G, L, n, D]
    auto t = v.detach().permute({2, 0, 1, 3}).reshape({v.size(2), -1});  // [n, G*L*D]
    widths.push_back(t.size(1));
    flat.push_back(t.to(torch::kFloat32));
  }
  const torch::Tensor all = comm.all_gather(torch::cat(flat, 1), 0, step, what);  // [W*n, total]
  std::vector<Feature> out;
  int64_t col = 0;
  for (size_t j = 0; j < local.size(); ++j) {
    const auto& v = local[j].value;
    auto t = all.narrow(1, col, widths[j]).reshape({all.size(0), v.size(0), v.size(1), v.size(3)});
    out.push_back({local[j].name, t.permute({1, 2, 0, 3}).contiguous().to(v.scalar_type())});
    col += widths[j];
  }
  return out;
}

// A joint kernel over (condition, sample) (ConditionalBatch::cond_weight):
// every feature [G, L, N, D] gets `weight` times the samples' flattened
// conditions cond [G, N, *C] appended, [G, L, N, D + prod(C)]. The condition
// part is a constant (no gradient).
std::vector<Feature> with_conditions(const std::vector<Feature>& feats, const torch::Tensor& cond, double weight) {
  std::vector<Feature> out;
  for (const auto& f : feats) {
    const auto& v = f.value;
    torch::Tensor c = (cond.flatten(2) * weight).to(v.options()).unsqueeze(1).expand({v.size(0), v.size(1), v.size(2), -1});
    out.push_back({f.name, torch::cat({v, c}, 3)});
  }
  return out;
}

}  // namespace

uint64_t eval_noise_seed(int64_t seed) { return stream_seed(seed, kEval) + 1; }

GeneratorContext generator_context(const config::ExperimentConfig& cfg, const Dataset& dataset) {
  GeneratorContext gctx;
  gctx.sample_shape = dataset.sample_shape();
  gctx.n_classes = cfg.train.get_int("n_classes") > 0 ? dataset.num_classes() : 0;
  gctx.cond_shape = dataset.cond_shape();
  gctx.seed = stream_seed(cfg.seed, kInit);
  return gctx;
}

std::vector<double> scheduled_temperatures(const config::ExperimentConfig& cfg, int64_t step) {
  std::vector<double> t = cfg.temperatures;
  if (cfg.temperature_schedule == "exponential")
    for (double& tau : t)
      tau = std::max(tau * std::exp(-cfg.temperature_decay * static_cast<double>(step - 1)),
                     cfg.temperature_min);
  return t;
}

CellOutcome train_cell(const config::ExperimentConfig& cfg, const runtime::Registry& reg,
                       CellSink& sink, const ProgressFn& progress, dist::Comm* comm_in,
                       const PhaseFn& on_phase, const CheckpointHooks& checkpoints) {
  auto setup = [&](const std::string& note) {
    if (!on_phase) return;
    PhaseLog p;
    p.phase = "setup";
    p.note = note;
    on_phase(p);
  };
  setup("building the generator and loading the data");
  std::unique_ptr<dist::Comm> own_comm;
  if (!comm_in) own_comm = dist::single_process();
  dist::Comm& comm = comm_in ? *comm_in : *own_comm;
  const int world = comm.world(), rank = comm.rank();
  const bool rank0 = rank == 0;
  const auto t_start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  CellOutcome outcome;
  // A resumed cell's times include those of the processes before it.
  const TrainState* resume = checkpoints.resume;
  const double wall_before = resume ? resume->wall_time_s : 0, cpu_before = resume ? resume->cpu_time_s : 0;
  auto stamp_times = [&] {
    outcome.wall_time_s = wall_before + since(t_start);
    outcome.cpu_time_s = process_cpu_seconds() - cpu_start;  // this process; total_cpu() adds the rest
  };
  auto fail = [&](const absl::Status& st) {
    outcome.status = "failed";
    outcome.error = std::string(st.message());
    stamp_times();
    return outcome;
  };
  const auto& tr = cfg.train;
  const auto& ev = cfg.eval;
  const int64_t seed = cfg.seed;
  if (tr.get_int("nproc") != world)
    return fail(absl::InvalidArgumentError(absl::StrCat(
        cfg.file, ": [train] nproc = ", tr.get_int("nproc"), " but this cell runs on ", world,
        world == 1 ? " process" : " ranks")));
  for (const char* key : {"n_gen", "n_pos"})
    if (tr.get_int(key) % world != 0)
      return fail(absl::InvalidArgumentError(absl::StrCat(
          cfg.file, ": [train] ", key, " = ", tr.get_int(key), " is not divisible by nproc = ", world,
          " (each rank takes an equal share of every class's samples)")));

  torch::Device device(torch::kCPU);
  if (cfg.device == "cuda" || cfg.device == "auto") {
    if (torch::hasCUDA()) device = torch::Device(torch::kCUDA, 0);
    else if (cfg.device == "cuda")
      return fail(absl::FailedPreconditionError(
          absl::StrCat(cfg.file, ": [experiment] device = \"cuda\" but no CUDA device is available")));
  }
  outcome.device = device.str();
  // bf16 autocast on the device that trains; on a CPU without native bf16 it
  // is emulated, which is slower than float32: say so once.
  const bool autocast_bf16 = cfg.train.get_string("autocast") == "bf16";
  if (autocast_bf16 && !device.is_cuda() && !cpu_has_native_bf16())
    std::cerr << "drift: [train] autocast = \"bf16\" on a CPU without AVX512_BF16 or AMX-BF16: "
                 "bf16 is emulated there and slower than float32\n";
  torch::manual_seed(stream_seed(seed, kInit));

  // --- components ---------------------------------------------------------------
  DatasetContext dctx;
  dctx.seed = static_cast<uint64_t>(seed);
  dctx.base_dir = std::filesystem::path(cfg.file).parent_path().string();
  // [eval] reference = "validation": train on the rest of the training split.
  const std::string reference = ev.get_string("reference");
  if (reference == "validation") {
    if (cfg.data.name != "fashion_mnist")
      return fail(absl::InvalidArgumentError(absl::StrCat(
          cfg.file, ": [eval] reference = \"validation\" needs [data] dataset = \"fashion_mnist\" (got \"",
          cfg.data.name, "\"); other datasets have no held-out validation images")));
    dctx.split = "fit";
  }
  auto data = reg.make_dataset(cfg.data.name, cfg.data.params, dctx);
  if (!data.ok()) return fail(data.status());
  Dataset& dataset = **data;
  const auto shape = dataset.sample_shape();
  const int64_t data_classes = dataset.num_classes();
  const int64_t n_classes = tr.get_int("n_classes");
  const bool conditional = n_classes > 0;
  if (conditional && data_classes == 0)
    return fail(absl::InvalidArgumentError(absl::StrCat(
        cfg.file, ": [train] n_classes = ", n_classes, " but dataset '", cfg.data.name,
        "' has no labels (use n_classes = 0)")));
  if (conditional && n_classes > data_classes)
    return fail(absl::InvalidArgumentError(absl::StrCat(
        cfg.file, ": [train] n_classes = ", n_classes, " but dataset '", cfg.data.name, "' has only ",
        data_classes, " classes")));

  // Datasets with conditions (demonstrations): [train] n_cond groups per step,
  // formed by the [formation] component (drift/formation.hpp).
  const bool observed = !dataset.cond_shape().empty();
  const int64_t n_cond = tr.get_int("n_cond");
  std::unique_ptr<Formation> formation;
  if (observed) {
    if (conditional)
      return fail(absl::InvalidArgumentError(absl::StrCat(
          cfg.file, ": [train] n_classes = ", n_classes, " but dataset '", cfg.data.name,
          "' conditions on observations, not classes (use n_classes = 0 and n_cond)")));
    if (n_cond <= 0)
      return fail(absl::InvalidArgumentError(absl::StrCat(
          cfg.file, ": dataset '", cfg.data.name, "' conditions on observations: set [train] n_cond, the "
          "observations per step (each one group of n_gen generated samples)")));
    if (tr.get_string("feature_cache") != "off")
      return fail(absl::InvalidArgumentError(absl::StrCat(
          cfg.file, ": [train] feature_cache works with class-conditional and unconditional data only; "
          "dataset '", cfg.data.name, "' conditions on observations (use feature_cache = \"off\")")));
    FormationContext fctx;
    fctx.seed = stream_seed(seed, kData);
    config::ComponentConfig fc = cfg.formation;
    if (fc.name.empty()) {  // [formation] not written: the schema's default, with its defaults
      fc.name = std::get<std::string>(*config::find_section("formation")->keys.front().default_value);
      auto p = reg.validate(ComponentKind::Formation, fc.name, {}, cfg.file + ": [formation]");
      if (!p.ok()) return fail(p.status());
      fc.params = *p;
    }
    auto f = reg.make_formation(fc.name, fc.params, fctx);
    if (!f.ok()) return fail(f.status());
    formation = *std::move(f);
    if (auto st = formation->prepare(dataset); !st.ok())
      return fail(absl::Status(st.code(), absl::StrCat("formation '", fc.name, "': ", st.message())));
  }

  auto gen_or = reg.make_generator(cfg.generator.name, cfg.generator.params,
                                   generator_context(cfg, dataset));
  if (!gen_or.ok()) return fail(gen_or.status());
  auto generator = *gen_or;
  generator->to(device);

  EncoderContext ectx;
  ectx.sample_shape = shape;
  ectx.seed = stream_seed(seed, kInit);
  ectx.base_dir = dctx.base_dir;
  auto enc_or = reg.make_encoder(cfg.encoder.name, cfg.encoder.params, ectx);
  if (!enc_or.ok()) return fail(enc_or.status());
  auto encoder = *enc_or;
  // An encoder whose weights file is missing is pre-trained here, once (docs/method.md §8).
  auto pretrained = ensure_encoder_weights(cfg, reg, *encoder, device, on_phase);
  if (!pretrained.ok()) return fail(pretrained.status());
  outcome.pretrain_time_s = pretrained->seconds + (resume ? resume->pretrain_time_s : 0);
  encoder->to(device);
  encoder->eval();
  for (auto& p : encoder->parameters()) p.set_requires_grad(false);

  // [train] feature_cache: the real samples' features from a table built once
  // (train/feature_cache.hpp); every rank holds it and looks up all of them.
  std::optional<FeatureCache> feature_cache;
  if (const std::string fc = tr.get_string("feature_cache"); fc != "off") {
    if (dataset.size() <= 0)
      return fail(absl::InvalidArgumentError(absl::StrCat(
          cfg.file, ": [train] feature_cache = \"", fc, "\" needs a finite, indexed dataset; '",
          cfg.data.name, "' is not one (use feature_cache = \"off\")")));
    FeatureCacheSpec spec;
    spec.dir = tr.get_string("feature_cache_dir");
    spec.encoder = cfg.encoder.name;
    spec.encoder_params = canonical_params(cfg.encoder.params);
    spec.dataset = cfg.data.name;
    spec.dataset_params = canonical_params(cfg.data.params);
    spec.split = dctx.split;
    spec.dtype = fc == "float16" ? torch::kFloat16 : torch::kFloat32;
    spec.on_phase = on_phase;
    auto c = FeatureCache::open(spec, *encoder, dataset, device);
    if (!c.ok()) return fail(c.status());
    std::fprintf(stderr,
                 "drift: feature cache %s: %s in %.1f s (building: %.1f s, %.1f CPU s), %.1f MB on disk, "
                 "%.1f MB in memory\n",
                 c->path().c_str(), c->built() ? "built" : "loaded", c->open_seconds(), c->build_seconds(),
                 c->build_cpu_seconds(), static_cast<double>(c->file_bytes()) / 1e6,
                 static_cast<double>(c->table_bytes()) / 1e6);
    feature_cache.emplace(std::move(*c));
  }
  // The dataset positions of drawn samples, for the cache's lookups.
  auto positions = [&](const torch::Tensor& index) {
    if (!index.defined())
      throw std::runtime_error(absl::StrCat(
          "dataset '", cfg.data.name, "' has size() > 0 but its sample() leaves DataBatch::index "
          "undefined ([train] feature_cache needs it)"));
    return index;
  };

  setup("preparing the evaluation and the first step");
  auto kernel_or = reg.make_kernel(cfg.kernel.name, cfg.kernel.params);
  if (!kernel_or.ok()) return fail(kernel_or.status());
  auto norm_or = reg.make_normalizer(cfg.normalizer.name, cfg.normalizer.params);
  if (!norm_or.ok()) return fail(norm_or.status());
  const DriftKernel& kernel = **kernel_or;
  const Normalizer& normalizer = **norm_or;

  // --- optimisation -------------------------------------------------------------
  auto params = generator->parameters();
  const double base_lr = tr.get_float("lr");
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(base_lr)
                                      .betas({tr.get_float("beta1"), tr.get_float("beta2")})
                                      .weight_decay(tr.get_float("weight_decay")));
  // The weight averages, each checkpointed under its name: [train] ema first
  // (samples, exported weights, the plain eval columns), then each [eval]
  // ema_rates one, evaluated beside as "<metric>/ema_<rate>".
  struct Average {
    std::string name;
    double rate;
    Ema ema;
  };
  std::vector<Average> averages;
  const double ema_warmup = tr.get_float("ema_warmup");
  averages.push_back({"ema", tr.get_float("ema"), Ema(*generator)});
  for (double r : ev.get_float_list("ema_rates"))
    averages.push_back({"ema_" + format_param_value(ParamValue{r}), r, Ema(*generator)});
  Ema& ema = averages.front().ema;  // the vector is complete: the reference stays valid

  const int64_t steps = tr.get_int("steps");
  const int64_t n_gen = tr.get_int("n_gen"), n_pos = tr.get_int("n_pos"), n_unc = tr.get_int("n_unc");
  const int64_t warmup = tr.get_int("warmup");
  const std::string schedule = tr.get_string("lr_schedule");
  const double grad_clip = tr.get_float("grad_clip");
  const double runaway_factor = tr.get_float("runaway_factor");
  const int64_t eval_every = tr.get_int("eval_every"), log_every = tr.get_int("log_every");
  const int64_t sample_every = tr.get_int("sample_every");
  const double a_lo = tr.get_float("cfg_alpha_min"), a_hi = tr.get_float("cfg_alpha_max");
  const double a_k = tr.get_float("cfg_alpha_power"), a_p1 = tr.get_float("cfg_p_alpha1");
  const auto& temps = cfg.temperatures;

  auto noise_rng = cpu_rng(stream_seed(seed, kNoise));
  auto cfg_rng = cpu_rng(stream_seed(seed, kCfg));
  auto data_rng = cpu_rng(stream_seed(seed, kData) + 1);
  RealPool pool(dataset, std::max<int64_t>(data_classes, 1), tr.get_int("queue_len"),
                tr.get_int("global_queue_len"), tr.get_int("queue_push"),
                cpu_rng(stream_seed(seed, kData)));

  // --- checkpoints (train/checkpoint.hpp) ------------------------------------------
  // Every random stream the steps draw from: the trainer's own, and the
  // process-wide ones a generator may use (dropout).
  const at::Generator default_cpu = at::detail::getDefaultCPUGenerator();
  std::vector<std::pair<std::string, at::Generator>> streams = {
      {"noise", noise_rng}, {"cfg", cfg_rng}, {"data", data_rng}, {"default_cpu", default_cpu}};
  if (device.is_cuda()) streams.emplace_back("default_cuda", at::globalContext().defaultGenerator(device));
  const auto named_params = generator->named_parameters();
  auto optimizer_state = [&](const torch::Tensor& p) -> torch::optim::AdamWParamState* {
    auto it = opt.state().find(p.unsafeGetTensorImpl());
    return it == opt.state().end() ? nullptr : static_cast<torch::optim::AdamWParamState*>(it->second.get());
  };
  auto capture_state = [&](int64_t step, double cpu_total) {
    TrainState st;
    st.step = step;
    st.threads = at::get_num_threads();
    st.wall_time_s = wall_before + since(t_start);
    st.cpu_time_s = cpu_total;
    st.pretrain_time_s = outcome.pretrain_time_s;
    for (const auto& kv : named_params) st.put("generator/" + kv.key(), kv.value());
    for (const auto& kv : generator->named_buffers()) st.put("generator/" + kv.key(), kv.value());
    for (const auto& a : averages)
      for (size_t i = 0; i < named_params.size(); ++i) st.put(a.name + "/" + named_params[i].key(), a.ema.shadow()[i]);
    for (const auto& kv : named_params)
      if (auto* a = optimizer_state(kv.value())) {
        const std::string o = "optimizer/" + kv.key() + "/";
        st.put(o + "step", torch::tensor(a->step(), torch::kLong));
        st.put(o + "exp_avg", a->exp_avg());
        st.put(o + "exp_avg_sq", a->exp_avg_sq());
        if (a->max_exp_avg_sq().defined()) st.put(o + "max_exp_avg_sq", a->max_exp_avg_sq());
      }
    for (auto& [name, g] : streams) {
      std::lock_guard<std::mutex> lock(g.mutex());
      st.put("rng/" + name, g.get_state());
    }
    pool.save(st, "pool/");
    for (const auto& [name, t] : dataset.state()) st.put("dataset/" + name, t);
    return st;
  };
  auto restore_state = [&](const TrainState& st) -> absl::Status {
    torch::NoGradGuard no_grad;
    auto copy_into = [&](const std::string& name, torch::Tensor dst) -> absl::Status {
      auto t = st.get(name);
      if (!t.ok()) return t.status();
      if (t->sizes() != dst.sizes())
        return absl::InvalidArgumentError(absl::StrCat("the checkpoint's ", name, " is ", io::shape_string(*t),
                                                       ", the generator's is ", io::shape_string(dst)));
      dst.copy_(*t);
      return absl::OkStatus();
    };
    for (const auto& kv : named_params)
      if (auto s = copy_into("generator/" + kv.key(), kv.value()); !s.ok()) return s;
    for (const auto& kv : generator->named_buffers())
      if (auto s = copy_into("generator/" + kv.key(), kv.value()); !s.ok()) return s;
    auto restore_ema = [&](Ema& e, const std::string& prefix) -> absl::Status {
      std::vector<torch::Tensor> shadow;
      for (size_t i = 0; i < named_params.size(); ++i) {
        torch::Tensor t = e.shadow()[i].clone();
        if (auto s = copy_into(prefix + "/" + named_params[i].key(), t); !s.ok()) return s;
        shadow.push_back(t);
      }
      e.set_shadow(shadow);
      return absl::OkStatus();
    };
    for (auto& a : averages)
      if (auto s = restore_ema(a.ema, a.name); !s.ok()) return s;
    for (const auto& kv : named_params) {
      const std::string o = "optimizer/" + kv.key() + "/";
      if (!st.has(o + "step")) continue;  // no gradient yet: no AdamW state
      auto a = std::make_unique<torch::optim::AdamWParamState>();
      a->step(st.get(o + "step")->item<int64_t>());
      for (const char* part : {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) {
        if (!st.has(o + part)) continue;
        torch::Tensor t = torch::empty_like(kv.value());
        if (auto s = copy_into(o + part, t); !s.ok()) return s;
        if (std::string(part) == "exp_avg") a->exp_avg(t);
        else if (std::string(part) == "exp_avg_sq") a->exp_avg_sq(t);
        else a->max_exp_avg_sq(t);
      }
      opt.state()[kv.value().unsafeGetTensorImpl()] = std::move(a);
    }
    for (auto& [name, g] : streams) {
      auto t = st.get("rng/" + name);
      if (!t.ok()) return t.status();
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_state(*t);
    }
    std::vector<std::pair<std::string, torch::Tensor>> data_state;
    for (const auto& [name, t] : st.tensors)
      if (name.rfind("dataset/", 0) == 0) data_state.emplace_back(name.substr(8), t);
    try {
      dataset.set_state(data_state);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("dataset '", cfg.data.name, "': ", e.what()));
    }
    return pool.load(st, "pool/");
  };

  // --- evaluation ---------------------------------------------------------------
  const int64_t n_eval = ev.get_int("n_samples");
  const auto metric_names = ev.get_string_list("metrics");
  auto eval_rng = cpu_rng(stream_seed(seed, kEval));
  DataBatch real_a = dataset.sample(n_eval, eval_rng);
  DataBatch real_b = dataset.sample(n_eval, eval_rng);
  const bool lowdim = shape.size() == 1;
  if (rank0) sink.on_real_samples(real_a.x);
  // Metrics that do not apply to the samples are skipped: low-dimensional ones
  // for [D] samples, image ones (metrics/images.hpp) for [1, 32, 32] samples,
  // under the fixed evaluator against the Fashion-MNIST test split, with
  // real_b (training images) as the floor.
  std::vector<std::string> lowdim_names, image_names;
  for (const auto& m : metric_names)
    (metrics::is_image_metric(m) ? image_names : lowdim_names).push_back(m);
  std::optional<metrics::Evaluator> evaluator;
  std::optional<metrics::ImageMetrics> image_metrics;
  if (rank0 && shape == std::vector<int64_t>{1, 32, 32} && !image_names.empty()) {
    auto ev_or = metrics::Evaluator::load();
    if (!ev_or.ok()) return fail(ev_or.status());
    evaluator.emplace(std::move(*ev_or));
    auto im = metrics::fashion_mnist_image_metrics(*evaluator, image_names, real_b.x,
                                                   conditional ? real_b.labels : torch::Tensor(),
                                                   ev.get_int("knn_k"), "", reference);
    if (!im.ok()) return fail(im.status());
    image_metrics.emplace(std::move(*im));
  }
  // Guidance values evaluated without retraining (class-conditional runs only).
  const std::vector<double> eval_alphas =
      conditional ? ev.get_float_list("cfg_alphas") : std::vector<double>{};

  // alpha <= 0: the generator's default (alpha = 1). `which`: the weights
  // ([train] ema's average unless told).
  auto generate_eval = [&](double alpha = 0, Ema* which = nullptr) {
    torch::NoGradGuard no_grad;
    Ema::Scope use_ema(which ? *which : ema);
    generator->eval();
    GenerateRequest req;
    req.n = n_eval;
    req.device = device;
    req.rng = cpu_rng(eval_noise_seed(seed));  // same noise at every evaluation
    if (conditional) req.labels = real_a.labels.to(device);
    if (observed) req.cond = real_a.cond.to(device);
    if (alpha > 0) req.alpha = torch::full({n_eval}, alpha, torch::kFloat32).to(device);
    // A copy: the generator may return a view of its (EMA-swapped) parameters.
    auto x = generator->generate(req).to(torch::kCPU, torch::kFloat32).clone();
    generator->train();
    return x;
  };
  auto metric_values = [&](const torch::Tensor& x) {
    std::vector<std::pair<std::string, double>> v;
    if (lowdim && !lowdim_names.empty())
      v = metrics::evaluate_lowdim(lowdim_names, x, real_a.x, real_b.x, dataset.modes(),
                                   stream_seed(seed, kMetric));
    if (image_metrics)
      for (auto& nv : image_metrics->evaluate(evaluator->embed(x),
                                              conditional ? real_a.labels : torch::Tensor()))
        v.push_back(std::move(nv));
    return v;
  };
  // Policies: closed-loop rollouts of the EMA generator on the demonstrations'
  // task (train/policy_eval.hpp), every evaluation from the same seeds.
  std::unique_ptr<PolicyEvaluator> policy_eval;
  if (observed && rank0) {
    auto pe = PolicyEvaluator::create(ev, dataset, cfg.file);
    if (!pe.ok()) return fail(pe.status());
    policy_eval = *std::move(pe);
  }
  std::string rollout_error;
  auto rollout_values = [&](int64_t step) {
    Ema::Scope use_ema(ema);
    generator->eval();
    CellSink::Rollouts paths;
    auto v = policy_eval->evaluate(*generator, device, cpu_rng(eval_noise_seed(seed) + 1),  // same noise every time
                                   step == steps ? &paths : nullptr);
    generator->train();
    if (!v.ok()) {
      rollout_error = std::string(v.status().message());
      return std::vector<std::pair<std::string, double>>();
    }
    if (step == steps) {
      paths.step = step;
      sink.on_rollouts(paths);
    }
    return *std::move(v);
  };
  auto evaluate = [&](int64_t step, const torch::Tensor& x) {
    EvalLog log;
    log.step = step;
    log.values = metric_values(x);
    if (policy_eval)
      for (auto& nv : rollout_values(step)) log.values.push_back(std::move(nv));
    // The same metrics at each [eval] cfg_alphas value, as "<metric>/alpha_<a>"
    // (floors do not depend on alpha: not repeated); the samples of the last
    // step are kept per alpha.
    for (double a : eval_alphas) {
      auto xa = generate_eval(a);
      const std::string suffix = "/alpha_" + format_param_value(ParamValue{a});
      for (const auto& [name, v] : metric_values(xa))
        if (!absl::EndsWith(name, "_floor")) log.values.emplace_back(name + suffix, v);
      if (step == steps) sink.on_variant_samples(step, "alpha", a, xa, real_a.labels);
    }
    // [eval] ema_rates: the same metrics with each further average of the
    // weights, as "<metric>/ema_<rate>"; the samples of the last step are kept
    // per rate.
    for (size_t e = 1; e < averages.size(); ++e) {
      auto xe = generate_eval(0, &averages[e].ema);
      for (const auto& [name, v] : metric_values(xe))
        if (!absl::EndsWith(name, "_floor")) log.values.emplace_back(name + "/" + averages[e].name, v);
      if (step == steps) sink.on_variant_samples(step, "ema", averages[e].rate, xe, real_a.labels);
    }
    sink.on_eval(log);
    return log;
  };
  auto feature_logger = FeatureLogger::create(ev, *encoder, cfg.encoder.name, real_a.x, device);
  if (!feature_logger.ok()) return fail(feature_logger.status());
  auto log_features = [&](int64_t step, const torch::Tensor& x) {
    if (feature_logger->enabled())
      sink.on_features(feature_logger->log(step, x, *encoder, kernel, normalizer,
                                                           scheduled_temperatures(cfg, step)));
  };
  auto record_samples = [&](int64_t step, const torch::Tensor& x) {
    sink.on_samples(step, x, conditional ? real_a.labels : torch::Tensor());
  };
  if (sample_every > 0 && rank0 && !resume) record_samples(0, generate_eval());

  // Data parallelism: this rank's rows of the [G * n_gen] generated batch
  // (rank r: samples [r*nl, (r+1)*nl) of every group), its share of the
  // positives, and of the negatives when they divide evenly.
  const int64_t G_all = conditional ? n_classes : observed ? n_cond : 1;
  const int64_t nl = n_gen / world, pl = n_pos / world;
  const bool split_neg = n_unc > 0 && n_unc % world == 0;
  torch::Tensor my_rows;
  if (world > 1)
    my_rows = (torch::arange(G_all, torch::kLong).unsqueeze(1) * n_gen + rank * nl +
               torch::arange(nl, torch::kLong).unsqueeze(0))
                  .flatten();
  // The CPU seconds of every rank, once the ranks are done.
  auto total_cpu = [&](int64_t step) {
    stamp_times();
    if (world > 1) {
      auto t = torch::tensor({outcome.cpu_time_s}, torch::kFloat64);
      comm.all_reduce_sum(t, step, "cpu-time all-reduce");
      outcome.cpu_time_s = t.item<double>();
    }
    outcome.cpu_time_s += cpu_before;
  };
  auto last_checkpoint = Clock::now();
  // Whether rank 0 wants a periodic checkpoint after `step`.
  auto checkpoint_due = [&](int64_t step) {
    if (!rank0 || !checkpoints.save || step >= steps) return false;
    if (checkpoints.every_steps > 0 && step % checkpoints.every_steps == 0) return true;
    return checkpoints.every_minutes > 0 && since(last_checkpoint) >= 60.0 * checkpoints.every_minutes;
  };

  // [train] profile: seconds per phase of the step (StepLog::phases).
  const bool profile = tr.get_bool("profile");
  enum Phase { kPData, kPGenerate, kPEncodeGen, kPEncodeReal, kPComm, kPField, kPBackEnc, kPBackGen, kPOptim, kPhases };
  static const char* kPhaseNames[kPhases] = {"data", "generate", "encode_gen", "encode_real", "comm",
                                              "field", "backward_encoder", "backward_generator", "optimizer"};
  double phase_s[kPhases];
  Clock::time_point lap_t0;
  // Adds the time since the last lap to `phase`.
  auto lap = [&](Phase phase) {
    if (!profile) return;
    const auto now = Clock::now();
    phase_s[phase] += std::chrono::duration<double>(now - lap_t0).count();
    lap_t0 = now;
  };

  // Resuming: the state after the checkpoint's step replaces the one built
  // above (after the evaluation's real samples were drawn, as in the first run).
  const int64_t first_step = resume ? resume->step + 1 : 1;
  if (resume) {
    if (resume->step < 0 || resume->step >= steps)
      return fail(absl::InvalidArgumentError(absl::StrCat("the checkpoint is at step ", resume->step,
                                                          " but the cell has ", steps, " steps")));
    if (auto st = restore_state(*resume); !st.ok())
      return fail(absl::Status(st.code(), absl::StrCat("cannot resume from the checkpoint: ", st.message())));
  }

  // --- the loop -----------------------------------------------------------------
  if (checkpoints.training_started) checkpoints.training_started();
  for (int64_t step = first_step; step <= steps; ++step) {
    const auto t0 = Clock::now();
    lap_t0 = t0;
    std::fill(phase_s, phase_s + kPhases, 0.0);
    const double lr = learning_rate(step, steps, base_lr, warmup, schedule);
    for (auto& g : opt.param_groups())
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);

    // Real samples and the generator's conditioning for this step.
    const int64_t G = G_all;
    torch::Tensor labels, alpha_gen, pos, neg, w_neg;
    ConditionalBatch formed;  // observed: this step's groups
    torch::Tensor pos_index, neg_index;  // [G, n] dataset positions (with the feature cache)
    if (conditional) {
      pool.refill();
      auto classes = torch::randperm(data_classes, cfg_rng, torch::kLong).slice(0, 0, n_classes);
      std::vector<torch::Tensor> pos_list, neg_list, pos_ix, neg_ix;
      std::vector<double> alphas;
      for (int64_t g = 0; g < G; ++g) {
        int64_t c = classes[g].item<int64_t>();
        RealSamples p = pool.sample_class(c, n_pos);
        pos_list.push_back(p.x);
        if (feature_cache) pos_ix.push_back(positions(p.index));
        alphas.push_back(a_hi > 1.0 ? draw_alpha(cfg_rng, a_lo, a_hi, a_k, a_p1) : 1.0);
        if (n_unc > 0) {
          RealSamples q = pool.sample_any(n_unc);
          neg_list.push_back(q.x);
          if (feature_cache) neg_ix.push_back(positions(q.index));
        }
      }
      if (feature_cache) {
        pos_index = torch::stack(pos_ix);
        if (n_unc > 0) neg_index = torch::stack(neg_ix);
      }
      labels = classes.repeat_interleave(n_gen);
      auto alpha_t = torch::tensor(alphas, torch::kFloat64).to(torch::kFloat32);
      alpha_gen = alpha_t.repeat_interleave(n_gen);
      pos = torch::stack(pos_list);
      if (n_unc > 0) {
        neg = torch::stack(neg_list);
        // w = (alpha - 1)(N_gen - 1) / N_unc (docs/method.md §5)
        w_neg = ((alpha_t - 1.0) * static_cast<double>(n_gen - 1) / static_cast<double>(n_unc))
                    .unsqueeze(1)
                    .expand({G, n_unc});
      }
    } else if (observed) {
      try {
        formed = formation->form(dataset, G, n_gen, n_pos, data_rng);
      } catch (const std::exception& e) {
        return fail(absl::InvalidArgumentError(absl::StrCat(cfg.file, ": ", e.what())));
      }
      pos = formed.pos;
    } else {
      DataBatch b = dataset.sample(n_pos, data_rng);
      pos = b.x.unsqueeze(0);
      if (feature_cache) pos_index = positions(b.index).unsqueeze(0);
    }
    pos = pos.to(device);
    if (neg.defined()) {
      neg = neg.to(device);
      w_neg = w_neg.to(device);
    }

    // Generate (with gradient) and encode: generated samples WITH gradient,
    // positives and negatives without (docs/method.md §4).
    std::string runaway;  // non-empty: the generated samples have run away from the data
    GenerateRequest req;
    req.n = G * n_gen;
    req.device = device;
    req.rng = noise_rng;
    if (conditional) {
      req.labels = labels.to(device);
      req.alpha = alpha_gen.to(device);
    }
    if (observed) req.cond = formed.gen_cond.flatten(0, 1).to(device);
    if (world > 1) req.rows = my_rows;
    lap(kPData);
    std::vector<Feature> gen_feats, pos_feats, neg_feats;
    torch::Tensor x;  // this rank's generated samples (with gradient)
    {
      const Bf16Autocast autocast(autocast_bf16, device.type());
      x = generator->generate(req);
      // A generator that ignores req.rows returned the whole batch.
      if (world > 1 && x.size(0) == G * n_gen) x = x.index_select(0, my_rows.to(x.device()));
      lap(kPGenerate);
      if (runaway_factor > 0) {
        const torch::Tensor all_x =
            world > 1 ? comm.all_gather(x.detach().contiguous(), 0, step, "generated-sample all-gather") : x;
        lap(kPComm);
        runaway = runaway_check(all_x, pos, runaway_factor);
        lap(kPData);
      }
      std::vector<int64_t> gshape{G, world > 1 ? nl : n_gen};
      gshape.insert(gshape.end(), shape.begin(), shape.end());
      gen_feats = encoder->encode(x.view(gshape));
      if (formed.cond_weight > 0)
        gen_feats = with_conditions(
            gen_feats, world > 1 ? formed.gen_cond.narrow(1, rank * nl, nl).to(device) : formed.gen_cond.to(device),
            formed.cond_weight);
      lap(kPEncodeGen);
      torch::NoGradGuard no_grad;
      if (feature_cache) {
        pos_feats = feature_cache->lookup(pos_index);
        if (neg.defined()) neg_feats = feature_cache->lookup(neg_index);
        lap(kPEncodeReal);
      } else if (world > 1) {
        auto mine = encoder->encode(pos.narrow(1, rank * pl, pl));
        lap(kPEncodeReal);
        pos_feats = gather_features(mine, comm, step, "positive-feature all-gather");
        lap(kPComm);
        if (neg.defined()) {
          if (split_neg) {
            auto mine_neg = encoder->encode(neg.narrow(1, rank * (n_unc / world), n_unc / world));
            lap(kPEncodeReal);
            neg_feats = gather_features(mine_neg, comm, step, "negative-feature all-gather");
            lap(kPComm);
          } else {
            neg_feats = encoder->encode(neg);
            lap(kPEncodeReal);
          }
        }
      } else {
        pos_feats = encoder->encode(pos);
        if (neg.defined()) neg_feats = encoder->encode(neg);
        lap(kPEncodeReal);
      }
    }
    if (formed.cond_weight > 0) pos_feats = with_conditions(pos_feats, formed.pos_cond.to(device), formed.cond_weight);
    // The whole batch's generated features (every rank's share), for the field.
    const std::vector<Feature> all_gen_feats =
        world > 1 ? gather_features(gen_feats, comm, step, "generated-feature all-gather") : gen_feats;
    lap(kPComm);

    // One drift problem per feature; the loss is summed over features.
    torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(device));
    StepLog log;
    log.step = step;
    log.temperatures = temps;
    log.m_tau.assign(temps.size(), 0.0);
    const std::vector<double> step_temps = scheduled_temperatures(cfg, step);
    if (cfg.temperature_schedule != "constant") log.tau = step_temps;
    for (size_t j = 0; j < gen_feats.size(); ++j) {
      DriftInputs in;
      in.gen = field_precision(as_problems(gen_feats[j].value));
      in.pos = field_precision(as_problems(pos_feats.at(j).value));
      const int64_t L = gen_feats[j].value.size(1);
      if (!neg_feats.empty()) {
        in.neg = field_precision(as_problems(neg_feats.at(j).value));
        in.w_neg = w_neg.repeat_interleave(L, 0);
      }
      in.temperatures = step_temps;
      DriftOutputs out;
      {
        torch::NoGradGuard no_grad;
        DriftInputs frozen = in;
        frozen.gen = world > 1 ? field_precision(as_problems(all_gen_feats[j].value)) : in.gen.detach();
        out = kernel.compute(canonicalize_drift_inputs(frozen), normalizer);
      }
      if (world > 1) {
        // This rank's rows of the goal; its share of the batch mean.
        DriftOutputs mine = out;
        mine.goal = out.goal.narrow(1, rank * nl, nl);
        loss = loss + drift_loss(in.gen, mine).mean() * (static_cast<double>(nl) / static_cast<double>(n_gen));
      } else {
        loss = loss + drift_loss(in.gen, out).mean();
      }
      auto m = out.m_tau.to(torch::kCPU, torch::kFloat64);
      std::vector<double> mv(m.data_ptr<double>(), m.data_ptr<double>() + m.numel());
      for (size_t t = 0; t < mv.size() && t < temps.size(); ++t)
        log.m_tau[t] += mv[t] / static_cast<double>(gen_feats.size());
      if (gen_feats.size() > 1) log.m_tau_per_feature.emplace_back(gen_feats[j].name, mv);
    }

    opt.zero_grad();
    lap(kPField);
    bool stop_agreed = false, checkpoint_agreed = false;  // with nproc > 1: set at the all-reduce
    if (profile) {
      // In two parts, to time them: through the encoder to the samples, then
      // through the generator. The same gradients as loss.backward().
      auto gx = torch::autograd::grad({loss}, {x});
      lap(kPBackEnc);
      x.backward(gx[0]);
      lap(kPBackGen);
    } else {
      loss.backward();
    }
    if (world > 1) {
      // One all-reduce for every gradient and the loss: the sums over ranks
      // are the one-process gradient and loss.
      std::vector<torch::Tensor> parts;
      for (auto& p : params)
        if (p.grad().defined()) parts.push_back(p.grad().flatten());
      parts.push_back(loss.detach().reshape({1}).to(parts.empty() ? loss.options() : parts.front().options()));
      // And the checkpoint flags, so that every rank stops after the same step:
      // a stop asked of any rank, a periodic checkpoint as rank 0 decides.
      const bool stop_here = checkpoints.stop_requested && checkpoints.stop_requested();
      parts.push_back(torch::tensor({stop_here ? 1.0f : 0.0f, checkpoint_due(step) ? 1.0f : 0.0f},
                                    parts.front().options()));
      torch::Tensor flat = torch::cat(parts);
      comm.all_reduce_sum(flat, step, "gradient all-reduce");
      int64_t off = 0;
      for (auto& p : params) {
        if (!p.grad().defined()) continue;
        const int64_t n = p.grad().numel();
        p.mutable_grad().copy_(flat.narrow(0, off, n).view_as(p.grad()));
        off += n;
      }
      log.loss = flat[off].item<double>();
      stop_agreed = flat[off + 1].item<float>() > 0;
      checkpoint_agreed = flat[off + 2].item<float>() > 0;
      lap(kPComm);
    } else {
      log.loss = loss.item<double>();
    }
    log.grad_norm = grad_clip > 0
                        ? torch::nn::utils::clip_grad_norm_(params, grad_clip)
                        : torch::nn::utils::clip_grad_norm_(params, std::numeric_limits<double>::infinity());
    log.lr = lr;
    const bool finite = std::isfinite(log.loss) && all_finite(log.m_tau);
    if (finite) {
      opt.step();
      for (auto& a : averages) a.ema.update(ema_decay(step, a.rate, ema_warmup));
    }
    lap(kPOptim);
    if (profile) {
      for (int k = 0; k < kPhases; ++k) log.phases.emplace_back(kPhaseNames[k], phase_s[k]);
      double gather = 0, reduce = 1;
      for (const auto* fs : {&gen_feats, &pos_feats, &neg_feats}) {
        if (feature_cache && fs != &gen_feats) continue;  // looked up by every rank, not gathered
        for (const auto& f : *fs) gather += static_cast<double>(f.value.numel()) / (fs == &gen_feats ? 1 : world);
      }
      for (const auto& p : params) reduce += static_cast<double>(p.numel());
      log.volumes = {{"gather_floats", gather}, {"reduce_floats", reduce}};
    }
    log.seconds = since(t0);
    if (rank0 && (!finite || step % log_every == 0 || step == steps)) sink.on_step(log);
    outcome.steps_done = step;
    // Every rank sees the same loss, m_tau and gathered samples: they stop together.
    if (!finite) {
      outcome.status = "diverged";
      outcome.error = absl::StrCat("step ", step, ": loss = ", log.loss, ", m_tau = [",
                                   absl::StrJoin(log.m_tau, ", "), "] is not finite");
      total_cpu(step);
      return outcome;
    }
    if (!runaway.empty()) {
      outcome.status = "diverged";
      outcome.error = absl::StrCat("step ", step, ": ", runaway);
      total_cpu(step);
      return outcome;
    }

    const bool last = step == steps;
    const bool do_eval = last || (eval_every > 0 && step % eval_every == 0);
    // sample_every = 0: the samples of every evaluation are kept, so that each
    // evaluated step can be scored again later (drift-eval --step).
    const bool do_samples = last || (sample_every > 0 ? step % sample_every == 0 : do_eval);
    std::optional<EvalLog> evaluated;
    if (rank0 && (do_eval || do_samples)) {
      auto xs = generate_eval();
      if (do_eval) {
        evaluated = evaluate(step, xs);
        if (!rollout_error.empty())
          return fail(absl::InternalError(absl::StrCat("step ", step, ": the rollouts failed: ", rollout_error)));
        log_features(step, xs);
      }
      if (do_samples) record_samples(step, xs);
    }
    if (progress && rank0) progress(steps, log, evaluated ? &*evaluated : nullptr);

    // A checkpoint after this step: periodic, or before stopping on request.
    if (world == 1) {
      stop_agreed = checkpoints.stop_requested && checkpoints.stop_requested();
      checkpoint_agreed = checkpoint_due(step);
    }
    if (step < steps && (stop_agreed || checkpoint_agreed)) {
      total_cpu(step);  // every rank takes part (nproc > 1)
      if (rank0 && checkpoints.save) {
        const auto t_save = Clock::now();
        auto st = checkpoints.save(capture_state(step, outcome.cpu_time_s));
        if (!st.ok()) std::fprintf(stderr, "drift: checkpoint after step %lld not written: %s\n",
                                   static_cast<long long>(step), std::string(st.message()).c_str());
        else std::fprintf(stderr, "drift: checkpoint after step %lld written in %.3f s\n",
                          static_cast<long long>(step), since(t_save));
      }
      last_checkpoint = Clock::now();
      if (stop_agreed) {
        outcome.status = "paused";
        return outcome;
      }
    }
  }
  if (rank0) {
    // The EMA weights the evaluations used, for drift-export.
    torch::NoGradGuard no_grad;
    Ema::Scope use_ema(ema);
    std::vector<std::pair<std::string, torch::Tensor>> state;
    for (const auto& kv : generator->named_parameters())
      state.emplace_back(kv.key(), kv.value().detach().to(torch::kCPU).clone());
    for (const auto& kv : generator->named_buffers())
      state.emplace_back(kv.key(), kv.value().detach().to(torch::kCPU).clone());
    sink.on_generator_state(state);
  }
  outcome.status = "done";
  total_cpu(steps + 1);
  return outcome;
}

}  // namespace drift::train
