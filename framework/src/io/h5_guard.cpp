#include "io/h5_guard.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace drift::io {

namespace {

constexpr char kMagic[] = "drift-h5 checksum v1\n";

std::atomic<bool> g_guards{true};

// CRC-32 of `fd` from `offset` to its end; `*bytes` gets the length read.
absl::Status crc_from(int fd, int64_t offset, const std::string& path, uint32_t* crc, int64_t* bytes) {
  std::vector<unsigned char> buf(size_t{4} << 20);
  uLong c = crc32_z(0L, Z_NULL, 0);
  int64_t done = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::DataLossError(absl::StrCat(path, ": cannot read: ", std::strerror(errno)));
    }
    if (n == 0) break;
    c = crc32_z(c, buf.data(), static_cast<size_t>(n));
    done += n;
  }
  *crc = static_cast<uint32_t>(c);
  *bytes = done;
  return absl::OkStatus();
}

std::string header_text(uint32_t crc, int64_t bytes) {
  return absl::StrFormat("%scrc32 %08x\nbytes %d\n", kMagic, crc, bytes);
}

// Parses a header; false when `block` does not start with the magic or is malformed.
bool parse_header(const std::string& block, uint32_t* crc, int64_t* bytes) {
  if (block.compare(0, sizeof kMagic - 1, kMagic) != 0) return false;
  const std::string body = block.substr(sizeof kMagic - 1, block.find('\0') - (sizeof kMagic - 1));
  bool have_crc = false, have_bytes = false;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (kv.first == "crc32") have_crc = absl::SimpleHexAtoi(kv.second, crc);
    if (kv.first == "bytes") have_bytes = absl::SimpleAtoi(kv.second, bytes);
  }
  return have_crc && have_bytes;
}

// ------------------------------------------------------------------ the child's walk

constexpr int64_t kMaxReadBytes = int64_t{64} << 20;

// Reads an attribute in full in its native memory type. Nothing is freed: the
// child exits right after the walk.
herr_t read_attr(hid_t loc, const char* name, const H5A_info_t*, void*) {
  const hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return 0;
  const hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
  const hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
  const hid_t mt = ft >= 0 ? H5Tget_native_type(ft, H5T_DIR_DEFAULT) : -1;
  const size_t size = mt >= 0 ? H5Tget_size(mt) : 0;
  if (n >= 0 && size > 0 && static_cast<double>(n) * static_cast<double>(size) <= kMaxReadBytes) {
    void* buf = std::calloc(static_cast<size_t>(n) + 1, size);
    if (buf != nullptr) H5Aread(a, mt, buf);
  }
  return 0;
}

void walk_object(hid_t obj) {
  H5Aexists(obj, "drift-probe-absent");  // the lookup path readers take for optional attributes
  H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, read_attr, nullptr);
  if (H5Iget_type(obj) != H5I_DATASET) return;
  const hid_t ft = H5Dget_type(obj), sp = H5Dget_space(obj), dcpl = H5Dget_create_plist(obj);
  if (dcpl >= 0) {
    H5Pget_layout(dcpl);
    H5Pget_nfilters(dcpl);
  }
  H5Dget_storage_size(obj);
  if (ft < 0 || sp < 0) return;
  const H5T_class_t cls = H5Tget_class(ft);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) return;
  const hid_t mt = H5Tget_native_type(ft, H5T_DIR_DEFAULT);
  const hssize_t n = H5Sget_simple_extent_npoints(sp);
  const size_t size = mt >= 0 ? H5Tget_size(mt) : 0;
  if (n < 0 || size == 0 || static_cast<double>(n) * static_cast<double>(size) > kMaxReadBytes) return;
  void* buf = std::calloc(static_cast<size_t>(n) + 1, size);
  if (buf != nullptr) H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
}

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void*) {
  if (info->type != H5L_TYPE_HARD) return 0;  // soft and external links: not followed
  const hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj >= 0) walk_object(obj);
  return 0;
}

// Everything the child does; returns its exit code (0: finished).
int walk_file(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return 0;  // an ordinary error: the reader reports it
  const hid_t root = H5Oopen(f, "/", H5P_DEFAULT);
  if (root >= 0) walk_object(root);
  H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, visit_link, nullptr);
  return 0;
}

int probe_timeout_s() {
  const char* s = std::getenv("DRIFT_H5_PROBE_TIMEOUT_S");
  int v = 0;
  if (s != nullptr && absl::SimpleAtoi(s, &v) && v > 0) return v;
  return 60;
}

}  // namespace

