#include "policy/env.hpp"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "policy/point_mass.hpp"

namespace drift::policy {

std::vector<std::string> env_names() { return {"obstacle", "two_goals"}; }

absl::StatusOr<std::unique_ptr<Env>> make_env(const std::string& name) {
  if (name == "obstacle") return make_obstacle_env();
  if (name == "two_goals") return make_two_goals_env();
  return absl::NotFoundError(
      absl::StrCat("no task '", absl::CEscape(name), "' (tasks: ", absl::StrJoin(env_names(), ", "), ")"));
}

}  // namespace drift::policy
