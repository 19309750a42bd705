// The training loop of one grid cell (docs/method.md §2, §5, §6, §7): a one-step
// generator trained with the drifting loss, AdamW, warm-up + constant/cosine
// learning rate, gradient clipping, EMA weights for evaluation.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"

#include "config/experiment.hpp"
#include "runtime/registry.hpp"
#include "train/phase.hpp"

namespace drift::dist {
class Comm;
}

namespace drift::train {

struct StepLog {
  int64_t step = 0;
  double loss = 0;
  std::vector<double> m_tau;  // per temperature, averaged over features
  std::vector<std::pair<std::string, std::vector<double>>> m_tau_per_feature;  // when > 1 feature
  std::vector<double> temperatures;  // the initial temperatures (names of the m_tau columns)
  std::vector<double> tau;           // the temperatures used at this step, when a schedule changes them
  double grad_norm = 0, lr = 0, seconds = 0;
  // [train] profile: seconds of each phase of the step, in step order
  // ("data", "generate", "encode_gen", "encode_real", "comm", "field",
  // "backward_encoder", "backward_generator", "optimizer"); empty otherwise.
  std::vector<std::pair<std::string, double>> phases;
  // [train] profile: what a data-parallel step moves, in float32 values:
  // "gather_floats" (this rank's features of generated, positive and
  // negative samples, what an all-gather sends; generated only with
  // [train] feature_cache, whose lookups every rank makes) and "reduce_floats" (the
  // gradient all-reduce: every generator parameter, plus the loss).
  std::vector<std::pair<std::string, double>> volumes;
};

struct EvalLog {
  int64_t step = 0;
  std::vector<std::pair<std::string, double>> values;  // metric name -> value (incl. *_floor)
};

// [eval] features: some features of generated and real samples at one
// evaluation (schemas/results.md, features/<name>/<step>).
struct FeatureLog {
  struct Entry {
    std::string name;
    torch::Tensor gen, real;  // [n, L, D] float32, CPU
    std::vector<double> drift_norm;  // per temperature: RMS over samples and locations of ||F_tau||
  };
  int64_t step = 0;
  std::vector<Entry> features;  // in the order of [eval] features
};

// Receives everything a cell produces, in order.
class CellSink {
 public:
  virtual ~CellSink() = default;
  virtual void on_step(const StepLog& log) = 0;
  virtual void on_eval(const EvalLog& log) = 0;
  virtual void on_features(const FeatureLog& /*log*/) {}
  virtual void on_samples(int64_t step, const torch::Tensor& x, const torch::Tensor& labels) = 0;
  // Samples of a variant of the default evaluation, generated after the last
  // step with the same noise and labels: `kind` "alpha" (guidance `value`,
  // [eval] cfg_alphas) or "ema" (the further weight average of rate `value`,
  // [eval] ema_rates). Stored as `<kind>_samples/<value>/<step>`.
  virtual void on_variant_samples(int64_t /*step*/, const std::string& /*kind*/, double /*value*/,
                                  const torch::Tensor& /*x*/, const torch::Tensor& /*labels*/) {}
  // The trained generator's EMA parameters and buffers (name -> CPU tensor),
  // once, after the last step of a cell that finished: what drift-export reads.
  virtual void on_generator_state(const std::vector<std::pair<std::string, torch::Tensor>>& /*state*/) {}
  virtual void on_real_samples(const torch::Tensor& x) = 0;
  // Policies: the closed-loop episodes of the last evaluation (step = the last
  // step): where the point was, [E, T, 2] float32 with NaN after an episode's
  // end, and each episode's success and mode (int64 [E]; -1: undecided).
  struct Rollouts {
    int64_t step = 0;
    std::string task;
    std::vector<std::string> mode_names;
    torch::Tensor positions, success, mode;
  };
  virtual void on_rollouts(const Rollouts& /*r*/) {}
};

struct CellOutcome {
  std::string status;  // "done", "diverged", "failed"; "paused": stopped by request after a checkpoint
  std::string error;   // one line, for diverged/failed
  int64_t steps_done = 0;
  double wall_time_s = 0;
  double cpu_time_s = 0;       // CPU seconds (user + system, all threads) of the cell
  double pretrain_time_s = 0;  // part of wall_time_s spent pre-training the encoder (0: none)
  std::string device;
};

struct TrainState;  // train/checkpoint.hpp

// Checkpoints (train/checkpoint.hpp): when the trainer hands its state to
// `save`, and the state it resumes from.
struct CheckpointHooks {
  // Resume after resume->step (its state replaces the freshly built one; the
  // sink must already hold the logs up to that step).
  const TrainState* resume = nullptr;
  int64_t every_steps = 0;     // a checkpoint every this many steps; 0: not by steps
  double every_minutes = 0;    // and/or when this much wall time passed since the last; 0: not by time
  // Polled after every step on every rank: true on any rank makes every rank
  // stop after the same step, with a checkpoint (status "paused"). A request
  // after the last step changes nothing.
  std::function<bool()> stop_requested;
  // Called once, when the state first becomes worth saving (just before the
  // first step): until then a stop request can simply end the process.
  std::function<void()> training_started;
  // Writes the state (rank 0). An error is reported on stderr; training goes on
  // (at a stop request the cell still stops, without a new checkpoint).
  std::function<absl::Status(const TrainState&)> save;
};

// The seed of the CPU generator that draws a cell's evaluation noise (the same
// noise at every evaluation): torch.manual_seed(eval_noise_seed(seed)) in
// Python makes an exported generator (drift-export) draw the same noise.
uint64_t eval_noise_seed(int64_t seed);

// What the trainer tells the generator of `cfg` when it creates it on `dataset`.
GeneratorContext generator_context(const config::ExperimentConfig& cfg, const Dataset& dataset);

// [kernel] temperature_schedule: the temperatures used at `step` (1-based).
std::vector<double> scheduled_temperatures(const config::ExperimentConfig& cfg, int64_t step);

// Called after each step, once its evaluation (if any) is done: (steps, the
// step's log, the evaluation of that step or null when it did not evaluate).
using ProgressFn = std::function<void(int64_t steps, const StepLog& log, const EvalLog* eval)>;

// Builds the cell's components from the registry and trains. Errors while
// building (bad dataset file, generator that refuses the data) come back as
// status "failed" with the message; a NaN/inf loss or m_tau stops with
// "diverged". Exceptions from the loop propagate to the caller.
//
// `comm` (null: one process) makes this one rank of a data-parallel cell
// ([train] nproc, docs/guide/distributed.md): the rank generates and encodes its
// share of each class's samples (with [train] feature_cache, every rank looks
// up the features of all real samples), features are all-gathered so that the drift
// field is the one-process field, gradients (and the loss) are all-reduced.
// Every rank draws the same random numbers, so all ranks hold the same
// parameters; only rank 0 evaluates and feeds `sink`. cpu_time_s is summed
// over the ranks.
//
// `on_phase` hears what the cell does before its first step: "setup"
// (building components, loading data, the evaluator and its reference),
// "pretrain" (train/pretrain_stage.hpp) and "cache" (train/feature_cache.hpp).
//
// `checkpoints` (optional) resumes from a saved state and saves one
// periodically and when a stop is requested; a resumed cell ends bitwise equal
// to an uninterrupted one on the CPU, given the same number of threads.
CellOutcome train_cell(const config::ExperimentConfig& cfg, const runtime::Registry& reg,
                       CellSink& sink, const ProgressFn& progress = {}, dist::Comm* comm = nullptr,
                       const PhaseFn& on_phase = {}, const CheckpointHooks& checkpoints = {});

}  // namespace drift::train
