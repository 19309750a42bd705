#include "io/results_cell.hpp"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace drift::io {

absl::StatusOr<std::string> select_results_cell(const H5File& f, const std::optional<std::string>& cell) {
  auto error = [](const std::string& m) { return absl::InvalidArgumentError(m); };
  if (f.is_group("cell")) return std::string("cell");
  if (!f.is_group("cells"))
    return error(absl::StrCat(f.path(), ": not a drift-run results file (no group 'cells/<id>' or 'cell')"));
  auto ids = f.list("cells");
  if (!ids.ok()) return ids.status();
  if (!cell) {
    // (The one entry must be a cell's group: a corrupt file may hold anything.)
    if (ids->size() == 1 && f.is_group("cells/" + ids->front())) return "cells/" + ids->front();
    if (ids->size() == 1)
      return error(absl::StrCat(f.path(), ": 'cells/", ids->front(), "' is not a cell's group"));
    return error(absl::StrCat(f.path(), ": ", ids->size(), " cells (", absl::StrJoin(*ids, ", "),
                              "): choose one with --cell ID"));
  }
  std::string id = *cell;
  int64_t n;
  if (absl::SimpleAtoi(id, &n) && n >= 0) id = absl::StrFormat("%04d", n);
  if (!f.is_group("cells/" + id))
    return error(absl::StrCat(f.path(), ": no cell '", *cell, "' (cells: ", absl::StrJoin(*ids, ", "), ")"));
  return "cells/" + id;
}

}  // namespace drift::io
