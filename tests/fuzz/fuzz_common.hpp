// Shared pieces of the reader fuzz targets (tests/fuzz/README.md).
//
// Every target defines LLVMFuzzerTestOneInput (and may define
// LLVMFuzzerInitialize), so the same source builds
//   - with clang -fsanitize=fuzzer: a coverage-guided libFuzzer binary
//     (scripts/fuzz.sh), and
//   - with any compiler, linked with driver.cpp: a replay + seeded-mutation
//     driver (what the ctest short runs use; no clang needed).
// Each target also writes its seed corpus (`--write-seeds DIR`, driver build).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "io/h5.hpp"

namespace drift::fuzz {

// Bytes consumed front to back; reads past the end give zeros.
class Bytes {
 public:
  Bytes(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | u8();
    return v;
  }
  size_t left() const { return n_ - pos_; }
  const uint8_t* rest() const { return d_ + pos_; }
  // Up to `max` bytes as a string.
  std::string str(size_t max) {
    const size_t want = u8() % (max + 1);  // (consumed before left() is read)
    const size_t k = std::min<size_t>(want, left());
    std::string s(reinterpret_cast<const char*>(d_ + pos_), k);
    pos_ += k;
    return s;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

// A private scratch directory for this process (under $DRIFT_FUZZ_TMP,
// /dev/shm when writable, else $TMPDIR or /tmp), removed at exit.
const std::string& scratch_dir();
// Writes `n` bytes to `path` (replacing it); aborts when it cannot.
void write_file(const std::string& path, const void* data, size_t n);
std::vector<uint8_t> read_file(const std::string& path);

// The property every reader error must have: a non-empty message on one line
// (no newline, no NUL). Aborts (a finding) otherwise, printing the message.
// Counts the outcome (note()); with DRIFT_FUZZ_VERBOSE set, prints the error.
void check_one_line(const absl::Status& st, const char* where);
// Aborts with a message: a property of the target failed.
[[noreturn]] void fail(const std::string& what);

// The two kinds of input of the HDF5 targets, chosen by the first byte:
//   < 0xC0: the rest is a file image, written as it is (bit flips, truncation);
//   >= 0xC0: the rest drives write_spec_file(): a well-formed HDF5 file whose
//            datasets and attributes have names from `names` and dtypes,
//            shapes and values from the bytes (wrong dtypes, wrong shapes,
//            missing datasets, odd attributes).
// Writes the file for `data` to `path`.
void write_h5_input(const std::string& path, const uint8_t* data, size_t n,
                    const std::vector<std::string>& names);
// A seed in the raw form: 0x00 then the file's bytes.
std::vector<uint8_t> raw_seed(const std::string& h5_path);
// A seed in the spec form from explicit bytes (0xC0 prepended).
std::vector<uint8_t> spec_seed(const std::vector<uint8_t>& spec);

// Outcome counts, printed by the driver at the end of a run: reads the reader
// accepted and reads it refused with an error (the feature cache: files
// loaded, and files rebuilt).
enum Outcome { kAccepted = 0, kRefused = 1 };
void note(Outcome o);
// The two counters; the driver points them at memory its -fork=1 child shares.
uint64_t* outcome_counters();
void set_outcome_storage(uint64_t* two);

// Writes `bytes` as <dir>/<name>.
void write_seed(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes);

}  // namespace drift::fuzz

// Implemented by each target: writes its seed corpus into `dir` (exists).
int drift_fuzz_write_seeds(const std::string& dir);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
