// The replay + seeded-mutation driver of a fuzz target: what a target links
// when it is not built with clang's -fsanitize=fuzzer (tests/fuzz/README.md).
//
//   fuzz_X [options] CORPUS_DIR_OR_FILE...
//     -runs=N            mutated inputs to run after replaying the corpus (default 0)
//     -max_total_time=S  stop mutating after S seconds (default: no limit)
//     -timeout=S         per-input limit in seconds (default 10): an input that
//                        runs longer is a finding (SIGALRM, exit 70)
//     -seed=N            mutation seed (default 1): the same seed, corpus and
//                        build run the same inputs
//     -max_len=N         longest mutated input (default: 2 x the longest seed, >= 4096)
//     -artifact_prefix=P where the input of a crash or hang is written (P + crash-<n>)
//     -fork=1            run the inputs in a child process, restarted after a
//                        crash or hang inside a library that is not drift's:
//                        when the innermost frame outside libc is in libhdf5 or
//                        LibTorch, the crash or hang is counted, its input
//                        written to P + hdf5-crash-<n> (hdf5-hang, torch-crash,
//                        torch-hang), and the run goes on; any other crash or
//                        hang ends it with exit 1
//     -foreign_crashes=fail  with -fork=1: those end it too
//     -rss_limit_mb=N    address space the inputs may add to the process, in MiB
//                        (default 4096; RLIMIT_AS): a corrupt size that makes a
//                        reader allocate more fails its allocation instead of
//                        exhausting the machine
//     -dump_input=N:PATH writes execution N's input (counted from 1, as the
//                        reports count) to PATH and exits, running nothing
//   fuzz_X --write-seeds DIR   writes the target's seed corpus into DIR
//
// It replays every corpus file, then mutates corpus files (bit and byte flips,
// interesting integers, truncation, erased, inserted and duplicated ranges,
// splices, dictionary tokens) and runs each mutant. The last line gives the
// number of executions: "drift-fuzz: <target>: E executions (...) in T s".
// Unlike libFuzzer it is not coverage-guided: the corpus does not grow.
#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
// Tokens a target wants spliced in (TOML keys, section names): optional.
const std::vector<std::string>& drift_fuzz_dictionary() __attribute__((weak));

#if defined(__SANITIZE_ADDRESS__)
#define DRIFT_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DRIFT_FUZZ_ASAN 1
#endif
#endif

#ifdef DRIFT_FUZZ_ASAN
// Under AddressSanitizer (scripts/sanitize.sh builds these drivers too): a
// huge allocation asked for by a corrupt size fails (std::bad_alloc, as
// without ASan) instead of ending the process, and is capped at 4 GiB, as
// -rss_limit_mb does without ASan (RLIMIT_AS would fight ASan's reservations).
// ASAN_OPTIONS set in the environment still apply on top.
extern "C" const char* __asan_default_options() {
  return "allocator_may_return_null=1:max_allocation_size_mb=4096";
}
#endif

