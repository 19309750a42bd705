#include "config/experiment.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <toml++/toml.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "config/schema.hpp"
#include "config/toml_value.hpp"
#include "runtime/registry.hpp"

namespace drift::config {
namespace fs = std::filesystem;

namespace detail {
struct Document {
  toml::table table;
  // For each grid axis, the nodes of its values inside `table`.
  std::vector<std::vector<const toml::node*>> axis_values;
};
}  // namespace detail

namespace {

absl::Status error(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", msg));
}

std::string one_line(std::string s) {
  s = absl::StrReplaceAll(s, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  return s;
}

// The entries of a table in the order they are written in the file.
std::vector<std::pair<std::string, const toml::node*>> ordered(const toml::table& t) {
  std::vector<std::pair<std::string, const toml::node*>> out;
  for (const auto& [k, v] : t) out.emplace_back(std::string(k.str()), &v);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    const auto& sa = a.second->source().begin;
    const auto& sb = b.second->source().begin;
    return std::make_pair(sa.line, sa.column) < std::make_pair(sb.line, sb.column);
  });
  return out;
}

std::vector<std::string> key_names(const std::vector<ParamSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(s.name);
  return out;
}

ComponentKind kind_of(const SectionSchema& s) {
  if (s.name == "data") return ComponentKind::Dataset;
  if (s.name == "generator") return ComponentKind::Generator;
  if (s.name == "encoder") return ComponentKind::Encoder;
  if (s.name == "kernel") return ComponentKind::Kernel;
  if (s.name == "formation") return ComponentKind::Formation;
  return ComponentKind::Normalizer;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                         const std::string& open = "'", const std::string& close = "'") {
  std::string near = closest_match(word, candidates);
  std::vector<std::string> quoted;
  for (const auto& c : candidates) quoted.push_back(open + c + close);
  if (!near.empty()) return absl::StrCat("; did you mean ", open, near, close, "?");
  if (candidates.empty()) return "";
  return absl::StrCat("; valid: ", absl::StrJoin(quoted, ", "));
}

absl::Status check_sections(const std::string& path, const toml::table& t) {
  std::vector<std::string> sections = section_names();
  for (const auto& [k, node] : ordered(t)) {
    bool known = std::find(sections.begin(), sections.end(), k) != sections.end();
    if (!node->is_table()) {
      if (known)
        return error(path, absl::StrCat("'", k, "' must be a section ([", k, "]), not a ",
                                        toml_type_name(*node)));
      // A key before the first section header: say where it belongs.
      for (const auto& s : experiment_schema())
        for (const auto& spec : s.keys)
          if (spec.name == k)
            return error(path, absl::StrCat("key '", k, "' is outside any section; did you mean to "
                                            "put it under [", s.name, "]?"));
      return error(path, absl::StrCat("key '", k, "' is outside any section; sections: [",
                                      absl::StrJoin(sections, "], ["), "]"));
    }
    if (!known)
      return error(path, absl::StrCat("unknown section [", k, "]",
                                      did_you_mean(k, sections, "[", "]")));
  }
  return absl::OkStatus();
}

// [grid]: flattens nested tables ("kernel.temperatures" written unquoted) into
// dotted keys, in file order.
void flatten_grid(const toml::table& t, const std::string& prefix,
                  std::vector<std::pair<std::string, const toml::node*>>* out) {
  for (const auto& [k, node] : ordered(t)) {
    std::string key = prefix.empty() ? k : prefix + "." + k;
    if (const auto* sub = node->as_table()) flatten_grid(*sub, key, out);
    else out->emplace_back(key, node);
  }
}

absl::Status parse_grid(const std::string& path, const toml::table& grid, Experiment* exp,
                        detail::Document* doc) {
  std::vector<std::pair<std::string, const toml::node*>> entries;
  flatten_grid(grid, "", &entries);
  std::vector<std::string> sections;
  for (const auto& s : experiment_schema()) sections.push_back(s.name);
  // One axis for `key` (checked against the schema), without values.
  auto make_axis = [&](const std::string& key, const std::string& where) -> absl::StatusOr<GridAxis> {
    size_t dot = key.find('.');
    if (dot == std::string::npos)
      return error(path, absl::StrCat(where, ": a grid key is 'section.key', for example "
                                             "\"kernel.temperatures\""));
    GridAxis axis;
    axis.key = key;
    axis.section = key.substr(0, dot);
    axis.name = key.substr(dot + 1);
    const SectionSchema* s = find_section(axis.section);
    if (s == nullptr)
      return error(path, absl::StrCat(where, ": unknown section [", axis.section, "]",
                                      did_you_mean(axis.section, sections, "[", "]")));
    if (!s->grid_allowed)
      return error(path, absl::StrCat(where, ": [", s->name, "] cannot be overridden by [grid]"));
    if (s->is_operational(axis.name))
      return error(path, absl::StrCat(where, ": [", s->name, "] '", axis.name,
                                      "' is not part of a cell's configuration and cannot be in [grid]"));
    auto names = key_names(s->keys);
    // "section.component.key": a key of the [section.component] sub-table
    // (checked against that component in every cell, like the sub-table).
    if (const size_t dot2 = axis.name.find('.'); dot2 != std::string::npos) {
      if (!s->is_plugin_section || axis.name.find('.', dot2 + 1) != std::string::npos ||
          dot2 == 0 || dot2 + 1 == axis.name.size())
        return error(path, absl::StrCat(where, ": a grid key is 'section.key', or "
                                               "'section.component.key' for a plugin section's "
                                               "[section.component] sub-table"));
      axis.component = axis.name.substr(0, dot2);
      axis.name = axis.name.substr(dot2 + 1);
    }
    bool framework_key = std::find(names.begin(), names.end(), axis.name) != names.end();
    if ((!axis.component.empty() && framework_key) ||
        (!s->is_plugin_section && !framework_key))
      return error(path, absl::StrCat(where, ": [", s->name, "] has no key '", axis.name, "'",
                                      did_you_mean(axis.name, names)));
    for (const auto& other : exp->grid)
      if (other.key == key) return error(path, absl::StrCat(where, ": given twice"));
    axis.group = exp->grid.size();
    return axis;
  };
  for (const auto& [key, node] : entries) {
    std::string where = absl::StrCat("[grid] '", key, "'");
    std::vector<std::string> keys;
    for (absl::string_view k : absl::StrSplit(key, ','))
      keys.emplace_back(absl::StripAsciiWhitespace(k));
    const auto* arr = node->as_array();
    if (arr == nullptr)
      return error(path, absl::StrCat(where, " = ", render_toml_node(*node),
                                      " must be a non-empty array of values, one per cell "
                                      "(for example [", render_toml_node(*node), "])"));
    if (arr->empty())
      return error(path, absl::StrCat(where, " = [] must be a non-empty array of values, one "
                                             "per cell"));
    if (keys.size() == 1) {
      auto axis = make_axis(key, where);
      if (!axis.ok()) return axis.status();
      std::vector<const toml::node*> nodes;
      for (size_t i = 0; i < arr->size(); ++i) {
        auto v = to_param_value(*arr->get(i), absl::StrCat(path, ": ", where, " value #", i + 1));
        if (!v.ok()) return v.status();
        axis->values.push_back(*std::move(v));
        nodes.push_back(arr->get(i));
      }
      exp->grid.push_back(*std::move(axis));
      doc->axis_values.push_back(std::move(nodes));
      continue;
    }
    // Linked keys: "a.x, b.y" = [[x0, y0], [x1, y1], ...], one tuple per cell.
    const size_t group = exp->grid.size();
    for (size_t j = 0; j < keys.size(); ++j) {
      auto axis = make_axis(keys[j], absl::StrCat("[grid] '", keys[j], "' (in '", key, "')"));
      if (!axis.ok()) return axis.status();
      axis->group = group;
      std::vector<const toml::node*> nodes;
      for (size_t i = 0; i < arr->size(); ++i) {
        const auto* tuple = arr->get(i)->as_array();
        if (tuple == nullptr || tuple->size() != keys.size())
          return error(path, absl::StrCat(where, " value #", i + 1, " = ", render_toml_node(*arr->get(i)),
                                          ": expected an array of ", keys.size(),
                                          " values, one per key (linked keys step together)"));
        auto v = to_param_value(*tuple->get(j), absl::StrCat(path, ": ", where, " value #", i + 1,
                                                             " (", keys[j], ")"));
        if (!v.ok()) return v.status();
        axis->values.push_back(*std::move(v));
        nodes.push_back(tuple->get(j));
      }
      exp->grid.push_back(*std::move(axis));
      doc->axis_values.push_back(std::move(nodes));
    }
  }
  return absl::OkStatus();
}

std::string toml_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string toml_value_text(const ParamValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return toml_quote(*s);
  if (const auto* l = std::get_if<std::vector<std::string>>(&v)) {
    std::vector<std::string> parts;
    for (const auto& s : *l) parts.push_back(toml_quote(s));
    return "[" + absl::StrJoin(parts, ", ") + "]";
  }
  return format_param_value(v);
}

std::string toml_key(const std::string& k) {
  bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  });
  return bare ? k : toml_quote(k);
}

