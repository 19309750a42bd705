#include "runtime/list_plugins.hpp"

#include <iomanip>

namespace drift::runtime {

void print_components(const Registry& reg, std::ostream& os) {
  auto all = reg.all();
  if (all.empty()) {
    os << "no components found (plugin directory " << default_plugin_dir()
       << "; set DRIFT_PLUGIN_PATH to add more)\n";
    return;
  }
  for (const auto* c : all) {
    os << std::left << std::setw(11) << component_kind_name(c->info.kind) << std::setw(20)
       << c->info.name << " " << c->source << "\n";
    if (!c->info.doc.empty()) os << "    " << c->info.doc << "\n";
    if (c->info.params.empty()) os << "    (no parameters)\n";
    for (const auto& p : c->info.params) {
      os << "    " << std::setw(18) << p.name << " " << std::setw(15) << param_type_name(p.type)
         << " default "
         << (p.default_value ? format_param_value(*p.default_value) : std::string("(required)"))
         << "\n        " << p.doc << " [" << p.describe_allowed() << "]\n";
    }
  }
}

}  // namespace drift::runtime
