#include "sweep/rate_meter.hpp"

#include <algorithm>

namespace drift::sweep {

RateMeter::RateMeter(double window_s) : window_s_(window_s > 0 ? window_s : 60.0) {}

void RateMeter::add(double t_s, int64_t count) {
  if (!samples_.empty() && (count < samples_.back().count || t_s < samples_.back().t)) samples_.clear();
  // Dense samples: the newest one moves forward instead of piling up.
  if (samples_.size() >= 2 && t_s - samples_[samples_.size() - 2].t < window_s_ / 100)
    samples_.back() = {t_s, count};
  else
    samples_.push_back({t_s, count});
  // Forget what lies wholly before the window: drop the oldest sample while
  // the next one is itself at least a window old (two samples always stay).
  while (samples_.size() > 2 && t_s - samples_[1].t >= window_s_) samples_.pop_front();
}

std::optional<double> RateMeter::rate() const {
  if (samples_.size() < 2) return std::nullopt;
  const Sample& a = samples_.front();
  const Sample& b = samples_.back();
  const double dt = b.t - a.t;
  if (!(dt > 0)) return std::nullopt;
  return static_cast<double>(b.count - a.count) / dt;
}

std::optional<double> RateMeter::eta_seconds(int64_t total) const {
  if (!samples_.empty() && samples_.back().count >= total) return 0.0;
  const auto r = rate();
  if (!r || !(*r > 0)) return std::nullopt;
  return static_cast<double>(total - count()) / *r;
}

}  // namespace drift::sweep
