// What a running cell is doing, as the sweep runner shows it (console line,
// `drift-run --status`). The cell's worker process reports on its stdout, a
// pipe to the runner, one line at a time:
//
//   @phase PHASE NAME [NOTE...]                         a phase starts, or a state without counts
//   @progress PHASE NAME DONE TOTAL RATE LOSS [M_TAU...]  counts of the current phase
//   @eval STEP NAME VALUE ...                           an evaluation (sweep.cpp)
//
// PHASE is "setup" (building the cell, loading data and evaluator), "pretrain"
// (the encoder's pre-training stage), "cache" (the real-feature cache) or
// "train" (the training steps); NAME is what the phase works on (the encoder),
// "-" for none. DONE/TOTAL count steps (images for "cache"); RATE is units per
// second over the recent past (sweep/rate_meter.hpp), "-" when not known yet;
// LOSS "-" for none. The runner formats it as
//
//   [pretrain mae_resnet] step 1200/4000  loss 0.0213  2.10 steps/s  ETA 22m13s
//   [cache mae_resnet] 30000/60000 images  512 images/s  ETA 58s
//   [train] step 1200/4000  loss 0.0311  2.10 steps/s  ETA 22m13s  m_tau [0.12,0.3]
//   [pretrain mae_resnet] waiting for results/encoders/mae_resnet-1f2e.pt.lock (another cell pre-trains it)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace drift::sweep {

struct CellProgress {
  std::string phase = "starting";  // before the worker's first line
  std::string name;                // "" for none
  std::string note;                // a state without counts ("" when counting)
  int64_t done = 0, total = 0;     // total 0: nothing counted (yet)
  std::optional<double> rate;      // units per second, recent
  std::string loss;                // as reported ("" for none)
  std::string m_tau;               // "0.12,0.3" (training only)
};

// Worker side: the protocol lines (without the newline).
std::string phase_line(const std::string& phase, const std::string& name, const std::string& note);
std::string progress_line(const std::string& phase, const std::string& name, int64_t done, int64_t total,
                          std::optional<double> rate, std::optional<double> loss,
                          const std::vector<double>& m_tau = {});

// Runner side: applies one "@phase" or "@progress" line to `p` and returns
// true (false: another line, `p` unchanged). When the line starts another
// phase (or names another thing), `*ended` (if not null) receives the
// progress of the phase that ended and `*phase_changed` is set.
bool apply_progress_line(const std::string& line, CellProgress& p, CellProgress* ended = nullptr,
                         bool* phase_changed = nullptr);

// "steps" or "images".
std::string progress_unit(const CellProgress& p);
// "[train] step 1200/4000  loss 0.0311  2.10 steps/s  ETA 22m13s  m_tau [0.12,0.3]" (see above).
std::string format_progress(const CellProgress& p);
// The summary of a finished counted phase, over its `seconds` in all:
// "[pretrain mae_resnet] step 4000/4000 in 31m40s (2.10 steps/s)"; "" for
// a phase that counted nothing.
std::string format_phase_end(const CellProgress& p, double seconds);

// "42s", "3m07s", "6h18m"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);

}  // namespace drift::sweep
