#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef DRIFT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dist/comm.hpp"

namespace drift::dist {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

absl::StatusOr<int> env_int(const char* name) {
  int v = 0;
  if (!absl::SimpleAtoi(env(name), &v) || v < 0)
    return absl::InvalidArgumentError(absl::StrCat("environment variable ", name, " = '", env(name),
                                                   "' is not a non-negative integer"));
  return v;
}

class SingleProcess : public Comm {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void all_reduce_sum(torch::Tensor&, int64_t, const std::string&) override {}
  torch::Tensor all_gather(const torch::Tensor& t, int64_t, int64_t, const std::string&) override {
    return t;
  }
};

class C10dComm : public Comm {
 public:
  C10dComm(int rank, int world, c10::intrusive_ptr<c10d::TCPStore> store,
           c10::intrusive_ptr<c10d::Backend> pg, double timeout_s)
      : rank_(rank), world_(world), store_(std::move(store)), pg_(std::move(pg)), timeout_s_(timeout_s) {}

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  void all_reduce_sum(torch::Tensor& t, int64_t step, const std::string& what) override {
    arrive(step, what);
    std::vector<at::Tensor> ts{t};
    run(step, what, [&] { pg_->allreduce(ts)->wait(); });
  }

  torch::Tensor all_gather(const torch::Tensor& t, int64_t dim, int64_t step,
                           const std::string& what) override {
    arrive(step, what);
    const torch::Tensor in = t.contiguous();
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < world_; ++r) out[0].push_back(torch::empty_like(in));
    std::vector<at::Tensor> ins{in};
    run(step, what, [&] { pg_->allgather(out, ins)->wait(); });
    return torch::cat(out[0], dim);
  }

 private:
  // Where this rank is: read by the others when a collective fails.
  void arrive(int64_t step, const std::string& what) {
    const std::string v = absl::StrCat(step, " ", what);
    store_->set(absl::StrCat("drift/at/", rank_), std::vector<uint8_t>(v.begin(), v.end()));
  }

  template <class F>
  void run(int64_t step, const std::string& what, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw std::runtime_error(explain(step, what, e.what()));
    }
  }

  // Why a collective failed, naming the ranks that are not there: every rank
  // whose collective fails says so in the store; the ranks that have not said
  // so within a grace period (dead, hung, stopped) are the culprits. E.g.
  // "rank 1 did not complete the gradient all-reduce of step 7 within 30 s
  // ([train] dist_timeout_s; it was last at: gradient all-reduce of step 7)".
  std::string explain(int64_t step, const std::string& what, const std::string& cause) {
    std::string first_line = cause.substr(0, cause.find('\n'));
    if (first_line.size() > 200) first_line = first_line.substr(0, 200) + "...";
    std::vector<std::string> missing;
    try {
      const std::string mine = absl::StrCat(step, " ", what);
      store_->set(absl::StrCat("drift/failed/", rank_), std::vector<uint8_t>(mine.begin(), mine.end()));
      const auto deadline = std::chrono::steady_clock::now() +
                            std::chrono::milliseconds(static_cast<int64_t>(std::min(5.0, timeout_s_) * 1000));
      std::vector<int> silent;
      do {
        silent.clear();
        for (int r = 0; r < world_; ++r)
          if (r != rank_ && !store_->check({absl::StrCat("drift/failed/", r)})) silent.push_back(r);
        if (silent.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      } while (std::chrono::steady_clock::now() < deadline);
      for (int r : silent) {
        const std::string key = absl::StrCat("drift/at/", r);
        std::string at = "nowhere yet";
        if (store_->check({key})) {
          auto v = store_->get(key);
          std::vector<std::string> f = absl::StrSplit(std::string(v.begin(), v.end()), absl::MaxSplits(' ', 1));
          at = f.size() == 2 ? absl::StrCat(f[1], " of step ", f[0]) : std::string(v.begin(), v.end());
        }
        missing.push_back(absl::StrCat("rank ", r, " (last at: ", at, ")"));
      }
    } catch (const std::exception&) {
      // The store itself is gone: rank 0, which serves it, died.
      if (rank_ != 0) missing.push_back("rank 0 (its c10d store is gone: the rank died)");
    }
    if (missing.empty())
      return absl::StrCat("rank ", rank_, ": the ", what, " of step ", step, " failed on every rank: ", first_line);
    return absl::StrCat(absl::StrJoin(missing, ", "), " did not complete the ", what, " of step ", step,
                        " within ", timeout_s_, " s ([train] dist_timeout_s) that rank ", rank_,
                        " waited: ", first_line);
  }

  int rank_, world_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::Backend> pg_;
  double timeout_s_;
};

}  // namespace

