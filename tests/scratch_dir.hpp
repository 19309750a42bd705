// A temporary directory owned by one test, removed when it goes out of scope.
//
// Uses POSIX calls only: the PyPI libtorch.so exports its own copies of
// std::filesystem functions, and the dynamic linker binds calls to them; its
// remove_all crashes when called from an atexit handler (as
// drift::test::temp_dir's cleanup does), so these tests avoid both.
#pragma once

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace drift::test {

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/drift-test-" + tag + "-XXXXXX";
    if (!mkdtemp(tmpl.data())) abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); },
         16, FTW_DEPTH | FTW_PHYS);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace drift::test
