#include "io/h5.hpp"

#include "io/h5_guard.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drift::io {

namespace {

// File-system helpers on POSIX calls (the PyPI libtorch.so exports its own
// copies of std::filesystem functions, which calls would bind to).
bool path_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
// Directory part of a path ("." for a bare file name).
std::string parent_dir(const std::string& p) {
  const auto slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

// HDF5 keeps one error stack per thread (thread-safe build) and prints it to
// stderr by default. Switch printing off once per thread before any call.
void silence_hdf5() {
  // No HDF5 clean-up at process exit: it closes files left open, and on a file
  // whose close failed (a full disk) HDF5 1.10 crashes there (H5F__close_cb).
  // Every file is closed explicitly (H5File::close), so nothing is lost.
  static const bool no_atexit = [] { return H5dont_atexit() >= 0; }();
  (void)no_atexit;
  thread_local bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

herr_t first_error_cb(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err && err->desc) *out = err->desc;
  return 0;
}

// The innermost message of HDF5's error stack (then cleared), as " (hdf5: ...)".
// " (hdf5: WHAT)" from the innermost HDF5 error on this thread, on one line:
// where the error came from the system (HDF5 prints "errno = N, error message =
// '...'" among a dump of the write call), only the system's message is kept.
std::string hdf5_detail() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error_cb, &msg);
  H5Eclear2(H5E_DEFAULT);
  if (msg.empty()) return std::string();
  static constexpr std::string_view kSys = "error message = '";
  if (const auto at = msg.find(kSys); at != std::string::npos) {
    const auto from = at + kSys.size();
    const auto to = msg.find('\'', from);
    std::string what = msg.substr(0, msg.find(':'));  // "file write failed"
    msg = absl::StrCat(what, ": ", msg.substr(from, to == std::string::npos ? to : to - from));
  }
  for (char& c : msg)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return absl::StrCat(" (hdf5: ", msg, ")");
}

// RAII for one HDF5 identifier.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*closer_)(hid_t) = nullptr;
};

std::string quoted(const std::string& s) { return absl::StrCat("'", s, "'"); }

// Splits "a/b/c" (or "/a/b/c") into its components.
std::vector<std::string> components(const std::string& name) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(name, '/', absl::SkipEmpty()))
    out.emplace_back(part);
  return out;
}

bool is_root(const std::string& name) { return components(name).empty(); }

std::string type_name(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  switch (cls) {
    case H5T_FLOAT:
      return absl::StrCat("float", 8 * size);
    case H5T_INTEGER:
      return absl::StrCat(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", 8 * size);
    case H5T_STRING:
      return "string";
    case H5T_ENUM:
      return "enum";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "vlen";
    default:
      return "unsupported";
  }
}

// Reads the extent of a dataspace. `rank_out` < 0 for a null dataspace.
std::vector<int64_t> extent(hid_t space, bool* is_null) {
  *is_null = false;
  const H5S_class_t cls = H5Sget_simple_extent_type(space);
  if (cls == H5S_NULL) {
    *is_null = true;
    return {};
  }
  if (cls == H5S_SCALAR) return {};
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

Handle make_space(const std::vector<int64_t>& shape) {
  if (shape.empty()) return Handle(H5Screate(H5S_SCALAR), H5Sclose);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return Handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
}

// float -> double through the shortest decimal string that round-trips.
double widen_float(float f) {
  if (!std::isfinite(f)) return static_cast<double>(f);
  char buf[64];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) return std::strtod(buf, nullptr);
  }
  return static_cast<double>(f);
}

// IEEE 754 half precision, little endian (HDF5 1.10 has no predefined type;
// h5py and numpy read it as float16). Serves as file and memory type.
Handle half_type() {
  Handle t(H5Tcopy(H5T_IEEE_F32LE), H5Tclose);
  H5Tset_fields(t.get(), 15, 10, 5, 0, 10);
  H5Tset_size(t.get(), 2);
  H5Tset_ebias(t.get(), 15);
  return t;
}

// Link creation property list that creates missing intermediate groups.
Handle lcpl_with_parents() {
  Handle p(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  if (p.ok()) H5Pset_create_intermediate_group(p.get(), 1);
  return p;
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}
std::string shape_string(const torch::Tensor& t) {
  if (!t.defined()) return "<undefined>";
  return shape_string(t.sizes().vec());
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: return c10::toString(t);
  }
}

