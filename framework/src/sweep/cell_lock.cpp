#include "sweep/cell_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

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
