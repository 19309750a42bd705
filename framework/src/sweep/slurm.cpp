#include "sweep/slurm.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "config/dry_run.hpp"
#include "io/h5.hpp"
#include "runtime/registry.hpp"
#include "sweep/cell_lock.hpp"
#include "sweep/merge.hpp"
#include "sweep/progress.hpp"
#include "sweep/sweep.hpp"
#include "train/cell_file.hpp"
#include "train/checkpoint.hpp"

namespace drift::sweep {
namespace {

// Single-quoted for bash.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char buf[PATH_MAX];
  if (!getcwd(buf, sizeof buf)) return path;
  return absl::StrCat(buf, "/", path);
}

std::string cwd() {
  char buf[PATH_MAX];
  return getcwd(buf, sizeof buf) ? std::string(buf) : std::string(".");
}

// Runs argv (searched in PATH), returns its stdout; an error with its stderr's
// last line when it cannot start or exits non-zero.
absl::StatusOr<std::string> run_capture(const std::vector<std::string>& argv) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  std::vector<const char*> args;
  for (const auto& a : argv) args.push_back(a.c_str());
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    execvp(args[0], const_cast<char* const*>(args.data()));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  std::string out, err;
  char buf[4096];
  ssize_t n;
  while ((n = read(out_pipe[0], buf, sizeof buf)) > 0) out.append(buf, n);
  while ((n = read(err_pipe[0], buf, sizeof buf)) > 0) err.append(buf, n);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && out.empty() && err.empty())
    return absl::NotFoundError(absl::StrCat(argv[0], ": command not found (is Slurm installed?)"));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string last;
    for (absl::string_view l : absl::StrSplit(err, '\n', absl::SkipWhitespace())) last = std::string(l);
    return absl::UnavailableError(absl::StrCat(argv[0], " failed (status ",
                                               WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                               ")", last.empty() ? "" : ": ", last));
  }
  return out;
}

std::string now_string() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string submissions_path(const std::string& cells_dir) { return cells_dir + "/slurm/submissions.tsv"; }

// One recorded submission: array job id, merge job id, the cells of its tasks.
struct Submission {
  std::string array_id, merge_id;
  std::vector<size_t> cells;
};

std::vector<Submission> read_submissions(const std::string& cells_dir) {
  std::vector<Submission> out;
  std::ifstream in(submissions_path(cells_dir));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() < 3) continue;
    Submission s{f[0], f[1], {}};
    for (absl::string_view c : absl::StrSplit(f[2], ',', absl::SkipEmpty())) {
      size_t v;
      if (absl::SimpleAtoi(c, &v)) s.cells.push_back(v);
    }
    out.push_back(std::move(s));
  }
  return out;
}

// "123" or "123;cluster" (sbatch --parsable) -> "123".
std::string job_id_of(const std::string& parsable) {
  std::string s(absl::StripAsciiWhitespace(parsable));
  return s.substr(0, s.find(';'));
}

int64_t cpus_per_rank(const config::ExperimentConfig& cfg, const SlurmSettings& s) {
  if (s.cpus_per_task > 0) return s.cpus_per_task;
  return cfg.threads > 0 ? cfg.threads : 1;
}

}  // namespace

SlurmSettings slurm_settings(const config::Experiment& exp) {
  SlurmSettings s;
  const Params& p = exp.slurm;
  if (p.has("partition")) s.partition = p.get_string("partition");
  if (p.has("time")) s.time = p.get_string("time");
  if (p.has("mem")) s.mem = p.get_string("mem");
  s.merge_time = p.has("merge_time") ? p.get_string("merge_time") : "10:00";
  if (p.has("cpus_per_task")) s.cpus_per_task = p.get_int("cpus_per_task");
  if (p.has("gpus_per_task")) s.gpus_per_task = p.get_int("gpus_per_task");
  if (p.has("max_running")) s.max_running = p.get_int("max_running");
  if (p.has("sbatch_options")) s.sbatch_options = p.get_string_list("sbatch_options");
  return s;
}

