// drift SDK: weights files of modules, with a SHA-256 checksum beside them.
//
// A weights file is a LibTorch archive of a module's parameters and buffers
// plus one string of metadata (what the weights are: architecture, how they
// were trained), written through a temporary file and a rename. Its checksum
// file `<path>.sha256` holds "<64 hex>  <file name>\n", as `sha256sum` writes
// it (`sha256sum -c <path>.sha256` checks it). Loading verifies the checksum
// (from that file, or one given by the user) and the metadata before reading
// a single tensor.
#pragma once

#include <string>

#include <torch/nn/module.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drift {

// `<weights>.sha256`
std::string checksum_path(const std::string& weights);

// Creates the directories above `path` (mkdir -p of its parent); errors name them.
absl::Status make_parent_dirs(const std::string& path);

// Writes m's parameters and buffers and `meta` to `path` (parent directories
// created), then its checksum file. Returns the SHA-256 (hex).
absl::StatusOr<std::string> save_weights(torch::nn::Module& m, const std::string& path,
                                         const std::string& meta);

// Loads `path` into m. `expected_sha256`: hex; empty: read from checksum_path(path).
// Errors, one line naming the file at fault: missing weights or checksum file,
// checksum mismatch (both values), metadata other than `expected_meta` (both),
// a tensor the module does not have or of another shape.
absl::Status load_weights(torch::nn::Module& m, const std::string& path,
                          const std::string& expected_sha256, const std::string& expected_meta);

}  // namespace drift
