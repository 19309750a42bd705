// Who runs a cell: whoever trains a cell (a local sweep for its child, a Slurm
// array task for itself) holds an exclusive flock on "<cells_dir>/NNNN.lock"
// while it runs, so that a local sweep, a Slurm task and --status agree on
// which cells are running, and no two processes train the same cell. The
// kernel drops the lock when its holder dies, however it dies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace drift::sweep {

// "<cells_dir>/0003.lock"
std::string cell_lock_path(const std::string& cells_dir, size_t cell);

// The lock's file descriptor (close it to release), or -1 when another
// process holds it (or the file cannot be opened). O_CLOEXEC: a child does
// not inherit it.
int try_lock_cell(const std::string& cells_dir, size_t cell);

// Whether another process holds the cell's lock now.
bool cell_lock_held(const std::string& cells_dir, size_t cell);

// What the holder of a cell's lock says about the cell, kept in the lock file
// itself for `drift-run --status` (sweep/progress.hpp): what the cell does now
// ("[train] step 1200/4000 ...") and where its stderr goes. Written by the
// sweep runner about once a second while the cell runs, emptied when it ends.
struct CellReport {
  std::string progress;  // format_progress() of the cell's latest report
  std::string log;       // the cell's stderr file
  int64_t updated = 0;   // when written (seconds since the epoch; set by write_cell_report)
};
void write_cell_report(int lock_fd, CellReport report);
void clear_cell_report(int lock_fd);
// The report in the cell's lock file; nullopt when there is none (or it is
// being rewritten at this instant).
std::optional<CellReport> read_cell_report(const std::string& cells_dir, size_t cell);

// mkdir -p (POSIX: libtorch.so exports its own std::filesystem copies, see
// tests/scratch_dir.hpp). False when `path` is not a directory afterwards.
bool make_dirs(const std::string& path);

}  // namespace drift::sweep
