// Task "obstacle": reach a goal round a disc, on the left or on the right.
//
//   start  (x0, -0.8), x0 uniform in [-0.1, 0.1]     goal  (0, 0.8), reached within 0.08
//   disc   centre (0, 0), radius 0.3: touching it ends the episode as a failure
//   observation [x, y]; action [dx, dy] (at most kMaxSpeed); 100 steps at most
//   modes  "left" / "right": the side of the disc on which the point crosses y = 0
//
// The expert flies through two waypoints on its side, (-/+0.45, -0.25) and
// (-/+0.45, 0.25), then to the goal (about 40 steps). Averaging the two modes
// flies straight into the disc.
#include <cmath>

#include "policy/point_mass.hpp"

namespace drift::policy {
namespace {

constexpr float kGoalX = 0.0f, kGoalY = 0.8f, kGoalRadius = 0.08f;
constexpr float kDiscRadius = 0.3f;
constexpr float kWaypointX = 0.45f, kWaypointY = 0.25f, kWaypointReached = 0.06f;

class ObstacleEnv final : public PointMassEnv {
 public:
  ObstacleEnv() {
    spec_.name = "obstacle";
    spec_.obs_dim = 2;
    spec_.action_dim = 2;
    spec_.max_steps = 100;
    spec_.mode_names = {"left", "right"};
    spec_.obs_names = {"x", "y"};
  }
  void reset(uint64_t seed) override {
    begin_episode(seed);
    x_ = rng_.uniform(-0.1f, 0.1f);
    y_ = -0.8f;
    expert_mode_ = rng_.coin() ? 1 : 0;
    waypoint_[0] = waypoint_[1] = 0;
  }

  std::vector<float> observe() const override { return {x_, y_}; }

  void step(const float* action) override {
    const float px = x_, py = y_;
    if (!move(action)) return;
    if (mode_ < 0 && py < 0.0f && y_ >= 0.0f) mode_ = (px + x_) < 0.0f ? 0 : 1;
    if (dist(x_, y_, 0.0f, 0.0f) < kDiscRadius) {
      done_ = true;  // crashed into the disc
    } else if (dist(x_, y_, kGoalX, kGoalY) <= kGoalRadius) {
      done_ = success_ = true;
    } else if (steps_ >= spec_.max_steps) {
      done_ = true;
    }
  }

  std::vector<float> expert_action(int mode) override {
    const int m = mode == 0 ? 0 : 1;
    const float side = m == 0 ? -1.0f : 1.0f;
    const float wx[3] = {side * kWaypointX, side * kWaypointX, kGoalX};
    const float wy[3] = {-kWaypointY, kWaypointY, kGoalY};
    int& k = waypoint_[m];
    while (k < 2 && dist(x_, y_, wx[k], wy[k]) < kWaypointReached) ++k;
    return step_toward(x_, y_, wx[k], wy[k], kExpertNoise, rng_);
  }

 private:
  int waypoint_[2] = {0, 0};  // per mode: the expert's next waypoint
};

}  // namespace

std::unique_ptr<Env> make_obstacle_env() { return std::make_unique<ObstacleEnv>(); }

}  // namespace drift::policy