// ------------------------------------------------------------------ H5File

absl::StatusOr<H5File> H5File::open_read(const std::string& path, ReadGuard guard) {
  silence_hdf5();
  if (!path_exists(path)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  if (is_dir(path))
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not an HDF5 file"));
  ChecksumCheck sum;
  if (read_guards_enabled()) {
    if (absl::Status st = check_file_checksum(path, &sum); !st.ok()) return st;
    if (sum.state == ChecksumState::kMismatch && guard == ReadGuard::kStrict)
      return absl::DataLossError(absl::StrCat(path, ": corrupt: the file changed after drift wrote it (",
                                              sum.detail, ")"));
  }
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) {
    hdf5_detail();
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an HDF5 file"));
  }
  if (read_guards_enabled() && sum.state != ChecksumState::kMatch) {
    if (absl::Status st = probe_in_child(path); !st.ok()) return st;
  }
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot open HDF5 file for reading", hdf5_detail()));
  return H5File(id, path, false);
}

namespace {
Handle fcpl_with_userblock(int64_t userblock) {
  Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  if (userblock > 0) H5Pset_userblock(fcpl.get(), static_cast<hsize_t>(userblock));
  return fcpl;
}
}  // namespace

absl::StatusOr<H5File> H5File::create(const std::string& path, int64_t userblock) {
  silence_hdf5();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  Handle fcpl = fcpl_with_userblock(userblock);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (id < 0)
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot create HDF5 file", hdf5_detail()));
  return H5File(id, path, true);
}

absl::StatusOr<H5File> H5File::create_in_memory(const std::string& name, int64_t userblock) {
  silence_hdf5();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  // 1 MiB growth steps; no backing store: nothing touches the disk.
  H5Pset_fapl_core(fapl.get(), size_t{1} << 20, /*backing_store=*/0);
  Handle fcpl = fcpl_with_userblock(userblock);
  const hid_t id = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get());
  if (id < 0)
    return absl::ResourceExhaustedError(
        absl::StrCat(name, ": cannot create an HDF5 file in memory", hdf5_detail()));
  return H5File(id, name, true);
}

absl::StatusOr<std::vector<char>> H5File::file_image() {
  silence_hdf5();
  if (id_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": file is closed"));
  if (H5Fflush(id_, H5F_SCOPE_GLOBAL) < 0)
    return absl::DataLossError(absl::StrCat(path_, ": cannot flush", hdf5_detail()));
  const ssize_t n = H5Fget_file_image(id_, nullptr, 0);
  if (n < 0) return absl::DataLossError(absl::StrCat(path_, ": no file image", hdf5_detail()));
  std::vector<char> bytes(static_cast<size_t>(n));
  if (H5Fget_file_image(id_, bytes.data(), bytes.size()) != n)
    return absl::DataLossError(absl::StrCat(path_, ": cannot copy the file image", hdf5_detail()));
  return bytes;
}

H5File::H5File(H5File&& o) noexcept : id_(o.id_), path_(std::move(o.path_)), writable_(o.writable_) {
  o.id_ = -1;
}

H5File& H5File::operator=(H5File&& o) noexcept {
  if (this != &o) {
    close().IgnoreError();
    id_ = o.id_;
    path_ = std::move(o.path_);
    writable_ = o.writable_;
    o.id_ = -1;
  }
  return *this;
}

H5File::~H5File() { close().IgnoreError(); }

absl::Status H5File::close() {
  if (id_ < 0) return absl::OkStatus();
  silence_hdf5();
  const hid_t id = id_;
  id_ = -1;
  herr_t flush_rc = writable_ ? H5Fflush(id, H5F_SCOPE_GLOBAL) : 0;
  std::string detail = flush_rc < 0 ? hdf5_detail() : "";
  const herr_t close_rc = H5Fclose(id);
  if (close_rc < 0 && detail.empty()) detail = hdf5_detail();
  if (flush_rc < 0 || close_rc < 0)
    return absl::DataLossError(absl::StrCat(path_, ": cannot flush/close HDF5 file", detail));
  return absl::OkStatus();
}

