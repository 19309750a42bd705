// Helpers shared by the tests.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "drift/dataset.hpp"
#include "drift/params.hpp"
#include "runtime/registry.hpp"

namespace drift::test {

// The repository's ../shared folder. Missing: the calling test fails in CI
// (CI=true) and is skipped loudly elsewhere — use DRIFT_REQUIRE_SHARED().
std::string shared_dir();
bool shared_available();

// A registry with the plugins built from plugins/ (the default discovery).
runtime::Registry& default_registry();

// Dataset `name` from default_registry(), its parameters validated from `given`.
absl::StatusOr<std::unique_ptr<Dataset>> try_make_dataset(
    const std::string& name, const std::map<std::string, ParamValue>& given,
    const DatasetContext& ctx = {});
// The same, failing the calling test (and returning null) when it cannot be made.
std::unique_ptr<Dataset> make_dataset(const std::string& name,
                                      const std::map<std::string, ParamValue>& given = {},
                                      const DatasetContext& ctx = {});

// A fresh empty temporary directory, removed at process exit (a ScratchDir).
std::string temp_dir(const std::string& tag);

// Runs a shell command, returns its exit status; stdout+stderr go to *output.
int run_command(const std::string& cmd, std::string* output);

}  // namespace drift::test

#define DRIFT_REQUIRE_SHARED()                                                          \
  do {                                                                                  \
    if (!::drift::test::shared_available()) {                                           \
      const char* ci = std::getenv("CI");                                               \
      if (ci && std::string(ci) == "true")                                              \
        FAIL() << "shared/ not found at " << ::drift::test::shared_dir()                \
               << " (expected ../shared beside the repository)";                        \
      GTEST_SKIP() << "!!! shared/ not found at " << ::drift::test::shared_dir()        \
                   << ": golden tests NOT RUN";                                         \
    }                                                                                   \
  } while (0)
