// drift-run: runs experiments (see README.md and schemas/experiment.md).
//
//   drift-run --list-plugins     every component and its parameters
//   drift-run --print-schema     the reference of every framework key (Markdown)
//   drift-run --dry-run FILE     check every grid cell of FILE and list the cells
//   drift-run FILE               run the experiment
//
// Exit status: 0 ok, 1 invalid experiment or plugin error, 2 usage, 3 not implemented.
#include <iostream>
#include <string>

#include "config/dry_run.hpp"
#include "config/experiment.hpp"
#include "config/schema.hpp"
#include "runtime/list_plugins.hpp"
#include "runtime/registry.hpp"
#include "runtime/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-run --list-plugins | --print-schema | --dry-run FILE | FILE\n";

// Default plugins, then the file's [plugins], then every cell. Prints the error.
bool check(const std::string& file, drift::runtime::Registry& reg,
           std::vector<drift::config::ExperimentConfig>* cells, drift::config::Experiment* exp) {
  auto st = reg.load_default_paths();
  if (!st.ok()) {
    std::cerr << "drift-run: " << st.message() << "\n";
    return false;
  }
  auto loaded = drift::config::load_experiment(file);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return false;
  }
  if (auto pst = drift::config::load_experiment_plugins(*loaded, reg); !pst.ok()) {
    std::cerr << pst.message() << "\n";
    return false;
  }
  auto resolved = drift::config::resolve_all(*loaded, reg);
  if (!resolved.ok()) {
    std::cerr << resolved.status().message() << "\n";
    return false;
  }
  *cells = *std::move(resolved);
  *exp = *std::move(loaded);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_threads();
  std::string arg1 = argc > 1 ? argv[1] : "";
  if (arg1 == "--list-plugins" && argc == 2) {
    drift::runtime::Registry reg;
    auto st = reg.load_default_paths();
    if (!st.ok()) {
      std::cerr << "drift-run: " << st.message() << "\n";
      return 1;
    }
    drift::runtime::print_components(reg, std::cout);
    return 0;
  }
  if (arg1 == "--print-schema" && argc == 2) {
    std::cout << drift::config::schema_markdown();
    return 0;
  }
  if (arg1 == "--dry-run" && argc == 3) {
    drift::runtime::Registry reg;
    std::vector<drift::config::ExperimentConfig> cells;
    drift::config::Experiment exp;
    if (!check(argv[2], reg, &cells, &exp)) return 1;
    std::cout << drift::config::format_dry_run(exp, cells);
    return 0;
  }
  if (argc == 2 && !arg1.empty() && arg1[0] != '-') {
    drift::runtime::Registry reg;
    std::vector<drift::config::ExperimentConfig> cells;
    drift::config::Experiment exp;
    if (!check(arg1, reg, &cells, &exp)) return 1;
    std::cerr << "drift-run: " << arg1 << ": " << cells.size()
              << (cells.size() == 1 ? " cell" : " cells")
              << " valid, but the training loop is not implemented yet\n";
    return 3;
  }
  std::cerr << kUsage;
  return 2;
}