void SlurmOverrides::apply(SlurmSettings* s) const {
  if (partition) s->partition = *partition;
  if (time) s->time = *time;
  if (mem) s->mem = *mem;
  if (cpus_per_task) s->cpus_per_task = *cpus_per_task;
  if (gpus_per_task) s->gpus_per_task = *gpus_per_task;
  if (max_running) s->max_running = *max_running;
  s->sbatch_options.insert(s->sbatch_options.end(), sbatch_options.begin(), sbatch_options.end());
}

bool slurm_state_queued(const std::string& state) {
  static const std::set<std::string> kQueued = {"PENDING",     "REQUEUED",  "REQUEUE_HOLD",
                                                "REQUEUE_FED", "SUSPENDED", "RESIZING",
                                                "CONFIGURING", "STOPPED",   "RESV_DEL_HOLD"};
  return kQueued.count(state) > 0;
}
bool slurm_state_running(const std::string& state) {
  return state == "RUNNING" || state == "COMPLETING" || state == "SIGNALING" ||
         state == "STAGE_OUT";
}

SlurmScripts make_slurm_scripts(const config::Experiment& exp,
                                const std::vector<config::ExperimentConfig>& all_cells,
                                const std::vector<size_t>& cells, const SlurmSettings& s,
                                const std::string& self_exe, const std::string& file,
                                const std::string& workdir, int64_t redo_before_ns) {
  const auto& first = all_cells.front();
  const std::string cells_dir = absolute(cells_dir_for(first.output));
  const std::string log_dir = cells_dir + "/slurm";
  // Every cell of one experiment has the same [train] nproc? Not necessarily (a
  // grid may vary it): the array asks for the largest, each task uses its own.
  int64_t nproc = 1;
  for (size_t c : cells) nproc = std::max(nproc, all_cells[c].train.get_int("nproc"));
  const int64_t cpus = cpus_per_rank(first, s);

  auto header = [&](std::string* out, const std::string& job_name) {
    absl::StrAppend(out, "#!/bin/bash\n", "#SBATCH --job-name=", job_name, "\n");
    if (!s.partition.empty()) absl::StrAppend(out, "#SBATCH --partition=", s.partition, "\n");
  };
  SlurmScripts sc;
  const std::string name = first.name;
  header(&sc.array, "drift-" + name);
  std::string array_spec = absl::StrCat("0-", cells.size() - 1);
  if (s.max_running > 0) absl::StrAppend(&array_spec, "%", s.max_running);
  absl::StrAppend(&sc.array, "#SBATCH --array=", array_spec, "\n");
  absl::StrAppend(&sc.array, "#SBATCH --ntasks=", nproc, "\n");
  absl::StrAppend(&sc.array, "#SBATCH --cpus-per-task=", cpus, "\n");
  if (s.gpus_per_task > 0) absl::StrAppend(&sc.array, "#SBATCH --gpus-per-task=", s.gpus_per_task, "\n");
  if (!s.time.empty()) absl::StrAppend(&sc.array, "#SBATCH --time=", s.time, "\n");
  if (!s.mem.empty()) absl::StrAppend(&sc.array, "#SBATCH --mem=", s.mem, "\n");
  // Preempted or on a failed node: back in the queue; the cell resumes from
  // its checkpoint. SIGTERM two minutes before the time limit (to drift-run,
  // the batch step): the cell writes its checkpoint and stops.
  absl::StrAppend(&sc.array, "#SBATCH --requeue\n");
  absl::StrAppend(&sc.array, "#SBATCH --signal=B:TERM@120\n");
  absl::StrAppend(&sc.array, "#SBATCH --output=", log_dir, "/%A_%a.out\n");
  for (const auto& o : s.sbatch_options) absl::StrAppend(&sc.array, "#SBATCH ", o, "\n");
  absl::StrAppend(&sc.array, "# drift: ", exp.path, ", ", cells.size(),
                  " cells; task k runs cell CELLS[k] (written by drift-run --slurm)\n");
  absl::StrAppend(&sc.array, "set -eu\ncd ", shell_quote(workdir), "\n");
  std::vector<std::string> cs;
  for (size_t c : cells) cs.push_back(std::to_string(c));
  absl::StrAppend(&sc.array, "CELLS=(", absl::StrJoin(cs, " "), ")\n");
  absl::StrAppend(&sc.array, "exec ", shell_quote(self_exe), " --array-task ", shell_quote(file),
                  " --cell \"${CELLS[$SLURM_ARRAY_TASK_ID]}\" --threads \"${SLURM_CPUS_PER_TASK:-", cpus,
                  "}\"");
  // --restart: what this submission finishes is kept when a task is requeued.
  if (redo_before_ns > 0) absl::StrAppend(&sc.array, " --redo-before ", redo_before_ns);
  absl::StrAppend(&sc.array, "\n");

  header(&sc.merge, "drift-" + name + "-merge");
  absl::StrAppend(&sc.merge, "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n");
  if (!s.merge_time.empty()) absl::StrAppend(&sc.merge, "#SBATCH --time=", s.merge_time, "\n");
  absl::StrAppend(&sc.merge, "#SBATCH --output=", log_dir, "/merge-%j.out\n");
  for (const auto& o : s.sbatch_options) absl::StrAppend(&sc.merge, "#SBATCH ", o, "\n");
  absl::StrAppend(&sc.merge, "# drift: merges the cell files of ", exp.path, " into ", first.output, "\n");
  absl::StrAppend(&sc.merge, "set -eu\ncd ", shell_quote(workdir), "\n");
  absl::StrAppend(&sc.merge, "exec ", shell_quote(self_exe), " --merge ", shell_quote(file), "\n");
  return sc;
}