// One resolved section: keys in declaration order.
struct ResolvedSection {
  std::string name;
  std::vector<std::pair<std::string, ParamValue>> values;
  // Parameters of the selected component that share the selector's name
  // (points' `dataset`): rendered in the [<name>.<component>] sub-table.
  std::string component;
  std::vector<std::pair<std::string, ParamValue>> component_values;
  const ParamValue* find(const std::string& key) const {
    for (const auto& [k, v] : values)
      if (k == key) return &v;
    return nullptr;
  }
};

void append_ordered(const std::vector<ParamSpec>& specs, const Params& p, ResolvedSection* out) {
  for (const auto& spec : specs) {
    if (out->find(spec.name) != nullptr) continue;
    if (p.has(spec.name)) out->values.emplace_back(spec.name, p.value(spec.name));
  }
}

constexpr char kHeader[] = "# drift experiment \"";  // the first line's start

// A key of ExperimentConfig::defaulted: "[<section header>] <key as rendered>".
std::string defaulted_key(const std::string& section, const std::string& key) {
  return absl::StrCat("[", section, "] ", toml_key(key));
}

// The entries of a resolved TOML, "[section] key" -> value as written;
// comment and blank lines are left out. A line that is not `key = value`
// is kept whole as its own key, so that it must be matched as it is.
std::map<std::string, std::string> resolved_entries(std::string_view toml) {
  std::map<std::string, std::string> out;
  std::string header;
  for (size_t at = 0; at < toml.size();) {
    size_t eol = toml.find('\n', at);
    if (eol == std::string_view::npos) eol = toml.size();
    const std::string line(toml.substr(at, eol - at));
    at = eol + 1;
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '[') {
      header = line;
      continue;
    }
    const size_t eq = line.find(" = ");
    if (eq == std::string::npos) out[header + " " + line] = "";
    else out[header + " " + line.substr(0, eq)] = line.substr(eq + 3);
  }
  return out;
}

