// The C allocator's settings for a process that trains or evaluates models.
//
// LibTorch's CPU tensors come from malloc. glibc's thresholds are dynamic: a
// block above the mmap threshold (128 KiB at start) is mapped afresh and
// unmapped on free, and the free top of the heap is returned to the kernel
// once it exceeds the trim threshold; both rise only when the process happens
// to free a mapped block (up to 32 MiB and 64 MiB). Whether a training step's
// tensors are reused or faulted in again (zeroed by the kernel) at every step
// therefore depends on what the process allocated before: the cell that
// built the real-feature cache grew and trimmed its heap by about 70 MB every
// step (15k page faults) and ran 8% slower than a cell that loaded the cache
// (docs/results/benchmarks.md, "The allocator"). init_allocator() fixes the
// thresholds at the values a warmed-up process reaches, with a larger trim
// threshold, so that every process reuses its step's memory alike.
#pragma once

namespace drift::runtime {

struct AllocatorSettings {
  bool applied = false;  // false: glibc's defaults kept (see init_allocator)
  long mmap_threshold = 0;  // bytes; blocks at or above it are mmapped
  long trim_threshold = 0;  // bytes of free heap top kept before returning it
};

// Sets glibc's M_MMAP_THRESHOLD to 32 MiB (its dynamic maximum: larger blocks
// stay mapped, so a few huge tensors do not fragment the heap) and
// M_TRIM_THRESHOLD to 512 MiB.
// Leaves the defaults when DRIFT_ALLOCATOR=glibc, when GLIBC_TUNABLES names a
// malloc tunable or MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ is set (the
// user chose), or on a C library other than glibc. Call it first in main().
AllocatorSettings init_allocator();

}  // namespace drift::runtime
