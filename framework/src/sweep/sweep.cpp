#include "sweep/sweep.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <ATen/Parallel.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "config/dry_run.hpp"
#include "config/experiment.hpp"
#include "runtime/registry.hpp"
#include "runtime/threads.hpp"
#include "sweep/cell_lock.hpp"
#include "sweep/merge.hpp"
#include "sweep/progress.hpp"
#include "sweep/rate_meter.hpp"
#include "dist/comm.hpp"
#include "train/cell_file.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

extern char** environ;  // the environment a cell's ranks inherit

namespace drift::sweep {
using Clock = std::chrono::steady_clock;

absl::StatusOr<std::vector<size_t>> parse_cell_list(const std::string& spec, size_t n) {
  std::vector<size_t> out;
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::vector<std::string> ab = absl::StrSplit(part, '-');
    uint64_t a = 0, b = 0;
    bool ok = (ab.size() == 1 && absl::SimpleAtoi(ab[0], &a) && (b = a, true)) ||
              (ab.size() == 2 && absl::SimpleAtoi(ab[0], &a) && absl::SimpleAtoi(ab[1], &b));
    if (!ok || a > b)
      return absl::InvalidArgumentError(absl::StrCat("--cells: '", part,
                                                     "' is not a cell index or range (e.g. 3 or 0,2-5; the grid has ",
                                                     n, n == 1 ? " cell: 0)" : " cells: 0-", n == 1 ? "" : absl::StrCat(n - 1, ")")));
    if (b >= n)
      return absl::InvalidArgumentError(absl::StrCat("--cells: cell ", b, " does not exist (the grid has ", n,
                                                     n == 1 ? " cell: 0)" : " cells: 0-", n == 1 ? "" : absl::StrCat(n - 1, ")")));
    for (uint64_t i = a; i <= b; ++i)
      if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
  }
  if (out.empty()) return absl::InvalidArgumentError("--cells: empty cell list");
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<size_t>> select_cells(const std::string& spec, size_t n) {
  if (!spec.empty()) return parse_cell_list(spec, n);
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  return all;
}

absl::StatusOr<config::CheckedExperiment> load_all(const std::string& file, runtime::Registry& reg) {
  if (auto st = reg.load_default_paths(); !st.ok()) return st;
  return config::check_experiment_file(file, reg);
}

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

// A cell worker asked to stop (SIGTERM, SIGINT): once training has started it
// finishes the step, writes a checkpoint and exits with kPausedExit; before
// that there is nothing to save and it exits at once.
volatile std::sig_atomic_t g_worker_stop = 0;
volatile std::sig_atomic_t g_worker_training = 0;
void on_worker_stop_signal(int sig) {
  if (!g_worker_training) _exit(128 + sig);
  g_worker_stop = sig;
}
void install_worker_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_worker_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM}) sigaction(sig, &sa, nullptr);
}

std::string tail_of_file(const std::string& path, size_t max_lines, size_t max_bytes = 4000) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > max_lines) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) absl::StrAppend(&out, l, "\n");
  if (out.size() > max_bytes) out = out.substr(out.size() - max_bytes);
  return out;
}

std::string fmt_duration(double s) { return format_duration(s); }

struct Running {
  size_t cell;
  pid_t pid;  // rank 0 (or srun, which starts every rank)
  std::map<pid_t, int64_t> other_ranks;  // pid -> rank, ranks 1.. still running ([train] nproc > 1)
  int lock_fd = -1;                // the cell's lock (cell_lock.hpp)
  std::string rank_failure;        // a rank other than 0 died: why (fails the cell)
  int out_fd;
  std::string buffer;
  std::string stderr_path, tmp_out;
  Clock::time_point start;
  int64_t step = 0;              // the last training step reported
  CellProgress progress;         // what the cell does now (sweep/progress.hpp)
  Clock::time_point phase_start;  // when the current phase began
  Clock::time_point published;    // when `progress` was last written to the lock file
};

// Line protocol between worker and parent (sweep/progress.hpp):
//   "@phase PHASE NAME [NOTE...]"                 a phase starts or waits
//   "@progress PHASE NAME DONE TOTAL RATE LOSS M_TAU..."  counts (at most 5 per second)
//   "@eval STEP NAME VALUE NAME VALUE ..."     after each evaluation
// Updates `r` from the progress lines; returns the lines to log: evaluations
// as "eval step STEP: fid 48.2  precision 0.51 ..." (metrics at alpha = 1;
// floors and the other alphas are in the results file), and the summary of
// each counted phase that ended ("[pretrain mae_resnet] step 4000/4000 in 31m40s
// (2.10 steps/s)").
std::vector<std::string> parse_progress(Running& r) {
  std::vector<std::string> evals;
  size_t pos;
  while ((pos = r.buffer.find('\n')) != std::string::npos) {
    std::string line = r.buffer.substr(0, pos);
    r.buffer.erase(0, pos + 1);
    CellProgress ended;
    bool changed = false;
    const bool counting = r.progress.total > 0;
    if (apply_progress_line(line, r.progress, &ended, &changed)) {
      const auto now = Clock::now();
      // A phase's time runs from its last state before it counts (waiting
      // for another cell's pre-training is not part of its steps/s).
      if (!changed && !counting && r.progress.total == 0) r.phase_start = now;
      if (changed) {
        const std::string summary =
            format_phase_end(ended, std::chrono::duration<double>(now - r.phase_start).count());
        if (!summary.empty()) evals.push_back(summary);
        r.phase_start = now;
      }
      if (r.progress.phase == "train") r.step = r.progress.done;
      continue;
    }
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    if (tag == "@eval") {
      int64_t step = 0;
      in >> step;
      std::vector<std::string> shown;
      std::string name, value;
      while (in >> name >> value)
        if (!absl::EndsWith(name, "_floor") && !absl::StrContains(name, '/'))
          shown.push_back(absl::StrCat(name, " ", value));
      evals.push_back(absl::StrCat("eval step ", step, ": ", absl::StrJoin(shown, "  ")));
      continue;
    }
  }
  return evals;
}


