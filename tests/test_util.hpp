// Helpers shared by the tests.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "drift/dataset.hpp"
#include "drift/params.hpp"
#include "runtime/registry.hpp"

namespace drift::test {

// Golden drift-field cases: every tests/golden/*.h5 of the repository, then
// every *.h5 of a second directory written by an independent implementation
// when DRIFT_EXTRA_GOLDEN_DIR names one (environment variable, else the CMake
// cache variable of that name). Sorted per directory. An error when the
// repository's directory has no case, or the extra directory is named but holds
// none.
absl::StatusOr<std::vector<std::string>> golden_cases();
std::string golden_dir();        // <source>/tests/golden
std::string extra_golden_dir();  // "" when none is named

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
