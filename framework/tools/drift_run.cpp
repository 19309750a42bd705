// drift-run: runs experiments (see README.md and schemas/experiment.md).
//
//   drift-run --list-plugins     every component and its parameters
//   drift-run --print-schema     the reference of every framework key (Markdown)
//   drift-run --dry-run FILE     check every grid cell of FILE and list the cells
//   drift-run [--cells L] [--jobs N] [--restart] FILE
//                                run the experiment (sweep runner, sweep/sweep.hpp)
//   drift-run --slurm [--dry-run] [--cells L] [--restart] [SLURM OPTIONS] FILE
//                                submit the cells as a Slurm job array (sweep/slurm.hpp)
//   drift-run --status FILE      each cell's state (done, failed, running, queued, ...); a running
//                                cell's phase, progress and log file (schemas/results.md)
//   drift-run --merge FILE       rebuild the results file from the finished cells
//
// Exit status: 0 ok, 1 invalid experiment, plugin error or a failed cell, 2 usage,
// 128+N interrupted by signal N.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>

#include "config/dry_run.hpp"
#include "config/experiment.hpp"
#include "config/schema.hpp"
#include "runtime/list_plugins.hpp"
#include "runtime/registry.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"
#include "sweep/slurm.hpp"
#include "sweep/sweep.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-run --list-plugins | --print-schema | --dry-run FILE\n"
    "       drift-run [--cells 0,2-5] [--jobs N] [--restart] FILE\n"
    "       drift-run --slurm [--dry-run] [--cells 0,2-5] [--restart] [--partition P] [--time T]\n"
    "                 [--cpus-per-task N] [--gpus-per-task N] [--mem M] [--max-running N]\n"
    "                 [--sbatch-option OPT]... FILE\n"
    "       drift-run --status FILE | --merge FILE\n";

