// TOML values <-> drift::ParamValue (internal to the config module).
//
//   bool -> bool, integer -> int, float -> float, string -> string,
//   homogeneous arrays of int / float / string -> lists (an int/float mix is a
//   list of float; an empty array is an empty list of any type).
// Anything else (tables, dates and times, arrays of arrays or of mixed types) is
// an error that names the key.
#pragma once

#include <string>

#include <toml++/toml.h>

#include "absl/status/statusor.h"
#include "drift/params.hpp"

namespace drift::config {

// `what` names the value in errors, for example "exp.toml: [kernel] 'temperatures'".
absl::StatusOr<ParamValue> to_param_value(const toml::node& node, const std::string& what);

// One-line rendering of any TOML node for error messages.
std::string render_toml_node(const toml::node& node);

// "table", "date", "array", ...
std::string toml_type_name(const toml::node& node);

}  // namespace drift::config
