// Rebuilding the experiment's results file from its finished cell files.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "config/experiment.hpp"

namespace drift::sweep {

// "<output without .h5>.cells": where each cell's own file lives.
std::string cells_dir_for(const std::string& output);
// "<cells_dir>/0003.h5"
std::string cell_file_path(const std::string& cells_dir, size_t cell);

// A cell file's status if it exists and was written for exactly this resolved
// configuration; "" otherwise (missing, unreadable, or from another config).
std::string finished_status(const std::string& cell_path, const config::ExperimentConfig& cfg);

// Removes "<prefix>*.tmp-<pid>" in `dir`: temporary files of atomic writes
// (io::write_h5_atomically) that a killed process never renamed. Call it only
// while holding the lock that keeps other writers of those files away (the
// cell's lock for its files, the merge lock for the results file).
void remove_atomic_leftovers(const std::string& dir, const std::string& prefix);

// Writes `output` atomically: root attributes, /cells/<id> copied from every
// cell file that matches its configuration, and /summary (schemas/results.md).
// Merges of one experiment by any number of processes take turns (a lock in
// `cells_dir`); each removes what killed merges left (<output>.tmp-<pid>).
absl::Status write_experiment_file(const std::string& output, const config::Experiment& exp,
                                   const std::vector<config::ExperimentConfig>& cells,
                                   const std::string& cells_dir);

}  // namespace drift::sweep
