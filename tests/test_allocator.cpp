// runtime::init_allocator: a training step's large tensors are reused from the
// heap instead of being mapped and faulted in again at every allocation, and a
// user's own allocator settings are left alone.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/allocator.hpp"

namespace {

long minor_faults() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

// One "training step" as LibTorch's CPU allocator sees it (c10::alloc_cpu is
// posix_memalign with 64-byte alignment): 25 activations of 4 MB alive at once
// (100 MB), written, then freed. 100 MB is more than the 64 MiB of free heap
// top that glibc's dynamic trim threshold keeps at most.
void step() {
  constexpr size_t kBytes = 4u << 20;
  std::vector<void*> live(25, nullptr);
  for (size_t i = 0; i < live.size(); ++i) {
    ASSERT_EQ(posix_memalign(&live[i], 64, kBytes), 0);
    std::memset(live[i], static_cast<int>(i), kBytes);
  }
  long sum = 0;
  for (void* p : live) sum += static_cast<volatile unsigned char*>(p)[kBytes - 1];  // keep the writes
  EXPECT_EQ(sum, 300);
  for (void* p : live) std::free(p);
}

// Page faults per step after 4 warm-up steps.
long faults_per_step() {
  for (int i = 0; i < 4; ++i) step();
  const long before = minor_faults();
  constexpr int kSteps = 8;
  for (int i = 0; i < kSteps; ++i) step();
  return (minor_faults() - before) / kSteps;
}

TEST(Allocator, StepSizedTensorsAreReusedNotFaultedIn) {
  // The test's own process starts with glibc's defaults (tests/test_main.cpp
  // does not call init_allocator).
  const long with_defaults = faults_per_step();
  const drift::runtime::AllocatorSettings s = drift::runtime::init_allocator();
  if (!s.applied) GTEST_SKIP() << "allocator settings left to the environment (DRIFT_ALLOCATOR, GLIBC_TUNABLES, MALLOC_*)";
  EXPECT_EQ(s.mmap_threshold, 32L << 20);
  const long with_settings = faults_per_step();
  std::printf("page faults per step: %ld with glibc's defaults, %ld after init_allocator\n", with_defaults,
              with_settings);
  // A step's 100 MB are 25600 pages. With glibc's defaults, even in a process
  // whose thresholds have risen to their maxima, most of them are returned to
  // the kernel and faulted in again every step (the reason for the setting);
  // after init_allocator the heap keeps them.
  EXPECT_GT(with_defaults, 10000);
  EXPECT_LT(with_settings, 100);
}

TEST(Allocator, TheUsersChoiceIsKept) {
  setenv("DRIFT_ALLOCATOR", "glibc", 1);
  EXPECT_FALSE(drift::runtime::init_allocator().applied);
  unsetenv("DRIFT_ALLOCATOR");
  setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576", 1);
  EXPECT_FALSE(drift::runtime::init_allocator().applied);
  unsetenv("GLIBC_TUNABLES");
  setenv("MALLOC_TRIM_THRESHOLD_", "1048576", 1);
  EXPECT_FALSE(drift::runtime::init_allocator().applied);
  unsetenv("MALLOC_TRIM_THRESHOLD_");
}

}  // namespace
