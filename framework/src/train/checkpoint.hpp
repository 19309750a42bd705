// A cell's checkpoint (docs/guide/running.md, "Checkpoints and resuming"):
// everything the rest of a cell depends on, so that a stopped cell resumes
// where it stopped and, on the CPU, ends bitwise equal to a run that was
// never stopped.
//
// File layout (<cells>/<id>.ckpt, HDF5; schemas/results.md):
//   /cell    the cell's logs so far, as in a cell file, with status "paused"
//   /state   step, times, and the state tensors by name:
//            generator/<name>   parameters and buffers
//            ema/<name>         the EMA copy of each parameter
//            optimizer/<name>/{step, exp_avg, exp_avg_sq[, max_exp_avg_sq]}
//            rng/<stream>       every random stream (uint8 state)
//            pool/...           the real-sample queues
//   /key     what the checkpoint must match to be loaded (attributes)
//
// The previous checkpoint is kept as <id>.ckpt.prev: a new one is written to
// a temporary file and renamed into place only when complete; a truncated or
// corrupt <id>.ckpt falls back to <id>.ckpt.prev, then to step 0.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/experiment.hpp"
#include "runtime/registry.hpp"
#include "train/cell_file.hpp"

namespace drift::train {

// The trainer's state after `step` completed steps.
struct TrainState {
  int64_t step = 0;
  double cpu_time_s = 0;       // of the cell so far (every earlier process included)
  double wall_time_s = 0;
  double pretrain_time_s = 0;
  int64_t threads = 0;         // intra-op threads of the process that wrote it
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // CPU tensors

  void put(const std::string& name, const torch::Tensor& t);
  // An error naming the tensor when it is absent.
  absl::StatusOr<torch::Tensor> get(const std::string& name) const;
  bool has(const std::string& name) const;
};

// What a checkpoint was written for: (field, value) pairs compared one by one
// when it is loaded, so that a refusal names the first difference.
using CheckpointKey = std::vector<std::pair<std::string, std::string>>;

// The state layout version: bumped when the names or meaning of the state
// tensors change; a checkpoint of another layout is refused.
inline constexpr int64_t kCheckpointLayout = 1;

// The cell's resolved configuration, the framework, LibTorch and layout
// versions, and each component's plugin file with its SHA-256.
CheckpointKey checkpoint_key(const config::ExperimentConfig& cfg, const runtime::Registry& reg);

// "<cells>/0003.ckpt" beside the cell file "<cells>/0003.h5".
std::string checkpoint_path_for(const std::string& cell_path);
// The previous checkpoint, kept until the next one is complete.
std::string previous_checkpoint_path(const std::string& checkpoint_path);

// Writes the checkpoint: `rec` holds the logs so far. The previous file becomes
// <path>.prev only once the new one is complete. Errors name the path (a full
// device is kResourceExhausted, io::is_disk_full).
absl::Status write_checkpoint(const std::string& path, const CheckpointKey& key,
                              const config::ExperimentConfig& cfg, const TrainState& state,
                              const CellRecorder& rec);

struct LoadedCheckpoint {
  std::string path;  // the file it came from (<id>.ckpt or <id>.ckpt.prev)
  TrainState state;
  CellRecorder recorder;
  std::string note;  // non-empty: what was wrong with the newer file, one line
};

// The newest usable checkpoint at `path` (or its .prev); nullopt when there is
// none (`note` then says why a file that exists was not usable, else empty).
// A checkpoint written for another configuration or version is an error
// (kFailedPrecondition) naming the first difference: never loaded silently.
// `key` is checkpoint_key(cfg, ...); its configuration is compared with
// config::same_configuration, so keys added since at their default (`cfg`'s
// `defaulted`) are no difference.
absl::StatusOr<std::optional<LoadedCheckpoint>> load_checkpoint(const std::string& path,
                                                                const CheckpointKey& key,
                                                                const config::ExperimentConfig& cfg,
                                                                std::string* note);

// The step a resume would start after (for `drift-run --status`): that of
// `path`, or of its .prev when `path` cannot be read; an error when neither can.
absl::StatusOr<int64_t> checkpoint_step(const std::string& path);

// Removes the checkpoint and its previous copy.
void remove_checkpoints(const std::string& path);

}  // namespace drift::train
