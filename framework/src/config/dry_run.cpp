#include "config/dry_run.hpp"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/registry.hpp"

namespace drift::config {

absl::StatusOr<CheckedExperiment> check_experiment_file(const std::string& path,
                                                        runtime::Registry& registry) {
  auto exp = load_experiment(path);
  if (!exp.ok()) return exp.status();
  if (auto st = load_experiment_plugins(*exp, registry); !st.ok()) return st;
  auto cells = resolve_all(*exp, registry);
  if (!cells.ok()) return cells.status();
  return CheckedExperiment{*std::move(exp), *std::move(cells)};
}

std::string format_dry_run(const Experiment& exp, const std::vector<ExperimentConfig>& cells) {
  // Grid keys whose value is not the same in every cell.
  std::vector<std::string> varying;
  for (size_t a = 0; a < exp.grid.size(); ++a) {
    bool differs = false;
    for (const auto& c : cells)
      if (a < c.grid_values.size() && a < cells.front().grid_values.size() &&
          format_param_value(c.grid_values[a].second) !=
              format_param_value(cells.front().grid_values[a].second))
        differs = true;
    if (differs) varying.push_back(exp.grid[a].key);
  }
  const std::string name = cells.empty() ? exp.stem : cells.front().name;
  std::string out = absl::StrCat(exp.path, ": experiment \"", name, "\", ", cells.size(),
                                 cells.size() == 1 ? " cell" : " cells", ", all valid");
  if (!exp.grid.empty()) {
    // One entry per independent axis; linked keys ("a.x, b.y" = [[..], ..])
    // step together and are shown as one: "(a.x, b.y linked)".
    std::vector<std::string> axes;
    std::vector<size_t> members;
    std::vector<size_t> axis_of_group(exp.grid.size(), 0);  // group (first key's index) -> axis
    for (size_t a = 0; a < exp.grid.size(); ++a) {
      const size_t g = exp.grid[a].group;
      if (g == a) {
        axis_of_group[a] = axes.size();
        axes.push_back(exp.grid[a].key);
        members.push_back(1);
      } else {
        absl::StrAppend(&axes[axis_of_group[g]], ", ", exp.grid[a].key);
        ++members[axis_of_group[g]];
      }
    }
    for (size_t i = 0; i < axes.size(); ++i)
      if (members[i] > 1) axes[i] = absl::StrCat("(", axes[i], " linked)");
    absl::StrAppend(&out, " (grid: ", absl::StrJoin(axes, ", "),
                    axes.size() > 1 ? "; the first key varies slowest" : "", ")");
  }
  out += "\n";
  // Column widths, so that the cells line up.
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : cells) {
    std::vector<std::string> row{absl::StrCat("cell ", c.cell)};
    for (const auto& key : varying)
      for (const auto& [k, v] : c.grid_values)
        if (k == key) row.push_back(absl::StrCat(k, "=", format_param_value(v)));
    row.push_back("output=" + c.output);
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line = " ";
    for (size_t i = 0; i < r.size(); ++i) {
      line += " " + r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size(), ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace drift::config