// "SIGABRT" for 6, where the C library can name it.
std::string signal_name(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = sigabbrev_np(sig)) return absl::StrCat("SIG", abbrev);
#endif
  return absl::StrCat("signal ", sig);
}

std::string base_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}


// A TCP port that is free now on this host, for a cell's c10d store.
int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string this_host() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "127.0.0.1";
  return buf;
}

}  // namespace

int run_cell_worker(const std::string& file, size_t cell, const std::string& out_path, int threads) {
  runtime::Registry reg;
  auto loaded = load_all(file, reg);
  if (!loaded.ok()) {
    std::cerr << "drift-run: " << loaded.status().message() << "\n";
    return 1;
  }
  if (cell >= loaded->cells.size()) {
    std::cerr << "drift-run: cell " << cell << " does not exist\n";
    return 1;
  }
  const auto& cfg = loaded->cells[cell];
  runtime::init_threads(threads > 0 ? threads : static_cast<int>(cfg.threads));
  // One rank of a data-parallel cell ([train] nproc > 1): rank 0 reports
  // progress and writes the cell file; the others only train.
  std::unique_ptr<dist::Comm> comm;
  int rank = 0;
  const int64_t nproc = cfg.train.get_int("nproc");
  {
    auto info = dist::rank_info_from_env();
    if (!info.ok()) {
      std::cerr << "drift-run: cell " << cell << ": " << info.status().message() << "\n";
      return 1;
    }
    if (nproc > 1 && (!info->has_value() || (*info)->world != nproc)) {
      std::cerr << "drift-run: cell " << cell << ": [train] nproc = " << nproc << " but this worker "
                << (info->has_value() ? absl::StrCat("is in a world of ", (*info)->world) : "has no ranks")
                << " (drift-run FILE starts the ranks)\n";
      return 1;
    }
    if (nproc > 1) {
      rank = (*info)->rank;
      const bool cuda = cfg.device == "cuda" || (cfg.device == "auto" && torch::hasCUDA());
      auto c = dist::connect(**info, cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU),
                             cfg.train.get_float("dist_timeout_s"));
      if (!c.ok()) {
        std::cerr << "drift-run: cell " << cell << ": " << c.status().message() << "\n";
        if (rank != 0) return 1;
        train::CellOutcome o;
        o.status = "failed";
        o.error = std::string(c.status().message());
        auto st = train::write_cell_file(out_path, cfg, o, nullptr, o.error + "\n");
        return st.ok() ? 0 : 1;
      }
      comm = *std::move(c);
    }
  }
  // Checkpoints (train/checkpoint.hpp): resume from the newest usable one.
  const std::string ckpt_path = train::checkpoint_path_for(out_path);
  const train::CheckpointKey ckpt_key = train::checkpoint_key(cfg, reg);
  std::string ckpt_note;
  auto loaded_ckpt = train::load_checkpoint(ckpt_path, ckpt_key, cfg, &ckpt_note);
  if (!ckpt_note.empty()) std::cerr << "drift-run: cell " << cell << ": " << ckpt_note << "\n";
  if (loaded_ckpt.ok() && loaded_ckpt->has_value() && !(*loaded_ckpt)->note.empty())
    std::cerr << "drift-run: cell " << cell << ": " << (*loaded_ckpt)->note << "\n";
  train::CheckpointHooks hooks;
  if (loaded_ckpt.ok() && loaded_ckpt->has_value()) hooks.resume = &(*loaded_ckpt)->state;
  hooks.every_steps = cfg.train.get_int("checkpoint_every");
  hooks.every_minutes = cfg.train.get_float("checkpoint_minutes");
  hooks.stop_requested = [] { return g_worker_stop != 0; };
  hooks.training_started = [] { g_worker_training = 1; };
  install_worker_stop_handler();
  auto paused = [&](const train::CellOutcome& o) {
    if (o.status != "paused") return false;
    if (rank == 0)
      std::cerr << "drift-run: cell " << cell << " paused after step " << o.steps_done << "; checkpoint "
                << ckpt_path << "\n";
    return true;
  };
  if (rank != 0) {
    train::CellRecorder ignored;
    try {
      if (!loaded_ckpt.ok()) {
        std::cerr << "drift-run: cell " << cell << " rank " << rank << ": " << loaded_ckpt.status().message() << "\n";
        return 1;
      }
      auto o = train::train_cell(cfg, reg, ignored, {}, comm.get(), {}, hooks);
      if (paused(o)) return kPausedExit;
      if (o.status == "failed") {
        std::cerr << "drift-run: cell " << cell << " rank " << rank << ": " << o.error << "\n";
        return 1;
      }
    } catch (const std::exception& e) {
      std::cerr << "drift-run: cell " << cell << " rank " << rank << ": " << e.what() << "\n";
      return 1;
    }
    return 0;
  }
  train::CellRecorder rec;
  if (loaded_ckpt.ok() && loaded_ckpt->has_value()) rec = std::move((*loaded_ckpt)->recorder);
  hooks.save = [&](const train::TrainState& state) {
    return train::write_checkpoint(ckpt_path, ckpt_key, cfg, state, rec);
  };
  auto last = Clock::now() - std::chrono::seconds(1);
  auto t0 = Clock::now();
  // The rate of the current phase over its last minute (sweep/rate_meter.hpp):
  // a slow start, or the pre-training before the first step, does not count.
  RateMeter meter;
  std::string meter_phase;
  auto rate_of = [&](const std::string& phase, int64_t done, Clock::time_point now) {
    if (phase != meter_phase) {
      meter.reset();
      meter_phase = phase;
    }
    meter.add(std::chrono::duration<double>(now - t0).count(), done);
    return meter.rate();
  };
  auto send = [&](const std::string& line) {
    std::fprintf(stdout, "%s\n", line.c_str());
    std::fflush(stdout);
  };
  auto progress = [&](int64_t steps, const train::StepLog& log, const train::EvalLog* eval) {
    auto now = Clock::now();
    if (eval) {  // every evaluation, unthrottled: its metrics show while the cell runs
      std::string line = absl::StrFormat("@eval %d", eval->step);
      for (const auto& [name, v] : eval->values) absl::StrAppend(&line, " ", name, " ", absl::StrFormat("%.6g", v));
      std::fprintf(stdout, "%s\n", line.c_str());
    }
    const auto rate = rate_of("train", log.step, now);
    if (log.step != steps && log.step != 1 && now - last < std::chrono::milliseconds(200)) {
      std::fflush(stdout);
      return;
    }
    last = now;
    send(progress_line("train", "", log.step, steps, rate, log.loss, log.m_tau));
  };
  // Before the first step: setup, pre-training, the feature cache.
  std::string last_counted;  // the phase of the last counts sent
  auto on_phase = [&](const train::PhaseLog& p) {
    const auto now = Clock::now();
    if (!p.note.empty()) {  // a state change: always sent
      if (p.phase != meter_phase) {
        meter.reset();
        meter_phase = p.phase;
      }
      send(phase_line(p.phase, p.name, p.note));
      return;
    }
    const auto rate = rate_of(p.phase, p.done, now);
    const std::string key = p.phase + " " + p.name;
    // The first and the last counts of a phase always go; the others at most 5 per second.
    if (key == last_counted && p.done != p.total && now - last < std::chrono::milliseconds(200)) return;
    last_counted = key;
    last = now;
    send(progress_line(p.phase, p.name, p.done, p.total, rate,
                       std::isfinite(p.loss) ? std::optional<double>(p.loss) : std::nullopt));
  };
  train::CellOutcome outcome;
  std::string stderr_tail;  // what this worker itself reports on stderr
  try {
    if (!loaded_ckpt.ok()) {
      // A checkpoint of another configuration or version: refused, never loaded.
      outcome.status = "failed";
      outcome.error = std::string(loaded_ckpt.status().message());
    } else {
      if (hooks.resume) {
        train::PhaseLog p;
        p.phase = "setup";
        p.note = absl::StrCat("resuming from the checkpoint after step ", hooks.resume->step);
        on_phase(p);
        if (hooks.resume->threads != at::get_num_threads())
          std::cerr << "drift-run: cell " << cell << ": the checkpoint was written with " << hooks.resume->threads
                    << " threads, this process has " << at::get_num_threads()
                    << ": the resumed numbers may differ from an uninterrupted run in the last bits\n";
      }
      outcome = train::train_cell(cfg, reg, rec, progress, comm.get(), on_phase, hooks);
    }
  } catch (const std::exception& e) {
    outcome.status = "failed";
    std::string what = e.what();
    outcome.error = what.substr(0, what.find('\n'));
    outcome.wall_time_s = std::chrono::duration<double>(Clock::now() - t0).count();
    stderr_tail = absl::StrCat("drift-run: cell ", cell, ": ", what, "\n");
    std::cerr << stderr_tail;
  }
  if (paused(outcome)) return kPausedExit;
  if (outcome.status == "failed") {
    std::string line = absl::StrCat("drift-run: cell ", cell, " failed: ", outcome.error, "\n");
    absl::StrAppend(&stderr_tail, line);
    std::cerr << line;
  }
  auto st = train::write_cell_file(out_path, cfg, outcome, &rec, stderr_tail);
  if (!st.ok()) {
    std::cerr << "drift-run: " << st.message() << "\n";
    return 1;
  }
  // A finished cell needs its checkpoint no more; a failed one resumes from it.
  if ((outcome.status == "done" || outcome.status == "diverged") && !cfg.train.get_bool("keep_checkpoint"))
    train::remove_checkpoints(ckpt_path);
  return 0;
}

