#include "sweep/cell_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace drift::sweep {

std::string cell_lock_path(const std::string& cells_dir, size_t cell) {
  return absl::StrFormat("%s/%04d.lock", cells_dir, cell);
}

int try_lock_cell(const std::string& cells_dir, size_t cell) {
  const std::string path = cell_lock_path(cells_dir, cell);
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool cell_lock_held(const std::string& cells_dir, size_t cell) {
  const std::string path = cell_lock_path(cells_dir, cell);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // never locked
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

namespace {
constexpr const char* kReportMagic = "drift cell report 1";
}

void write_cell_report(int lock_fd, CellReport report) {
  if (lock_fd < 0) return;
  report.updated = static_cast<int64_t>(std::time(nullptr));
  auto one_line = [](std::string s) {
    for (char& c : s)
      if (c == '\n') c = ' ';
    return s;
  };
  const std::string text = absl::StrCat(kReportMagic, "\nupdated ", report.updated, "\nlog ", one_line(report.log),
                                        "\nprogress ", one_line(report.progress), "\nend\n");
  // In place (the lock is on this open file): a reader that catches it
  // half-written sees no "end" line and ignores it.
  if (::pwrite(lock_fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()))
    if (::ftruncate(lock_fd, static_cast<off_t>(text.size())) != 0) return;
}

void clear_cell_report(int lock_fd) {
  if (lock_fd >= 0 && ::ftruncate(lock_fd, 0) != 0) return;
}

std::optional<CellReport> read_cell_report(const std::string& cells_dir, size_t cell) {
  std::ifstream in(cell_lock_path(cells_dir, cell));
  std::string line;
  if (!std::getline(in, line) || line != kReportMagic) return std::nullopt;
  CellReport r;
  bool end = false;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    const std::string key = line.substr(0, sp), value = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (key == "updated") r.updated = std::atoll(value.c_str());
    else if (key == "log") r.log = value;
    else if (key == "progress") r.progress = value;
    else if (key == "end") {
      end = true;
      break;
    }
  }
  if (!end) return std::nullopt;
  return r;
}

bool make_dirs(const std::string& path) {
  std::string cur;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    absl::StrAppend(&cur, part, "/");
    if (part.empty() || part == ".") continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace drift::sweep