std::string render(const ExperimentConfig& cfg, const std::vector<ResolvedSection>& sections) {
  std::string out = absl::StrCat(kHeader, one_line(cfg.name), "\", cell ",
                                 cfg.cell, " of ", cfg.num_cells, " (cells 0-", cfg.num_cells - 1,
                                 "), resolved from ", one_line(cfg.file), "\n");
  for (const auto& [k, v] : cfg.grid_values)
    absl::StrAppend(&out, "# grid: ", k, " = ", toml_value_text(v), "\n");
  for (const auto& s : sections) {
    absl::StrAppend(&out, "\n[", s.name, "]\n");
    for (const auto& [k, v] : s.values)
      absl::StrAppend(&out, toml_key(k), " = ", toml_value_text(v), "\n");
    if (!s.component_values.empty()) {
      absl::StrAppend(&out, "\n[", s.name, ".", toml_key(s.component), "]\n");
      for (const auto& [k, v] : s.component_values)
        absl::StrAppend(&out, toml_key(k), " = ", toml_value_text(v), "\n");
    }
  }
  return out;
}

}  // namespace

std::string_view configuration_identity(std::string_view resolved_toml) {
  const std::string_view header(kHeader);
  if (resolved_toml.substr(0, header.size()) != header) return resolved_toml;
  const size_t eol = resolved_toml.find('\n');
  return eol == std::string_view::npos ? std::string_view() : resolved_toml.substr(eol + 1);
}

