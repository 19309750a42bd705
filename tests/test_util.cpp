#include "test_util.hpp"

#include "runtime/builtins.hpp"
#include "scratch_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
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

std::string golden_dir() { return (fs::path(DRIFT_SOURCE_DIR) / "tests" / "golden").string(); }

std::string extra_golden_dir() {
  if (const char* env = std::getenv("DRIFT_EXTRA_GOLDEN_DIR"); env && *env) return env;
  return DRIFT_EXTRA_GOLDEN_DIR;
}

absl::StatusOr<std::vector<std::string>> golden_cases() {
  std::vector<std::string> all;
  auto add_dir = [&all](const std::string& dir, const std::string& what) -> absl::Status {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".h5") found.push_back(e.path().string());
    if (found.empty())
      return absl::NotFoundError(dir + ": no *.h5 golden case (" + what + ")");
    std::sort(found.begin(), found.end());
    all.insert(all.end(), found.begin(), found.end());
    return absl::OkStatus();
  };
  if (auto st = add_dir(golden_dir(), "the repository's cases"); !st.ok()) return st;
  if (const std::string extra = extra_golden_dir(); !extra.empty())
    if (auto st = add_dir(extra, "named by DRIFT_EXTRA_GOLDEN_DIR"); !st.ok()) return st;
  return all;
}

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
