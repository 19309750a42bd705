// Learning-rate schedule: linear warm-up, then constant or cosine decay.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace drift::train {

// Learning rate for step t (1-based) of `steps`: lr * t / warmup during warm-up,
// then lr (constant) or a cosine from lr down to 0 at the last step.
inline double learning_rate(int64_t t, int64_t steps, double lr, int64_t warmup,
                            const std::string& schedule) {
  if (warmup > 0 && t <= warmup) return lr * static_cast<double>(t) / static_cast<double>(warmup);
  if (schedule == "cosine" && steps > warmup) {
    double progress = static_cast<double>(t - warmup) / static_cast<double>(steps - warmup);
    return 0.5 * lr * (1.0 + std::cos(M_PI * progress));
  }
  return lr;
}

// EMA decay at step t (1-based): min(decay, (1 + t) / (warmup + t)), so that
// the average is not dominated by the random initialisation in short runs
// ([train] ema_warmup). The cap also bounds how long an average
// can be: 1 - decay is at least (warmup - 1) / (warmup + t), an average over
// at most about t / (warmup - 1) steps. warmup = 2 makes the cap the running
// mean of all weights so far; warmup = 1 removes it (the average starts at the
// initial weights and forgets them at the rate `decay`).
inline double ema_decay(int64_t t, double decay, double warmup) {
  return std::min(decay, (1.0 + static_cast<double>(t)) / (warmup + static_cast<double>(t)));
}

}  // namespace drift::train