namespace {

const uint8_t* g_data = nullptr;
size_t g_size = 0;
std::string g_artifact_prefix = "./";
unsigned long long g_execs = 0;
int g_report_fd = -1;  // -fork=1: the child writes 'H' (crash in libhdf5) or 'C' here

// Where a crash or hang happened: the library of the innermost frame outside
// libc and libgcc, below the signal handler's own frames (dladdr on the
// backtrace: good enough to sort reports; every report keeps its input).
enum class Where { kDrift, kHdf5, kTorch };
Where fault_location() {
  void* frames[64];
  const int n = backtrace(frames, 64);
  auto object = [&](int i) -> const char* {
    Dl_info info{};
    return dladdr(frames[i], &info) && info.dli_fname ? info.dli_fname : "";
  };
  auto is_runtime = [](const char* f) {
    return std::strstr(f, "libc.so") || std::strstr(f, "libgcc") || std::strstr(f, "linux-vdso") ||
           std::strstr(f, "libstdc++") || std::strstr(f, "libasan") || std::strstr(f, "libubsan");
  };
  if (std::getenv("DRIFT_FUZZ_DEBUG_FRAMES"))
    for (int k = 0; k < n; ++k) std::fprintf(stderr, "drift-fuzz: frame %d: %p %s\n", k, frames[k], object(k));
  int i = 0;
  while (i < n && is_runtime(object(i))) ++i;   // backtrace() itself (ASan intercepts it)
  const std::string self = i < n ? object(i) : "";  // the handler: this executable
  while (i < n && self == object(i)) ++i;       // the handler's frames
  while (i < n && is_runtime(object(i))) ++i;   // the signal trampoline, memcpy, abort, ...
  if (i >= n) return Where::kDrift;
  if (std::strstr(object(i), "libhdf5")) return Where::kHdf5;
  if (std::strstr(object(i), "libtorch") || std::strstr(object(i), "libc10")) return Where::kTorch;
  return Where::kDrift;
}

const char* kind_name(Where w, bool hang) {
  switch (w) {
    case Where::kHdf5: return hang ? "hdf5-hang" : "hdf5-crash";
    case Where::kTorch: return hang ? "torch-hang" : "torch-crash";
    default: return hang ? "timeout" : "crash";
  }
}

// The report byte the -fork=1 child sends: the Where, +8 for a hang.
void report(Where w, bool hang) {
  if (g_report_fd < 0) return;
  const char c = static_cast<char>(static_cast<int>(w) + (hang ? 8 : 0));
  (void)!::write(g_report_fd, &c, 1);
}

void save_current_input(const char* kind) {
  if (!g_data) return;
  char name[512];
  std::snprintf(name, sizeof name, "%s%s-%llu", g_artifact_prefix.c_str(), kind, g_execs);
  const int fd = ::open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    size_t off = 0;
    while (off < g_size) {
      const ssize_t w = ::write(fd, g_data + off, g_size - off);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    ::close(fd);
  }
  char msg[700];
  const int k = std::snprintf(msg, sizeof msg, "drift-fuzz: %s on execution %llu; input (%zu bytes) written to %s\n",
                              kind, g_execs, g_size, name);
  if (k > 0) (void)!::write(2, msg, static_cast<size_t>(k));
}

void on_fatal(int sig) {
  const Where w = fault_location();
  report(w, false);
  save_current_input(kind_name(w, false));
  signal(sig, SIG_DFL);
  raise(sig);
}

void on_alarm(int) {
  const Where w = fault_location();
  report(w, true);
  save_current_input(kind_name(w, true));
  const char m[] = "drift-fuzz: per-input time limit exceeded\n";
  (void)!::write(2, m, sizeof m - 1);
  _exit(70);
}

void add_path(const std::string& p, std::vector<std::pair<std::string, std::vector<uint8_t>>>* out) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    std::fprintf(stderr, "drift-fuzz: %s: no such file or directory\n", p.c_str());
    std::exit(2);
  }
  if (S_ISDIR(st.st_mode)) {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(p.c_str())) {
      while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') names.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) add_path(p + "/" + n, out);
  } else {
    out->push_back({p, drift::fuzz::read_file(p)});
  }
}

struct Mutator {
  std::mt19937_64 rng;
  const std::vector<std::pair<std::string, std::vector<uint8_t>>>* corpus;
  size_t max_len;

  size_t below(size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; }

