#include "sweep/merge.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "drift/version.hpp"
#include "io/h5.hpp"
#include "io/table.hpp"

namespace drift::sweep {
// POSIX calls instead of std::filesystem: libtorch.so exports its own copies
// of std::filesystem functions (see tests/scratch_dir.hpp).

std::string cells_dir_for(const std::string& output) {
  std::string p = output;
  const auto slash = p.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  if (p.size() > base + 3 && p.compare(p.size() - 3, 3, ".h5") == 0) p.resize(p.size() - 3);
  return p + ".cells";
}

std::string cell_file_path(const std::string& cells_dir, size_t cell) {
  return absl::StrFormat("%s/%04d.h5", cells_dir, cell);
}

std::string finished_status(const std::string& cell_path, const config::ExperimentConfig& cfg) {
  if (::access(cell_path.c_str(), F_OK) != 0) return "";
  auto f = io::H5File::open_read(cell_path, io::ReadGuard::kStrict);
  if (!f.ok()) return "";
  auto toml = f->read_string_attr("cell", "config_toml");
  auto status = f->read_string_attr("cell", "status");
  if (!toml.ok() || !status.ok() || !config::same_configuration(*toml, cfg)) return "";
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

// mkdir -p
void make_dirs(const std::string& path) {
  for (size_t pos = path.find('/', 1); ; pos = path.find('/', pos + 1)) {
    ::mkdir(path.substr(0, pos).c_str(), 0755);
    if (pos == std::string::npos) break;
  }
}

// A 1-D attribute of variable-length UTF-8 strings (io::H5File writes scalars
// and numeric lists only).
absl::Status set_string_list_attr(io::H5File& f, const std::string& name, const std::vector<std::string>& values) {
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hsize_t dims[1] = {values.size()};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t attr = H5Acreate2(static_cast<hid_t>(f.native_id()), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = attr < 0 ? -1 : (values.empty() ? 0 : H5Awrite(attr, type, ptrs.data()));
  if (attr >= 0) H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
  if (rc < 0) return absl::InternalError(absl::StrCat("cannot write the attribute /", name));
  return absl::OkStatus();
}

// Summary value of a grid value: numbers stay numbers, the rest is TOML text.
io::Cell summary_cell(const ParamValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  return format_param_value(v);
}

// final_<metric> columns are float64 (NaN for a cell without evaluations),
// integer metrics (modes_covered) included.
io::Cell as_float(const io::Cell& c) {
  if (auto* i = std::get_if<int64_t>(&c)) return static_cast<double>(*i);
  return c;
}

// Serialises the merges of one experiment (every drift-run of it, --merge,
// the Slurm merge job): an exclusive flock on <cells_dir>/.merge.lock for the
// whole write of the results file. So the last merge to start reads every
// cell file finished before it, whichever process finished it, and a
// temporary <output>.tmp-<pid> seen while holding the lock is the leftover of
// a killed merge. Released when the holder dies, however it dies.
class MergeLock {
 public:
  explicit MergeLock(const std::string& cells_dir) {
    make_dirs(cells_dir);
    fd_ = ::open((cells_dir + "/.merge.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0)
      while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
  }
  ~MergeLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  MergeLock(const MergeLock&) = delete;
  MergeLock& operator=(const MergeLock&) = delete;

 private:
  int fd_ = -1;
};


}  // namespace

void remove_atomic_leftovers(const std::string& dir, const std::string& prefix) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    const auto pos = name.rfind(".tmp-");
    if (pos == std::string::npos || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid = name.substr(pos + 5);
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(d);
}

absl::Status write_experiment_file(const std::string& output, const config::Experiment& exp,
                                   const std::vector<config::ExperimentConfig>& cells,
                                   const std::string& cells_dir) {
  if (cells.empty()) return absl::InvalidArgumentError("no cells");
  const auto& first = cells.front();
  const auto slash = output.rfind('/');
  if (slash != std::string::npos && slash > 0) make_dirs(output.substr(0, slash));
  const MergeLock lock(cells_dir);
  {
    const auto sl = output.rfind('/');
    remove_atomic_leftovers(sl == std::string::npos ? "." : (sl == 0 ? "/" : output.substr(0, sl)),
                            (sl == std::string::npos ? output : output.substr(sl + 1)) + ".tmp-");
  }

  return io::write_h5_atomically(output, [&](io::H5File& f) -> absl::Status {
    std::vector<std::string> grid_keys;
    for (const auto& a : exp.grid) grid_keys.push_back(a.key);
    for (auto st : {f.set_attr("/", "experiment_name", first.name),
                    f.set_attr("/", "experiment_file", exp.path),
                    f.set_attr("/", "experiment_toml", read_text(exp.path)),
                    f.set_attr("/", "framework_version", DRIFT_FRAMEWORK_VERSION),
                    f.set_attr("/", "torch_version", DRIFT_TORCH_VERSION),
                    f.set_attr("/", "created", now_iso8601()),
                    f.set_attr("/", "n_cells", static_cast<int64_t>(cells.size())),
                    set_string_list_attr(f, "grid_keys", grid_keys)})
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
      auto src = io::H5File::open_read(path, io::ReadGuard::kStrict);
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
            if (col.name != "step") summary.set("final_" + col.name, as_float(ev->at(ev->rows() - 1, col.name)));
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
      auto cpu = src->read_float_attr("cell", "cpu_time_s");
      summary.set("cpu_time_s", cpu.ok() ? *cpu : std::numeric_limits<double>::quiet_NaN());
      auto err = src->read_string_attr("cell", "error");
      summary.set("error", err.ok() ? *err : std::string());
    }
    return io::write_table(f, "summary", summary);
  }, io::AtomicWrite::kInMemory);  // H5Ocopy crashes on a full disk: see h5.hpp
}

}  // namespace drift::sweep