absl::StatusOr<std::optional<RankInfo>> rank_info_from_env() {
  RankInfo info;
  if (env("DRIFT_RANK")) {
    info.launcher = "drift-run";
    auto r = env_int("DRIFT_RANK");
    if (!r.ok()) return r.status();
    if (!env("DRIFT_WORLD_SIZE")) return absl::InvalidArgumentError("DRIFT_RANK is set but DRIFT_WORLD_SIZE is not");
    auto w = env_int("DRIFT_WORLD_SIZE");
    if (!w.ok()) return w.status();
    info.rank = *r;
    info.world = *w;
  } else if (env("DRIFT_LAUNCHER") && std::string(env("DRIFT_LAUNCHER")) == "srun") {
    info.launcher = "srun";
    for (const char* v : {"SLURM_PROCID", "SLURM_NTASKS"})
      if (!env(v)) return absl::InvalidArgumentError(absl::StrCat("DRIFT_LAUNCHER=srun but ", v, " is not set"));
    auto r = env_int("SLURM_PROCID");
    if (!r.ok()) return r.status();
    auto w = env_int("SLURM_NTASKS");
    if (!w.ok()) return w.status();
    info.rank = *r;
    info.world = *w;
  } else if (env("RANK") && env("WORLD_SIZE")) {
    info.launcher = "torchrun";
    auto r = env_int("RANK");
    if (!r.ok()) return r.status();
    auto w = env_int("WORLD_SIZE");
    if (!w.ok()) return w.status();
    info.rank = *r;
    info.world = *w;
  } else {
    return std::optional<RankInfo>();
  }
  const bool torchrun = info.launcher == "torchrun";
  const char* addr = env(torchrun ? "MASTER_ADDR" : "DRIFT_MASTER_ADDR");
  const char* port_var = torchrun ? "MASTER_PORT" : "DRIFT_MASTER_PORT";
  if (!addr || !env(port_var))
    return absl::InvalidArgumentError(absl::StrCat(info.launcher, " rank ", info.rank, ": ",
                                                   torchrun ? "MASTER_ADDR" : "DRIFT_MASTER_ADDR", " and ",
                                                   port_var, " must be set"));
  info.master_addr = addr;
  auto port = env_int(port_var);
  if (!port.ok()) return port.status();
  info.master_port = *port;
  if (info.world < 1 || info.rank >= info.world)
    return absl::InvalidArgumentError(absl::StrCat(info.launcher, ": rank ", info.rank, " is not in a world of ",
                                                   info.world));
  return std::optional<RankInfo>(info);
}

std::unique_ptr<Comm> single_process() { return std::make_unique<SingleProcess>(); }

absl::StatusOr<std::unique_ptr<Comm>> connect(const RankInfo& info, const torch::Device& device,
                                              double timeout_s) {
  if (info.world == 1) return single_process();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(info.master_port);
    so.isServer = info.rank == 0;
    so.numWorkers = info.world;
    so.waitWorkers = true;
    so.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(info.master_addr, so);
  } catch (const std::exception& e) {
    std::string w = e.what();
    return absl::UnavailableError(absl::StrCat("rank ", info.rank, " of ", info.world,
                                               ": c10d store at ", info.master_addr, ":", info.master_port,
                                               ": not every rank joined within ", timeout_s, " s: ",
                                               w.substr(0, w.find('\n'))));
  }
  c10::intrusive_ptr<c10d::Backend> pg;
  try {
#ifdef DRIFT_WITH_NCCL
    if (device.is_cuda()) {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, info.rank, info.world, opts);
    }
#endif
    if (!pg) {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // Loopback when every rank is on this host; else the interface that
      // resolves this host's name (one node per rank under srun).
      const bool local = info.master_addr == "127.0.0.1" || info.master_addr == "localhost";
      opts->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                    : c10d::ProcessGroupGloo::createDefaultDevice());
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, info.rank, info.world, opts);
    }
  } catch (const std::exception& e) {
    std::string w = e.what();
    return absl::UnavailableError(absl::StrCat("rank ", info.rank, " of ", info.world,
                                               ": cannot create the c10d process group: ",
                                               w.substr(0, w.find('\n'))));
  }
  (void)device;
  return std::unique_ptr<Comm>(std::make_unique<C10dComm>(info.rank, info.world, store, pg, timeout_s));
}

}  // namespace drift::dist
