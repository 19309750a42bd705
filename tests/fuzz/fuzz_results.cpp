// Fuzz target: drift-run's cell files and merged results files, as read by
// --status/--merge (sweep/merge.cpp finished_status), drift-eval and the
// results readers (io/results_cell.cpp select_results_cell, io/table.cpp
// read_table, io/h5.cpp).
// Property: every read either succeeds or fails with a one-line error; a
// cell file counts as finished only when its recorded configuration is
// exactly the cell's.
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "config/experiment.hpp"
#include "fuzz_common.hpp"
#include "io/results_cell.hpp"
#include "io/table.hpp"
#include "sweep/merge.hpp"

namespace {
const std::vector<std::string> kNames = {"cell", "cells/0", "cells/0001", "summary", "cell/history",
                                         "cell/samples/100", "cells/0/samples", "config_toml", "status",
                                         "cell/evaluations", "cells"};
const char* kToml = "[experiment]\nname = \"x\"\n";

// Walks every object under `group` (depth-limited), reading what drift's
// readers read: dataset info and data, compound tables, attributes.
void walk(const drift::io::H5File& f, const std::string& group, int depth) {
  using namespace drift;
  if (depth > 4) return;
  auto names = f.list(group);
  if (!names.ok()) {
    fuzz::check_one_line(names.status(), "list");
    return;
  }
  for (const auto& n : *names) {
    const std::string p = group == "/" ? n : absl::StrCat(group, "/", n);
    if (auto an = f.attr_names(p); an.ok()) {
      for (const auto& a : *an) {
        fuzz::check_one_line(f.read_string_attr(p, a).status(), "read_string_attr");
        fuzz::check_one_line(f.read_float_list_attr(p, a).status(), "read_float_list_attr");
        fuzz::check_one_line(f.read_int_attr(p, a).status(), "read_int_attr");
      }
    } else {
      fuzz::check_one_line(an.status(), "attr_names");
    }
    if (f.is_group(p)) {
      walk(f, p, depth + 1);
    } else if (f.is_dataset(p)) {
      auto inf = f.info(p);
      if (!inf.ok()) {
        fuzz::check_one_line(inf.status(), "info");
        continue;
      }
      int64_t n_el = 1;
      for (int64_t d : inf->shape) n_el *= d;
      auto t = f.read(p);
      if (t.ok()) {
        fuzz::note(fuzz::kAccepted);
        if (t->sizes().vec() != inf->shape)
          fuzz::fail(absl::StrCat(p, ": read() gave ", io::shape_string(*t), ", info() says ",
                                  io::shape_string(inf->shape)));
      } else {
        fuzz::check_one_line(t.status(), "read");
      }
      auto tab = io::read_table(f, p);
      if (tab.ok()) {
        fuzz::note(fuzz::kAccepted);
        for (size_t r = 0; r < tab->rows(); ++r)
          for (const auto& c : tab->columns()) (void)tab->at(r, c.name);
      } else {
        fuzz::check_one_line(tab.status(), "read_table");
      }
      (void)n_el;
    }
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace drift;
  (void)fuzz::scratch_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drift;
  const std::string path = fuzz::scratch_dir() + "/results.h5";
  fuzz::write_h5_input(path, data, size, kNames);
  config::ExperimentConfig cfg;
  cfg.resolved_toml = kToml;
  const std::string st = sweep::finished_status(path, cfg);
  if (!st.empty()) {
    // Finished only if the file says it was made for exactly this configuration.
    auto f = io::H5File::open_read(path);
    if (!f.ok()) fuzz::fail("finished_status found a status in a file that does not open");
    auto toml = f->read_string_attr("cell", "config_toml");
    if (!toml.ok() || *toml != kToml) fuzz::fail("finished_status accepted another configuration");
  }
  auto f = io::H5File::open_read(path);
  if (!f.ok()) {
    fuzz::check_one_line(f.status(), "open_read");
    return 0;
  }
  for (const std::optional<std::string>& cell :
       {std::optional<std::string>(), std::optional<std::string>("0"), std::optional<std::string>("0001")}) {
    auto g = io::select_results_cell(*f, cell);
    if (g.ok()) {
      fuzz::note(fuzz::kAccepted);
      if (!f->is_group(*g)) fuzz::fail(absl::StrCat("select_results_cell gave '", *g, "', not a group"));
    } else {
      fuzz::check_one_line(g.status(), "select_results_cell");
    }
  }
  walk(*f, "/", 0);
  return 0;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  using namespace drift;
  const std::string tmp = fuzz::scratch_dir() + "/seed.h5";
  auto table = [] {
    io::Table t;
    t.new_row();
    t.set("step", int64_t{100});
    t.set("loss", 0.25);
    t.set("status", std::string("done"));
    return t;
  };
  auto write = [&](const std::string& name, auto&& fill) {
    auto f = io::H5File::create(tmp);
    if (!f.ok()) fuzz::fail(std::string(f.status().message()));
    fill(*f);
    (void)f->close();
    fuzz::write_seed(dir, name, fuzz::raw_seed(tmp));
  };
  write("cell_file", [&](io::H5File& f) {
    (void)f.create_group("cell");
    (void)f.set_attr("cell", "config_toml", std::string(kToml));
    (void)f.set_attr("cell", "status", std::string("done"));
    (void)io::write_table(f, "cell/history", table());
    (void)f.create_group("cell/samples");
    (void)f.write("cell/samples/100", torch::zeros({2, 1, 4, 4}, torch::kFloat32));
  });
  write("results_file", [&](io::H5File& f) {
    (void)f.create_group("cells");
    (void)f.create_group("cells/0000");
    (void)f.create_group("cells/0001");
    (void)f.set_attr("cells/0001", "status", std::string("failed"));
    (void)io::write_table(f, "cells/0000/history", table());
    (void)io::write_table(f, "summary", table());
    (void)f.set_attr("/", "experiment", std::string("x"));
  });
  // Spec: a 'cell' group with config_toml and status string attributes.
  fuzz::write_seed(dir, "spec_cell_attrs",
                   fuzz::spec_seed({2, 2, 0, 7, 0, 24, '[', 'e', 'x', 'p', 'e', 'r', 'i', 'm', 'e', 'n', 't', ']',
                                    '\n', 'n', 'a', 'm', 'e', ' ', '=', ' ', '"', 'x', '"', '\n', 2, 0, 8, 0, 4,
                                    'd', 'o', 'n', 'e'}));
  fuzz::write_seed(dir, "spec_summary_table", fuzz::spec_seed({1, 3, 3, 3, 2, 1, 1, 4, 2, 0, 0, 0, 5, 0, 0, 0, 9}));
  return 0;
}
