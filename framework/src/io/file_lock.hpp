// An exclusive flock on a lock file, held for the lifetime of the object: the
// processes (or threads: each object opens its own file description) that
// take it on the same path run one at a time. The kernel drops the lock when
// its holder dies, however it dies. Used where cells running side by side must
// build a shared file once (pre-trained encoder weights, the real-feature
// cache) while the others wait.
#pragma once

#include <string>

namespace drift::io {

class FileLock {
 public:
  // Creates `path` if needed and blocks until the lock is held; ok() is false
  // when the file cannot be opened or locked (error() says why).
  explicit FileLock(const std::string& path);
  ~FileLock();  // closing the file releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  bool ok() const { return fd_ >= 0; }
  // strerror of the failed open/flock ("" when ok()).
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

}  // namespace drift::io
