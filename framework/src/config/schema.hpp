// The framework-owned keys of an experiment file, declared once. Validation
// (config/experiment.cpp), the generated reference (drift-run --print-schema,
// schemas/experiment.md) and the dry run all read these declarations.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "drift/params.hpp"

namespace drift::config {

struct SectionSchema {
  std::string name;  // "train" (written [train] in the file)
  std::string doc;   // one paragraph for the reference
  // Plugin sections ([data], [generator], [encoder], [kernel], [normalizer])
  // select a registry component with `selector` ("dataset" or "plugin"); their
  // other keys are the framework keys below plus the component's parameters.
  // The component kind has the section's name, except [data] (kind "dataset").
  bool is_plugin_section = false;
  std::string selector;
  // Framework keys (for plugin sections including the selector).
  std::vector<ParamSpec> keys;
  // Whether [grid] may override keys of this section.
  bool grid_allowed = true;
  // Whether the section is part of a cell's configuration (its resolved TOML,
  // which a finished cell file must match). [slurm] is not: it says where the
  // cells run, not what they compute, so changing it reruns nothing.
  bool in_cell_config = true;
  // Keys of a section that is in the cell's configuration which are not
  // themselves part of it (how often a cell checkpoints: changing it reruns
  // nothing); not allowed in [grid].
  std::vector<std::string> operational_keys;
  bool is_operational(const std::string& key) const;
};

// Every section except [grid], in the canonical order of the file:
// experiment, plugins, data, generator, encoder, kernel, normalizer, train, eval, slurm.
const std::vector<SectionSchema>& experiment_schema();

// nullptr when `name` is not a section ([grid] is not in the schema).
const SectionSchema* find_section(const std::string& name);

// Names of every section, [grid] included, in file order.
std::vector<std::string> section_names();

// The Markdown reference of every framework key (drift-run --print-schema).
std::string schema_markdown();

}  // namespace drift::config