bool H5File::exists(const std::string& name) const {
  if (id_ < 0) return false;
  silence_hdf5();
  std::string prefix;
  for (const auto& part : components(name)) {
    prefix += "/" + part;
    const htri_t e = H5Lexists(id_, prefix.c_str(), H5P_DEFAULT);
    if (e <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  return true;
}

namespace {
H5I_type_t object_type(hid_t file, const std::string& name) {
  Handle obj(H5Oopen(file, is_root(name) ? "/" : name.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) {
    H5Eclear2(H5E_DEFAULT);
    return H5I_BADID;
  }
  return H5Iget_type(obj.get());
}
}  // namespace

bool H5File::is_dataset(const std::string& name) const {
  return exists(name) && object_type(id_, name) == H5I_DATASET;
}

bool H5File::is_group(const std::string& name) const {
  return exists(name) && object_type(id_, name) == H5I_GROUP;
}

absl::StatusOr<std::vector<std::string>> H5File::list(const std::string& group) const {
  silence_hdf5();
  if (!is_group(group))
    return absl::NotFoundError(absl::StrCat(path_, ": group ", quoted(group), " not found"));
  Handle g(H5Gopen2(id_, is_root(group) ? "/" : group.c_str(), H5P_DEFAULT), H5Gclose);
  H5G_info_t info;
  if (!g.ok() || H5Gget_info(g.get(), &info) < 0)
    return absl::InternalError(
        absl::StrCat(path_, ": cannot list group ", quoted(group), hdf5_detail()));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                         H5P_DEFAULT);
    if (n < 0) continue;
    std::string s(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), n + 1, H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

absl::StatusOr<DatasetInfo> H5File::info(const std::string& name) const {
  silence_hdf5();
  if (id_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": file is closed"));
  if (!exists(name))
    return absl::NotFoundError(absl::StrCat(path_, ": dataset ", quoted(name), " not found"));
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": ", quoted(name), " is not a dataset", hdf5_detail()));
  Handle type(H5Dget_type(ds.get()), H5Tclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  if (!type.ok() || !space.ok())
    return absl::InternalError(
        absl::StrCat(path_, ": dataset ", quoted(name), ": cannot read type/shape", hdf5_detail()));
  DatasetInfo out;
  out.dtype = type_name(type.get());
  bool is_null = false;
  out.shape = extent(space.get(), &is_null);
  if (is_null)
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": dataset ", quoted(name), " has no dataspace (null)"));
  return out;
}

namespace {
// Storage for a dataset about to be read: a shape whose size overflows, a
// contiguous dataset whose stored bytes do not cover its shape, or memory
// that cannot be allocated is an error naming the dataset (a corrupt or
// hostile file), never an exception out of the reader.
absl::StatusOr<torch::Tensor> storage_for(hid_t file, const std::string& path, const std::string& name,
                                          const std::vector<int64_t>& shape, torch::ScalarType st) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > std::numeric_limits<int64_t>::max() / 16 / d))
      return absl::DataLossError(absl::StrCat(path, ": dataset ", quoted(name), " has shape ", shape_string(shape),
                                              ", too large to be read (a corrupt file?)"));
    n *= d;
  }
  if (n > 0) {
    Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    Handle dcpl(ds.ok() ? H5Dget_create_plist(ds.get()) : -1, H5Pclose);
    Handle type(ds.ok() ? H5Dget_type(ds.get()) : -1, H5Tclose);
    const H5D_layout_t layout = dcpl.ok() ? H5Pget_layout(dcpl.get()) : H5D_LAYOUT_ERROR;
    if (type.ok() && (layout == H5D_CONTIGUOUS || layout == H5D_COMPACT) && H5Pget_nfilters(dcpl.get()) == 0) {
      const hsize_t stored = H5Dget_storage_size(ds.get());
      const hsize_t needed = static_cast<hsize_t>(n) * H5Tget_size(type.get());
      // Contiguous storage of 0 bytes was never written (reading gives the fill
      // value); compact data lives in the object header, so it is always there
      // (libhdf5 1.10 copies `needed` bytes from a shorter compact buffer).
      if ((stored != 0 || layout == H5D_COMPACT) && stored < needed)
        return absl::DataLossError(absl::StrCat(path, ": dataset ", quoted(name), " has shape ", shape_string(shape),
                                                " (", needed, " bytes) but stores ", stored,
                                                " bytes (a corrupt or truncated file)"));
    }
    H5Eclear2(H5E_DEFAULT);
  }
  try {
    return torch::empty(shape, torch::TensorOptions().dtype(st));
  } catch (const std::exception&) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": dataset ", quoted(name), " has shape ",
                                                     shape_string(shape), ", ", n * c10::elementSize(st),
                                                     " bytes in memory, which cannot be allocated"));
  }
}
}  // namespace

