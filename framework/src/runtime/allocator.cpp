#include "runtime/allocator.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace drift::runtime {
namespace {
constexpr long kMmapThreshold = 32L << 20;
constexpr long kTrimThreshold = 512L << 20;

bool user_chose() {
  const char* own = std::getenv("DRIFT_ALLOCATOR");
  if (own != nullptr && std::strcmp(own, "glibc") == 0) return true;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return true;
  return std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr;
}
}  // namespace

AllocatorSettings init_allocator() {
  AllocatorSettings s;
#if defined(__GLIBC__)
  if (user_chose()) return s;
  // Setting either value turns glibc's dynamic threshold off for good.
  if (mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold)) != 1) return s;
  if (mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold)) != 1) return s;
  s.applied = true;
  s.mmap_threshold = kMmapThreshold;
  s.trim_threshold = kTrimThreshold;
#endif
  return s;
}

}  // namespace drift::runtime
