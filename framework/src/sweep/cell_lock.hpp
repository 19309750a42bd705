// Who runs a cell: whoever trains a cell (a local sweep for its child, a Slurm
// array task for itself) holds an exclusive flock on "<cells_dir>/NNNN.lock"
// while it runs, so that a local sweep, a Slurm task and --status agree on
// which cells are running, and no two processes train the same cell. The
// kernel drops the lock when its holder dies, however it dies.
#pragma once

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

// mkdir -p (POSIX: libtorch.so exports its own std::filesystem copies, see
// tests/scratch_dir.hpp). False when `path` is not a directory afterwards.
bool make_dirs(const std::string& path);

}  // namespace drift::sweep
