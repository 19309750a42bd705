#include "train/pretrain_stage.hpp"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "drift/pretrain.hpp"
#include "drift/weights.hpp"
#include "io/file_lock.hpp"

namespace drift::train {
namespace {

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

absl::StatusOr<PretrainReport> ensure_encoder_weights(const config::ExperimentConfig& cfg,
                                                      const runtime::Registry& reg,
                                                      FeatureEncoder& encoder,
                                                      torch::Device device,
                                                      const PhaseFn& on_phase) {
  PretrainReport report;
  auto* enc = dynamic_cast<PretrainableEncoder*>(&encoder);
  if (enc == nullptr) return report;
  report.weights = enc->weights_path();
  if (enc->has_weights()) return report;

  if (auto st = make_parent_dirs(report.weights); !st.ok()) return st;
  const std::string lock_path = report.weights + ".lock";
  const std::string who = cfg.encoder.name;
  auto note = [&](const std::string& text) {
    if (!on_phase) return;
    PhaseLog p;
    p.phase = "pretrain";
    p.name = who;
    p.note = text;
    on_phase(p);
  };
  note(absl::StrCat("waiting for ", lock_path, " (another process may be pre-training it)"));
  io::FileLock lock(lock_path);
  if (!lock.ok())
    return absl::PermissionDeniedError(absl::StrCat(lock_path, ": cannot lock (pre-training of ",
                                                    cfg.encoder.name, "): ", lock.error()));
  if (file_exists(report.weights)) {  // another cell pre-trained it while we waited
    if (auto st = enc->load_weights(); !st.ok()) return st;
    return report;
  }
  note(absl::StrCat("starting: ", report.weights));

  DatasetContext dctx;
  dctx.seed = static_cast<uint64_t>(cfg.seed);
  dctx.base_dir = std::filesystem::path(cfg.file).parent_path().string();
  dctx.split = "train";
  auto data = reg.make_dataset(cfg.data.name, cfg.data.params, dctx);
  if (!data.ok()) return data.status();

  PretrainContext ctx;
  ctx.data = data->get();
  ctx.device = device;
  const auto t_start = std::chrono::steady_clock::now();
  ctx.progress = [&who, &on_phase, t_start](int64_t step, int64_t steps, double loss) {
    if (on_phase) {
      PhaseLog p;
      p.phase = "pretrain";
      p.name = who;
      p.done = step;
      p.total = steps;
      p.loss = loss;
      on_phase(p);
    }
    if (step == 1 || step == steps || step % std::max<int64_t>(1, steps / 20) == 0) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double rate = el > 0 ? static_cast<double>(step) / el : 0.0;
      const double eta = rate > 0 ? static_cast<double>(steps - step) / rate : 0.0;
      std::fprintf(stderr, "%s: pre-training step %lld/%lld, loss %.5g, %.2f steps/s, ETA %.0f s\n",
                   who.c_str(), static_cast<long long>(step), static_cast<long long>(steps), loss, rate,
                   eta);
    }
  };
  std::fprintf(stderr, "%s: pre-training %s on %s\n", who.c_str(), report.weights.c_str(),
               cfg.data.name.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status st;
  try {
    st = enc->pretrain(ctx);
  } catch (const std::exception& e) {
    std::string what = e.what();
    st = absl::InternalError(absl::StrCat(report.weights, ": pre-training of ", who,
                                          " failed: ", what.substr(0, what.find('\n'))));
  }
  if (!st.ok()) return st;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report.pretrained = true;
  if (auto ld = enc->load_weights(); !ld.ok()) return ld;
  std::fprintf(stderr, "%s: wrote %s in %.1f s\n", who.c_str(), report.weights.c_str(),
               report.seconds);
  return report;
}

}  // namespace drift::train
