// Helpers shared by the tests.
#pragma once

#include <string>

#include "runtime/registry.hpp"

namespace drift::test {

// The repository's ../shared folder. Missing: the calling test fails in CI
// (CI=true) and is skipped loudly elsewhere — use DRIFT_REQUIRE_SHARED().
std::string shared_dir();
bool shared_available();

// A registry with the plugins built from plugins/ (the default discovery).
runtime::Registry& default_registry();

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
