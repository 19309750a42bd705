// One cell's results file (schemas/results.md): everything under the group
// /cell, which the sweep runner copies to /cells/<id> of the experiment file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/experiment.hpp"
#include "io/table.hpp"
#include "train/trainer.hpp"

namespace drift::train {

// Collects a cell's logs in memory while it trains.
class CellRecorder : public CellSink {
 public:
  void on_step(const StepLog& log) override;
  void on_eval(const EvalLog& log) override;
  void on_samples(int64_t step, const torch::Tensor& x, const torch::Tensor& labels) override;
  void on_variant_samples(int64_t step, const std::string& kind, double value, const torch::Tensor& x,
                          const torch::Tensor& labels) override {
    variant_samples_.push_back({step, kind, value, x.detach().to(torch::kCPU, torch::kFloat32), labels});
  }
  void on_features(const FeatureLog& log) override { features_.push_back(log); }
  void on_generator_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) override {
    generator_ = state;
  }
  void on_real_samples(const torch::Tensor& x) override { real_ = x.detach().to(torch::kCPU); }
  void on_rollouts(const Rollouts& r) override { rollouts_ = r; }

  const io::Table& train_table() const { return train_; }
  const io::Table& eval_table() const { return eval_; }
  // (step, (samples, labels)) in the order they were recorded.
  const std::vector<std::pair<int64_t, std::pair<torch::Tensor, torch::Tensor>>>& samples() const {
    return samples_;
  }
  const std::vector<FeatureLog>& feature_logs() const { return features_; }
  const std::vector<std::pair<std::string, torch::Tensor>>& generator_state() const { return generator_; }

 private:
  friend absl::Status write_cell_group(io::H5File&, const std::string&, const config::ExperimentConfig&,
                                       const CellOutcome&, const CellRecorder*, const std::string&);
  friend absl::StatusOr<CellRecorder> read_cell_recorder(const io::H5File&, const std::string&);
  io::Table train_, eval_;
  std::vector<std::pair<int64_t, std::pair<torch::Tensor, torch::Tensor>>> samples_;
  torch::Tensor real_;
  struct VariantSamples {
    int64_t step;
    std::string kind;  // "alpha", "ema"
    double value;
    torch::Tensor x, labels;
  };
  std::vector<VariantSamples> variant_samples_;
  std::vector<FeatureLog> features_;
  std::vector<std::pair<std::string, torch::Tensor>> generator_;
  Rollouts rollouts_;  // positions undefined: none
};

// Column name of m_tau at temperature tau ("m_tau_0.02").
std::string m_tau_column(double tau);
// "key=value; key=value" of the cell's grid values.
std::string grid_string(const config::ExperimentConfig& cfg);

// Writes a cell's attributes and logs under group `g` of an open file (what a
// cell file holds under /cell; a checkpoint holds the same, train/checkpoint.hpp).
absl::Status write_cell_group(io::H5File& f, const std::string& g, const config::ExperimentConfig& cfg,
                              const CellOutcome& outcome, const CellRecorder* rec,
                              const std::string& stderr_tail);
// The logs that write_cell_group() wrote under `g` (train and eval tables, real
// samples, samples, features), for a cell that resumes from a checkpoint.
absl::StatusOr<CellRecorder> read_cell_recorder(const io::H5File& f, const std::string& g);

// Writes the cell file atomically. `rec` may be null (a cell that crashed
// before it could record anything); `stderr_tail` is stored for failed cells.
absl::Status write_cell_file(const std::string& path, const config::ExperimentConfig& cfg,
                             const CellOutcome& outcome, const CellRecorder* rec,
                             const std::string& stderr_tail);

}  // namespace drift::train
