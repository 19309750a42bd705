#include "train/checkpoint.hpp"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "drift/checksum.hpp"
#include "drift/version.hpp"
#include "io/h5.hpp"

namespace drift::train {

void TrainState::put(const std::string& name, const torch::Tensor& t) {
  tensors.emplace_back(name, t.detach().to(torch::kCPU).contiguous().clone());
}

bool TrainState::has(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

absl::StatusOr<torch::Tensor> TrainState::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  return absl::NotFoundError(absl::StrCat("the checkpoint has no state '", name, "'"));
}

CheckpointKey checkpoint_key(const config::ExperimentConfig& cfg, const runtime::Registry& reg) {
  CheckpointKey key;
  key.emplace_back("layout", std::to_string(kCheckpointLayout));
  key.emplace_back("framework", framework_version());
  key.emplace_back("torch", torch_version());
  key.emplace_back("config", std::string(config::configuration_identity(cfg.resolved_toml)));
  const std::pair<ComponentKind, const config::ComponentConfig*> parts[] = {
      {ComponentKind::Dataset, &cfg.data},         {ComponentKind::Generator, &cfg.generator},
      {ComponentKind::Encoder, &cfg.encoder},      {ComponentKind::Kernel, &cfg.kernel},
      {ComponentKind::Normalizer, &cfg.normalizer}};
  for (const auto& [kind, cc] : parts) {
    std::string what = cc->name;
    if (const auto* rc = reg.find(kind, cc->name)) {
      if (rc->source == "<built-in>") {
        absl::StrAppend(&what, " (built-in)");
      } else {
        auto sha = sha256_file(rc->source);
        absl::StrAppend(&what, " from ", rc->source, " (sha256 ", sha.ok() ? sha->substr(0, 16) : "unreadable",
                        ")");
      }
    }
    key.emplace_back(absl::StrCat("plugin.", component_kind_name(kind)), what);
  }
  return key;
}

std::string checkpoint_path_for(const std::string& cell_path) {
  std::string base = cell_path;
  if (absl::EndsWith(base, ".h5")) base.resize(base.size() - 3);
  return base + ".ckpt";
}

std::string previous_checkpoint_path(const std::string& checkpoint_path) {
  return checkpoint_path + ".prev";
}

namespace {

std::string next_path(const std::string& path) { return path + ".next"; }

std::string key_difference(const std::string& field, const std::string& there, const std::string& here) {
  if (field == "layout")
    return absl::StrCat("its state layout is version ", there, ", this drift-run writes version ", here);
  if (field == "framework" || field == "torch")
    return absl::StrCat("it was written by ", field == "torch" ? "LibTorch " : "drift ", there, ", this is ", here);
  return absl::StrCat(field.substr(field.find('.') + 1), " is '", there, "' there, '", here, "' here");
}

absl::StatusOr<LoadedCheckpoint> read_one(const std::string& path, const CheckpointKey& key,
                                          const config::ExperimentConfig& cfg, bool* key_mismatch) {
  *key_mismatch = false;
  auto f = io::H5File::open_read(path, io::ReadGuard::kStrict);
  if (!f.ok()) return f.status();
  for (const auto& [field, value] : key) {
    auto there = f->read_string_attr("key", field);
    if (!there.ok()) return there.status();
    // The configuration matches as a cell file's does (config::same_configuration):
    // a key added to the framework or a plugin since, left at its default, is
    // not a difference, so such an upgrade resumes paused cells.
    std::string difference;
    if (field != "config") {
      if (*there != value) difference = key_difference(field, *there, value);
    } else if (std::string d = config::configuration_difference(*there, cfg); !d.empty()) {
      difference = absl::StrCat("the cell's configuration differs: ", d);
    }
    if (!difference.empty()) {
      *key_mismatch = true;
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": written for another run of this cell (", difference,
          "); it is not loaded: `drift-run --restart` starts the cell from step 0 and removes it"));
    }
  }
  LoadedCheckpoint out;
  out.path = path;
  TrainState& s = out.state;
  auto step = f->read_int_attr("state", "step");
  if (!step.ok()) return step.status();
  s.step = *step;
  for (auto [name, dst] : {std::pair<const char*, double*>{"cpu_time_s", &s.cpu_time_s},
                           {"wall_time_s", &s.wall_time_s},
                           {"pretrain_time_s", &s.pretrain_time_s}}) {
    auto v = f->read_float_attr("state", name);
    if (!v.ok()) return v.status();
    *dst = *v;
  }
  auto threads = f->read_int_attr("state", "threads");
  if (!threads.ok()) return threads.status();
  s.threads = *threads;
  // Every dataset under /state, by its path below it.
  std::vector<std::string> stack = {"state"};
  while (!stack.empty()) {
    const std::string g = stack.back();
    stack.pop_back();
    auto names = f->list(g);
    if (!names.ok()) return names.status();
    for (const auto& n : *names) {
      const std::string full = g + "/" + n;
      if (f->is_group(full)) {
        stack.push_back(full);
        continue;
      }
      auto t = f->read(full);
      if (!t.ok()) return t.status();
      s.tensors.emplace_back(full.substr(6), *std::move(t));
    }
  }
  auto rec = read_cell_recorder(*f, "cell");
  if (!rec.ok()) return rec.status();
  out.recorder = *std::move(rec);
  return out;
}

}  // namespace

