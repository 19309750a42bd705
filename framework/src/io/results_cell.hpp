// Finding one cell in a drift-run results file (schemas/results.md).
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "io/h5.hpp"

namespace drift::io {

// The group of a cell: "cell" in a cell file, "cells/<id>" in an experiment
// file. `cell` ("3" or "0003") is needed when the file has several cells.
// Errors name the file and list its cells.
absl::StatusOr<std::string> select_results_cell(const H5File& f, const std::optional<std::string>& cell);

}  // namespace drift::io