int merge_results(const std::string& file) {
  runtime::Registry reg;
  auto loaded = load_all(file, reg);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return 1;
  }
  const std::string output = loaded->cells.front().output;
  const std::string cells_dir = cells_dir_for(output);
  // Written atomically (a temporary renamed over it), like every merge of a
  // local sweep: concurrent merges leave one complete file.
  auto st = write_experiment_file(output, loaded->exp, loaded->cells, cells_dir);
  if (!st.ok()) {
    std::cerr << "drift-run: " << st.message() << "\n";
    return 1;
  }
  int n = 0;
  for (const auto& c : loaded->cells)
    if (!finished_status(cell_file_path(cells_dir, c.cell), c).empty()) ++n;
  std::cout << "drift-run: merged " << n << " of " << loaded->cells.size() << " cells -> " << output << "\n";
  return 0;
}

int run_sweep(const SweepOptions& opt) {
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
  const std::string output = cells.front().output;
  const std::string cells_dir = cells_dir_for(output);
  if (!make_dirs(cells_dir)) {
    std::cerr << "drift-run: cannot create " << cells_dir << ": " << std::strerror(errno) << "\n";
    return 1;
  }

  // Any number of drift-run processes (two terminals, Slurm array tasks) may
  // work on one experiment at once: whoever locks a cell trains it
  // (sweep/cell_lock.hpp), the others skip it, and merges take turns
  // (write_experiment_file). So every cell is trained once.
  // When this sweep started: with --restart, a cell file written since then is
  // another process's fresh result, not one to redo.
  const auto sweep_started = opt.redo_before.value_or(std::chrono::system_clock::now());
  const bool redo_finished = opt.restart || opt.redo_before.has_value();

  std::deque<size_t> pending;
  int n_done = 0, n_failed = 0, n_diverged = 0, n_skipped = 0, n_skipped_diverged = 0, n_busy = 0, n_paused = 0;
  for (size_t i : selected) {
    std::string path = cell_file_path(cells_dir, i);
    std::string status = finished_status(path, cells[i]);
    if (!redo_finished && (status == "done" || status == "diverged")) {
      ++n_skipped;
      if (status == "diverged") ++n_skipped_diverged;
      continue;
    }
    pending.push_back(i);
  }

  // Default: as many cells at once as fit the cores, LibTorch's threads divided
  // among them; [experiment] threads, when set, is each cell's share.
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t cfg_threads = cells.front().threads;
  int jobs = opt.jobs > 0 ? opt.jobs
                          : std::max(1, cfg_threads > 0 ? cores / static_cast<int>(cfg_threads) : cores);
  jobs = std::max(1, std::min<int>(jobs, std::max<size_t>(pending.size(), 1)));
  int threads_per_cell = cfg_threads > 0 ? static_cast<int>(cfg_threads) : std::max(1, cores / jobs);
  // Data-parallel cells ([train] nproc > 1): each rank gets the threads, so
  // fewer cells run at once.
  int64_t max_nproc = 1;
  for (size_t c : selected) max_nproc = std::max(max_nproc, cells[c].train.get_int("nproc"));
  if (max_nproc > 1 && opt.jobs <= 0) {
    jobs = std::max(1, cores / static_cast<int>(max_nproc * threads_per_cell));
    if (cfg_threads <= 0) threads_per_cell = std::max(1, cores / static_cast<int>(max_nproc));
    jobs = std::max(1, std::min<int>(jobs, std::max<size_t>(pending.size(), 1)));
  }
  if (opt.threads > 0) threads_per_cell = opt.threads;
  const bool tty = isatty(STDOUT_FILENO);
  std::cout << "drift-run: " << exp.path << ": " << cells.size() << " cells, " << selected.size()
            << " selected, " << n_skipped << " already finished, " << pending.size() << " to run ("
            << jobs << " at a time, " << threads_per_cell << " threads each) -> " << output << "\n"
            << std::flush;

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed pipe of a dead cell must not end the sweep

  std::map<pid_t, Running> running;
  int drawn_lines = 0;
  auto t_sweep = Clock::now();
  auto elapsed = [&] { return fmt_duration(std::chrono::duration<double>(Clock::now() - t_sweep).count()); };
  // "  <grid>" after a cell's line ("" for an experiment without a grid).
  auto grid_of = [&](size_t cell) {
    const std::string g = train::grid_string(cells[cell]);
    return g.empty() ? g : "  " + g;
  };

  bool merge_failed = false;
  // The first error that says the device is full: no further cell is started
  // (each would fail the same way); the queued ones are reported as not run.
  std::string disk_full;
  std::string last_merge_error;  // printed once, not after every cell
  auto merge = [&]() {
    auto st = write_experiment_file(output, exp, cells, cells_dir);
    if (!st.ok()) {
      if (st.message() != last_merge_error) std::cerr << "drift-run: " << st.message() << "\n";
      last_merge_error = std::string(st.message());
      if (io::is_disk_full(st) && disk_full.empty()) disk_full = last_merge_error;
      merge_failed = true;
    } else {
      merge_failed = false;
      last_merge_error.clear();
    }
  };
  // Cells that finished after the last rebuild of a killed run are merged now.
  if (n_skipped > 0 && !opt.array_task) merge();

  // Without a terminal (a log file, a batch job) the progress goes out as plain
  // lines, one per running cell every kPlainProgressEvery.
  constexpr auto kPlainProgressEvery = std::chrono::seconds(60);
  auto last_plain = Clock::now();
  auto redraw = [&]() {
    if (!tty) {
      if (Clock::now() - last_plain < kPlainProgressEvery) return;
      last_plain = Clock::now();
      const double el = std::chrono::duration<double>(Clock::now() - t_sweep).count();
      for (const auto& [pid, r] : running)
        std::cout << absl::StrFormat("[%s] cell %d %s%s\n", fmt_duration(el), r.cell, format_progress(r.progress),
                                     grid_of(r.cell));
      std::cout << std::flush;
      return;
    }
    std::string s;
    if (drawn_lines > 0) absl::StrAppend(&s, "\x1b[", drawn_lines, "F");
    drawn_lines = 0;
    for (const auto& [pid, r] : running) {
      absl::StrAppend(&s, "\x1b[2K", absl::StrFormat("  cell %-4d %s%s\n", r.cell, format_progress(r.progress),
                                                     grid_of(r.cell)));
      ++drawn_lines;
    }
    absl::StrAppend(&s, "\x1b[2K", absl::StrFormat("  cells: %d done, %d failed, %d running, %d left  (%s)\n",
                                                   n_done, n_failed + n_diverged, static_cast<int>(running.size()),
                                                   static_cast<int>(pending.size()),
                                                   fmt_duration(std::chrono::duration<double>(Clock::now() - t_sweep).count())));
    ++drawn_lines;
    std::cout << s << std::flush;
  };
  auto print_line = [&](const std::string& line) {
    if (tty && drawn_lines > 0) {
      std::cout << "\x1b[" << drawn_lines << "F\x1b[J";
      drawn_lines = 0;
    }
    std::cout << line << "\n" << std::flush;
  };

  const pid_t parent_pid = ::getpid();
  // Starts one process: argv[0] is searched in PATH when `search_path`;
  // `env` entries are added to this process's environment; stdout goes to
  // `out_fd` (or /dev/null when -1), stderr to `stderr_path`.
  auto spawn = [&](const std::vector<std::string>& args, const std::vector<std::string>& env,
                   int out_fd, const std::string& stderr_path, bool search_path) -> pid_t {
    // Everything the child needs is prepared before fork(): between fork and
    // exec only async-signal-safe calls (LibTorch may have started threads).
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    std::vector<const char*> envp;
    for (char** e = environ; *e; ++e) envp.push_back(*e);
    for (const auto& e : env) envp.push_back(e.c_str());
    envp.push_back(nullptr);
    pid_t pid = fork();
    if (pid != 0) return pid;
    // Its own process group: a Ctrl-C on the terminal reaches the sweep
    // only, which then stops the cells (SIGTERM) and keeps what finished.
    setpgid(0, 0);
    // Dies with the sweep, even after kill -9 of the sweep, so that no
    // orphan keeps computing a cell that the next run starts again.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent_pid) _exit(128 + SIGTERM);  // the sweep died before prctl
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    int outfd = out_fd >= 0 ? out_fd : open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (outfd >= 0) dup2(outfd, STDOUT_FILENO);
    int errfd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (errfd >= 0) dup2(errfd, STDERR_FILENO);
    if (search_path) execvpe(argv[0], const_cast<char* const*>(argv.data()),
                             const_cast<char* const*>(envp.data()));
    else execve(argv[0], const_cast<char* const*>(argv.data()), const_cast<char* const*>(envp.data()));
    const char msg[] = "drift-run: cannot execute the cell worker\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
  };
  auto rank_stderr_path = [&](size_t cell, int64_t rank) {
    return absl::StrCat(cell_file_path(cells_dir, cell), ".rank", rank, ".stderr");
  };
  // 1: started; 0: another process runs this cell (its lock is held); 2 / 3:
  // another process finished it (done / diverged) since this sweep started;
  // -1: error.
  auto start_cell = [&](size_t cell) -> int {
    Running r;
    r.cell = cell;
    r.lock_fd = try_lock_cell(cells_dir, cell);
    if (r.lock_fd < 0) return 0;
    {
      const std::string path = cell_file_path(cells_dir, cell);
      const std::string st = finished_status(path, cells[cell]);
      struct stat sb {};
      const bool fresh = ::stat(path.c_str(), &sb) == 0 &&
                         std::chrono::system_clock::from_time_t(sb.st_mtim.tv_sec) +
                                 std::chrono::nanoseconds(sb.st_mtim.tv_nsec) >= sweep_started;
      if ((st == "done" || st == "diverged") && (!redo_finished || fresh)) {
        ::close(r.lock_fd);
        return st == "done" ? 2 : 3;
      }
    }
    r.stderr_path = cell_file_path(cells_dir, cell) + ".stderr";
    r.tmp_out = cell_file_path(cells_dir, cell);
    r.start = r.phase_start = r.published = Clock::now();
    // An unfinished, failed or outdated file of this cell: whatever file is
    // there when the child exits is then the child's own. With the cell's
    // lock held, temporaries of this cell are leftovers of a killed run.
    ::unlink(r.tmp_out.c_str());
    remove_atomic_leftovers(cells_dir, base_of(r.tmp_out) + ".tmp-");
    // Its checkpoint stays (the worker resumes from it) unless --restart.
    const std::string ckpt = train::checkpoint_path_for(r.tmp_out);
    remove_atomic_leftovers(cells_dir, base_of(ckpt));
    if (opt.restart) train::remove_checkpoints(ckpt);
    const int64_t nproc = cells[cell].train.get_int("nproc");
    const std::vector<std::string> worker = {opt.self_exe, "--cell-worker", opt.file, "--cell",
                                             std::to_string(cell), "--cell-out", r.tmp_out,
                                             "--threads", std::to_string(threads_per_cell)};
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
      ::close(r.lock_fd);
      return -1;
    }
    const bool under_srun = nproc > 1 && opt.array_task && std::getenv("SLURM_JOB_ID") != nullptr;
    pid_t pid;
    if (nproc == 1) {
      pid = spawn(worker, {}, pipefd[1], r.stderr_path, false);
    } else if (under_srun) {
      // In a Slurm allocation: srun starts the ranks (SLURM_PROCID), on
      // whichever nodes the allocation has; rank 0's store listens here.
      std::vector<std::string> args = {"srun", absl::StrCat("--ntasks=", nproc), "--kill-on-bad-exit=1"};
      args.insert(args.end(), worker.begin(), worker.end());
      pid = spawn(args,
                  {"DRIFT_LAUNCHER=srun", "DRIFT_MASTER_ADDR=" + this_host(),
                   absl::StrCat("DRIFT_MASTER_PORT=", free_tcp_port())},
                  pipefd[1], r.stderr_path, true);
    } else {
      // Ranks on this machine, rendezvous at a c10d store on loopback.
      const std::string port = absl::StrCat("DRIFT_MASTER_PORT=", free_tcp_port());
      auto env = [&](int64_t rank) {
        return std::vector<std::string>{absl::StrCat("DRIFT_RANK=", rank),
                                        absl::StrCat("DRIFT_WORLD_SIZE=", nproc),
                                        "DRIFT_MASTER_ADDR=127.0.0.1", port};
      };
      pid = spawn(worker, env(0), pipefd[1], r.stderr_path, false);
      for (int64_t k = 1; k < nproc && pid > 0; ++k) {
        pid_t p = spawn(worker, env(k), -1, rank_stderr_path(cell, k), false);
        if (p > 0) r.other_ranks.emplace(p, k);
      }
    }
    if (pid < 0) {
      close(pipefd[0]);
      close(pipefd[1]);
      ::close(r.lock_fd);
      return -1;
    }
    close(pipefd[1]);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    r.pid = pid;
    r.out_fd = pipefd[0];
    write_cell_report(r.lock_fd, {format_progress(r.progress), r.stderr_path});
    // Where the cell's own messages go (removed when it finishes done).
    std::string resumes;
    if (!opt.restart) {
      const std::string ckpt = train::checkpoint_path_for(r.tmp_out);
      auto step = train::checkpoint_step(ckpt);
      if (step.ok()) resumes = absl::StrCat(" (resuming after step ", *step, ")");
    }
    print_line(absl::StrFormat("[%s] cell %d started%s, log: %s%s", elapsed(), cell, resumes, r.stderr_path,
                               grid_of(cell)));
    running.emplace(pid, std::move(r));
    return 1;
  };

  // Ends the ranks of a cell that are still running (rank 0 has exited).
  auto stop_other_ranks = [&](Running& r) {
    for (const auto& [p, k] : r.other_ranks) kill(p, SIGKILL);
    for (const auto& [p, k] : r.other_ranks) {
      int ws;
      waitpid(p, &ws, 0);
    }
    r.other_ranks.clear();
  };
  // "cell 3 paused after step 1200 of 6000 (checkpoint .../0003.ckpt); ..."
  auto paused_line = [&](const Running& r) {
    const std::string ckpt = train::checkpoint_path_for(cell_file_path(cells_dir, r.cell));
    auto step = train::checkpoint_step(ckpt);
    return absl::StrCat("cell ", r.cell, " paused",
                        step.ok() ? absl::StrCat(" after step ", *step, " of ", cells[r.cell].train.get_int("steps"))
                                  : std::string(),
                        " (checkpoint ", ckpt, "); the same command resumes it");
  };
  auto finish_cell = [&](Running& r, int wstatus) {
    stop_other_ranks(r);
    const auto& cfg = cells[r.cell];
    std::string cell_path = cell_file_path(cells_dir, r.cell);
    // The file was removed before the child started: if there is one for this
    // configuration, the child wrote it (atomically), whatever happened after.
    std::string status = finished_status(cell_path, cfg);
    double wall = std::chrono::duration<double>(Clock::now() - r.start).count();
    if (status.empty() && r.rank_failure.empty() && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == kPausedExit) {
      // Stopped on request (SIGTERM sent to the cell itself, as Slurm does)
      // after writing its checkpoint: not finished, not failed.
      ++n_paused;
      print_line(paused_line(r));
      clear_cell_report(r.lock_fd);
      ::close(r.lock_fd);
      return;
    }
    if (!r.rank_failure.empty() && status != "done") {
      // Another rank died first; rank 0 was stopped for it (or failed at a
      // collective because of it): the dead rank is the cause.
      train::CellOutcome o;
      o.status = "failed";
      o.error = r.rank_failure;
      o.steps_done = r.step;
      o.wall_time_s = wall;
      auto st = train::write_cell_file(cell_path, cfg, o, nullptr, tail_of_file(r.stderr_path, 20));
      if (!st.ok()) std::cerr << "drift-run: " << st.message() << "\n";
      status = "failed";
    }
    if (status.empty()) {
      // The worker died before writing its file (crash, abort, OOM kill, ...).
      train::CellOutcome o;
      o.status = "failed";
      std::string tail = tail_of_file(r.stderr_path, 20);
      if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        o.error = absl::StrCat("cell process killed by signal ", sig, " (", signal_name(sig), ": ",
                               strsignal(sig), ") after step ", r.step,
                               sig == SIGKILL ? ": out of memory (or killed by hand)?" : "");
      } else if (WEXITSTATUS(wstatus) == 0 && access(cell_path.c_str(), F_OK) == 0) {
        // The worker resolved the experiment differently from this process:
        // the executable or a plugin changed on disk while the sweep ran.
        o.error = absl::StrCat("cell process finished but wrote results for a different configuration "
                               "(was drift-run or a plugin rebuilt during the sweep? run it again)");
      } else {
        o.error = absl::StrCat("cell process exited with status ", WEXITSTATUS(wstatus), " after step ", r.step);
        // With the worker's own last error line.
        std::string last_line;
        for (absl::string_view l : absl::StrSplit(tail, '\n', absl::SkipWhitespace())) last_line = std::string(l);
        if (!last_line.empty()) absl::StrAppend(&o.error, ": ", last_line);
      }
      o.steps_done = r.step;
      o.wall_time_s = wall;
      auto st = train::write_cell_file(cell_path, cfg, o, nullptr, tail);
      if (!st.ok()) std::cerr << "drift-run: " << st.message() << "\n";
      if (io::is_disk_full(st) && disk_full.empty()) disk_full = std::string(st.message());
      status = "failed";
    }
    if (status == "done") {
      ++n_done;
      ::unlink(r.stderr_path.c_str());
      for (int64_t k = 1; k < cfg.train.get_int("nproc"); ++k)
        ::unlink(rank_stderr_path(r.cell, k).c_str());
    } else if (status == "diverged") {
      ++n_diverged;
    } else {
      ++n_failed;
    }
    const std::string grid = train::grid_string(cfg);
    std::string line = absl::StrFormat("cell %d %s in %s", r.cell, status, fmt_duration(wall));
    if (!grid.empty()) absl::StrAppend(&line, " (", grid, ")");
    if (status != "done") {
      auto f = io::H5File::open_read(cell_path, io::ReadGuard::kStrict);
      if (f.ok()) {
        auto err = f->read_string_attr("cell", "error");
        if (err.ok()) absl::StrAppend(&line, ": ", *err);
      }
      if (status == "failed" && disk_full.empty() && io::is_disk_full(absl::UnknownError(line)))
        disk_full = line;
    }
    print_line(line);
    clear_cell_report(r.lock_fd);
    ::close(r.lock_fd);
    if (!opt.array_task) merge();
  };

  auto drain = [&](Running& r) {
    char buf[4096];
    ssize_t n;
    while ((n = read(r.out_fd, buf, sizeof buf)) > 0) r.buffer.append(buf, n);
    for (const auto& e : parse_progress(r))
      print_line(absl::StrFormat("[%s] cell %d %s%s", elapsed(), r.cell, e, grid_of(r.cell)));
    // The lock file tells `drift-run --status` what the cell does (once a second).
    if (Clock::now() - r.published >= std::chrono::seconds(1)) {
      r.published = Clock::now();
      write_cell_report(r.lock_fd, {format_progress(r.progress), r.stderr_path});
    }
  };
  // A rank other than 0 exited: fine when it succeeded; otherwise the cell
  // fails now, naming it (rank 0 and the others are stopped, not left to
  // wait for it until their collective times out).
  auto reap_other_rank = [&](pid_t pid, int wstatus) {
    for (auto& [p0, r] : running) {
      auto it = r.other_ranks.find(pid);
      if (it == r.other_ranks.end()) continue;
      const int64_t rank = it->second;
      r.other_ranks.erase(it);  // reaped: not signalled again
      const bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
      if (ok || !r.rank_failure.empty()) return;
      const int64_t nproc = cells[r.cell].train.get_int("nproc");
      if (WIFSIGNALED(wstatus)) {
        const int sig = WTERMSIG(wstatus);
        r.rank_failure = absl::StrCat("rank ", rank, " of ", nproc, " killed by signal ", sig, " (",
                                      signal_name(sig), ": ", strsignal(sig), ") after step ", r.step);
      } else {
        r.rank_failure = absl::StrCat("rank ", rank, " of ", nproc, " exited with status ",
                                      WEXITSTATUS(wstatus), " after step ", r.step);
      }
      std::string last_line;
      for (absl::string_view l : absl::StrSplit(tail_of_file(rank_stderr_path(r.cell, rank), 20), '\n',
                                                absl::SkipWhitespace()))
        last_line = std::string(l);
      if (!last_line.empty()) absl::StrAppend(&r.rank_failure, ": ", last_line);
      kill(r.pid, SIGKILL);
      for (const auto& [q, k] : r.other_ranks) kill(q, SIGKILL);
      return;
    }
  };
  auto reap = [&](pid_t pid, int wstatus) {
    auto it = running.find(pid);
    if (it == running.end()) {
      reap_other_rank(pid, wstatus);
      return;
    }
    drain(it->second);
    close(it->second.out_fd);
    Running r = std::move(it->second);
    running.erase(it);
    // The training phase's own summary (its steps/s without the setup, the
    // pre-training and the cache), when it ran to the end.
    if (r.progress.phase == "train" && r.progress.total > 0 && r.progress.done == r.progress.total)
      print_line(absl::StrFormat(
          "[%s] cell %d %s%s", elapsed(), r.cell,
          format_phase_end(r.progress, std::chrono::duration<double>(Clock::now() - r.phase_start).count()),
          grid_of(r.cell)));
    finish_cell(r, wstatus);
  };

  while (((!pending.empty() && disk_full.empty()) || !running.empty())) {
    if (g_stop_signal) break;
    while (!pending.empty() && static_cast<int>(running.size()) < jobs && disk_full.empty()) {
      size_t c = pending.front();
      pending.pop_front();
      const int started = start_cell(c);
      if (started < 0) {
        std::cerr << "drift-run: cannot start a process for cell " << c << ": " << std::strerror(errno) << "\n";
        ++n_failed;
      } else if (started == 0) {
        ++n_busy;
        print_line(absl::StrCat("cell ", c, " skipped: another drift-run runs it (", cell_lock_path(cells_dir, c),
                                " is locked)"));
      } else if (started >= 2) {
        ++n_skipped;
        if (started == 3) ++n_skipped_diverged;
        print_line(absl::StrCat("cell ", c, " skipped: another drift-run finished it meanwhile"));
      }
    }
    std::vector<pollfd> fds;
    for (auto& [pid, r] : running) fds.push_back({r.out_fd, POLLIN, 0});
    poll(fds.data(), fds.size(), 200);
    for (auto& [pid, r] : running) drain(r);
    int wstatus;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) reap(pid, wstatus);
    redraw();
  }

  if (g_stop_signal) {
    int sig = g_stop_signal;
    // Stop the running cells: each finishes its step and writes a checkpoint
    // (SIGKILL for one that has not exited within kStopGrace, or at once on a
    // second signal); a cell that finishes meanwhile is kept.
    constexpr auto kStopGrace = std::chrono::seconds(120);
    for (auto& [pid, r] : running) {
      kill(pid, SIGTERM);
      for (const auto& [p, k] : r.other_ranks) kill(p, SIGTERM);
    }
    if (!running.empty())
      print_line(absl::StrCat("drift-run: stopping ", running.size() == 1 ? "the running cell" : "the running cells",
                              " after the current step, with a checkpoint (a second Ctrl-C stops at once)"));
    g_stop_signal = 0;
    auto deadline = Clock::now() + kStopGrace;
    while (!running.empty()) {
      if (g_stop_signal) deadline = Clock::now();  // a second signal: do not wait
      int wstatus;
      pid_t pid = waitpid(-1, &wstatus, WNOHANG);
      if (pid > 0) {
        auto it = running.find(pid);
        if (it == running.end()) continue;
        Running& r = it->second;
        close(r.out_fd);
        const std::string cell_path = cell_file_path(cells_dir, r.cell);
        if (!finished_status(cell_path, cells[r.cell]).empty()) {
          Running done = std::move(r);
          running.erase(it);
          finish_cell(done, wstatus);
          continue;
        }
        stop_other_ranks(r);
        if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == kPausedExit) {
          ++n_paused;
          print_line(paused_line(r));
        }
        ::unlink(r.stderr_path.c_str());
        ::unlink(absl::StrCat(cell_path, ".tmp-", pid).c_str());  // the child's half-written file, if any
        clear_cell_report(r.lock_fd);
        ::close(r.lock_fd);
        running.erase(it);
        continue;
      }
      if (Clock::now() > deadline) {
        for (auto& [p, r] : running) {
          kill(p, SIGKILL);
          for (const auto& [q, k] : r.other_ranks) kill(q, SIGKILL);
        }
        deadline = Clock::now() + std::chrono::hours(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!opt.array_task) merge();
    print_line(absl::StrCat("drift-run: interrupted by signal ", sig, " (", signal_name(sig), "); ", n_done,
                            " cells finished in this run, all finished cells are kept in ", output,
                            n_paused > 0 ? absl::StrCat(", ", n_paused, " paused with a checkpoint") : std::string(),
                            "; run the same command to continue"));
    return 128 + sig;
  }
  if (!opt.array_task) merge();
  if (tty) redraw();
  std::string summary = absl::StrFormat("drift-run: %d done, %d failed, %d diverged, %d skipped (already finished)",
                                        n_done, n_failed, n_diverged, n_skipped);
  if (n_busy > 0) absl::StrAppend(&summary, ", ", n_busy, " run by another drift-run");
  if (n_paused > 0) absl::StrAppend(&summary, ", ", n_paused, " paused (the same command resumes them)");
  if (!disk_full.empty() && !pending.empty()) {
    std::vector<size_t> not_run(pending.begin(), pending.end());
    std::sort(not_run.begin(), not_run.end());
    absl::StrAppend(&summary, ", ", not_run.size(), " not run (cell", not_run.size() == 1 ? " " : "s ",
                    absl::StrJoin(not_run, ", "), ")");
  }
  print_line(absl::StrCat(summary, " -> ", opt.array_task ? cell_file_path(cells_dir, selected.front()) : output));
  if (!disk_full.empty()) {
    std::cerr << "drift-run: stopped: the device is full (the error above); free some space and "
                 "run the same command: the finished cells are kept, only the others run\n";
    return 1;
  }
  // 0 only when every selected cell is done (a skipped diverged cell is not).
  return (n_failed > 0 || n_diverged > 0 || n_skipped_diverged > 0 || merge_failed || n_paused > 0) ? 1 : 0;
}

}  // namespace drift::sweep
