#include "runtime/threads.hpp"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <thread>

namespace drift::runtime {
int init_threads(int n) {
  if (n <= 0) {
    if (const char* env = std::getenv("DRIFT_NUM_THREADS")) n = std::atoi(env);
  }
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  return n;
}
}  // namespace drift::runtime