absl::StatusOr<torch::Tensor> H5File::read(const std::string& name) const {
  auto inf = info(name);
  if (!inf.ok()) return inf.status();
  const std::string& dt = inf->dtype;
  hid_t mem_type = -1;
  torch::ScalarType st;
  if (dt == "float32" || dt == "float16") {
    mem_type = H5T_NATIVE_FLOAT;
    st = torch::kFloat32;
  } else if (dt == "float64") {
    mem_type = H5T_NATIVE_DOUBLE;
    st = torch::kFloat64;
  } else if (dt == "uint8") {
    mem_type = H5T_NATIVE_UINT8;
    st = torch::kUInt8;
  } else if (dt == "int8" || dt == "int16" || dt == "int32" || dt == "int64" || dt == "uint16" ||
             dt == "uint32") {
    mem_type = H5T_NATIVE_INT64;
    st = torch::kInt64;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": dataset ", quoted(name), " has dtype ", dt,
        ", expected one of float32, float64, int64, uint8 (or a smaller integer type)"));
  }
  auto alloc = storage_for(id_, path_, name, inf->shape, st);
  if (!alloc.ok()) return alloc.status();
  torch::Tensor t = *std::move(alloc);
  if (t.numel() == 0) return t;
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok() || H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    return absl::DataLossError(
        absl::StrCat(path_, ": dataset ", quoted(name), ": read failed", hdf5_detail()));
  return t;
}

absl::StatusOr<torch::Tensor> H5File::read_as(const std::string& name, torch::ScalarType dtype,
                                              const std::vector<std::string>& allowed) const {
  if (!allowed.empty() || dtype == torch::kFloat16) {
    auto inf = info(name);
    if (!inf.ok()) return inf.status();
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), inf->dtype) == allowed.end())
      return absl::InvalidArgumentError(absl::StrCat(path_, ": dataset ", quoted(name),
                                                     " has dtype ", inf->dtype, ", expected ",
                                                     absl::StrJoin(allowed, " or ")));
    if (dtype == torch::kFloat16 && inf->dtype == "float16") {
      // float16 as stored, without a round trip through float32.
      auto alloc = storage_for(id_, path_, name, inf->shape, torch::kFloat16);
      if (!alloc.ok()) return alloc.status();
      torch::Tensor t = *std::move(alloc);
      if (t.numel() == 0) return t;
      Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT), H5Dclose);
      Handle half = half_type();
      if (!ds.ok() || H5Dread(ds.get(), half.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
        return absl::DataLossError(
            absl::StrCat(path_, ": dataset ", quoted(name), ": read failed", hdf5_detail()));
      return t;
    }
  }
  auto t = read(name);
  if (!t.ok()) return t.status();
  return t->to(dtype);
}

absl::StatusOr<torch::Tensor> H5File::read_checked(const std::string& name,
                                                   torch::ScalarType dtype,
                                                   const std::vector<int64_t>& expected,
                                                   const std::string& what) const {
  auto inf = info(name);
  if (!inf.ok()) return inf.status();
  bool match = inf->shape.size() == expected.size();
  for (size_t i = 0; match && i < expected.size(); ++i)
    if (expected[i] >= 0 && expected[i] != inf->shape[i]) match = false;
  if (!match)
    return absl::InvalidArgumentError(absl::StrCat(path_, ": dataset ", quoted(name),
                                                   " has shape ", shape_string(inf->shape),
                                                   ", expected ", what));
  return read_as(name, dtype);
}

