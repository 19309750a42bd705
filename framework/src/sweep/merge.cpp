#include "sweep/merge.hpp"

#include <hdf5.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "drift/version.hpp"
#include "io/h5.hpp"
#include "io/table.hpp"

namespace drift::sweep {
namespace fs = std::filesystem;

std::string cells_dir_for(const std::string& output) {
  fs::path p(output);
  if (p.extension() == ".h5") p.replace_extension("");
  return p.string() + ".cells";
}

std::string cell_file_path(const std::string& cells_dir, size_t cell) {
  return absl::StrFormat("%s/%04d.h5", cells_dir, cell);
}

std::string finished_status(const std::string& cell_path, const config::ExperimentConfig& cfg) {
  if (!fs::exists(cell_path)) return "";
  auto f = io::H5File::open_read(cell_path);
  if (!f.ok()) return "";
  auto toml = f->read_string_attr("cell", "config_toml");
  auto status = f->read_string_attr("cell", "status");
  if (!toml.ok() || !status.ok() || *toml != cfg.resolved_toml) return "";
  return *status;
}

namespace {

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Summary value of a grid value: numbers stay numbers, the rest is TOML text.
io::Cell summary_cell(const ParamValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  return format_param_value(v);
}

}  // namespace

absl::Status write_experiment_file(const std::string& output, const config::Experiment& exp,
                                   const std::vector<config::ExperimentConfig>& cells,
                                   const std::string& cells_dir) {
  if (cells.empty()) return absl::InvalidArgumentError("no cells");
  const auto& first = cells.front();
  std::error_code ec;
  auto parent = fs::path(output).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);

  return io::write_h5_atomically(output, [&](io::H5File& f) -> absl::Status {
    std::vector<std::string> grid_keys;
    for (const auto& a : exp.grid) grid_keys.push_back(a.key);
    std::string keys_joined;
    for (const auto& k : grid_keys) absl::StrAppend(&keys_joined, keys_joined.empty() ? "" : ", ", k);
    for (auto st : {f.set_attr("/", "experiment_name", first.name),
                    f.set_attr("/", "experiment_file", exp.path),
                    f.set_attr("/", "experiment_toml", read_text(exp.path)),
                    f.set_attr("/", "framework_version", DRIFT_FRAMEWORK_VERSION),
                    f.set_attr("/", "torch_version", DRIFT_TORCH_VERSION),
                    f.set_attr("/", "created", now_iso8601()),
                    f.set_attr("/", "n_cells", static_cast<int64_t>(cells.size())),
                    f.set_attr("/", "grid_keys", keys_joined)})
      if (!st.ok()) return st;
    if (auto st = f.create_group("cells"); !st.ok()) return st;

    io::Table summary;
    summary.add_column("cell", io::Table::Type::Int);
    summary.add_column("status", io::Table::Type::String);
    for (const auto& [k, v] : first.grid_values) {
      auto c = summary_cell(v);
      summary.add_column(k, std::holds_alternative<int64_t>(c)  ? io::Table::Type::Int
                            : std::holds_alternative<double>(c) ? io::Table::Type::Float
                                                                : io::Table::Type::String);
    }
    for (const auto& cfg : cells) {
      std::string path = cell_file_path(cells_dir, cfg.cell);
      if (finished_status(path, cfg).empty()) continue;
      auto src = io::H5File::open_read(path);
      if (!src.ok()) return src.status();
      std::string dst = absl::StrFormat("cells/%04d", cfg.cell);
      hid_t ocpl = H5Pcreate(H5P_OBJECT_COPY);
      herr_t rc = H5Ocopy(static_cast<hid_t>(src->native_id()), "cell", static_cast<hid_t>(f.native_id()),
                          dst.c_str(), ocpl, H5P_DEFAULT);
      H5Pclose(ocpl);
      if (rc < 0)
        return absl::InternalError(absl::StrCat(output, ": cannot copy cell from ", path));

      summary.new_row();
      summary.set("cell", static_cast<int64_t>(cfg.cell));
      summary.set("status", *src->read_string_attr("cell", "status"));
      for (const auto& [k, v] : cfg.grid_values) summary.set(k, summary_cell(v));
      if (src->is_dataset("cell/eval")) {
        auto ev = io::read_table(*src, "cell/eval");
        if (ev.ok() && ev->rows() > 0)
          for (const auto& col : ev->columns())
            if (col.name != "step") summary.set("final_" + col.name, ev->at(ev->rows() - 1, col.name));
      }
      if (src->is_dataset("cell/train")) {
        auto tr = io::read_table(*src, "cell/train");
        if (tr.ok() && tr->rows() > 0)
          for (const auto& col : tr->columns())
            if (col.name.rfind("m_tau_", 0) == 0 && col.name.find('/') == std::string::npos)
              summary.set("final_" + col.name, tr->at(tr->rows() - 1, col.name));
      }
      summary.set("steps_done", *src->read_int_attr("cell", "steps_done"));
      summary.set("wall_time_s", *src->read_float_attr("cell", "wall_time_s"));
      auto err = src->read_string_attr("cell", "error");
      summary.set("error", err.ok() ? *err : std::string());
    }
    return io::write_table(f, "summary", summary);
  });
}

}  // namespace drift::sweep
