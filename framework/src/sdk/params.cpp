#include "drift/params.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drift {
namespace {

std::string fmt_double(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::ostringstream os;
  os.precision(15);
  os << v;
  std::string s = os.str();
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool is_list(ParamType t) {
  return t == ParamType::IntList || t == ParamType::FloatList || t == ParamType::StringList;
}

ParamType element_type(ParamType t) {
  switch (t) {
    case ParamType::IntList: return ParamType::Int;
    case ParamType::FloatList: return ParamType::Float;
    case ParamType::StringList: return ParamType::String;
    default: return t;
  }
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
    case ParamType::IntList: return "list of int";
    case ParamType::FloatList: return "list of float";
    case ParamType::StringList: return "list of string";
  }
  return "?";
}

ParamType param_value_type(const ParamValue& v) {
  return static_cast<ParamType>(v.index());
}

std::string format_param_value(const ParamValue& v) {
  struct V {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return fmt_double(d); }
    std::string operator()(const std::string& s) const { return quote(s); }
    std::string operator()(const std::vector<int64_t>& l) const {
      return "[" + absl::StrJoin(l, ", ") + "]";
    }
    std::string operator()(const std::vector<double>& l) const {
      std::vector<std::string> parts;
      for (double d : l) parts.push_back(fmt_double(d));
      return "[" + absl::StrJoin(parts, ", ") + "]";
    }
    std::string operator()(const std::vector<std::string>& l) const {
      std::vector<std::string> parts;
      for (const auto& s : l) parts.push_back(quote(s));
      return "[" + absl::StrJoin(parts, ", ") + "]";
    }
  };
  return std::visit(V{}, v);
}

