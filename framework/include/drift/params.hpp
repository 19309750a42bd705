// drift SDK: typed parameter declarations.
//
// Every component declares its parameters (name, type, default, allowed range,
// one-line doc). The framework validates the user's values against the
// declaration and hands the component a `Params` in which every declared name
// is present with the declared type.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace drift {

enum class ParamType { Bool, Int, Float, String, IntList, FloatList, StringList };

// Name of a type as written in docs and error messages ("float", "list of int").
const char* param_type_name(ParamType t);

using ParamValue =
    std::variant<bool, int64_t, double, std::string, std::vector<int64_t>,
                 std::vector<double>, std::vector<std::string>>;

ParamType param_value_type(const ParamValue& v);
// TOML-like rendering: true, 3, 0.05, "x", [0.02, 0.05].
std::string format_param_value(const ParamValue& v);

// One declared parameter. Build with the helpers below and refine fluently:
//   ParamSpec::Float("eps", 0.05, "entropic regularisation").positive()
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Float;
  std::optional<ParamValue> default_value;  // nullopt: the user must set it
  std::string doc;
  // Numeric bounds; for lists they apply to every element.
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> choices;  // String / StringList: allowed values
  int64_t min_items = 0;             // lists
  int64_t max_items = std::numeric_limits<int64_t>::max();

  static ParamSpec Bool(std::string name, bool def, std::string doc);
  static ParamSpec Int(std::string name, int64_t def, std::string doc);
  static ParamSpec Float(std::string name, double def, std::string doc);
  static ParamSpec String(std::string name, std::string def, std::string doc);
  static ParamSpec IntList(std::string name, std::vector<int64_t> def, std::string doc);
  static ParamSpec FloatList(std::string name, std::vector<double> def, std::string doc);
  static ParamSpec StringList(std::string name, std::vector<std::string> def,
                              std::string doc);
  // A parameter without default (the user must give it).
  static ParamSpec Required(std::string name, ParamType type, std::string doc);

  ParamSpec& at_least(double v) { min = v; min_exclusive = false; return *this; }
  ParamSpec& above(double v) { min = v; min_exclusive = true; return *this; }
  ParamSpec& at_most(double v) { max = v; max_exclusive = false; return *this; }
  ParamSpec& below(double v) { max = v; max_exclusive = true; return *this; }
  ParamSpec& positive() { return above(0.0); }
  ParamSpec& non_negative() { return at_least(0.0); }
  ParamSpec& in_range(double lo, double hi) { return at_least(lo).at_most(hi); }
  ParamSpec& one_of(std::vector<std::string> c) { choices = std::move(c); return *this; }
  ParamSpec& non_empty() { min_items = 1; return *this; }
  ParamSpec& items(int64_t lo, int64_t hi) { min_items = lo; max_items = hi; return *this; }

  // "a float > 0", "one of \"cpu\", \"cuda\"", "a non-empty list of float > 0"
  std::string describe_allowed() const;
};

// Validated parameter values of one component. Every declared name is present.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, ParamValue> values) : values_(std::move(values)) {}

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const ParamValue& value(const std::string& name) const;  // throws std::out_of_range

  bool get_bool(const std::string& name) const { return std::get<bool>(value(name)); }
  int64_t get_int(const std::string& name) const { return std::get<int64_t>(value(name)); }
  double get_float(const std::string& name) const { return std::get<double>(value(name)); }
  const std::string& get_string(const std::string& name) const {
    return std::get<std::string>(value(name));
  }
  const std::vector<int64_t>& get_int_list(const std::string& name) const {
    return std::get<std::vector<int64_t>>(value(name));
  }
  const std::vector<double>& get_float_list(const std::string& name) const {
    return std::get<std::vector<double>>(value(name));
  }
  const std::vector<std::string>& get_string_list(const std::string& name) const {
    return std::get<std::vector<std::string>>(value(name));
  }

  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  std::map<std::string, ParamValue> values_;
};

// Checks `given` against `specs`: unknown names (with the closest valid name
// suggested), wrong types (an int is accepted for a float), out-of-range values,
// missing required values. Fills in defaults. `where` prefixes every error, e.g.
// "experiments/x.toml: [kernel] (laplace)".
absl::StatusOr<Params> validate_params(const std::vector<ParamSpec>& specs,
                                       const std::map<std::string, ParamValue>& given,
                                       const std::string& where);

// Checks one value against one spec (type coercion int->float included).
absl::StatusOr<ParamValue> validate_param(const ParamSpec& spec, const ParamValue& given,
                                          const std::string& where);

// The candidate closest to `word` by edit distance, or "" if none is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace drift
