// Sweeps on a Slurm cluster: `drift-run --slurm FILE` submits the cells of an
// experiment that are neither finished nor queued/running as one job array
// (one task per cell, each running `drift-run --array-task FILE --cell I`) and
// a merge job that depends on it; `drift-run --status FILE` says where every
// cell stands. The submissions are recorded beside the cell files
// (<output>.cells/slurm/submissions.tsv), which is how a later --slurm or
// --status knows which Slurm job runs which cell.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/experiment.hpp"

namespace drift::sweep {

// [slurm] (config/schema.cpp), after the command line's overrides.
struct SlurmSettings {
  std::string partition, time, mem, merge_time;
  int64_t cpus_per_task = 0, gpus_per_task = 0, max_running = 0;
  std::vector<std::string> sbatch_options;
};
SlurmSettings slurm_settings(const config::Experiment& exp);

// Command-line overrides of [slurm]; unset fields keep the file's values.
struct SlurmOverrides {
  std::optional<std::string> partition, time, mem;
  std::optional<int64_t> cpus_per_task, gpus_per_task, max_running;
  std::vector<std::string> sbatch_options;  // appended to the file's
  void apply(SlurmSettings* s) const;
};

struct SlurmSubmitOptions {
  std::string file;      // experiment file
  std::string cells;     // "" = all, else "3" or "0,2-5"
  bool restart = false;  // submit finished cells too
  bool dry_run = false;  // print the batch scripts and the sbatch commands, submit nothing
  std::string self_exe;  // absolute path of drift-run
  SlurmOverrides overrides;
};

// The two batch scripts of one submission (what --slurm --dry-run prints).
struct SlurmScripts {
  std::string array, merge;
};
// `cells` are the cells the array runs (task k runs cells[k]); `workdir` the
// directory the jobs start in (`file` and relative outputs resolve against it).
// `redo_before_ns` (--restart; nanoseconds since the epoch, 0: none): the
// tasks train a finished cell again when its file is older than that.
SlurmScripts make_slurm_scripts(const config::Experiment& exp,
                                const std::vector<config::ExperimentConfig>& all_cells,
                                const std::vector<size_t>& cells, const SlurmSettings& s,
                                const std::string& self_exe, const std::string& file,
                                const std::string& workdir, int64_t redo_before_ns = 0);

// The latest array task this experiment submitted for each cell: cell ->
// (job id "123_4", Slurm state "PENDING", "RUNNING", ..., or "" where Slurm
// no longer knows the task).
struct SlurmTaskState {
  std::string job_id, state;
};
// Empty map when nothing was submitted; an error when squeue fails.
absl::StatusOr<std::map<size_t, SlurmTaskState>> slurm_cell_states(const std::string& cells_dir);

// Whether a Slurm state means the task will still run (queued) or runs now.
bool slurm_state_queued(const std::string& state);
bool slurm_state_running(const std::string& state);

// drift-run --slurm [--dry-run] FILE: returns the exit status.
int submit_slurm(const SlurmSubmitOptions& opt);

// drift-run --status FILE: one line per cell; returns the exit status.
int print_status(const std::string& file);

}  // namespace drift::sweep