void set_read_guards(bool enabled) { g_guards.store(enabled); }
bool read_guards_enabled() { return g_guards.load(); }

absl::Status check_file_checksum(const std::string& path, ChecksumCheck* out) {
  *out = ChecksumCheck{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  std::string block(kChecksumBlockBytes, '\0');
  const ssize_t got = ::pread(fd, block.data(), block.size(), 0);
  uint32_t want_crc = 0;
  int64_t want_bytes = 0;
  if (got != kChecksumBlockBytes || !parse_header(block, &want_crc, &want_bytes)) {
    ::close(fd);
    return absl::OkStatus();  // kNone
  }
  uint32_t crc = 0;
  int64_t bytes = 0;
  absl::Status st = crc_from(fd, kChecksumBlockBytes, path, &crc, &bytes);
  ::close(fd);
  if (!st.ok()) return st;
  if (bytes != want_bytes) {
    out->state = ChecksumState::kMismatch;
    out->detail = absl::StrCat(bytes, " bytes after the header, recorded ", want_bytes);
  } else if (crc != want_crc) {
    out->state = ChecksumState::kMismatch;
    out->detail = absl::StrFormat("CRC-32 %08x, recorded %08x", crc, want_crc);
  } else {
    out->state = ChecksumState::kMatch;
  }
  return absl::OkStatus();
}

absl::Status stamp_file_checksum(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return absl::DataLossError(absl::StrCat(path, ": cannot reopen to checksum: ", std::strerror(errno)));
  uint32_t crc = 0;
  int64_t bytes = 0;
  absl::Status st = crc_from(fd, kChecksumBlockBytes, path, &crc, &bytes);
  if (st.ok()) {
    std::string block = header_text(crc, bytes);
    block.resize(kChecksumBlockBytes, '\0');
    if (::pwrite(fd, block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()))
      st = absl::DataLossError(absl::StrCat(path, ": cannot write the checksum: ", std::strerror(errno)));
  }
  ::close(fd);
  return st;
}

absl::Status stamp_image_checksum(std::vector<char>& image, const std::string& name) {
  // HDF5's file image of a file with a user block leaves the block out (it
  // starts at the superblock): put the header in front of it.
  if (image.size() < 8 || std::memcmp(image.data(), "\x89HDF\r\n\x1a\n", 8) != 0)
    return absl::InternalError(absl::StrCat(name, ": the file image does not start with HDF5's signature"));
  const auto* data = reinterpret_cast<const unsigned char*>(image.data());
  const uint32_t crc = static_cast<uint32_t>(crc32_z(crc32_z(0L, Z_NULL, 0), data, image.size()));
  std::string block = header_text(crc, static_cast<int64_t>(image.size()));
  block.resize(kChecksumBlockBytes, '\0');
  image.insert(image.begin(), block.begin(), block.end());
  return absl::OkStatus();
}

absl::Status probe_in_child(const std::string& path) {
  const int timeout_s = probe_timeout_s();
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0)
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": cannot start the process that test-reads it: ", std::strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGALRM}) ::signal(sig, SIG_DFL);
    // The fault, if any, is reported by the parent in one line; a sanitizer's
    // report of it would only repeat it on stderr.
    if (std::getenv("DRIFT_H5_PROBE_VERBOSE") == nullptr) {
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, 2);
    }
    ::_exit(walk_file(path));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  auto pause = std::chrono::milliseconds(1);
  int ws = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &ws, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return absl::OkStatus();  // reaped elsewhere (SIGCHLD ignored): nothing to learn
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
      }
      return absl::DataLossError(absl::StrCat(
          path, ": not read: libhdf5 did not finish reading this file's metadata within ", timeout_s,
          " s in a test read in a child process (it loops on some corrupt files); the file is corrupt, "
          "or set DRIFT_H5_PROBE_TIMEOUT_S higher for a very large one"));
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(50)) pause *= 2;
  }
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return absl::OkStatus();
  const std::string how = WIFSIGNALED(ws)
                              ? absl::StrCat("crashed (signal ", WTERMSIG(ws), ", ", strsignal(WTERMSIG(ws)), ")")
                              : absl::StrCat("failed (exit status ", WEXITSTATUS(ws), ", a sanitizer's report)");
  return absl::DataLossError(absl::StrCat(path, ": not read: libhdf5 ", how,
                                          " reading this file's metadata in a test read in a child process; "
                                          "the file is corrupt or not one HDF5 can read"));
}

}  // namespace drift::io