  void mutate_once(std::vector<uint8_t>& v) {
    static const int64_t kInteresting[] = {0, 1, -1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff,
                                           0x7fffffff, -0x80000000LL, 0xffffffffLL, 1LL << 40,
                                           0x7fffffffffffffffLL};
    switch (below(10)) {
      case 0:  // flip a bit
        if (!v.empty()) v[below(v.size())] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:  // a random byte
        if (!v.empty()) v[below(v.size())] = static_cast<uint8_t>(rng());
        break;
      case 2: {  // an interesting 1/2/4/8-byte integer, either byte order
        if (v.empty()) break;
        const size_t w = size_t{1} << below(4);
        const size_t at = below(v.size());
        const uint64_t x = static_cast<uint64_t>(kInteresting[below(sizeof kInteresting / 8)]);
        const bool big = rng() & 1;
        for (size_t i = 0; i < w && at + i < v.size(); ++i)
          v[at + i] = static_cast<uint8_t>(x >> (8 * (big ? w - 1 - i : i)));
        break;
      }
      case 3:  // truncate
        if (!v.empty()) v.resize(below(v.size()));
        break;
      case 4: {  // erase a range
        if (v.size() < 2) break;
        const size_t a = below(v.size()), n = 1 + below(std::min<size_t>(64, v.size() - a));
        v.erase(v.begin() + a, v.begin() + a + n);
        break;
      }
      case 5: {  // insert random bytes
        const size_t a = below(v.size() + 1), n = 1 + below(16);
        std::vector<uint8_t> ins(n);
        for (auto& c : ins) c = static_cast<uint8_t>(rng());
        v.insert(v.begin() + a, ins.begin(), ins.end());
        break;
      }
      case 6: {  // duplicate a range
        if (v.empty()) break;
        const size_t a = below(v.size()), n = 1 + below(std::min<size_t>(64, v.size() - a));
        std::vector<uint8_t> part(v.begin() + a, v.begin() + a + n);
        v.insert(v.begin() + below(v.size() + 1), part.begin(), part.end());
        break;
      }
      case 7: {  // splice: a range of another corpus input over this one
        const auto& o = (*corpus)[below(corpus->size())].second;
        if (o.empty() || v.empty()) break;
        const size_t a = below(o.size()), n = 1 + below(std::min<size_t>(128, o.size() - a));
        const size_t at = below(v.size());
        for (size_t i = 0; i < n; ++i) {
          if (at + i < v.size()) v[at + i] = o[a + i];
          else v.push_back(o[a + i]);
        }
        break;
      }
      case 8: {  // a dictionary token inserted or written over
        if (!drift_fuzz_dictionary) { if (!v.empty()) v[below(v.size())] ^= 0x20; break; }
        const auto& dict = drift_fuzz_dictionary();
        if (dict.empty()) break;
        const std::string& tok = dict[below(dict.size())];
        const size_t at = below(v.size() + 1);
        if (rng() & 1) v.insert(v.begin() + at, tok.begin(), tok.end());
        else
          for (size_t i = 0; i < tok.size(); ++i) {
            if (at + i < v.size()) v[at + i] = static_cast<uint8_t>(tok[i]);
            else v.push_back(static_cast<uint8_t>(tok[i]));
          }
        break;
      }
      case 9: {  // +- a small delta on one byte (lengths, counts, digits)
        if (!v.empty()) v[below(v.size())] += static_cast<uint8_t>(below(9)) - 4;
        break;
      }
    }
  }

  std::vector<uint8_t> next() {
    std::vector<uint8_t> v = (*corpus)[below(corpus->size())].second;
    const size_t k = 1 + below(4);
    for (size_t i = 0; i < k; ++i) mutate_once(v);
    if (v.size() > max_len) v.resize(max_len);
    return v;
  }
};

void run_in_process(const std::vector<uint8_t>& in, unsigned timeout_s) {
  // libFuzzer hands the target a buffer of exactly the input's size; so
  // does this (a copy), so ASan sees reads past the end.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[std::max<size_t>(1, in.size())]);
  if (!in.empty()) std::memcpy(copy.get(), in.data(), in.size());
  g_data = copy.get();
  g_size = in.size();
  ++g_execs;
  if (timeout_s) alarm(timeout_s);
  LLVMFuzzerTestOneInput(copy.get(), in.size());
  if (timeout_s) alarm(0);
  g_data = nullptr;
}

// Crashes and hangs counted under -fork=1: [Where][hang].
unsigned long long g_foreign[3][2] = {};
bool g_fork = false, g_foreign_fail = false;

