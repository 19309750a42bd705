// drift-run --dry-run: check an experiment file completely and list its cells.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/experiment.hpp"

namespace drift::config {

// Loads the file, loads its [plugins] paths into `registry`, and resolves every
// grid cell. Nothing is written.
struct CheckedExperiment {
  Experiment exp;
  std::vector<ExperimentConfig> cells;
};
absl::StatusOr<CheckedExperiment> check_experiment_file(const std::string& path,
                                                        runtime::Registry& registry);

// The listing printed by --dry-run: a header line, then one line per cell with
// its index, `key=value` for each grid key whose value differs between cells,
// and the results file:
//   experiments/start/example.toml: experiment "example", 4 cells (grid: kernel.temperatures; ...)
//     cell 0  kernel.temperatures=[0.02]  output=results/example.h5
std::string format_dry_run(const Experiment& exp, const std::vector<ExperimentConfig>& cells);

}  // namespace drift::config