absl::Status H5File::write(const std::string& name, const torch::Tensor& t_in) {
  silence_hdf5();
  if (id_ < 0 || !writable_)
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": dataset ", quoted(name), ": file is not open for writing"));
  if (!t_in.defined())
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": dataset ", quoted(name), ": tensor is undefined"));
  torch::Tensor t = t_in.detach().to(torch::kCPU);
  if (t.scalar_type() == torch::kBool) t = t.to(torch::kUInt8);
  hid_t file_type = -1, mem_type = -1;
  Handle half;
  switch (t.scalar_type()) {
    case torch::kFloat16: half = half_type(); file_type = mem_type = half.get(); break;
    case torch::kFloat32: file_type = H5T_IEEE_F32LE; mem_type = H5T_NATIVE_FLOAT; break;
    case torch::kFloat64: file_type = H5T_IEEE_F64LE; mem_type = H5T_NATIVE_DOUBLE; break;
    case torch::kInt64: file_type = H5T_STD_I64LE; mem_type = H5T_NATIVE_INT64; break;
    case torch::kUInt8: file_type = H5T_STD_U8LE; mem_type = H5T_NATIVE_UINT8; break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ": dataset ", quoted(name), ": cannot write dtype ", dtype_name(t.scalar_type()),
          ", expected float16, float32, float64, int64, uint8 or bool"));
  }
  t = t.contiguous();
  if (exists(name))
    return absl::AlreadyExistsError(
        absl::StrCat(path_, ": dataset ", quoted(name), " already exists"));
  Handle space = make_space(t.sizes().vec());
  Handle ds(H5Dcreate2(id_, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT),
            H5Dclose);
  if (!ds.ok())
    return absl::InvalidArgumentError(absl::StrCat(path_, ": cannot create dataset ", quoted(name),
                                                   " (does its group exist?)", hdf5_detail()));
  if (t.numel() > 0 &&
      H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()) < 0)
    return absl::DataLossError(
        absl::StrCat(path_, ": dataset ", quoted(name), ": write failed", hdf5_detail()));
  return absl::OkStatus();
}

absl::Status H5File::write_scalar(const std::string& name, double v) {
  return write(name, torch::full({}, v, torch::kFloat64));
}

absl::Status H5File::write_scalar(const std::string& name, int64_t v) {
  return write(name, torch::full({}, v, torch::kInt64));
}

absl::Status H5File::create_group(const std::string& name) {
  silence_hdf5();
  if (id_ < 0 || !writable_)
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": group ", quoted(name), ": file is not open for writing"));
  if (is_root(name) || is_group(name)) return absl::OkStatus();
  if (exists(name))
    return absl::AlreadyExistsError(
        absl::StrCat(path_, ": ", quoted(name), " exists and is not a group"));
  Handle lcpl = lcpl_with_parents();
  Handle g(H5Gcreate2(id_, name.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": cannot create group ", quoted(name), hdf5_detail()));
  return absl::OkStatus();
}

// ------------------------------------------------------------------ attributes

namespace {

std::string attr_where(const std::string& path, const std::string& object,
                       const std::string& attr) {
  return absl::StrCat(path, ": attribute ", quoted(attr), " on ", quoted(is_root(object) ? "/" : object));
}

}  // namespace

