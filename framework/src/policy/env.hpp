// Small simulated control tasks for policy learning, each with a scripted,
// multimodal expert (docs/guide/policy.md).
//
//   auto env = policy::make_env("obstacle");         // StatusOr<unique_ptr<Env>>
//   (*env)->reset(/*seed=*/7);                        // the episode, fully fixed by the seed
//   while (!(*env)->done()) {
//     auto a = (*env)->expert_action((*env)->expert_mode());
//     (*env)->step(a.data());
//   }
//   bool ok = (*env)->success(); int way = (*env)->mode();
//
// Every task is a point in the plane moved by velocity actions (at most
// kMaxSpeed per step). The expert's demonstrations are split between modes
// (ways of solving the task that a policy must not average: going round an
// obstacle on the left or on the right, visiting two goals in either order).
// reset(seed) fixes the start, the task's layout, the mode the expert takes in
// that episode (expert_mode(), each mode equally likely) and the expert's
// action noise: the same seed gives the same episode bit for bit, on any
// machine (no libm calls whose last bit may differ: +, -, *, /, sqrt only).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drift::policy {

// Largest distance the point moves in one step; longer actions are scaled down.
inline constexpr float kMaxSpeed = 0.05f;

struct EnvSpec {
  std::string name;
  int obs_dim = 0;
  int action_dim = 2;
  int max_steps = 0;                    // an episode that has not succeeded by then fails
  std::vector<std::string> mode_names;  // mode() indexes these
  std::vector<std::string> obs_names;   // one per observation coordinate
};

class Env {
 public:
  virtual ~Env() = default;
  virtual const EnvSpec& spec() const = 0;
  // Starts a new episode; everything random in it comes from `seed`.
  virtual void reset(uint64_t seed) = 0;
  // The observation now, spec().obs_dim values.
  virtual std::vector<float> observe() const = 0;
  // Applies one action (spec().action_dim values; non-finite values count as 0).
  // Does nothing once done().
  virtual void step(const float* action) = 0;
  virtual bool done() const = 0;
  virtual bool success() const = 0;
  // The mode the episode has taken so far (index into spec().mode_names), -1
  // while undecided (and for an episode that ended before deciding).
  virtual int mode() const = 0;
  // The mode the expert takes in this episode (drawn at reset).
  virtual int expert_mode() const = 0;
  // The expert's action now if it were taking `mode`, with its action noise
  // (each call draws noise: call once per step).
  virtual std::vector<float> expert_action(int mode) = 0;
  // The point's position, for plots.
  virtual std::vector<float> position() const = 0;
  int steps() const { return steps_; }

 protected:
  int steps_ = 0;
};

// Names of the built-in tasks ("obstacle", "two_goals").
std::vector<std::string> env_names();
// A task by name; an unknown name is an error listing the known ones.
absl::StatusOr<std::unique_ptr<Env>> make_env(const std::string& name);

}  // namespace drift::policy
