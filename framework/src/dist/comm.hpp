// The ranks of a data-parallel cell ([train] nproc > 1) and the collectives
// the trainer needs, over LibTorch's c10d: a TCPStore for the rendezvous,
// ProcessGroupGloo on the CPU, ProcessGroupNCCL on CUDA (when built with
// CUDA). The c10d headers stay in comm_c10d.cpp; this header is light.
//
// Every collective is tagged with the step and what it is for. Before each
// one a rank records (step, tag) in the store; when a collective fails (a
// rank died, or did not arrive within [train] dist_timeout_s) the error names
// the rank(s) that did not get there and where they were last.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"

namespace drift::dist {

// Where this process sits: rank, world size, the store's address.
struct RankInfo {
  int rank = 0, world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  std::string launcher;  // "drift-run", "srun", "torchrun"
};

// From the environment: DRIFT_RANK / DRIFT_WORLD_SIZE / DRIFT_MASTER_ADDR /
// DRIFT_MASTER_PORT (drift-run's local ranks); with DRIFT_LAUNCHER=srun,
// SLURM_PROCID / SLURM_NTASKS; else torchrun's RANK / WORLD_SIZE /
// MASTER_ADDR / MASTER_PORT. nullopt when none is set (a single process).
absl::StatusOr<std::optional<RankInfo>> rank_info_from_env();

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: every rank gets the element-wise sum over ranks of `t`.
  virtual void all_reduce_sum(torch::Tensor& t, int64_t step, const std::string& what) = 0;
  // Every rank's `t` (same shape everywhere), concatenated along `dim` in rank order.
  virtual torch::Tensor all_gather(const torch::Tensor& t, int64_t dim, int64_t step,
                                   const std::string& what) = 0;
};

// A world of one: the collectives return their input.
std::unique_ptr<Comm> single_process();

// Joins the ranks of `info` (blocks until all have joined, at most
// `timeout_s`). `device`: CPU -> Gloo; CUDA -> NCCL (Gloo where drift was
// built without CUDA). Errors name the address and what failed.
absl::StatusOr<std::unique_ptr<Comm>> connect(const RankInfo& info, const torch::Device& device,
                                              double timeout_s);

}  // namespace drift::dist
