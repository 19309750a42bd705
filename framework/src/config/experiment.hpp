// Experiment files (TOML): loading, [grid] expansion, and resolution of one grid
// cell into a validated, typed ExperimentConfig. See schemas/experiment.md.
//
//   auto exp = config::load_experiment("experiments/start/example.toml");  // no registry
//   runtime::Registry reg;  reg.load_default_paths();
//   config::load_experiment_plugins(*exp, reg);                      // [plugins] paths
//   for (size_t i = 0; i < exp->num_cells(); ++i)
//     auto cfg = config::resolve_cell(*exp, i, reg);                  // validated
//
// Every error is one line that starts with the experiment file's path.
#pragma once

#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "drift/params.hpp"

namespace drift::runtime {
class Registry;
}

namespace drift::config {

// One [grid] key: "section.key" = [value, value, ...].
struct GridAxis {
  std::string key;      // "kernel.temperatures"
  std::string section;  // "kernel"
  std::string name;     // "temperatures"
  std::string component;  // "general" for "kernel.general.shape": a key of [kernel.general]
  std::vector<ParamValue> values;  // as written (before validation and coercion)
  // Linked keys ("a.x, b.y" = [[x0, y0], [x1, y1]]) step together: every axis
  // of one such key has the index of the first one here; a lone key its own.
  size_t group = 0;
};

namespace detail {
struct Document;  // the parsed TOML (kept out of this header)
}

// A parsed experiment file with its grid; not yet validated against the registry.
struct Experiment {
  std::string path;      // as given to load_experiment
  std::string dir;       // absolute directory of the file ("" for text without a file)
  std::string stem;      // file name without extension: the default experiment name
  std::vector<std::string> plugin_paths;  // [plugins] paths, made absolute
  Params slurm;  // [slurm], every key present (not part of any cell's configuration)
  // In the order they are written in the file. Cells are the Cartesian product
  // over the grid keys (linked keys count as one), enumerated with the FIRST
  // key varying slowest and the last fastest.
  std::vector<GridAxis> grid;
  std::shared_ptr<const detail::Document> doc;

  size_t num_cells() const;  // product of the axes' lengths; 1 without [grid]
  // The value index of each axis for `cell` (cell < num_cells()).
  std::vector<size_t> cell_coordinates(size_t cell) const;
};

// A component chosen in a plugin section, with its validated parameters.
struct ComponentConfig {
  std::string name;  // registry name, e.g. "laplace"
  Params params;     // the component's own parameters, defaults filled in
};

// One grid cell, fully resolved and validated.
struct ExperimentConfig {
  std::string file;  // the experiment file
  // [experiment]
  std::string name;
  int64_t seed = 0;
  std::string output;  // results file (relative to the current directory unless absolute)
  std::string device;  // "cpu" | "cuda" | "auto"
  int64_t threads = 0;
  std::vector<std::string> plugin_paths;  // absolute
  // Plugin sections.
  ComponentConfig data, generator, encoder, kernel, normalizer;
  // [formation]: used with datasets that have conditions; name "" when the
  // file does not write the section (the trainer then uses the default).
  ComponentConfig formation;
  std::vector<double> temperatures;  // [kernel] temperatures (initial values)
  std::string temperature_schedule = "constant";  // [kernel] "constant" | "exponential"
  double temperature_decay = 0, temperature_min = 0;
  // [train] and [eval], every key present (see config/schema.cpp).
  Params train, eval;
  // This cell of the grid.
  size_t cell = 0;
  size_t num_cells = 1;
  // The grid keys and this cell's values, validated (an int given for a float
  // key is a float here), in grid order.
  std::vector<std::pair<std::string, ParamValue>> grid_values;
  // The whole resolved configuration as TOML (every key, defaults included, no
  // [grid]); loading it again gives the same configuration.
  std::string resolved_toml;
  // The keys of resolved_toml that neither the file nor the grid sets (their
  // default), as "[section] key" with the section's header as rendered.
  std::set<std::string> defaulted;
};

// What decides a cell's results, out of its resolved_toml: all of it but the
// first comment line, which names the cell's index, the number of cells and
// the experiment file. A finished cell, or a checkpoint, is reused when this
// matches: adding values at the end of a grid keeps the cells already run,
// and so does running the same experiment from a renamed or copied file.
std::string_view configuration_identity(std::string_view resolved_toml);

// Whether a cell file recorded with `stored_toml` (its `config_toml`) holds the
// results of `cfg`: the same configuration identity, or the same keys and
// values except keys that `stored_toml` lacks and `cfg` leaves at their
// default. A key added to the framework or to a plugin after a cell ran (its
// default keeps the old behaviour) so does not rerun finished cells; a key the
// stored configuration has and `cfg` lacks, or any other difference, does.
bool same_configuration(std::string_view stored_toml, const ExperimentConfig& cfg);
// Why not, in one line: the first key (in key order) whose value differs,
// "[train] lr = 0.002 there, lr = 0.003 here", or that one side lacks
// ("[train] ema_warmup not set there, ema_warmup = 3.0 here"); empty when
// same_configuration holds.
std::string configuration_difference(std::string_view stored_toml, const ExperimentConfig& cfg);

// Parses the file and expands [grid]. Checks: TOML syntax (FILE:LINE:COLUMN),
// unknown sections, [plugins], and the grid keys and values as far as they can be
// checked without the registry.
absl::StatusOr<Experiment> load_experiment(const std::string& path);
// The same from text; `path` names it in errors and its directory anchors
// relative plugin paths.
absl::StatusOr<Experiment> parse_experiment(const std::string& text, const std::string& path);

// Loads the [plugins] paths into the registry (do this before resolve_cell).
absl::Status load_experiment_plugins(const Experiment& exp, runtime::Registry& registry);

// Applies the grid overrides of `cell` and validates every section: framework
// keys against config/schema.cpp, component names and parameters against the
// registry.
absl::StatusOr<ExperimentConfig> resolve_cell(const Experiment& exp, size_t cell,
                                              const runtime::Registry& registry);

// Every cell (stops at the first invalid one).
absl::StatusOr<std::vector<ExperimentConfig>> resolve_all(const Experiment& exp,
                                                          const runtime::Registry& registry);

}  // namespace drift::config
