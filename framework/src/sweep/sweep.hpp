// The sweep runner behind `drift-run FILE`: every grid cell in its own child
// process, several at once, live progress, crash-safe results (schemas/results.md).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/dry_run.hpp"
#include "runtime/registry.hpp"

namespace drift::sweep {

struct SweepOptions {
  std::string file;        // experiment file
  std::string cells;       // "" = all, else "3" or "0,2-5"
  int jobs = 0;            // 0: what fits the cores
  bool restart = false;    // redo finished cells too
  std::string self_exe;    // path of drift-run (children run `drift-run --cell-worker`)
  // A Slurm array task (`drift-run --array-task FILE --cell I`): runs its cell
  // beside the other tasks of the array, holding only that cell's lock; the
  // experiment's results file is left to the merge job (`drift-run --merge`).
  bool array_task = false;
  // Set for the tasks of `drift-run --slurm --restart` (`--redo-before T`): a
  // finished cell whose file was written before T (the submission) is trained
  // again, one written since is this submission's result and is kept. Unlike
  // --restart, checkpoints stay: the submission removed the old ones, and one
  // written since is this submission's (a task requeued after preemption
  // resumes from it).
  std::optional<std::chrono::system_clock::time_point> redo_before;
  int threads = 0;  // > 0: each cell's LibTorch threads (an array task: its CPUs)
};

// Runs the sweep; returns the process exit status (0: every selected cell is
// done; 1: some cell failed or diverged, or bad input; 130/143: interrupted).
int run_sweep(const SweepOptions& opt);

// `drift-run --cell-worker FILE --cell I --cell-out PATH [--threads N]`: trains
// one cell and writes its cell file. Progress lines go to stdout. It resumes
// from the cell's checkpoint (<id>.ckpt beside PATH) when there is one, and on
// SIGTERM / SIGINT writes one and exits with kPausedExit, writing no cell file.
inline constexpr int kPausedExit = 75;  // EX_TEMPFAIL
int run_cell_worker(const std::string& file, size_t cell, const std::string& out_path, int threads);

// `drift-run --merge FILE`: rebuilds the experiment's results file from its
// finished cell files (what the merge job of a Slurm submission runs).
int merge_results(const std::string& file);

// Parses "3", "0,2-5" against n cells; errors name the bad part.
absl::StatusOr<std::vector<size_t>> parse_cell_list(const std::string& spec, size_t n);
// The cells of --cells: every cell for "", else parse_cell_list.
absl::StatusOr<std::vector<size_t>> select_cells(const std::string& spec, size_t n);

// The default plugins, then the experiment file checked completely
// (config/dry_run.hpp): what every drift-run command starts from.
absl::StatusOr<config::CheckedExperiment> load_all(const std::string& file, runtime::Registry& reg);


}  // namespace drift::sweep