// Progress shared with the -fork=1 child: the index of the input it runs now
// and of the next one.
struct Progress {
  unsigned long long current = 0, next = 0, mutants = 0;
  uint64_t outcomes[2] = {0, 0};  // fuzz_common.hpp's note()
};

// Runs inputs [p->next, end) (corpus files first, then mutants; mutant i is
// a function of the seed and i only, so a restarted child goes on exactly
// where a crashed one stopped) until `end` or the time limit.
struct Schedule {
  const std::vector<std::pair<std::string, std::vector<uint8_t>>>* corpus;
  size_t replay;  // corpus files to replay first
  unsigned long long end;
  double max_time;
  std::chrono::steady_clock::time_point t0;
  uint64_t seed;
  size_t max_len;
  unsigned timeout_s;

  bool time_left() const {
    return max_time <= 0 ||
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < max_time;
  }
  std::vector<uint8_t> input(unsigned long long i) const {
    if (i < replay) return (*corpus)[i].second;
    std::seed_seq ss{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(i),
                     static_cast<uint32_t>(i >> 32)};
    Mutator m{std::mt19937_64(ss), corpus, max_len};
    return m.next();
  }
  void run(Progress* p) const {
    while (p->next < end && (p->next < replay || time_left())) {
      p->current = p->next;
      g_execs = p->current;  // (run_in_process counts it)
      run_in_process(input(p->current), timeout_s);
      if (p->current >= replay) ++p->mutants;
      p->next = p->current + 1;
    }
  }
};

// -fork=1: the schedule in a child process, restarted after each crash
// inside libhdf5; exits 1 on any other crash or a hang.
void run_forked(const Schedule& sch, Progress* p) {
  while (p->next < sch.end && (p->next < sch.replay || sch.time_left())) {
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) std::abort();
    if (pid == 0) {
      ::close(fds[0]);
      g_report_fd = fds[1];
      sch.run(p);
      _exit(0);
    }
    ::close(fds[1]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    char c = 0;
    const bool reported = ::read(fds[0], &c, 1) == 1;
    ::close(fds[0]);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    const unsigned long long failed = p->current + 1;  // executions are counted from 1
    const Where w = static_cast<Where>(c & 7);
    const bool hang = c & 8;
    if (reported && w != Where::kDrift && !g_foreign_fail) {
      ++g_foreign[static_cast<int>(w)][hang];
      std::fprintf(stderr, "drift-fuzz: %s inside %s on execution %llu (counted; the run goes on)\n",
                   hang ? "hang" : "crash", w == Where::kHdf5 ? "libhdf5" : "LibTorch", failed);
      if (p->current >= sch.replay) ++p->mutants;
      p->next = p->current + 1;
      continue;
    }
    std::fprintf(stderr, "drift-fuzz: execution %llu failed (%s %d)\n", failed,
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    std::exit(1);
  }
}

bool flag(const char* arg, const char* name, std::string* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string target = [&] {
    std::string a0 = argv[0];
    const auto s = a0.rfind('/');
    return s == std::string::npos ? a0 : a0.substr(s + 1);
  }();
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    ::mkdir(argv[2], 0755);
    return drift_fuzz_write_seeds(argv[2]);
  }
  unsigned long long runs = 0;
  double max_time = 0;
  unsigned timeout_s = 10;
  uint64_t seed = 1;
  size_t max_len = 0;
  unsigned long long extra_mb = 4096;
  std::string dump;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (flag(argv[i], "-runs", &v)) runs = std::strtoull(v.c_str(), nullptr, 10);
    else if (flag(argv[i], "-max_total_time", &v)) max_time = std::atof(v.c_str());
    else if (flag(argv[i], "-timeout", &v)) timeout_s = static_cast<unsigned>(std::atoi(v.c_str()));
    else if (flag(argv[i], "-seed", &v)) seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (flag(argv[i], "-max_len", &v)) max_len = std::strtoull(v.c_str(), nullptr, 10);
    else if (flag(argv[i], "-artifact_prefix", &v)) g_artifact_prefix = v;
    else if (flag(argv[i], "-fork", &v)) g_fork = v != "0";
    else if (flag(argv[i], "-dump_input", &v)) dump = v;
    else if (flag(argv[i], "-rss_limit_mb", &v)) extra_mb = std::strtoull(v.c_str(), nullptr, 10);
    else if (flag(argv[i], "-foreign_crashes", &v)) g_foreign_fail = v == "fail";
    else if (argv[i][0] == '-') {
      std::fprintf(stderr, "drift-fuzz: unknown option %s (see tests/fuzz/driver.cpp)\n", argv[i]);
      return 2;
    } else inputs.push_back(argv[i]);
  }
  (void)drift::fuzz::scratch_dir();  // made (and removed at exit) by this process, not by children
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  (void)fault_location();  // loads libgcc's unwinder now, not in a signal handler
#ifdef DRIFT_FUZZ_ASAN
  extra_mb = 0;