std::string configuration_difference(std::string_view stored_toml, const ExperimentConfig& cfg) {
  const std::string_view stored_id = configuration_identity(stored_toml);
  const std::string_view id = configuration_identity(cfg.resolved_toml);
  if (stored_id == id) return "";
  const auto stored = resolved_entries(stored_id);
  const auto now = resolved_entries(id);
  // Keys are "[train] lr": `key = value` names the section, `bare = value` not;
  // a line that is not `key = value` is kept whole as its key (empty value).
  auto line = [](const std::string& key, const std::string& value) {
    return value.empty() ? key : absl::StrCat(key, " = ", value);
  };
  auto bare = [&](const std::string& key, const std::string& value) {
    return line(key.substr(key.find("] ") + 2), value);
  };
  for (const auto& [key, value] : stored) {
    auto it = now.find(key);
    if (it == now.end()) return absl::StrCat(line(key, value), " there, not a key here");
    if (it->second != value) return absl::StrCat(line(key, value), " there, ", bare(key, it->second), " here");
  }
  for (const auto& [key, value] : now)
    if (!stored.count(key) && !cfg.defaulted.count(key))
      return absl::StrCat(key, " not set there, ", bare(key, value), " here");
  return "";
}

bool same_configuration(std::string_view stored_toml, const ExperimentConfig& cfg) {
  return configuration_difference(stored_toml, cfg).empty();
}

size_t Experiment::num_cells() const {
  size_t n = 1;
  for (size_t i = 0; i < grid.size(); ++i)
    if (grid[i].group == i) n *= grid[i].values.size();
  return n;
}

std::vector<size_t> Experiment::cell_coordinates(size_t cell) const {
  std::vector<size_t> idx(grid.size());
  for (size_t i = grid.size(); i-- > 0;) {
    if (grid[i].group != i) continue;  // linked: takes its group's index below
    idx[i] = cell % grid[i].values.size();
    cell /= grid[i].values.size();
  }
  for (size_t i = 0; i < grid.size(); ++i) idx[i] = idx[grid[i].group];
  return idx;
}

