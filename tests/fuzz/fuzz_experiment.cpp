// Fuzz target: experiment files (config/experiment.cpp, config/schema.cpp,
// config/toml_value.cpp): TOML text -> parse_experiment -> resolve_all
// against a registry with the built-in components and the shipped plugins,
// what `drift-run --dry-run` does.
// Property: a validated experiment, or an error that is one non-empty line
// starting with the file's name; never a crash or a hang.
//
// Files that name [plugins] paths are parsed and resolved without loading
// those paths (a fuzzer must not dlopen whatever a mutated path names).
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "config/experiment.hpp"
#include "fuzz_common.hpp"
#include "runtime/registry.hpp"

namespace {
drift::runtime::Registry& registry() {
  static drift::runtime::Registry* reg = [] {
    auto* r = new drift::runtime::Registry();
    // Built-in components plus the plugins in <bin>/../lib/drift/plugins and
    // $DRIFT_PLUGIN_PATH, as drift-run loads them.
    if (auto st = r->load_default_paths(); !st.ok()) drift::fuzz::fail(std::string(st.message()));
    return r;
  }();
  return *reg;
}
// Grids larger than this are resolved at their first and last cell only (the
// full resolution is linear in the cell count; the per-input time limit is
// for hangs, not for big grids).
constexpr size_t kMaxResolvedCells = 64;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drift;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = fuzz::scratch_dir() + "/fuzz.toml";
  auto exp = config::parse_experiment(text, path);
  auto check_error = [&](const absl::Status& st, const char* where) {
    fuzz::check_one_line(st, where);
    if (!st.ok() && std::string(st.message()).rfind(path, 0) != 0)
      fuzz::fail(absl::StrCat(where, ": error does not start with the file's path: ", st.message()));
  };
  if (!exp.ok()) {
    check_error(exp.status(), "parse_experiment");
    return 0;
  }
  const size_t n = exp->num_cells();
  if (n == 0) fuzz::fail("an experiment with 0 cells was accepted");
  auto& reg = registry();
  if (n <= kMaxResolvedCells) {
    auto cells = config::resolve_all(*exp, reg);
    if (!cells.ok()) {
      check_error(cells.status(), "resolve_all");
      return 0;
    }
    fuzz::note(fuzz::kAccepted);
    if (cells->size() != n) fuzz::fail("resolve_all gave another number of cells than num_cells()");
    // The resolved configuration loads again to the same configuration.
    const auto& c0 = cells->front();
    auto again = config::parse_experiment(c0.resolved_toml, path);
    if (!again.ok()) fuzz::fail(absl::StrCat("resolved TOML does not parse: ", again.status().message()));
    auto c0b = config::resolve_cell(*again, 0, reg);
    if (!c0b.ok()) fuzz::fail(absl::StrCat("resolved TOML does not resolve: ", c0b.status().message()));
    // (Comment lines say which cell of which grid: they differ.)
    auto lines = [](const std::string& t) {
      std::vector<std::string> out;
      for (absl::string_view l : absl::StrSplit(t, '\n'))
        if (!absl::StartsWith(l, "#")) out.emplace_back(l);
      return out;
    };
    const std::vector<std::string> a = lines(c0.resolved_toml), b = lines(c0b->resolved_toml);
    if (a != b) {
      // The first line that differs, in the failure message.
      size_t i = 0;
      while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
      fuzz::fail(absl::StrCat("resolved TOML is not a fixed point: line ", i + 1, " \"", i < a.size() ? a[i] : "",
                              "\" becomes \"", i < b.size() ? b[i] : "", "\""));
    }
  } else {
    for (size_t cell : {size_t{0}, n - 1}) {
      auto c = config::resolve_cell(*exp, cell, reg);
      if (!c.ok()) check_error(c.status(), "resolve_cell");
    }
  }
  auto past = config::resolve_cell(*exp, n, reg);
  if (past.ok()) fuzz::fail("resolve_cell accepted a cell past the grid");
  const std::string pm(past.status().message());
  if (pm.find('\n') != std::string::npos || pm.rfind(path, 0) != 0)
    fuzz::fail(absl::StrCat("resolve_cell (past the end): not one line naming the file: ", pm));
  return 0;
}

const std::vector<std::string>& drift_fuzz_dictionary() {
  static const std::vector<std::string> d = {
      "[experiment]\n", "[data]\n", "[generator]\n", "[kernel]\n", "[encoder]\n", "[normalizer]\n",
      "[train]\n", "[eval]\n", "[grid]\n", "[plugins]\n", "[slurm]\n", "[data.points]\n",
      "[kernel.general]\n", "name = ", "seed = ", "output = ", "device = ", "threads = ", "plugin = ",
      "dataset = ", "temperatures = ", "steps = ", "lr = ", "n_gen = ", "n_pos = ", "metrics = ",
      "\"kernel.temperatures\" = ", "\"train.lr, train.steps\" = ", "\"train.steps\" = ", "[[1, 2], [3, 4]]",
      "[0.02, 0.05]", "[]", "\"laplace\"", "\"mlp\"", "\"bimodal\"", "\"points\"", "\"general\"", "1e308",
      "-0.0", "nan", "inf", "9223372036854775807", "-9223372036854775808", "true", "{ a = 1 }", "'''",
      "\"\"\"", "\\u0000", "\n", " = ", ".", ",", "#", "\"", "[", "]", "{", "}"};
  return d;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  auto seed = [&](const std::string& name, const std::string& text) {
    drift::fuzz::write_seed(dir, name, std::vector<uint8_t>(text.begin(), text.end()));
  };
  seed("minimal", "[experiment]\nname = \"m\"\n[data]\ndataset = \"bimodal\"\n[generator]\nplugin = \"mlp\"\n"
                  "[kernel]\nplugin = \"laplace\"\ntemperatures = [0.05]\n[train]\nsteps = 10\n");
  seed("grid", "[experiment]\nname = \"g\"\nseed = 3\n[data]\ndataset = \"eight_gaussians\"\n"
               "[generator]\nplugin = \"mlp\"\n[kernel]\nplugin = \"laplace\"\ntemperatures = [0.02, 0.2]\n"
               "[train]\nsteps = 100\nlr = 1e-3\n[grid]\n\"train.lr\" = [1e-3, 3e-3]\n"
               "\"kernel.temperatures\" = [[0.05], [0.1, 0.2]]\n");
  seed("linked_grid", "[experiment]\nname = \"l\"\n[data]\ndataset = \"mixture\"\n[generator]\nplugin = \"mlp\"\n"
                      "[kernel]\nplugin = \"general\"\ntemperatures = [0.05]\n[train]\nsteps = 5\n"
                      "[grid]\n\"train.lr, train.steps\" = [[1e-3, 10], [2e-3, 20]]\n");
  seed("bad_syntax", "[experiment\nname = \"x\"\n");
  seed("unknown_section", "[experimentt]\nname = \"x\"\n");
  seed("points_eval", "[experiment]\nname = \"p\"\ndevice = \"cpu\"\n[data]\ndataset = \"points\"\n"
                      "[data.points]\npath = \"p.h5\"\n[generator]\nplugin = \"mlp\"\n[kernel]\nplugin = \"mmd\"\n"
                      "temperatures = [1.0]\n[eval]\nmetrics = [\"mmd\", \"energy\"]\nn_samples = 64\n");
  return 0;
}
