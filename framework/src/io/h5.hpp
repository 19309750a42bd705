// A small HDF5 layer (HDF5 C API) for the framework's input and result files.
//
//   auto f = io::H5File::open_read("in.h5");            // StatusOr<H5File>
//   auto gen = f->read("gen");                          // StatusOr<torch::Tensor>
//   auto temps = f->read_float_list_attr("/", "temperatures");
//
//   absl::Status st = io::write_h5_atomically("out.h5", [&](io::H5File& out) {
//     RETURN_IF_ERROR(out.create_group("metrics"));
//     RETURN_IF_ERROR(out.write("metrics/loss", loss));
//     return out.set_attr("/", "kernel", std::string("laplace"));
//   });
//
// Every fallible function returns absl::Status / StatusOr; messages start with
// the file name and name the object ("out.h5: dataset 'gen': ..."). HDF5's own
// error-stack printing is switched off; its innermost message is appended to
// ours where it helps. Object names are paths inside the file ("a/b/c"; a
// leading '/' is optional; "/" is the root group).
//
// Supported dataset dtypes: float32, float64, int64, uint8 (read and write;
// other integer types read as int64, bool tensors are written as uint8);
// float16 (IEEE half) is written as such and read as float32 by read(), as
// float16 by read_as(name, kFloat16).
// Attributes: string, int64, float64, list of float64 (and list of int64).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drift::io {

// "float32", "float64", "int64", "uint8", ... ; "string", "compound" etc. for others.
struct DatasetInfo {
  std::string dtype;
  std::vector<int64_t> shape;  // empty for a scalar dataset
};

// "[4, 16, 7]"; "[]" for a scalar.
std::string shape_string(const std::vector<int64_t>& shape);
std::string shape_string(const torch::Tensor& t);
// torch dtype as written in messages ("float32", "float64", "int64", "uint8", "bool", ...).
std::string dtype_name(torch::ScalarType t);

// How open_read() guards against corrupt files that crash or hang libhdf5
// (io/h5_guard.hpp): drift's own files carry a checksum, verified first; any
// other file is first walked by libhdf5 in a child process.
enum class ReadGuard {
  // A file with drift's checksum is read if it matches; one without it, or whose
  // checksum no longer matches (edited in h5py, say), goes through the child.
  kDefault,
  // As kDefault, but a checksum that does not match refuses the file: for drift's
  // own working files (cell files, checkpoints, feature caches), where a change
  // means damage and the caller has a way out (a previous checkpoint, a rebuild).
  kStrict,
};

// One open HDF5 file. Movable, not copyable; closing happens in close() or the
// destructor (errors from the destructor are lost: call close() when writing).
class H5File {
 public:
  // Opens an existing file read-only, behind the guards of `guard`. Errors:
  // missing file, not an HDF5 file, a checksum that does not match (kStrict), a
  // file that crashed or hung libhdf5 in the child (one line naming the file).
  static absl::StatusOr<H5File> open_read(const std::string& path, ReadGuard guard = ReadGuard::kDefault);
  // Creates (truncates) a file for writing. Prefer write_h5_atomically().
  // `userblock`: bytes HDF5 leaves alone at the start (0, or 512 and powers of 2).
  static absl::StatusOr<H5File> create(const std::string& path, int64_t userblock = 0);
  // Creates a file that lives in memory only (HDF5's core driver, no backing
  // store); `name` is used in messages. Its bytes come out with file_image().
  static absl::StatusOr<H5File> create_in_memory(const std::string& name, int64_t userblock = 0);
  // The bytes of a file made by create_in_memory(), flushed (the file stays open).
  absl::StatusOr<std::vector<char>> file_image();

  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  ~H5File();

  const std::string& path() const { return path_; }
  bool is_open() const { return id_ >= 0; }
  // The HDF5 file id (hid_t), for code that needs the C API directly.
  int64_t native_id() const { return id_; }

  // Whether a dataset or group exists at `name` (every parent must exist too).
  bool exists(const std::string& name) const;
  bool is_dataset(const std::string& name) const;
  bool is_group(const std::string& name) const;
  // Names of the direct members of a group, sorted.
  absl::StatusOr<std::vector<std::string>> list(const std::string& group) const;

