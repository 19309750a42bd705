// Pieces shared by the built-in tasks (policy/env.hpp): a point in the plane
// moved by velocity actions, and a random stream that is the same on every
// machine. Internal to src/policy.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>

#include "policy/env.hpp"

namespace drift::policy {

// Uniform and (approximately) Gaussian numbers from a 64-bit Mersenne twister,
// without the standard distributions (their algorithms differ between C++
// libraries) or libm (whose last bits may differ between machines).
class EpisodeRng {
 public:
  void seed(uint64_t s) {
    // splitmix64, so that neighbouring seeds give unrelated streams.
    s += 0x9e3779b97f4a7c15ull;
    s = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9ull;
    s = (s ^ (s >> 27)) * 0x94d049bb133111ebull;
    gen_.seed(s ^ (s >> 31));
  }
  // [0, 1), 24 bits.
  float uniform() { return static_cast<float>(gen_() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Mean 0, standard deviation `sd`: the sum of four uniforms, rescaled.
  float noise(float sd) {
    const float s = uniform() + uniform() + uniform() + uniform() - 2.0f;
    return s * sd * 1.7320508f;
  }
  bool coin() { return (gen_() >> 63) != 0; }

 private:
  std::mt19937_64 gen_;
};

inline float dist(float ax, float ay, float bx, float by) {
  const float dx = ax - bx, dy = ay - by;
  return std::sqrt(dx * dx + dy * dy);
}

// Distance from (px, py) to the segment from (ax, ay) to (bx, by).
inline float dist_to_segment(float px, float py, float ax, float ay, float bx, float by) {
  const float vx = bx - ax, vy = by - ay;
  const float len2 = vx * vx + vy * vy;
  float t = len2 > 0.0f ? ((px - ax) * vx + (py - ay) * vy) / len2 : 0.0f;
  t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
  return dist(px, py, ax + t * vx, ay + t * vy);
}

// The action as applied: non-finite components count as 0, and a step longer
// than kMaxSpeed is scaled down to it.
inline void limit_action(const float* a, float* dx, float* dy) {
  *dx = std::isfinite(a[0]) ? a[0] : 0.0f;
  *dy = std::isfinite(a[1]) ? a[1] : 0.0f;
  const float n = std::sqrt(*dx * *dx + *dy * *dy);
  if (n > kMaxSpeed) {
    *dx *= kMaxSpeed / n;
    *dy *= kMaxSpeed / n;
  }
}

inline float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

// The expert's step toward (tx, ty): at full speed (or onto the target when it
// is closer), plus noise of standard deviation `sd` per coordinate.
inline std::vector<float> step_toward(float x, float y, float tx, float ty, float sd, EpisodeRng& rng) {
  float dx = tx - x, dy = ty - y;
  const float n = std::sqrt(dx * dx + dy * dy);
  if (n > kMaxSpeed) {
    dx *= kMaxSpeed / n;
    dy *= kMaxSpeed / n;
  }
  return {dx + rng.noise(sd), dy + rng.noise(sd)};
}

// The state and bookkeeping every built-in task shares: a point in the unit
// square, the episode's random stream, its outcome and its mode. A task sets
// spec_ in its constructor, calls begin_episode() at the start of reset() and
// move() at the start of step(), then decides done_, success_ and mode_.
class PointMassEnv : public Env {
 public:
  const EnvSpec& spec() const override { return spec_; }
  bool done() const override { return done_; }
  bool success() const override { return success_; }
  int mode() const override { return mode_; }
  int expert_mode() const override { return expert_mode_; }
  std::vector<float> position() const override { return {x_, y_}; }

 protected:
  void begin_episode(uint64_t seed) {
    rng_.seed(seed);
    steps_ = 0;
    mode_ = -1;
    done_ = success_ = false;
  }
  // Applies one action (limited, clamped to the square); false once done.
  bool move(const float* action) {
    if (done_) return false;
    float dx, dy;
    limit_action(action, &dx, &dy);
    x_ = clamp_unit(x_ + dx);
    y_ = clamp_unit(y_ + dy);
    ++steps_;
    return true;
  }

  EnvSpec spec_;
  EpisodeRng rng_;
  float x_ = 0, y_ = 0;
  int expert_mode_ = 0, mode_ = -1;
  bool done_ = false, success_ = false;
};

// The expert's action noise (per coordinate and step), as a share of kMaxSpeed.
inline constexpr float kExpertNoise = 0.1f * kMaxSpeed;

std::unique_ptr<Env> make_obstacle_env();
std::unique_ptr<Env> make_two_goals_env();

}  // namespace drift::policy