absl::StatusOr<Experiment> parse_experiment(const std::string& text, const std::string& path) {
  auto doc = std::make_shared<detail::Document>();
  try {
    doc->table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.source().begin.line, ":",
                                                   e.source().begin.column, ": ",
                                                   one_line(std::string(e.description()))));
  }
  Experiment exp;
  exp.path = path;
  fs::path p(path);
  exp.stem = p.stem().string();
  if (!path.empty()) {
    std::error_code ec;
    fs::path abs = fs::absolute(p, ec);
    exp.dir = (ec ? p : abs).parent_path().lexically_normal().string();
  }
  const toml::table& t = doc->table;
  if (auto st = check_sections(path, t); !st.ok()) return st;

  // [plugins]
  std::map<std::string, ParamValue> given;
  if (const auto* plugins = t["plugins"].as_table()) {
    for (const auto& [k, node] : ordered(*plugins)) {
      auto v = to_param_value(*node, absl::StrCat(path, ": [plugins] '", k, "'"));
      if (!v.ok()) return v.status();
      given[k] = *std::move(v);
    }
  }
  auto plugins = validate_params(find_section("plugins")->keys, given, path + ": [plugins]");
  if (!plugins.ok()) return plugins.status();
  for (const auto& entry : plugins->get_string_list("paths")) {
    fs::path e(entry);
    exp.plugin_paths.push_back(
        (e.is_absolute() ? e : fs::path(exp.dir) / e).lexically_normal().string());
  }

  // Sections that are not part of a cell's configuration ([slurm]).
  for (const SectionSchema& s : experiment_schema()) {
    if (s.in_cell_config) continue;
    std::map<std::string, ParamValue> sec_given;
    if (const auto* sec = t[s.name].as_table()) {
      for (const auto& [k, node] : ordered(*sec)) {
        auto v = to_param_value(*node, absl::StrCat(path, ": [", s.name, "] '", k, "'"));
        if (!v.ok()) return v.status();
        sec_given[k] = *std::move(v);
      }
    }
    auto p = validate_params(s.keys, sec_given, absl::StrCat(path, ": [", s.name, "]"));
    if (!p.ok()) return p.status();
    if (s.name == "slurm") exp.slurm = *std::move(p);
  }

  if (const auto* grid = t["grid"].as_table())
    if (auto st = parse_grid(path, *grid, &exp, doc.get()); !st.ok()) return st;
  exp.doc = std::move(doc);
  return exp;
}

absl::StatusOr<Experiment> load_experiment(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return error(path, "is a directory, not an experiment file");
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  std::ostringstream ss;
  ss << f.rdbuf();
  return parse_experiment(ss.str(), path);
}