  // --- datasets ---
  absl::StatusOr<DatasetInfo> info(const std::string& name) const;
  // Reads a dataset in its own dtype (float32/float64/int64/uint8; smaller
  // signed integer types and uint16/32 are widened to int64). A scalar dataset
  // gives a 0-d tensor. The tensor lives on the CPU and owns its memory.
  absl::StatusOr<torch::Tensor> read(const std::string& name) const;
  // Reads and converts to `dtype`; fails if the stored dtype is not in
  // `allowed` (when given), e.g. only floating types for a float input. A
  // float16 dataset read as kFloat16 is read as stored (no float32 copy).
  absl::StatusOr<torch::Tensor> read_as(const std::string& name, torch::ScalarType dtype,
                                        const std::vector<std::string>& allowed = {}) const;
  // Reads and checks the shape: -1 in `expected` matches any size. `what`
  // describes the expected shape in the error ("[B=4, Cg, S=7]").
  absl::StatusOr<torch::Tensor> read_checked(const std::string& name, torch::ScalarType dtype,
                                             const std::vector<int64_t>& expected,
                                             const std::string& what) const;

  // Writes a tensor as a new dataset (its parents must exist: create_group()).
  // float16/float32/float64/int64/uint8 keep their dtype; bool becomes uint8; other
  // dtypes are refused. Any device; non-contiguous tensors are fine.
  absl::Status write(const std::string& name, const torch::Tensor& t);
  absl::Status write_scalar(const std::string& name, double v);
  absl::Status write_scalar(const std::string& name, int64_t v);

  // --- groups ---
  // Creates a group and any missing parents; an existing group is fine.
  absl::Status create_group(const std::string& name);

  // --- attributes (on a group or dataset; "/" is the root) ---
  bool has_attr(const std::string& object, const std::string& attr) const;
  absl::StatusOr<std::vector<std::string>> attr_names(const std::string& object) const;
  // A numeric attribute (scalar or 1-D) as doubles. float32 values are widened
  // through their shortest decimal representation (0.02f reads as 0.02, not as
  // 0.0199999995...), since such attributes hold decimal settings.
  absl::StatusOr<std::vector<double>> read_float_list_attr(const std::string& object,
                                                           const std::string& attr) const;
  absl::StatusOr<double> read_float_attr(const std::string& object, const std::string& attr) const;
  absl::StatusOr<int64_t> read_int_attr(const std::string& object, const std::string& attr) const;
  // A fixed- or variable-length string attribute.
  absl::StatusOr<std::string> read_string_attr(const std::string& object,
                                               const std::string& attr) const;
  // Writing replaces an existing attribute of the same name.
  absl::Status set_attr(const std::string& object, const std::string& attr,
                        const std::string& value);
  absl::Status set_attr(const std::string& object, const std::string& attr, const char* value) {
    return set_attr(object, attr, std::string(value));
  }
  absl::Status set_attr(const std::string& object, const std::string& attr, int64_t value);
  absl::Status set_attr(const std::string& object, const std::string& attr, int value) {
    return set_attr(object, attr, static_cast<int64_t>(value));
  }
  absl::Status set_attr(const std::string& object, const std::string& attr, double value);
  absl::Status set_attr(const std::string& object, const std::string& attr,
                        const std::vector<double>& value);
  absl::Status set_attr(const std::string& object, const std::string& attr,
                        const std::vector<int64_t>& value);

  // Flushes and closes; errors name the file. Idempotent.
  absl::Status close();

 private:
  H5File(int64_t id, std::string path, bool writable) : id_(id), path_(std::move(path)), writable_(writable) {}
  int64_t id_ = -1;  // hid_t
  std::string path_;
  bool writable_ = false;
};

// Writes `path` atomically: creates `<path>.tmp-<pid>`, lets `fill` write into
// it, flushes and closes it, stamps drift's checksum into its user block
// (io/h5_guard.hpp), then renames it onto `path`. If `fill` or any
// step fails, the temporary file is removed, `path` is left as it was (absent
// or the previous complete file) and the error is returned. A reader never
// sees a half-written `path`. The directory of `path` must exist.
// A full device (ENOSPC, EDQUOT) anywhere on the way is reported as
// absl::StatusCode::kResourceExhausted, one line naming `path`.
//
// Where: kOnDisk builds the temporary file on disk through HDF5 (for files too
// big to hold in memory twice, such as a feature cache); kInMemory builds it in
// memory and writes its bytes out in one go, so a full disk surfaces as a
// plain write() error. (HDF5 1.10 crashes, rather than failing, when the disk
// fills during H5Ocopy: the merge of cell files into a results file uses it.)
enum class AtomicWrite { kOnDisk, kInMemory };
absl::Status write_h5_atomically(const std::string& path,
                                 const std::function<absl::Status(H5File&)>& fill,
                                 AtomicWrite where = AtomicWrite::kOnDisk);

// Whether `st` failed because the device (or the user's quota) is full: its code
// is kResourceExhausted, or its message holds the system's text for ENOSPC or
// EDQUOT (as HDF5 and strerror() word them).
bool is_disk_full(const absl::Status& st);

// The temporary name write_h5_atomically() uses for `path` in this process.
std::string atomic_temp_path(const std::string& path);

}  // namespace drift::io