absl::StatusOr<std::map<size_t, SlurmTaskState>> slurm_cell_states(const std::string& cells_dir) {
  std::map<size_t, SlurmTaskState> out;
  const auto subs = read_submissions(cells_dir);
  if (subs.empty()) return out;
  // Every job Slurm still knows, one line per array task.
  auto sq = run_capture({"squeue", "--noheader", "--array", "--format=%i|%T"});
  if (!sq.ok()) return sq.status();
  std::map<std::string, std::string> state_of;  // "123_4" -> "RUNNING"
  for (absl::string_view line : absl::StrSplit(*sq, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(line, '|');
    if (f.size() == 2) state_of[std::string(absl::StripAsciiWhitespace(f[0]))] = f[1];
  }
  // The latest submission of a cell wins; state "" where Slurm has
  // forgotten the task (it ended a while ago, or it was cancelled).
  for (const auto& s : subs)
    for (size_t k = 0; k < s.cells.size(); ++k) {
      const std::string id = absl::StrCat(s.array_id, "_", k);
      auto it = state_of.find(id);
      out[s.cells[k]] = {id, it != state_of.end() ? it->second : std::string()};
    }
  return out;
}

int submit_slurm(const SlurmSubmitOptions& opt) {
  runtime::Registry reg;
  auto loaded = load_all(opt.file, reg);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";  // names the file
    return 1;
  }
  const auto& exp = loaded->exp;
  const auto& cells = loaded->cells;
  auto sel = select_cells(opt.cells, cells.size());
  if (!sel.ok()) {
    std::cerr << "drift-run: " << sel.status().message() << "\n";
    return 1;
  }
  const std::vector<size_t> selected = *sel;
  SlurmSettings settings = slurm_settings(exp);
  opt.overrides.apply(&settings);
  const std::string output = cells.front().output;
  const std::string cells_dir = cells_dir_for(output);

  // Which cells need a task: not finished, not queued or running in Slurm,
  // not being run by a local drift-run.
  std::map<size_t, SlurmTaskState> active;
  if (!opt.dry_run || ::access(submissions_path(cells_dir).c_str(), F_OK) == 0) {
    auto states = slurm_cell_states(cells_dir);
    if (!states.ok()) {
      std::cerr << "drift-run: " << exp.path << ": cannot ask Slurm which cells are queued: "
                << states.status().message() << "\n";
      return 1;
    }
    active = *states;
  }
  std::vector<size_t> todo;
  int n_finished = 0, n_active = 0, n_local = 0;
  for (size_t i : selected) {
    const std::string st = finished_status(cell_file_path(cells_dir, i), cells[i]);
    if (!opt.restart && (st == "done" || st == "diverged")) {
      ++n_finished;
      continue;
    }
    auto it = active.find(i);
    if (it != active.end() &&
        (slurm_state_queued(it->second.state) || slurm_state_running(it->second.state))) {
      ++n_active;
      continue;
    }
    if (cell_lock_held(cells_dir, i)) {
      ++n_local;
      continue;
    }
    todo.push_back(i);
  }
  std::cout << "drift-run: " << exp.path << ": " << cells.size() << " cells, " << selected.size()
            << " selected, " << n_finished << " finished, " << n_active
            << " queued or running in Slurm, " << n_local << " running elsewhere, " << todo.size()
            << " to submit\n";
  if (todo.empty()) return 0;
  // --restart: the cells start from step 0, not from their checkpoints, and
  // finished cells are trained again (their files are older than this).
  const int64_t submitted_ns =
      opt.restart ? std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()
                  : 0;
  if (opt.restart && !opt.dry_run)
    for (size_t i : todo) train::remove_checkpoints(train::checkpoint_path_for(cell_file_path(cells_dir, i)));

  // The file as given, from the directory it was given in: a cell's resolved
  // configuration names its file, so the tasks must name it as --status and
  // a local drift-run do.
  const std::string workdir = cwd();
  SlurmScripts sc = make_slurm_scripts(exp, cells, todo, settings, opt.self_exe, opt.file, workdir, submitted_ns);
  if (opt.dry_run) {
    std::cout << "\n# --- array job: sbatch --parsable <this script> ---\n" << sc.array
              << "\n# --- merge job: sbatch --parsable --dependency=afterany:<array job id> "
                 "--kill-on-invalid-dep=no <this script> ---\n"
              << sc.merge;
    return 0;
  }
  const std::string slurm_dir = cells_dir + "/slurm";
  if (!make_dirs(slurm_dir)) {
    std::cerr << "drift-run: cannot create " << slurm_dir << ": " << std::strerror(errno) << "\n";
    return 1;
  }
  const std::string stamp = absl::StrFormat("%d-%d", static_cast<int64_t>(std::time(nullptr)), getpid());
  const std::string array_path = absl::StrCat(slurm_dir, "/array-", stamp, ".sh");
  const std::string merge_path = absl::StrCat(slurm_dir, "/merge-", stamp, ".sh");
  for (const auto& [path, text] : {std::pair{array_path, sc.array}, std::pair{merge_path, sc.merge}}) {
    std::ofstream f(path);
    f << text;
    if (!f.good()) {
      std::cerr << "drift-run: cannot write " << path << "\n";
      return 1;
    }
  }
  auto array_out = run_capture({"sbatch", "--parsable", array_path});
  if (!array_out.ok()) {
    std::cerr << "drift-run: " << exp.path << ": submitting the array job " << array_path
              << ": " << array_out.status().message() << "\n";
    return 1;
  }
  const std::string array_id = job_id_of(*array_out);
  // The record first: a merge job that cannot be submitted must not hide the
  // array's tasks from the next --status or --slurm.
  std::vector<std::string> cs;
  for (size_t c : todo) cs.push_back(std::to_string(c));
  auto record = [&](const std::string& merge_id) {
    std::ofstream f(submissions_path(cells_dir), std::ios::app);
    f << array_id << "\t" << merge_id << "\t" << absl::StrJoin(cs, ",") << "\t" << now_string() << "\n";
    return f.good();
  };
  auto merge_out = run_capture({"sbatch", "--parsable", "--dependency=afterany:" + array_id,
                                "--kill-on-invalid-dep=no", merge_path});
  const std::string merge_id = merge_out.ok() ? job_id_of(*merge_out) : "";
  if (!record(merge_id)) {
    std::cerr << "drift-run: cannot append to " << submissions_path(cells_dir)
              << " (array job " << array_id << " was submitted)\n";
    return 1;
  }
  std::cout << "drift-run: submitted array job " << array_id << " (" << todo.size()
            << " tasks, cells " << absl::StrJoin(cs, ",") << ")";
  if (!merge_out.ok()) {
    std::cout << "\n";
    std::cerr << "drift-run: the merge job was not submitted: " << merge_out.status().message()
              << "; run `drift-run --merge " << opt.file << "` when the array has finished\n";
    return 1;
  }
  std::cout << " and merge job " << merge_id << " -> " << output << "\n"
            << "drift-run: `drift-run --status " << opt.file << "` shows the cells; task logs in "
            << slurm_dir << "\n";
  return 0;
}

