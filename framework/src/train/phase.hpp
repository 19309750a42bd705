// What a cell is doing before its training steps, for progress reports (the
// sweep runner's console line and `drift-run --status`, sweep/progress.hpp):
// building its components ("setup"), pre-training its encoder ("pretrain",
// train/pretrain_stage.hpp), building or loading the real-feature cache
// ("cache", train/feature_cache.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>

namespace drift::train {

struct PhaseLog {
  std::string phase;            // "setup", "pretrain", "cache"
  std::string name;             // what it works on (the encoder); "" for none
  int64_t done = 0, total = 0;  // steps (pre-training) or images (cache) so far / in all; total 0: no counts
  double loss = NAN;            // pre-training's loss at `done` (NaN: none)
  std::string note;             // a state without counts: "waiting for X.lock (...)", "loading X"
};

// Called as the phase goes on: with `note` when a phase starts or waits, with
// counts after every step or batch (the receiver throttles).
using PhaseFn = std::function<void(const PhaseLog&)>;

}  // namespace drift::train