#endif
  if (extra_mb > 0) {
    // What is mapped now (after the target's initialisation), plus the allowance.
    unsigned long long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%llu", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    const rlim_t limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) +
                         static_cast<rlim_t>(extra_mb) * 1024 * 1024;
    rlimit rl{limit, limit};
    if (pages > 0) ::setrlimit(RLIMIT_AS, &rl);
  }
  for (int sig : {SIGSEGV, SIGABRT, SIGFPE, SIGBUS, SIGILL}) signal(sig, on_fatal);
  signal(SIGALRM, on_alarm);

  std::vector<std::pair<std::string, std::vector<uint8_t>>> corpus;
  for (const auto& p : inputs) add_path(p, &corpus);
  size_t longest = 0;
  for (const auto& e : corpus) longest = std::max(longest, e.second.size());
  const size_t replay = corpus.size();
  if (corpus.empty()) corpus.push_back({"(empty)", {}});
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const unsigned long long end =
      replay + (runs > 0 ? runs : (max_time > 0 ? std::numeric_limits<unsigned long long>::max() - replay : 0));
  Schedule sch{&corpus, replay, end, max_time, t0, seed, max_len ? max_len : std::max<size_t>(4096, 2 * longest),
               timeout_s};
  if (!dump.empty()) {
    const auto colon = dump.find(':');
    const unsigned long long n = std::strtoull(dump.substr(0, colon).c_str(), nullptr, 10);
    if (colon == std::string::npos || n == 0) {
      std::fprintf(stderr, "drift-fuzz: -dump_input=N:PATH\n");
      return 2;
    }
    const auto in = sch.input(n - 1);
    drift::fuzz::write_file(dump.substr(colon + 1), in.data(), in.size());
    return 0;
  }
  // Shared with the child under -fork=1.
  auto* progress = static_cast<Progress*>(
      ::mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (progress == MAP_FAILED) std::abort();
  *progress = Progress{};
  drift::fuzz::set_outcome_storage(progress->outcomes);
  if (g_fork) run_forked(sch, progress);
  else sch.run(progress);
  g_execs = progress->next;
  const unsigned long long replayed = std::min<unsigned long long>(replay, progress->next);
  const unsigned long long mutated = progress->mutants;
  const double t = elapsed();
  std::printf("drift-fuzz: %s: outcomes: %llu reads accepted, %llu refused with a one-line error\n", target.c_str(),
              static_cast<unsigned long long>(progress->outcomes[0]),
              static_cast<unsigned long long>(progress->outcomes[1]));
  std::printf("drift-fuzz: %s: %llu executions (%llu corpus inputs, %llu mutants, seed %llu) in %.1f s, %.0f/s%s\n",
              target.c_str(), g_execs, replayed, mutated, static_cast<unsigned long long>(seed), t,
              t > 0 ? static_cast<double>(g_execs) / t : 0.0,
              g_fork ? absl::StrCat("; inside libhdf5: ", g_foreign[1][0], " crashes, ", g_foreign[1][1],
                                  " hangs; inside LibTorch: ", g_foreign[2][0], " crashes, ", g_foreign[2][1], " hangs")
                         .c_str()
                   : "");
  return 0;
}