int print_status(const std::string& file) {
  runtime::Registry reg;
  auto loaded = load_all(file, reg);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";  // names the file
    return 1;
  }
  const auto& cells = loaded->cells;
  const std::string output = cells.front().output;
  const std::string cells_dir = cells_dir_for(output);
  std::map<size_t, SlurmTaskState> slurm;
  std::string slurm_note;
  auto states = slurm_cell_states(cells_dir);
  if (states.ok()) slurm = *states;
  else slurm_note = absl::StrCat("(Slurm not asked: ", states.status().message(), ")");

  std::map<std::string, int> counts;
  std::cout << absl::StrFormat("%-5s %-9s %-12s %s\n", "cell", "state", "slurm job", "grid / error");
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::string path = cell_file_path(cells_dir, i);
    std::string state = finished_status(path, cells[i]);
    std::string job = "-", detail = train::grid_string(cells[i]);
    auto it = slurm.find(i);
    if (it != slurm.end()) job = it->second.job_id;
    if (state.empty()) {
      if (cell_lock_held(cells_dir, i)) {
        state = "running";
        // What its runner last said about it (sweep/cell_lock.hpp).
        if (auto rep = read_cell_report(cells_dir, i)) {
          std::string what = rep->progress;
          const int64_t age = static_cast<int64_t>(std::time(nullptr)) - rep->updated;
          if (age > 10) absl::StrAppend(&what, " (as of ", format_duration(static_cast<double>(age)), " ago)");
          if (!rep->log.empty()) absl::StrAppend(&what, "; log: ", rep->log);
          detail = absl::StrCat(detail, detail.empty() ? "" : ": ", what);
        }
      }
      else if (it != slurm.end() && slurm_state_running(it->second.state)) state = "running";
      else if (it != slurm.end() && slurm_state_queued(it->second.state)) state = "queued";
      else state = "pending";
      // A stopped cell with a checkpoint (train/checkpoint.hpp): where it resumes.
      const std::string ckpt = train::checkpoint_path_for(path);
      if (state != "running") {
        auto step = train::checkpoint_step(ckpt);
        if (step.ok()) {
          if (state == "pending") state = "paused";
          detail = absl::StrCat(detail, detail.empty() ? "" : ": ", "paused at step ", *step, " of ",
                                cells[i].train.get_int("steps"), " (", ckpt, ")");
        }
      }
    } else if (state != "done") {
      auto f = io::H5File::open_read(path, io::ReadGuard::kStrict);
      if (f.ok()) {
        auto err = f->read_string_attr("cell", "error");
        if (err.ok() && !err->empty()) detail = absl::StrCat(detail, detail.empty() ? "" : ": ", *err);
      }
    }
    ++counts[state];
    std::cout << absl::StrFormat("%-5d %-9s %-12s %s\n", i, state, job, detail);
  }
  std::vector<std::string> parts;
  for (const char* s : {"done", "diverged", "failed", "running", "queued", "paused", "pending"})
    if (counts[s] > 0) parts.push_back(absl::StrCat(counts[s], " ", s));
  std::cout << cells.size() << " cells: " << absl::StrJoin(parts, ", ") << " -> " << output;
  if (!slurm_note.empty()) std::cout << " " << slurm_note;
  std::cout << "\n";
  return 0;
}

}  // namespace drift::sweep
