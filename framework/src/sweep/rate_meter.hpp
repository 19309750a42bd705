// The rate of a counter that grows over time (training steps, pre-training
// steps, images encoded), measured over its recent past: the sweep runner's
// steps/s and ETA. A phase that ran slowly earlier (a warm-up, a pause) does not
// drag the rate down for long: samples older than the window are forgotten.
//
//   RateMeter m;                  // 60 s window
//   m.add(t_seconds, steps_done); // after each step (timestamps in seconds, any origin)
//   m.rate();                     // steps/s over the last ~60 s; nullopt before two samples
//   m.eta_seconds(steps_total);   // (total - done) / rate; nullopt without a rate
//
// The caller passes the timestamps, so the meter is a pure function of its
// inputs (tests feed it synthetic times).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

namespace drift::sweep {

class RateMeter {
 public:
  // `window_s`: how far back the rate looks (at least the two newest samples
  // are kept, however far apart).
  explicit RateMeter(double window_s = 60.0);

  // The counter is `count` at time `t_s`. Times must not decrease; a sample
  // closer than window/100 to the one before replaces that one (the meter
  // keeps about 100 samples however fast the counter goes). A count below the
  // newest one starts over (a counter that was reset).
  void add(double t_s, int64_t count);
  void reset() { samples_.clear(); }

  // Units per second between the oldest sample in the window and the newest;
  // nullopt with fewer than two samples or no time between them.
  std::optional<double> rate() const;
  // Seconds until the counter reaches `total` at rate(); nullopt without a
  // positive rate. 0 once the count reached `total`.
  std::optional<double> eta_seconds(int64_t total) const;
  // The newest count (0 before any sample).
  int64_t count() const { return samples_.empty() ? 0 : samples_.back().count; }

 private:
  struct Sample {
    double t;
    int64_t count;
  };
  double window_s_;
  std::deque<Sample> samples_;
};

}  // namespace drift::sweep