bool H5File::has_attr(const std::string& object, const std::string& attr) const {
  silence_hdf5();
  if (!exists(object)) return false;
  Handle obj(H5Oopen(id_, is_root(object) ? "/" : object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  const htri_t e = H5Aexists(obj.get(), attr.c_str());
  H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

absl::StatusOr<std::vector<std::string>> H5File::attr_names(const std::string& object) const {
  silence_hdf5();
  if (!exists(object))
    return absl::NotFoundError(absl::StrCat(path_, ": object ", quoted(object), " not found"));
  Handle obj(H5Oopen(id_, is_root(object) ? "/" : object.c_str(), H5P_DEFAULT), H5Oclose);
  H5O_info_t oinfo;
  if (!obj.ok() || H5Oget_info2(obj.get(), &oinfo, H5O_INFO_NUM_ATTRS) < 0)
    return absl::InternalError(
        absl::StrCat(path_, ": cannot list attributes of ", quoted(object), hdf5_detail()));
  std::vector<std::string> names;
  for (hsize_t i = 0; i < oinfo.num_attrs; ++i) {
    const ssize_t n = H5Aget_name_by_idx(obj.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr,
                                         0, H5P_DEFAULT);
    if (n < 0) continue;
    std::string s(static_cast<size_t>(n), '\0');
    H5Aget_name_by_idx(obj.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), n + 1,
                       H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

namespace {

// Opens attribute `attr` of `object`, with its type and extent.
struct OpenAttr {
  Handle obj, attr, type, space;
  std::vector<int64_t> shape;
  bool is_null = false;
};

absl::StatusOr<std::unique_ptr<OpenAttr>> open_attr(hid_t file, const std::string& path,
                                                    const std::string& object,
                                                    const std::string& attr) {
  auto a = std::make_unique<OpenAttr>();
  a->obj = Handle(H5Oopen(file, is_root(object) ? "/" : object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!a->obj.ok()) {
    hdf5_detail();
    return absl::NotFoundError(absl::StrCat(path, ": object ", quoted(object), " not found"));
  }
  if (H5Aexists(a->obj.get(), attr.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return absl::NotFoundError(absl::StrCat(attr_where(path, object, attr), " not found"));
  }
  a->attr = Handle(H5Aopen(a->obj.get(), attr.c_str(), H5P_DEFAULT), H5Aclose);
  if (!a->attr.ok())
    return absl::InternalError(
        absl::StrCat(attr_where(path, object, attr), ": cannot open", hdf5_detail()));
  a->type = Handle(H5Aget_type(a->attr.get()), H5Tclose);
  a->space = Handle(H5Aget_space(a->attr.get()), H5Sclose);
  a->shape = extent(a->space.get(), &a->is_null);
  return a;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

}  // namespace

absl::StatusOr<std::vector<double>> H5File::read_float_list_attr(const std::string& object,
                                                                 const std::string& attr) const {
  silence_hdf5();
  auto a = open_attr(id_, path_, object, attr);
  if (!a.ok()) return a.status();
  const H5T_class_t cls = H5Tget_class((*a)->type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has type ",
                                                   type_name((*a)->type.get()),
                                                   ", expected a float or a list of floats"));
  if ((*a)->is_null) return std::vector<double>{};
  if ((*a)->shape.size() > 1)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has shape ",
                                                   shape_string((*a)->shape),
                                                   ", expected a scalar or a 1-D list"));
  const int64_t n = numel((*a)->shape);
  std::vector<double> out(n);
  if (n == 0) return out;
  herr_t rc;
  if (cls == H5T_FLOAT && H5Tget_size((*a)->type.get()) <= 4) {
    std::vector<float> f(n);
    rc = H5Aread((*a)->attr.get(), H5T_NATIVE_FLOAT, f.data());
    for (int64_t i = 0; i < n; ++i) out[i] = widen_float(f[i]);
  } else {
    rc = H5Aread((*a)->attr.get(), H5T_NATIVE_DOUBLE, out.data());
  }
  if (rc < 0)
    return absl::DataLossError(
        absl::StrCat(attr_where(path_, object, attr), ": read failed", hdf5_detail()));
  return out;
}

absl::StatusOr<double> H5File::read_float_attr(const std::string& object,
                                               const std::string& attr) const {
  auto v = read_float_list_attr(object, attr);
  if (!v.ok()) return v.status();
  if (v->size() != 1)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has ",
                                                   v->size(), " values, expected one"));
  return (*v)[0];
}

absl::StatusOr<int64_t> H5File::read_int_attr(const std::string& object,
                                              const std::string& attr) const {
  silence_hdf5();
  auto a = open_attr(id_, path_, object, attr);
  if (!a.ok()) return a.status();
  if (H5Tget_class((*a)->type.get()) != H5T_INTEGER)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has type ",
                                                   type_name((*a)->type.get()),
                                                   ", expected an integer"));
  if ((*a)->is_null || numel((*a)->shape) != 1)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has shape ",
                                                   shape_string((*a)->shape),
                                                   ", expected one integer"));
  int64_t v = 0;
  if (H5Aread((*a)->attr.get(), H5T_NATIVE_INT64, &v) < 0)
    return absl::DataLossError(
        absl::StrCat(attr_where(path_, object, attr), ": read failed", hdf5_detail()));
  return v;
}

