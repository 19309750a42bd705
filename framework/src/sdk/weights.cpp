// Weights files with a SHA-256 checksum beside them (drift/weights.hpp).
#include "drift/weights.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "drift/checksum.hpp"

namespace drift {
namespace {

constexpr const char* kMetaKey = "drift_meta";

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string base_name(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string one_line(std::string s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::map<std::string, std::vector<int64_t>> shapes_of(torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers(true)) out[b.key()] = b.value().sizes().vec();
  return out;
}

// Writes `bytes` to `path` through `<path>.tmp-<pid>`, fsync and rename: a
// reader never sees a partial file, and a failure leaves `path` as it was and
// no temporary behind. A full device is kResourceExhausted, one line naming
// `path` (what the sweep runner recognises as a full disk).
absl::Status write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = absl::StrCat(path, ".tmp-", ::getpid());
  auto failed = [&](const std::string& what, int err) {
    ::unlink(tmp.c_str());
    if (err == ENOSPC || err == EDQUOT)
      return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot write, the device is full (", what, ": ",
                                                       std::strerror(err), ")"));
    return absl::InternalError(absl::StrCat(path, ": cannot write (", what, ": ", std::strerror(err), ")"));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return failed(tmp, errno);
  for (size_t off = 0; off < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      return failed(tmp, err);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return failed(tmp, err);
  }
  if (::close(fd) != 0) return failed(tmp, errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return failed("rename " + tmp, errno);
  return absl::OkStatus();
}

// Metadata from a file, quoted in an error: control bytes escaped, so that the
// error stays one line whatever the file holds.
std::string printable(const std::string& s) { return absl::CHexEscape(s); }

std::string shape_text(torch::IntArrayRef shape) { return c10::str(shape); }

// What `archive` holds for `m`, read the way Module::load reads it (the
// module's own parameters and buffers, then each child's archive), checked
// against m's tensors before anything is loaded: a missing tensor, one of
// another shape or dtype, or one whose storage is too small for its shape is
// an error. Appends (m's tensor, the file's tensor) pairs to `out`.
absl::Status read_archive(torch::nn::Module& m, torch::serialize::InputArchive& archive,
                          const std::string& prefix, const std::string& path,
                          std::vector<std::pair<torch::Tensor, torch::Tensor>>* out) {
  auto take = [&](const std::string& key, const torch::Tensor& mine, bool is_buffer) -> absl::Status {
    torch::Tensor t;
    if (!archive.try_read(key, t, is_buffer) || !t.defined())
      return absl::DataLossError(absl::StrCat(path, ": no tensor '", prefix, key, "'"));
    if (!t.sizes().equals(mine.sizes()))
      return absl::DataLossError(absl::StrCat(path, ": tensor '", prefix, key, "' has shape ", shape_text(t.sizes()),
                                              ", expected ", shape_text(mine.sizes())));
    if (t.scalar_type() != mine.scalar_type())
      return absl::DataLossError(absl::StrCat(path, ": tensor '", prefix, key, "' has dtype ",
                                              c10::toString(t.scalar_type()), ", expected ",
                                              c10::toString(mine.scalar_type())));
    if (t.numel() > 0) {
      // The lowest and highest element the strides reach, in elements.
      int64_t lo = t.storage_offset(), hi = t.storage_offset(), need = 0;
      bool overflow = false;
      for (int64_t d = 0; d < t.dim(); ++d) {
        int64_t reach = 0;
        overflow |= __builtin_mul_overflow(t.size(d) - 1, t.stride(d), &reach);
        overflow |= __builtin_add_overflow(reach < 0 ? lo : hi, reach, reach < 0 ? &lo : &hi);
      }
      overflow |= __builtin_add_overflow(hi, 1, &need) ||
                  __builtin_mul_overflow(need, static_cast<int64_t>(t.element_size()), &need);
      if (overflow || lo < 0 || !t.has_storage() || static_cast<int64_t>(t.storage().nbytes()) < need)
        return absl::DataLossError(absl::StrCat(path, ": tensor '", prefix, key, "' has ",
                                                t.has_storage() ? t.storage().nbytes() : 0, " bytes of data, its shape ",
                                                shape_text(t.sizes()), " needs ", need, " (a corrupt file)"));
    }
    out->emplace_back(mine, t);
    return absl::OkStatus();
  };
  for (const auto& p : m.named_parameters(/*recurse=*/false))
    if (auto st = take(p.key(), p.value(), false); !st.ok()) return st;
  for (const auto& b : m.named_buffers(/*recurse=*/false))
    if (auto st = take(b.key(), b.value(), true); !st.ok()) return st;
  for (const auto& c : m.named_children()) {
    if (!c.value()->is_serializable()) continue;
    torch::serialize::InputArchive sub;
    if (!archive.try_read(c.key(), sub))
      return absl::DataLossError(absl::StrCat(path, ": no module '", prefix, c.key(), "'"));
    if (auto st = read_archive(*c.value(), sub, absl::StrCat(prefix, c.key(), "."), path, out); !st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

std::string checksum_path(const std::string& weights) { return weights + ".sha256"; }

// POSIX mkdir (see tests/scratch_dir.hpp for why the framework avoids
// std::filesystem here).
absl::Status make_parent_dirs(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return absl::OkStatus();
  const std::string dir = path.substr(0, slash);
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    std::string part = dir.substr(0, i);
    if (::mkdir(part.c_str(), 0777) != 0 && errno != EEXIST)
      return absl::PermissionDeniedError(
          absl::StrCat(path, ": cannot create directory ", part, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> save_weights(torch::nn::Module& m, const std::string& path,
                                         const std::string& meta) {
  if (auto st = make_parent_dirs(path); !st.ok()) return st;
  // Serialised in memory, then written by write_file_atomically(): LibTorch's
  // file writer throws from its destructor when the disk fills up, which
  // ends the process (std::terminate) instead of reporting it.
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    m.save(archive);
    archive.write(kMetaKey, c10::IValue(meta));
    archive.save_to(bytes);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": cannot serialise weights: ", one_line(e.what())));
  }
  const std::string data = bytes.str();
  const std::string sha = sha256_hex(data.data(), data.size());
  if (auto st = write_file_atomically(path, data); !st.ok()) return st;
  if (auto st = write_file_atomically(checksum_path(path), absl::StrCat(sha, "  ", base_name(path), "\n"));
      !st.ok())
    return st;
  return sha;
}

absl::Status load_weights(torch::nn::Module& m, const std::string& path,
                          const std::string& expected_sha256, const std::string& expected_meta) {
  if (!file_exists(path))
    return absl::NotFoundError(absl::StrCat(path, ": weights file not found"));
  std::string expected = expected_sha256;
  if (expected.empty()) {
    const std::string sum = checksum_path(path);
    std::ifstream f(sum);
    if (!f)
      return absl::NotFoundError(absl::StrCat(sum, ": checksum file of ", path,
                                              " not found (or give the SHA-256 as a parameter)"));
    f >> expected;
    if (expected.size() != 64)
      return absl::DataLossError(
          absl::StrCat(sum, ": expected \"<64 hex digits>  <file name>\", got \"", expected, "\""));
  }
  auto sha = sha256_file(path);
  if (!sha.ok()) return sha.status();
  if (*sha != expected)
    return absl::DataLossError(absl::StrCat(path, ": SHA-256 is ", *sha, ", expected ", expected,
                                            expected_sha256.empty() ? " (from " + checksum_path(path) + ")" : ""));
  const auto want = shapes_of(m);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue meta;
    if (!archive.try_read(kMetaKey, meta) || !meta.isString())
      return absl::DataLossError(absl::StrCat(path, ": no drift metadata (not a drift weights file)"));
    if (meta.toStringRef() != expected_meta)
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": weights are for \"", printable(meta.toStringRef()), "\", expected \"",
                       printable(expected_meta), "\""));
    // Every tensor is read and checked first, then copied into the module's
    // own: a refused file leaves the module as it was.
    std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs;
    if (auto st = read_archive(m, archive, "", path, &pairs); !st.ok()) return st;
    torch::NoGradGuard no_grad;
    for (auto& [mine, theirs] : pairs) mine.copy_(theirs);
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": cannot load weights: ", one_line(e.what())));
  }
  for (const auto& [name, shape] : shapes_of(m))
    if (want.at(name) != shape)
      return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "' has shape ",
                                              c10::str(c10::IntArrayRef(shape)), ", expected ",
                                              c10::str(c10::IntArrayRef(want.at(name)))));
  return absl::OkStatus();
}

}  // namespace drift
