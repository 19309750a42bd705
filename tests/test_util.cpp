#include "test_util.hpp"

#include "runtime/builtins.hpp"
#include "scratch_dir.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace drift::test {
namespace fs = std::filesystem;

std::string shared_dir() {
  if (const char* env = std::getenv("DRIFT_SHARED_DIR")) return env;
  return fs::weakly_canonical(DRIFT_SHARED_DIR).string();
}

bool shared_available() { return fs::exists(fs::path(shared_dir()) / "golden" / "README.md"); }

runtime::Registry& default_registry() {
  static runtime::Registry* reg = [] {
    auto* r = new runtime::Registry();
    auto st = drift::runtime::register_builtins(*r);
    if (st.ok()) st = r->load_path(std::string(DRIFT_BINARY_DIR) + "/lib/drift/plugins");
    if (!st.ok()) {
      std::fprintf(stderr, "loading the built plugins failed: %s\n", std::string(st.message()).c_str());
      std::abort();
    }
    return r;
  }();
  return *reg;
}

std::string temp_dir(const std::string& tag) {
  // Removed at process exit (ScratchDir uses POSIX calls only: see scratch_dir.hpp).
  static auto* dirs = new std::vector<std::unique_ptr<ScratchDir>>();
  if (dirs->empty()) std::atexit([] { dirs->clear(); });
  dirs->push_back(std::make_unique<ScratchDir>(tag));
  return dirs->back()->path();
}

int run_command(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* f = popen(full.c_str(), "r");
  if (!f) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int rc = pclose(f);
  if (output) *output = out;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

absl::StatusOr<std::unique_ptr<Dataset>> try_make_dataset(
    const std::string& name, const std::map<std::string, ParamValue>& given,
    const DatasetContext& ctx) {
  auto p = default_registry().validate(ComponentKind::Dataset, name, given, "test");
  if (!p.ok()) return p.status();
  return default_registry().make_dataset(name, *p, ctx);
}

std::unique_ptr<Dataset> make_dataset(const std::string& name,
                                      const std::map<std::string, ParamValue>& given,
                                      const DatasetContext& ctx) {
  auto d = try_make_dataset(name, given, ctx);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

}  // namespace drift::test