absl::Status write_checkpoint(const std::string& path, const CheckpointKey& key,
                              const config::ExperimentConfig& cfg, const TrainState& state,
                              const CellRecorder& rec) {
  const std::string next = next_path(path);
  auto st = io::write_h5_atomically(next, [&](io::H5File& f) -> absl::Status {
    CellOutcome paused;
    paused.status = "paused";
    paused.steps_done = state.step;
    paused.wall_time_s = state.wall_time_s;
    paused.cpu_time_s = state.cpu_time_s;
    paused.pretrain_time_s = state.pretrain_time_s;
    if (auto s = write_cell_group(f, "cell", cfg, paused, &rec, ""); !s.ok()) return s;
    if (auto s = f.create_group("key"); !s.ok()) return s;
    for (const auto& [field, value] : key)
      if (auto s = f.set_attr("key", field, value); !s.ok()) return s;
    if (auto s = f.create_group("state"); !s.ok()) return s;
    for (auto s : {f.set_attr("state", "step", state.step), f.set_attr("state", "cpu_time_s", state.cpu_time_s),
                   f.set_attr("state", "wall_time_s", state.wall_time_s),
                   f.set_attr("state", "pretrain_time_s", state.pretrain_time_s),
                   f.set_attr("state", "threads", state.threads)})
      if (!s.ok()) return s;
    for (const auto& [name, t] : state.tensors) {
      const std::string full = "state/" + name;
      if (auto slash = full.rfind('/'); slash != std::string::npos)
        if (auto s = f.create_group(full.substr(0, slash)); !s.ok()) return s;
      if (auto s = f.write(full, t); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  // The complete new file is at <path>.next: the old one becomes .prev.
  const std::string prev = previous_checkpoint_path(path);
  if (::rename(path.c_str(), prev.c_str()) != 0 && errno != ENOENT)
    return absl::InternalError(absl::StrCat(path, ": cannot rename it to ", prev, ": ", std::strerror(errno)));
  if (::rename(next.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat(path, ": cannot rename ", next, " onto it: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LoadedCheckpoint>> load_checkpoint(const std::string& path,
                                                                const CheckpointKey& key,
                                                                const config::ExperimentConfig& cfg,
                                                                std::string* note) {
  note->clear();
  std::vector<std::string> problems;
  for (const std::string& p : {path, previous_checkpoint_path(path)}) {
    if (::access(p.c_str(), F_OK) != 0) continue;
    bool mismatch = false;
    auto c = read_one(p, key, cfg, &mismatch);
    if (mismatch) return c.status();
    if (c.ok()) {
      if (!problems.empty())
        c->note = absl::StrCat(absl::StrJoin(problems, "; "), "; resuming from ", p, " at step ", c->state.step);
      return std::optional<LoadedCheckpoint>(*std::move(c));
    }
    problems.push_back(absl::StrCat(p, " is unreadable (", c.status().message(), ")"));
  }
  if (!problems.empty()) *note = absl::StrCat(absl::StrJoin(problems, "; "), "; starting from step 0");
  return std::optional<LoadedCheckpoint>();
}

absl::StatusOr<int64_t> checkpoint_step(const std::string& path) {
  absl::Status first;
  for (const std::string& p : {path, previous_checkpoint_path(path)}) {
    auto f = io::H5File::open_read(p, io::ReadGuard::kStrict);
    auto step = f.ok() ? f->read_int_attr("state", "step") : absl::StatusOr<int64_t>(f.status());
    if (step.ok()) return step;
    if (first.ok()) first = step.status();
  }
  return first;
}

void remove_checkpoints(const std::string& path) {
  for (const std::string& p : {path, previous_checkpoint_path(path), next_path(path)}) ::unlink(p.c_str());
}

}  // namespace drift::train
