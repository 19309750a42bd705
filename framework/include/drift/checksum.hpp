// drift SDK: SHA-256 of bytes and of files, for checking that weights and
// other files a run depends on are the ones that were recorded.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace drift {

// Lower-case hex SHA-256 (64 characters) of n bytes at data.
std::string sha256_hex(const void* data, size_t n);

// Lower-case hex SHA-256 of a file's whole contents; an error naming the path
// when it cannot be opened or read.
absl::StatusOr<std::string> sha256_file(const std::string& path);

}  // namespace drift
