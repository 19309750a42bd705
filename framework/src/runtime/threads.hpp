// LibTorch threading defaults.
#pragma once

namespace drift::runtime {
// Sets LibTorch's intra-op threads to `n`, or to the number of cores when n <= 0
// (LibTorch may otherwise default to 1). DRIFT_NUM_THREADS overrides n <= 0.
// Returns the number set.
int init_threads(int n = 0);
}  // namespace drift::runtime
