// drift-run: runs experiments (see README.md and schemas/experiment.md).
#include <iostream>
#include <string>

#include "runtime/list_plugins.hpp"
#include "runtime/registry.hpp"
#include "runtime/threads.hpp"

int main(int argc, char** argv) {
  drift::runtime::init_threads();
  std::string arg1 = argc > 1 ? argv[1] : "";
  if (arg1 == "--list-plugins") {
    drift::runtime::Registry reg;
    auto st = reg.load_default_paths();
    if (!st.ok()) {
      std::cerr << "drift-run: " << st.message() << "\n";
      return 1;
    }
    drift::runtime::print_components(reg, std::cout);
    return 0;
  }
  std::cerr << "usage: drift-run --list-plugins | --dry-run FILE | FILE\n";
  return 2;
}
