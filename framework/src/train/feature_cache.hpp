// The real-feature cache ([train] feature_cache): for a
// frozen encoder, the features of every image of a finite dataset split are
// computed once per (encoder weights, feature configuration, data, storage
// dtype) and kept in an HDF5 file, so that positives and real negatives cost a
// table lookup instead of an encoder forward pass.
//
//   auto cache = FeatureCache::open(spec, encoder, dataset, device);  // build or load
//   std::vector<Feature> pos = cache->lookup(index);  // index [G, n] -> [G, L, n, D]
//
// File: `<dir>/<encoder>-<16 hex>.h5`, the hex being the start of the SHA-256
// of the key. The key (a few lines of text, stored whole in the file) names the
// encoder and its parameters, the SHA-256 of every parameter and buffer of the
// encoder as it is when the cache is opened (after pre-training or loading),
// the names and [L, D] shapes of the features it returns, the dataset, its
// parameters, split, size and a fingerprint of its samples, and the dtype.
// Inside: one dataset `features/<name>` [N, L, D] per feature (float16 or
// float32), each with the CRC-32 of its bytes as attribute `crc32`; root
// attributes `key`, `features` (the names, one per line, in the encoder's
// order), `n` and `format`.
//
// Opening checks the file it finds (key, names, shapes, dtypes, checksums, and
// that a few rows equal a fresh encoding of their images: an encoder whose
// code changed without its parameters is caught too) and builds it when it is
// missing, foreign, stale, truncated or corrupt, with one line on stderr
// saying why. Building encodes the split in batches on `device` (progress on
// stderr), writes a temporary file in the same directory, fsyncs and renames
// it into place, under an exclusive flock on `<file>.lock`: cells that open
// the same cache at once build it once (the others wait, then load it), and no
// reader ever sees a half-written file. The table is then held in memory
// (N * sum(L * D) values of the dtype).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "drift/dataset.hpp"
#include "drift/encoder.hpp"
#include "drift/params.hpp"
#include "train/phase.hpp"

namespace drift::train {

struct FeatureCacheSpec {
  std::string dir;                 // where cache files live (created if missing)
  std::string encoder;             // encoder component name
  std::string encoder_params;      // its parameters, canonical ("k=v" lines, sorted)
  std::string dataset;             // dataset component name
  std::string dataset_params;      // its parameters, canonical
  std::string split;               // DatasetContext::split the dataset was made with
  torch::ScalarType dtype = torch::kFloat16;  // storage: kFloat16 or kFloat32
  // Images per encoder call while building (64: 1.6x faster than 256 on one
  // CPU thread, whose larger activations are page-faulted in at every call).
  int64_t batch = 64;
  bool progress = true;            // progress lines on stderr while building
  // Progress reports (phase "cache", named `encoder`): notes while it checks,
  // loads, waits for the lock and writes; images done / N after every batch
  // while it builds.
  PhaseFn on_phase;
};

// "k=v" per parameter, one per line, in name order: the canonical text of
// validated parameters that goes into the key.
std::string canonical_params(const Params& p);

class FeatureCache {
 public:
  // The cache of (`encoder`, `data`) per `spec`: loads a valid file, builds a
  // missing or invalid one. `data` must be finite and indexed (size() > 0);
  // the encoder must be frozen and ready (weights loaded, eval mode) and is
  // called under NoGradGuard. Errors (one line, naming the file): a directory
  // or file that cannot be created or written, a dataset that is not indexed.
  static absl::StatusOr<FeatureCache> open(const FeatureCacheSpec& spec, FeatureEncoder& encoder,
                                           Dataset& data, torch::Device device);

  // The features of the samples at dataset positions `index` ([G, n] int64),
  // exactly as encoder.encode(images [G, n, ...]) lays them out: one Feature
  // per encoder feature, values [G, L, n, D] float32 on the device given to
  // open(). Throws std::out_of_range for an index outside [0, size()).
  std::vector<Feature> lookup(const torch::Tensor& index) const;

  const std::string& path() const { return path_; }
  const std::string& key() const { return key_; }
  int64_t size() const { return n_; }
  // Whether open() built (or rebuilt) the file, rather than loading it.
  bool built() const { return built_; }
  // Seconds open() spent building (0 when it loaded): wall time, and CPU time
  // of the process (all threads) meanwhile; and wall time in all.
  double build_seconds() const { return build_s_; }
  double build_cpu_seconds() const { return build_cpu_s_; }
  double open_seconds() const { return open_s_; }
  // Size of the file on disk, and of the table in memory.
  int64_t file_bytes() const { return file_bytes_; }
  int64_t table_bytes() const;

 private:
  FeatureCache() = default;
  std::string path_, key_;
  int64_t n_ = 0;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> table_;  // per feature: [N, L, D], storage dtype, CPU
  torch::Device device_ = torch::kCPU;
  bool built_ = false;
  double build_s_ = 0, build_cpu_s_ = 0, open_s_ = 0;
  int64_t file_bytes_ = 0;
};

}  // namespace drift::train
