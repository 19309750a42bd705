// drift-export: a trained generator as a TorchScript file that PyTorch loads
// with torch.jit.load, without drift (docs/guide/export.md).
//
// A `done` cell of a results file holds its generator's EMA weights
// (/cells/<id>/generator/<name>, schemas/results.md) and its resolved
// configuration (`config_toml`). The generator plugin is created again from
// that configuration, the weights are loaded into it, and its generate() is
// traced at a fixed batch size into a TorchScript module:
//
//   forward(labels: Tensor[B] int64, alpha: Tensor[B] float32) -> Tensor[B, *shape]
//       the traced generate(): one forward pass per sample; the noise comes
//       from torch's default CPU generator (seed it with torch.manual_seed)
//   sample(n: int, labels: Optional[Tensor], alpha: Optional[Tensor]) -> Tensor[n, *shape]
//       any n: forward() on chunks of B (the last one padded)
//
// plus the attributes batch_size, n_classes, sample_shape, eval_noise_seed,
// config_toml, experiment_name, cell and drift_version. With n = B, labels and
// alpha as in the cell's evaluation, torch.manual_seed(eval_noise_seed) makes
// forward() reproduce the cell's recorded samples of its last step.
//
// A policy (a generator trained on `demonstrations`, conditioned on
// observation windows) is exported in drift-rollout's interface instead:
//
//   forward(obs: Tensor[B, To, obs_dim], noise: Tensor[B, Tp, action_dim]) -> Tensor[B, Tp, action_dim]
//       raw observations in, raw actions out (the dataset's normalisation is
//       part of the trace); B = 1 unless --batch says otherwise; `noise` is
//       not used: the generator draws its own from torch's default generator
//
// with the attributes batch_size, task, obs_horizon, pred_horizon,
// config_toml, experiment_name, cell and drift_version.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace drift::exporter {

struct ExportOptions {
  std::string results;              // a drift-run experiment file (/cells/<id>) or cell file (/cell)
  std::optional<std::string> cell;  // "3" or "0003"; needed when the file has several cells
  std::string out;                  // the TorchScript file to write (atomically)
  int64_t batch = 0;                // traced batch size; 0: the cell's [eval] n_samples
};

struct ExportReport {
  std::string cell_group;  // "/cells/0003" or "/cell"
  std::string generator;   // plugin name
  int64_t batch = 0, n_classes = 0, parameters = 0;
  bool policy = false;  // exported in drift-rollout's interface (forward(obs, noise))
  std::vector<int64_t> sample_shape;
  uint64_t eval_noise_seed = 0;
};

// Every failure is one line naming the file, the cell or dataset and what was expected.
absl::StatusOr<ExportReport> export_generator(const ExportOptions& opts);

// The first part of a dotted parameter or buffer name ("in.weight" -> "in")
// that Python's torch.jit.load cannot read back as an attribute: a Python
// keyword. "" when every part is fine. export_generator refuses such a
// generator before writing a file that only C++ could load.
std::string python_unloadable_part(const std::string& dotted_name);

}  // namespace drift::exporter
