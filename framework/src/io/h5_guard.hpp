// Guards between a file on disk and libhdf5's parser.
//
// libhdf5 (1.10) trusts a file's metadata: on some corrupt files it loops for
// ever or reads out of bounds inside a call, before any error can be returned
// (the cases are kept in tests/fuzz/library_faults/). A reader cannot check
// for that from inside the process, so io::H5File::open_read() puts two
// guards in front of H5Fopen:
//
// 1. The checksum of drift's own files. Every file write_h5_atomically()
//    writes starts with a 512-byte HDF5 user block (HDF5, h5py and h5dump
//    skip it) holding one text header,
//        "drift-h5 checksum v1\ncrc32 1a2b3c4d\nbytes 123456\n",
//    the CRC-32 (zlib's) and length of everything after the user block.
//    open_read() verifies it before HDF5 sees the file: a damaged or
//    truncated file is caught without parsing it.
// 2. A child process for every other file. A file without the header (written
//    by another program, or by a drift older than the header), or whose
//    checksum no longer matches where that is allowed (a results file edited
//    in h5py), is first opened in a forked child that walks all of its
//    metadata: every object and link, every attribute read in full (variable-
//    length strings included), every dataset's type, shape and layout, and the
//    data of datasets up to 64 MiB. If the child is killed by a signal or has
//    not finished within the time limit, open_read() returns an error naming
//    the file instead of letting the same fault take down the calling process.
//    A file the child walked without a fault is then read normally, and every
//    ordinary error (a missing dataset, a wrong shape) comes from the reader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace drift::io {

// The user block write_h5_atomically() reserves (HDF5 allows 512 and powers of 2 above).
inline constexpr int64_t kChecksumBlockBytes = 512;

// What a file's checksum header says about it.
enum class ChecksumState {
  kNone,      // no drift header: a foreign file (or one written before the header existed)
  kMatch,     // header present, length and CRC-32 match
  kMismatch,  // header present, the file changed after it was written
};
struct ChecksumCheck {
  ChecksumState state = ChecksumState::kNone;
  std::string detail;  // for kMismatch: "CRC-32 ..., recorded ..." or "... bytes, recorded ..."
};

// Reads `path`'s header and, if present, verifies it (reads the whole file).
// Errors only for a file that cannot be read at all.
absl::Status check_file_checksum(const std::string& path, ChecksumCheck* out);

// Writes the header into the first kChecksumBlockBytes of `path` (a closed HDF5
// file created with that user block), computed over the rest of the file.
absl::Status stamp_file_checksum(const std::string& path);
// The same for a file image in memory (H5Fget_file_image() of a file created
// with that user block, which leaves the block out): puts the block in front.
absl::Status stamp_image_checksum(std::vector<char>& image, const std::string& name);

// Walks `path` with libhdf5 in a forked child process (see above). OK when the
// child finished, whatever HDF5 errors it met; an error when it died by a signal
// or ran past the time limit (DRIFT_H5_PROBE_TIMEOUT_S, default 60 seconds).
absl::Status probe_in_child(const std::string& path);

// Process-wide switch for both guards (default on). The fuzz targets turn them
// off: they exist to exercise the readers behind the guards, in process.
void set_read_guards(bool enabled);
bool read_guards_enabled();

}  // namespace drift::io