ParamSpec ParamSpec::Bool(std::string name, bool def, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::Bool; s.default_value = def;
  s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::Int(std::string name, int64_t def, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::Int; s.default_value = def;
  s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::Float(std::string name, double def, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::Float; s.default_value = def;
  s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::String(std::string name, std::string def, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::String;
  s.default_value = std::move(def); s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::IntList(std::string name, std::vector<int64_t> def, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::IntList;
  s.default_value = std::move(def); s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::FloatList(std::string name, std::vector<double> def, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::FloatList;
  s.default_value = std::move(def); s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::StringList(std::string name, std::vector<std::string> def,
                                std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = ParamType::StringList;
  s.default_value = std::move(def); s.doc = std::move(doc); return s;
}
ParamSpec ParamSpec::Required(std::string name, ParamType type, std::string doc) {
  ParamSpec s; s.name = std::move(name); s.type = type; s.doc = std::move(doc); return s;
}

std::string ParamSpec::describe_allowed() const {
  ParamType et = element_type(type);
  std::string elem = param_type_name(et);
  std::vector<std::string> conds;
  if (!choices.empty()) {
    std::vector<std::string> q;
    for (const auto& c : choices) q.push_back(quote(c));
    elem = "one of " + absl::StrJoin(q, ", ");
  } else if (et == ParamType::Int || et == ParamType::Float) {
    // Int bounds print as integers ("an int >= 1"), float bounds as floats.
    auto bound = [&](double v) {
      return et == ParamType::Int && v == std::floor(v) ? std::to_string(static_cast<int64_t>(v))
                                                        : fmt_double(v);
    };
    if (std::isfinite(min)) conds.push_back((min_exclusive ? "> " : ">= ") + bound(min));
    if (std::isfinite(max)) conds.push_back((max_exclusive ? "< " : "<= ") + bound(max));
    if (!conds.empty()) elem += " " + absl::StrJoin(conds, " and ");
  }
  if (!is_list(type)) {
    if (!choices.empty()) return elem;
    return (et == ParamType::Int ? "an " : "a ") + elem;
  }
  std::string items;
  if (min_items > 0 && max_items == std::numeric_limits<int64_t>::max())
    items = min_items == 1 ? "non-empty " : absl::StrCat("at least ", min_items, "-item ");
  else if (max_items != std::numeric_limits<int64_t>::max())
    items = absl::StrCat(min_items, " to ", max_items, "-item ");
  return "a " + items + "list of " + (choices.empty() ? elem : "(" + elem + ")");
}

const ParamValue& Params::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::out_of_range("drift::Params: no parameter '" + name + "'");
  return it->second;
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) { best_d = d; best = c; }
  }
  // Close: at most a third of the longer word, or a prefix/suffix relation.
  size_t limit = std::max<size_t>(2, std::max(word.size(), best.size()) / 3);
  if (best_d != std::string::npos && best_d <= limit) return best;
  for (const auto& c : candidates)
    if (!word.empty() && (c.rfind(word, 0) == 0 || word.rfind(c, 0) == 0)) return c;
  return "";
}

absl::StatusOr<ParamValue> validate_param(const ParamSpec& spec, const ParamValue& given,
                                          const std::string& where) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": '", spec.name, "' = ",
                                                   format_param_value(given), " ", why,
                                                   "; expected ", spec.describe_allowed()));
  };
  ParamType gt = param_value_type(given);
  ParamValue v = given;
  // Coercions: int -> float, list of int -> list of float; an empty list of any
  // element type is an empty list of the declared type.
  if (spec.type == ParamType::Float && gt == ParamType::Int) {
    v = static_cast<double>(std::get<int64_t>(given));
  } else if (spec.type == ParamType::FloatList && gt == ParamType::IntList) {
    const auto& l = std::get<std::vector<int64_t>>(given);
    v = std::vector<double>(l.begin(), l.end());
  } else if (is_list(spec.type) && is_list(gt) && gt != spec.type) {
    bool empty = std::visit(
        [](const auto& x) -> bool {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::vector<int64_t>> ||
                        std::is_same_v<T, std::vector<double>> ||
                        std::is_same_v<T, std::vector<std::string>>)
            return x.empty();
          return false;
        },
        given);
    if (!empty) return bad(absl::StrCat("is a ", param_type_name(gt)));
    switch (spec.type) {
      case ParamType::IntList: v = std::vector<int64_t>{}; break;
      case ParamType::FloatList: v = std::vector<double>{}; break;
      default: v = std::vector<std::string>{}; break;
    }
  } else if (gt != spec.type) {
    return bad(absl::StrCat("is a ", param_type_name(gt)));
  }

  auto check_num = [&](double x) {
    if (!std::isfinite(x)) return false;
    if (spec.min_exclusive ? !(x > spec.min) : !(x >= spec.min)) return false;
    if (spec.max_exclusive ? !(x < spec.max) : !(x <= spec.max)) return false;
    return true;
  };
  auto check_choice = [&](const std::string& s) {
    return spec.choices.empty() ||
           std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end();
  };
  auto check_len = [&](size_t n) {
    return static_cast<int64_t>(n) >= spec.min_items && static_cast<int64_t>(n) <= spec.max_items;
  };
  switch (spec.type) {
    case ParamType::Int:
      if (!check_num(static_cast<double>(std::get<int64_t>(v)))) return bad("is out of range");
      break;
    case ParamType::Float:
      if (!check_num(std::get<double>(v))) return bad("is out of range");
      break;
    case ParamType::String: {
      const auto& s = std::get<std::string>(v);
      if (!check_choice(s)) {
        std::string near = closest_match(s, spec.choices);
        return bad(near.empty() ? "is not allowed" : "is not allowed (did you mean \"" + near + "\"?)");
      }
      break;
    }
    case ParamType::IntList: {
      const auto& l = std::get<std::vector<int64_t>>(v);
      if (!check_len(l.size())) return bad("has the wrong number of items");
      for (auto x : l)
        if (!check_num(static_cast<double>(x))) return bad("has an item out of range");
      break;
    }
    case ParamType::FloatList: {
      const auto& l = std::get<std::vector<double>>(v);
      if (!check_len(l.size())) return bad("has the wrong number of items");
      for (auto x : l)
        if (!check_num(x)) return bad("has an item out of range");
      break;
    }
    case ParamType::StringList: {
      const auto& l = std::get<std::vector<std::string>>(v);
      if (!check_len(l.size())) return bad("has the wrong number of items");
      for (const auto& s : l)
        if (!check_choice(s)) return bad("has an item that is not allowed (\"" + s + "\")");
      break;
    }
    case ParamType::Bool: break;
  }
  return v;
}

absl::StatusOr<Params> validate_params(const std::vector<ParamSpec>& specs,
                                       const std::map<std::string, ParamValue>& given,
                                       const std::string& where) {
  std::vector<std::string> names;
  for (const auto& s : specs) names.push_back(s.name);
  for (const auto& [key, value] : given) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    std::string near = closest_match(key, names);
    std::string msg = absl::StrCat(where, ": unknown key '", key, "'");
    if (!near.empty()) absl::StrAppend(&msg, "; did you mean '", near, "'?");
    else if (names.empty()) absl::StrAppend(&msg, "; this takes no parameters");
    else absl::StrAppend(&msg, "; valid keys: ", absl::StrJoin(names, ", "));
    return absl::InvalidArgumentError(msg);
  }
  std::map<std::string, ParamValue> out;
  for (const auto& spec : specs) {
    auto it = given.find(spec.name);
    if (it == given.end()) {
      if (!spec.default_value)
        return absl::InvalidArgumentError(absl::StrCat(where, ": missing required key '",
                                                       spec.name, "' (",
                                                       spec.describe_allowed(), ": ",
                                                       spec.doc, ")"));
      out[spec.name] = *spec.default_value;
      continue;
    }
    auto v = validate_param(spec, it->second, where);
    if (!v.ok()) return v.status();
    out[spec.name] = *std::move(v);
  }
  return Params(std::move(out));
}

}  // namespace drift