absl::StatusOr<std::string> H5File::read_string_attr(const std::string& object,
                                                     const std::string& attr) const {
  silence_hdf5();
  auto a = open_attr(id_, path_, object, attr);
  if (!a.ok()) return a.status();
  const hid_t ftype = (*a)->type.get();
  if (H5Tget_class(ftype) != H5T_STRING)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has type ",
                                                   type_name(ftype), ", expected a string"));
  if ((*a)->is_null || numel((*a)->shape) != 1)
    return absl::InvalidArgumentError(absl::StrCat(attr_where(path_, object, attr), " has shape ",
                                                   shape_string((*a)->shape),
                                                   ", expected one string"));
  Handle mtype(H5Tcopy(ftype), H5Tclose);
  if (H5Tis_variable_str(ftype) > 0) {
    char* s = nullptr;
    if (H5Aread((*a)->attr.get(), mtype.get(), &s) < 0)
      return absl::DataLossError(
          absl::StrCat(attr_where(path_, object, attr), ": read failed", hdf5_detail()));
    std::string out = s ? s : "";
    if (s) H5free_memory(s);
    return out;
  }
  const size_t size = H5Tget_size(ftype);
  std::string buf(size, '\0');
  if (size > 0 && H5Aread((*a)->attr.get(), mtype.get(), buf.data()) < 0)
    return absl::DataLossError(
        absl::StrCat(attr_where(path_, object, attr), ": read failed", hdf5_detail()));
  const size_t end = buf.find('\0');
  if (end != std::string::npos) buf.resize(end);
  while (!buf.empty() && buf.back() == ' ') buf.pop_back();  // space-padded strings
  return buf;
}

namespace {

absl::Status write_attr(hid_t file, bool writable, const std::string& path,
                        const std::string& object, const std::string& attr, hid_t file_type,
                        hid_t mem_type, const std::vector<int64_t>& shape, bool null_space,
                        const void* data) {
  silence_hdf5();
  if (file < 0 || !writable)
    return absl::FailedPreconditionError(
        absl::StrCat(attr_where(path, object, attr), ": file is not open for writing"));
  Handle obj(H5Oopen(file, is_root(object) ? "/" : object.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.ok()) {
    hdf5_detail();
    return absl::NotFoundError(absl::StrCat(path, ": object ", quoted(object),
                                            " not found (cannot set attribute ", quoted(attr),
                                            ")"));
  }
  if (H5Aexists(obj.get(), attr.c_str()) > 0 && H5Adelete(obj.get(), attr.c_str()) < 0)
    return absl::InternalError(
        absl::StrCat(attr_where(path, object, attr), ": cannot replace", hdf5_detail()));
  Handle space = null_space ? Handle(H5Screate(H5S_NULL), H5Sclose) : make_space(shape);
  Handle a(H5Acreate2(obj.get(), attr.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose);
  if (!a.ok())
    return absl::InternalError(
        absl::StrCat(attr_where(path, object, attr), ": cannot create", hdf5_detail()));
  if (!null_space && H5Awrite(a.get(), mem_type, data) < 0)
    return absl::DataLossError(
        absl::StrCat(attr_where(path, object, attr), ": write failed", hdf5_detail()));
  return absl::OkStatus();
}

}  // namespace

absl::Status H5File::set_attr(const std::string& object, const std::string& attr,
                              const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const char* p = value.c_str();
  return write_attr(id_, writable_, path_, object, attr, type.get(), type.get(), {}, false, &p);
}

absl::Status H5File::set_attr(const std::string& object, const std::string& attr, int64_t value) {
  return write_attr(id_, writable_, path_, object, attr, H5T_STD_I64LE, H5T_NATIVE_INT64, {},
                    false, &value);
}

absl::Status H5File::set_attr(const std::string& object, const std::string& attr, double value) {
  return write_attr(id_, writable_, path_, object, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {},
                    false, &value);
}

absl::Status H5File::set_attr(const std::string& object, const std::string& attr,
                              const std::vector<double>& value) {
  return write_attr(id_, writable_, path_, object, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                    {static_cast<int64_t>(value.size())}, value.empty(), value.data());
}

absl::Status H5File::set_attr(const std::string& object, const std::string& attr,
                              const std::vector<int64_t>& value) {
  return write_attr(id_, writable_, path_, object, attr, H5T_STD_I64LE, H5T_NATIVE_INT64,
                    {static_cast<int64_t>(value.size())}, value.empty(), value.data());
}

// ------------------------------------------------------------------ atomic writes

std::string atomic_temp_path(const std::string& path) {
  return absl::StrCat(path, ".tmp-", static_cast<long>(::getpid()));
}

namespace {

// Pushes a closed file's data to the disk (best effort for the directory).
absl::Status fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) {
    if (directory) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(path, ": cannot reopen to sync: ", std::strerror(errno)));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !directory)
    return absl::DataLossError(absl::StrCat(path, ": fsync failed: ", std::strerror(err)));
  return absl::OkStatus();
}

}  // namespace

