#include "config/toml_value.hpp"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace drift::config {

std::string toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "int";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "bool";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

std::string render_toml_node(const toml::node& node) {
  if (node.is_table()) return "{...}";
  std::string s;
  if (auto v = node.as_boolean()) s = format_param_value(ParamValue(v->get()));
  else if (auto v = node.as_integer()) s = format_param_value(ParamValue(static_cast<int64_t>(v->get())));
  else if (auto v = node.as_floating_point()) s = format_param_value(ParamValue(v->get()));
  else if (auto v = node.as_string()) s = format_param_value(ParamValue(v->get()));
  else if (const auto* arr = node.as_array()) {
    s = "[";
    for (size_t i = 0; i < arr->size(); ++i)
      s += (i ? ", " : "") + render_toml_node(*arr->get(i));
    s += "]";
  }
  if (!s.empty()) {
    s = absl::StrReplaceAll(s, {{"\r", " "}, {"\n", " "}});
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
  }
  std::ostringstream os;
  node.visit([&](const auto& n) { os << n; });
  s = os.str();
  s = absl::StrReplaceAll(s, {{"\r", " "}, {"\n", " "}});
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

absl::StatusOr<ParamValue> to_param_value(const toml::node& node, const std::string& what) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " = ", render_toml_node(node), " ", why,
        "; allowed values are a bool, int, float, string, or an array of ints, floats or "
        "strings"));
  };
  if (auto v = node.as_boolean()) return ParamValue(v->get());
  if (auto v = node.as_integer()) return ParamValue(static_cast<int64_t>(v->get()));
  if (auto v = node.as_floating_point()) return ParamValue(static_cast<double>(v->get()));
  if (auto v = node.as_string()) return ParamValue(v->get());
  if (const auto* arr = node.as_array()) {
    bool any_int = false, any_float = false, any_string = false;
    for (const auto& el : *arr) {
      if (el.is_integer()) any_int = true;
      else if (el.is_floating_point()) any_float = true;
      else if (el.is_string()) any_string = true;
      else if (el.is_array())
        return bad("is an array of arrays (allowed only as the list of values of a [grid] key)");
      else
        return bad(absl::StrCat("is an array containing a ", toml_type_name(el)));
    }
    if (any_string && (any_int || any_float)) return bad("is an array mixing strings and numbers");
    if (any_string) {
      std::vector<std::string> out;
      for (const auto& el : *arr) out.push_back(el.as_string()->get());
      return ParamValue(std::move(out));
    }
    if (any_float) {
      std::vector<double> out;
      for (const auto& el : *arr)
        out.push_back(el.is_integer() ? static_cast<double>(el.as_integer()->get())
                                      : el.as_floating_point()->get());
      return ParamValue(std::move(out));
    }
    if (any_int) {
      std::vector<int64_t> out;
      for (const auto& el : *arr) out.push_back(el.as_integer()->get());
      return ParamValue(std::move(out));
    }
    return ParamValue(std::vector<double>{});
  }
  return bad(absl::StrCat("is a ", toml_type_name(node)));
}

}  // namespace drift::config