absl::Status load_experiment_plugins(const Experiment& exp, runtime::Registry& registry) {
  for (const auto& p : exp.plugin_paths) {
    std::error_code ec;
    if (!fs::exists(p, ec))
      return absl::NotFoundError(absl::StrCat(exp.path, ": [plugins] paths: ", p,
                                              ": no such file or directory"));
    auto st = registry.load_path(p);
    if (!st.ok())
      return absl::Status(st.code(), absl::StrCat(exp.path, ": [plugins] paths: ", st.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExperimentConfig> resolve_cell(const Experiment& exp, size_t cell,
                                              const runtime::Registry& registry) {
  const std::string& path = exp.path;
  if (exp.doc == nullptr) return absl::FailedPreconditionError(path + ": experiment not loaded");
  if (cell >= exp.num_cells())
    return absl::OutOfRangeError(
        absl::StrCat(path, ": cell ", cell, " does not exist; the grid has ", exp.num_cells(),
                     " cells (0-", exp.num_cells() - 1, ")"));

  // The cell: a deep copy of the file with the grid's values of this cell.
  toml::table t = exp.doc->table;
  t.erase("grid");
  std::vector<size_t> coords = exp.cell_coordinates(cell);
  std::map<std::string, std::map<std::string, bool>> from_grid;  // section -> key
  for (size_t i = 0; i < exp.grid.size(); ++i) {
    const GridAxis& a = exp.grid[i];
    if (!t.contains(a.section)) t.insert(a.section, toml::table{});
    toml::table* target = t[a.section].as_table();
    if (!a.component.empty()) {
      if (!target->contains(a.component)) target->insert(a.component, toml::table{});
      target = (*target)[a.component].as_table();
    }
    target->insert_or_assign(a.name, *exp.doc->axis_values[i][coords[i]]);
    if (a.component.empty()) from_grid[a.section][a.name] = true;
  }

  ExperimentConfig cfg;
  cfg.file = path;
  cfg.cell = cell;
  cfg.num_cells = exp.num_cells();
  cfg.plugin_paths = exp.plugin_paths;
  std::vector<ResolvedSection> resolved;
  Params experiment;

  for (const SectionSchema& s : experiment_schema()) {
    if (!s.in_cell_config) continue;  // [slurm]: read by load_experiment
    std::string where = absl::StrCat(path, ": [", s.name, "]");
    std::map<std::string, ParamValue> given;
    // Plugin sections: [<section>.<component>] sub-tables hold parameters used
    // only in cells that select that component (schemas/experiment.md).
    std::vector<std::pair<std::string, const toml::table*>> per_component;
    if (const auto* sec = t[s.name].as_table()) {
      for (const auto& [k, node] : ordered(*sec)) {
        if (const auto* sub = node->as_table(); sub != nullptr && s.is_plugin_section) {
          per_component.emplace_back(k, sub);
          continue;
        }
        auto v = to_param_value(*node, absl::StrCat(where, " '", k, "'"));
        if (!v.ok()) return v.status();
        given[k] = *std::move(v);
      }
    }
    ResolvedSection rs;
    rs.name = s.name;
    if (!s.is_plugin_section) {
      auto p = validate_params(s.keys, given, where);
      if (!p.ok()) return p.status();
      // Operational keys are not part of the configuration a cell file matches.
      std::vector<ParamSpec> in_config;
      for (const auto& k : s.keys)
        if (!s.is_operational(k.name)) in_config.push_back(k);
      append_ordered(in_config, *p, &rs);
      for (const auto& k : in_config)
        if (!given.count(k.name)) cfg.defaulted.insert(defaulted_key(s.name, k.name));
      if (s.name == "experiment") experiment = *p;
      else if (s.name == "train") cfg.train = *p;
      else if (s.name == "eval") cfg.eval = *p;
      resolved.push_back(std::move(rs));
      continue;
    }

    // [formation] is used only with datasets that have conditions: a file that
    // does not write it leaves it out of the configuration (cfg.formation.name
    // stays empty: the trainer takes the default formation), and needs no
    // formation in the registry.
    if (s.name == "formation" && t[s.name].as_table() == nullptr) continue;
    // Plugin section: framework keys first, then the component's own.
    auto fw_names = key_names(s.keys);
    std::map<std::string, ParamValue> fw_given, own_given;
    for (const auto& [k, v] : given) {
      bool fw = std::find(fw_names.begin(), fw_names.end(), k) != fw_names.end();
      (fw ? fw_given : own_given)[k] = v;
    }
    auto fw = validate_params(s.keys, fw_given, where);
    if (!fw.ok()) return fw.status();
    const std::string name = fw->get_string(s.selector);
    ComponentKind kind = kind_of(s);
    auto comp = registry.get(kind, name);
    if (!comp.ok())
      return absl::Status(comp.status().code(),
                          absl::StrCat(where, " '", s.selector, "' = ", toml_quote(name), ": ",
                                       comp.status().message()));
    const auto& comp_specs = (*comp)->info.params;
    auto comp_names = key_names(comp_specs);
    // Sub-tables: each names a component of this kind and is checked against
    // its parameters in every cell; the selected one's keys join the section.
    for (const auto& [cname, sub] : per_component) {
      std::string sub_where = absl::StrCat(path, ": [", s.name, ".", cname, "]");
      auto other = registry.get(kind, cname);
      if (!other.ok() && (std::find(comp_names.begin(), comp_names.end(), cname) != comp_names.end() ||
                          std::find(fw_names.begin(), fw_names.end(), cname) != fw_names.end())) {
        // A parameter written as a table: the usual type error.
        auto v = to_param_value(*sub, absl::StrCat(where, " '", cname, "'"));
        if (!v.ok()) return v.status();
      }
      if (!other.ok())
        return error(path, absl::StrCat("[", s.name, ".", cname, "]: no ",
                                        component_kind_name(kind), " '", cname,
                                        "' (a sub-table of [", s.name,
                                        "] holds the parameters of the component it names)",
                                        did_you_mean(cname, registry.names(kind))));
      auto other_names = key_names((*other)->info.params);
      std::map<std::string, ParamValue> sub_given;
      for (const auto& [k, node] : ordered(*sub)) {
        if (std::find(other_names.begin(), other_names.end(), k) == other_names.end())
          return error(path, absl::StrCat("[", s.name, ".", cname, "]: the ",
                                          component_kind_name(kind), " '", cname,
                                          "' has no parameter '", k, "'",
                                          did_you_mean(k, other_names)));
        auto v = to_param_value(*node, absl::StrCat(sub_where, " '", k, "'"));
        if (!v.ok()) return v.status();
        sub_given[k] = *std::move(v);
      }
      // Checked on its own, except that a required parameter may be given in
      // the section itself (path in [data], dataset in [data.points]); the
      // merged parameters of the selected component are checked below.
      std::vector<ParamSpec> sub_specs = (*other)->info.params;
      sub_specs.erase(std::remove_if(sub_specs.begin(), sub_specs.end(),
                                     [&](const ParamSpec& sp) {
                                       return !sp.default_value && !sub_given.count(sp.name);
                                     }),
                      sub_specs.end());
      auto checked = validate_params(sub_specs, sub_given, absl::StrCat(sub_where, " (", cname, ")"));
      if (!checked.ok()) return checked.status();
      if (cname != name) continue;
      for (auto& [k, v] : sub_given) {
        // The selector (`dataset`, `plugin`) in [section] names the component;
        // a component parameter of that name is set here and only here.
        if (given.count(k) && k != s.selector)
          return error(path, absl::StrCat("[", s.name, ".", cname, "] '", k, "': also given ",
                                          from_grid[s.name].count(k) ? "by [grid] '" : "in [",
                                          from_grid[s.name].count(k) ? s.name + "." + k + "'"
                                                                     : s.name + "]",
                                          "; give it in one place"));
        own_given[k] = std::move(v);
      }
    }
    // A component may declare a framework key's name too: it gets the value,
    // except the selector's, which names the component (points' own `dataset`
    // parameter is set in [data.points]).
    for (const auto& [k, v] : fw_given)
      if (k != s.selector &&
          std::find(comp_names.begin(), comp_names.end(), k) != comp_names.end())
        own_given[k] = v;
    for (const auto& [k, v] : own_given) {
      if (std::find(comp_names.begin(), comp_names.end(), k) != comp_names.end()) continue;
      std::vector<std::string> all = fw_names;
      all.insert(all.end(), comp_names.begin(), comp_names.end());
      std::string near = closest_match(k, all);
      std::string hint = !near.empty() ? absl::StrCat("; did you mean '", near, "'?")
                                       : absl::StrCat("; valid keys: ", absl::StrJoin(all, ", "));
      if (from_grid[s.name].count(k))
        return error(path, absl::StrCat("[grid] '", s.name, ".", k, "': the ",
                                        component_kind_name(kind), " '", name,
                                        "' has no parameter '", k, "'", hint));
      return error(path, absl::StrCat("[", s.name, "] (", name, "): unknown key '", k,
                                      "' (neither a framework key nor a parameter of ",
                                      component_kind_name(kind), " '", name, "')", hint));
    }
    auto own = registry.validate(kind, name, own_given, where);
    if (!own.ok()) return own.status();
    append_ordered(s.keys, *fw, &rs);
    for (const auto& k : s.keys)
      if (!fw_given.count(k.name)) cfg.defaulted.insert(defaulted_key(s.name, k.name));
    for (const auto& k : comp_specs)
      if (!own_given.count(k.name))
        cfg.defaulted.insert(k.name == s.selector ? defaulted_key(absl::StrCat(s.name, ".", toml_key(name)), k.name)
                                                  : defaulted_key(s.name, k.name));
    rs.component = name;
    for (const auto& spec : comp_specs)
      if (spec.name == s.selector && own->has(spec.name))
        rs.component_values.emplace_back(spec.name, own->value(spec.name));
    append_ordered(comp_specs, *own, &rs);
    ComponentConfig cc{name, *own};
    if (s.name == "data") cfg.data = std::move(cc);
    else if (s.name == "generator") cfg.generator = std::move(cc);
    else if (s.name == "encoder") cfg.encoder = std::move(cc);
    else if (s.name == "kernel") {
      cfg.kernel = std::move(cc);
      cfg.temperatures = fw->get_float_list("temperatures");
      cfg.temperature_schedule = fw->get_string("temperature_schedule");
      cfg.temperature_decay = fw->get_float("temperature_decay");
      cfg.temperature_min = fw->get_float("temperature_min");
    } else if (s.name == "formation") {
      cfg.formation = std::move(cc);
    } else cfg.normalizer = std::move(cc);
    resolved.push_back(std::move(rs));
  }

  // [experiment] derived values.
  cfg.name = experiment.get_string("name");
  if (cfg.name.empty()) cfg.name = exp.stem.empty() ? "experiment" : exp.stem;
  cfg.seed = experiment.get_int("seed");
  cfg.output = experiment.get_string("output");
  if (cfg.output.empty()) cfg.output = "results/" + cfg.name + ".h5";
  cfg.device = experiment.get_string("device");
  cfg.threads = experiment.get_int("threads");
  for (auto& [k, v] : resolved.front().values) {
    if (k == "name") v = cfg.name;
    if (k == "output") v = cfg.output;
  }

  // Relations between keys.
  double amin = cfg.train.get_float("cfg_alpha_min"), amax = cfg.train.get_float("cfg_alpha_max");
  if (amax < amin)
    return error(path, absl::StrCat("[train] 'cfg_alpha_max' = ",
                                    format_param_value(ParamValue(amax)),
                                    " is smaller than 'cfg_alpha_min' = ",
                                    format_param_value(ParamValue(amin)),
                                    "; expected cfg_alpha_max >= cfg_alpha_min"));

  for (size_t i = 0; i < exp.grid.size(); ++i) {
    const GridAxis& a = exp.grid[i];
    // A sub-table key of a component this cell does not select: as written.
    if (!a.component.empty() &&
        (a.section == "kernel" ? cfg.kernel : a.section == "generator" ? cfg.generator
         : a.section == "encoder" ? cfg.encoder : a.section == "normalizer" ? cfg.normalizer
         : a.section == "formation" ? cfg.formation : cfg.data).name != a.component) {
      cfg.grid_values.emplace_back(a.key, a.values[coords[i]]);
      continue;
    }
    for (const auto& rs : resolved) {
      if (rs.name != a.section) continue;
      if (const ParamValue* v = rs.find(a.name)) cfg.grid_values.emplace_back(a.key, *v);
    }
  }
  cfg.resolved_toml = render(cfg, resolved);
  return cfg;
}

absl::StatusOr<std::vector<ExperimentConfig>> resolve_all(const Experiment& exp,
                                                          const runtime::Registry& registry) {
  std::vector<ExperimentConfig> out;
  for (size_t i = 0; i < exp.num_cells(); ++i) {
    auto c = resolve_cell(exp, i, registry);
    if (!c.ok()) {
      if (exp.num_cells() == 1) return c.status();
      std::vector<std::string> parts;
      std::vector<size_t> coords = exp.cell_coordinates(i);
      for (size_t a = 0; a < exp.grid.size(); ++a)
        parts.push_back(absl::StrCat(exp.grid[a].key, " = ",
                                     toml_value_text(exp.grid[a].values[coords[a]])));
      return absl::Status(c.status().code(),
                          absl::StrCat(c.status().message(), " (grid cell ", i, ": ",
                                       absl::StrJoin(parts, ", "), ")"));
    }
    out.push_back(*std::move(c));
  }
  return out;
}

}  // namespace drift::config