bool is_disk_full(const absl::Status& st) {
  if (st.ok()) return false;
  if (st.code() == absl::StatusCode::kResourceExhausted) return true;
  const absl::string_view m = st.message();
  return absl::StrContains(m, std::strerror(ENOSPC)) || absl::StrContains(m, std::strerror(EDQUOT));
}

namespace {

// Writes `bytes` to a new file `path` (which must not exist) and syncs it.
absl::Status write_bytes(const std::string& path, const std::vector<char>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  size_t done = 0;
  int err = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    done += static_cast<size_t>(w);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0) return absl::OkStatus();
  const std::string what = absl::StrCat(path, ": write failed after ", done, " of ", bytes.size(),
                                        " bytes: ", std::strerror(err));
  return absl::DataLossError(what);  // write_h5_atomically names a full device
}

}  // namespace

namespace {
// Test hook: DRIFT_TEST_PAUSE_RENAME="<ms>:<suffix>" makes every atomic write
// of a path ending in <suffix> wait <ms> milliseconds with its complete
// temporary file on disk, before the rename, so that a test can stop the
// process exactly there (tests/cli/sweep_faults.sh). Unset: nothing.
void pause_before_rename(const std::string& path) {
  const char* spec = std::getenv("DRIFT_TEST_PAUSE_RENAME");
  if (spec == nullptr) return;
  const std::string s = spec;
  const auto colon = s.find(':');
  if (colon == std::string::npos || !absl::EndsWith(path, s.substr(colon + 1))) return;
  const long ms = std::strtol(s.substr(0, colon).c_str(), nullptr, 10);
  if (ms > 0) ::usleep(static_cast<useconds_t>(ms) * 1000);
}
}  // namespace

absl::Status write_h5_atomically(const std::string& path,
                                 const std::function<absl::Status(H5File&)>& fill,
                                 AtomicWrite where) {
  const std::string tmp = atomic_temp_path(path);
  const std::string parent = parent_dir(path);
  if (!is_dir(parent))
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot write: directory ", parent, " does not exist"));
  ::unlink(tmp.c_str());  // a leftover of this very pid

  auto cleanup = [&](absl::Status st) {
    ::unlink(tmp.c_str());
    if (is_disk_full(st))
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": cannot write, the device is full (", st.message(), "); ", path,
                       " is left as it was and the temporary file is removed"));
    return st;
  };

  const bool in_memory = where == AtomicWrite::kInMemory;
  auto file = in_memory ? H5File::create_in_memory(tmp, kChecksumBlockBytes)
                         : H5File::create(tmp, kChecksumBlockBytes);
  if (!file.ok())
    return cleanup(absl::Status(file.status().code(),
                                absl::StrCat(path, ": cannot write (temporary ", tmp,
                                             "): ", file.status().message())));
  absl::Status st;
  try {
    st = fill(*file);
  } catch (const std::exception& e) {
    st = absl::InternalError(absl::StrCat(path, ": writing failed: ", e.what()));
  }
  if (!st.ok()) {
    file->close().IgnoreError();
    return cleanup(st);
  }
  if (in_memory) {
    auto image = file->file_image();
    file->close().IgnoreError();
    if (!image.ok()) return cleanup(image.status());
    st = stamp_image_checksum(*image, tmp);
    if (st.ok()) st = write_bytes(tmp, *image);
  } else {
    st = file->close();
    if (st.ok()) st = stamp_file_checksum(tmp);
    if (st.ok()) st = fsync_path(tmp, false);
  }
  if (!st.ok()) return cleanup(st);
  pause_before_rename(path);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return cleanup(absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot rename ", tmp, " onto it: ", std::strerror(errno))));
  fsync_path(parent, true).IgnoreError();
  return absl::OkStatus();
}

}  // namespace drift::io
