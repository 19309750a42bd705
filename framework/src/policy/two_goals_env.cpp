// Task "two_goals": visit two goals, in either order (in the spirit of the
// "particle" task of Implicit Behavioral Cloning).
//
//   goals  A and B uniform in [-0.7, 0.7]^2, at least 0.6 apart; visited within 0.08
//   start  uniform in [-0.7, 0.7]^2, at least 0.3 from both goals, and no goal within
//          0.2 of the straight lines from the start to the other goal and to the
//          point between the goals (so that neither the expert on its way to its
//          first goal nor a policy heading between them passes a goal by chance)
//   observation [x, y, ax, ay, bx, by, visited_a, visited_b]; action [dx, dy]; 120 steps at most
//   success: both visited; modes "A first" / "B first"
//
// The expert goes to its first goal, then to the other. Averaging the two modes
// heads for the point between the goals, where neither is visited.
#include "policy/point_mass.hpp"

namespace drift::policy {
namespace {

constexpr float kRange = 0.7f, kMinGoalGap = 0.6f, kMinStartGap = 0.3f, kPathGap = 0.2f, kVisitRadius = 0.08f;

class TwoGoalsEnv final : public PointMassEnv {
 public:
  TwoGoalsEnv() {
    spec_.name = "two_goals";
    spec_.obs_dim = 8;
    spec_.action_dim = 2;
    spec_.max_steps = 120;
    spec_.mode_names = {"A first", "B first"};
    spec_.obs_names = {"x", "y", "ax", "ay", "bx", "by", "visited_a", "visited_b"};
  }
  void reset(uint64_t seed) override {
    begin_episode(seed);
    // Goals, then up to 1000 starts for them (new goals if none is clear).
    for (bool placed = false; !placed;) {
      do {
        ax_ = rng_.uniform(-kRange, kRange);
        ay_ = rng_.uniform(-kRange, kRange);
        bx_ = rng_.uniform(-kRange, kRange);
        by_ = rng_.uniform(-kRange, kRange);
      } while (dist(ax_, ay_, bx_, by_) < kMinGoalGap);
      const float mx = (ax_ + bx_) / 2, my = (ay_ + by_) / 2;
      for (int tries = 0; tries < 1000 && !placed; ++tries) {
        x_ = rng_.uniform(-kRange, kRange);
        y_ = rng_.uniform(-kRange, kRange);
        placed = dist(x_, y_, ax_, ay_) >= kMinStartGap && dist(x_, y_, bx_, by_) >= kMinStartGap &&
                 dist_to_segment(ax_, ay_, x_, y_, bx_, by_) >= kPathGap &&
                 dist_to_segment(bx_, by_, x_, y_, ax_, ay_) >= kPathGap &&
                 dist_to_segment(ax_, ay_, x_, y_, mx, my) >= kPathGap &&
                 dist_to_segment(bx_, by_, x_, y_, mx, my) >= kPathGap;
      }
    }
    expert_mode_ = rng_.coin() ? 1 : 0;
    va_ = vb_ = false;
  }

  std::vector<float> observe() const override {
    return {x_, y_, ax_, ay_, bx_, by_, va_ ? 1.0f : 0.0f, vb_ ? 1.0f : 0.0f};
  }

  void step(const float* action) override {
    if (!move(action)) return;
    const bool at_a = dist(x_, y_, ax_, ay_) <= kVisitRadius, at_b = dist(x_, y_, bx_, by_) <= kVisitRadius;
    if (mode_ < 0 && at_a) mode_ = 0;
    if (mode_ < 0 && at_b) mode_ = 1;
    va_ = va_ || at_a;
    vb_ = vb_ || at_b;
    if (va_ && vb_) {
      done_ = success_ = true;
    } else if (steps_ >= spec_.max_steps) {
      done_ = true;
    }
  }

  std::vector<float> expert_action(int mode) override {
    const bool a_first = mode == 0;
    const bool go_a = a_first ? !va_ : vb_;
    return go_a ? step_toward(x_, y_, ax_, ay_, kExpertNoise, rng_)
                : step_toward(x_, y_, bx_, by_, kExpertNoise, rng_);
  }

 private:
  float ax_ = 0, ay_ = 0, bx_ = 0, by_ = 0;
  bool va_ = false, vb_ = false;
};

}  // namespace

std::unique_ptr<Env> make_two_goals_env() { return std::make_unique<TwoGoalsEnv>(); }

}  // namespace drift::policy