// Default plugins, then the file's [plugins], then every cell. Prints the error.
bool check(const std::string& file, drift::runtime::Registry& reg,
           drift::config::CheckedExperiment* out) {
  if (auto st = reg.load_default_paths(); !st.ok()) {
    std::cerr << "drift-run: " << st.message() << "\n";
    return false;
  }
  auto checked = drift::config::check_experiment_file(file, reg);
  if (!checked.ok()) {
    std::cerr << checked.status().message() << "\n";  // names the file
    return false;
  }
  *out = *std::move(checked);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  drift::runtime::init_threads();
  std::string arg1 = argc > 1 ? argv[1] : "";
  if (arg1 == "--list-plugins" && argc == 2) {
    drift::runtime::Registry reg;
    auto st = reg.load_default_paths();
    if (!st.ok()) {
      std::cerr << "drift-run: " << st.message() << "\n";
      return 1;
    }
    drift::runtime::print_components(reg, std::cout);
    return 0;
  }
  if (arg1 == "--print-schema" && argc == 2) {
    std::cout << drift::config::schema_markdown();
    return 0;
  }
  if (arg1 == "--dry-run" && argc == 3) {
    drift::runtime::Registry reg;
    drift::config::CheckedExperiment checked;
    if (!check(argv[2], reg, &checked)) return 1;
    std::cout << drift::config::format_dry_run(checked.exp, checked.cells);
    return 0;
  }
  if (arg1 == "--status" && argc == 3) return drift::sweep::print_status(argv[2]);
  if (arg1 == "--merge" && argc == 3) return drift::sweep::merge_results(argv[2]);
  if (arg1 == "--array-task") {
    // Internal: one task of a Slurm job array (sweep/slurm.hpp).
    // drift-run --array-task FILE --cell I [--threads N] [--redo-before NS]
    drift::sweep::SweepOptions opt;
    opt.array_task = true;
    opt.file = argc > 2 ? argv[2] : "";
    bool ok = true;
    for (int i = 3; i + 1 < argc; i += 2) {
      std::string k = argv[i], v = argv[i + 1];
      if (k == "--cell") opt.cells = v;
      else if (k == "--threads") opt.threads = std::atoi(v.c_str());
      else if (k == "--redo-before") {
        char* end = nullptr;
        const long long ns = std::strtoll(v.c_str(), &end, 10);
        if (end == v.c_str() || *end != '\0' || ns <= 0) ok = false;
        else opt.redo_before = std::chrono::system_clock::time_point(
                 std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns)));
      } else ok = false;
    }
    if (!ok || opt.file.empty() || opt.cells.empty() ||
        opt.cells.find_first_not_of("0123456789") != std::string::npos) {
      std::cerr << "drift-run --array-task FILE --cell I [--threads N] [--redo-before NS]: got a bad option, "
                   "a bad cell or no file\n";
      return 2;
    }
    opt.jobs = 1;
    opt.self_exe = drift::runtime::executable_dir() + "/drift-run";
    return drift::sweep::run_sweep(opt);
  }
  if (arg1 == "--slurm") {
    drift::sweep::SlurmSubmitOptions opt;
    bool ok = true;
    auto as_int = [&](const char* s, std::optional<int64_t>* out) {
      char* end = nullptr;
      long v = std::strtol(s, &end, 10);
      if (end == s || *end != '\0' || v < 0) ok = false;
      else *out = v;
    };
    for (int i = 2; i < argc && ok; ++i) {
      std::string a = argv[i], inline_value;
      // --key=value or --key value
      const bool has_inline = a.rfind("--", 0) == 0 && a.find('=') != std::string::npos;
      if (has_inline) {
        inline_value = a.substr(a.find('=') + 1);
        a = a.substr(0, a.find('='));
      }
      const bool has_value = has_inline || i + 1 < argc;
      auto value = [&]() -> const char* { return has_inline ? inline_value.c_str() : argv[++i]; };
      if (a == "--dry-run" && !has_inline) opt.dry_run = true;
      else if (a == "--restart" && !has_inline) opt.restart = true;
      else if (a == "--cells" && has_value) opt.cells = value();
      else if (a == "--partition" && has_value) opt.overrides.partition = value();
      else if (a == "--time" && has_value) opt.overrides.time = value();
      else if (a == "--mem" && has_value) opt.overrides.mem = value();
      else if (a == "--cpus-per-task" && has_value) as_int(value(), &opt.overrides.cpus_per_task);
      else if (a == "--gpus-per-task" && has_value) as_int(value(), &opt.overrides.gpus_per_task);
      else if (a == "--max-running" && has_value) as_int(value(), &opt.overrides.max_running);
      else if (a == "--sbatch-option" && has_value) opt.overrides.sbatch_options.push_back(value());
      else if (!a.empty() && a[0] != '-' && opt.file.empty()) opt.file = a;
      else {
        std::cerr << "drift-run --slurm: unexpected argument '" << a << "'\n";
        ok = false;
      }
    }
    if (!ok || opt.file.empty()) {
      std::cerr << kUsage;
      return 2;
    }
    opt.self_exe = drift::runtime::executable_dir() + "/drift-run";
    return drift::sweep::submit_slurm(opt);
  }
  if (arg1 == "--cell-worker") {
    // Internal: one cell in a child process of the sweep runner.
    // drift-run --cell-worker FILE --cell I --cell-out PATH [--threads N]
    std::string file = argc > 2 ? argv[2] : "", out;
    long cell = -1, threads = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
      std::string k = argv[i], v = argv[i + 1];
      if (k == "--cell") cell = std::stol(v);
      else if (k == "--cell-out") out = v;
      else if (k == "--threads") threads = std::stol(v);
    }
    if (file.empty() || cell < 0 || out.empty()) {
      std::cerr << kUsage;
      return 2;
    }
    return drift::sweep::run_cell_worker(file, static_cast<size_t>(cell), out, static_cast<int>(threads));
  }
  {
    // drift-run [--cells LIST] [--jobs N] [--restart] FILE
    drift::sweep::SweepOptions opt;
    bool ok = argc >= 2;
    for (int i = 1; i < argc && ok; ++i) {
      std::string a = argv[i];
      if (a == "--cells" && i + 1 < argc) opt.cells = argv[++i];
      else if (a == "--jobs" && i + 1 < argc) {
        try { opt.jobs = std::stoi(argv[++i]); } catch (...) { ok = false; }
        if (opt.jobs < 1) ok = false;
      }
      else if (a == "--restart") opt.restart = true;
      else if (!a.empty() && a[0] != '-' && opt.file.empty()) opt.file = a;
      else ok = false;
    }
    if (ok && !opt.file.empty()) {
      opt.self_exe = drift::runtime::executable_dir() + "/drift-run";
      return drift::sweep::run_sweep(opt);
    }
  }
  std::cerr << kUsage;
  return 2;
}
