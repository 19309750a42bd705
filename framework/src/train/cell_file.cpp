#include "train/cell_file.hpp"

#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "drift/version.hpp"

namespace drift::train {

std::string m_tau_column(double tau) {
  return "m_tau_" + format_param_value(ParamValue{tau});
}

std::string grid_string(const config::ExperimentConfig& cfg) {
  std::string s;
  for (const auto& [k, v] : cfg.grid_values)
    absl::StrAppend(&s, s.empty() ? "" : "; ", k, "=", format_param_value(v));
  return s;
}

void CellRecorder::on_step(const StepLog& log) {
  train_.new_row();
  train_.set("step", log.step);
  train_.set("loss", log.loss);
  for (size_t t = 0; t < log.m_tau.size(); ++t) train_.set(m_tau_column(log.temperatures[t]), log.m_tau[t]);
  for (const auto& [name, values] : log.m_tau_per_feature)
    for (size_t t = 0; t < values.size(); ++t)
      train_.set(m_tau_column(log.temperatures[t]) + "/" + name, values[t]);
  for (size_t k = 0; k < log.tau.size(); ++k) train_.set("tau_" + std::to_string(k), log.tau[k]);
  train_.set("grad_norm", log.grad_norm);
  train_.set("lr", log.lr);
  train_.set("seconds", log.seconds);
  for (const auto& [phase, s] : log.phases) train_.set("t_" + phase, s);
  for (const auto& [name, v] : log.volumes) train_.set(name, static_cast<int64_t>(v));
}

void CellRecorder::on_eval(const EvalLog& log) {
  eval_.new_row();
  eval_.set("step", log.step);
  for (const auto& [name, v] : log.values) {
    if (name == "modes_covered") eval_.set(name, static_cast<int64_t>(v));
    else eval_.set(name, v);
  }
}

void CellRecorder::on_samples(int64_t step, const torch::Tensor& x, const torch::Tensor& labels) {
  samples_.push_back({step, {x.detach().to(torch::kCPU, torch::kFloat32), labels}});
}

absl::Status write_cell_group(io::H5File& f, const std::string& g, const config::ExperimentConfig& cfg,
                              const CellOutcome& outcome, const CellRecorder* rec,
                              const std::string& stderr_tail) {
    auto st = f.create_group(g);
    if (!st.ok()) return st;
    auto attr = [&](const std::string& name, auto value) { return f.set_attr(g, name, value); };
    for (auto s : {attr("status", outcome.status), attr("config_toml", cfg.resolved_toml),
                   attr("grid", grid_string(cfg)), attr("seed", static_cast<int64_t>(cfg.seed)),
                   attr("wall_time_s", outcome.wall_time_s), attr("steps_done", outcome.steps_done),
                   attr("device", outcome.device.empty() ? std::string("cpu") : outcome.device),
                   attr("cell", static_cast<int64_t>(cfg.cell))})
      if (!s.ok()) return s;
    for (const auto& [k, v] : cfg.grid_values)
      if (auto s = attr("grid." + k, format_param_value(v)); !s.ok()) return s;
    if (outcome.cpu_time_s > 0)
      if (auto s = attr("cpu_time_s", outcome.cpu_time_s); !s.ok()) return s;
    if (outcome.pretrain_time_s > 0)
      if (auto s = attr("pretrain_time_s", outcome.pretrain_time_s); !s.ok()) return s;
    if (!outcome.error.empty())
      if (auto s = attr("error", outcome.error); !s.ok()) return s;
    if (!stderr_tail.empty())
      if (auto s = attr("stderr_tail", stderr_tail); !s.ok()) return s;
    if (rec == nullptr) return absl::OkStatus();
    if (rec->train_.rows())
      if (auto s = io::write_table(f, g + "/train", rec->train_); !s.ok()) return s;
    if (rec->eval_.rows())
      if (auto s = io::write_table(f, g + "/eval", rec->eval_); !s.ok()) return s;
    if (rec->real_.defined())
      if (auto s = f.write(g + "/real_samples", rec->real_); !s.ok()) return s;
    if (!rec->samples_.empty()) {
      if (auto s = f.create_group(g + "/samples"); !s.ok()) return s;
      for (const auto& [step, xl] : rec->samples_) {
        std::string name = absl::StrFormat("%s/samples/%010d", g, step);
        if (auto s = f.write(name, xl.first); !s.ok()) return s;
        if (auto s = f.set_attr(name, "step", step); !s.ok()) return s;
        if (xl.second.defined())
          if (auto s = f.write(name + "_labels", xl.second); !s.ok()) return s;
      }
    }
    // <kind>_samples/<value>/<step> (and <step>_labels): alpha_samples for
    // [eval] cfg_alphas, ema_samples for [eval] ema_rates; attribute <kind>.
    for (const auto& a : rec->variant_samples_) {
      const std::string dir = absl::StrCat(g, "/", a.kind, "_samples/", format_param_value(ParamValue{a.value}));
      if (auto s = f.create_group(dir); !s.ok()) return s;
      if (auto s = f.set_attr(dir, a.kind, a.value); !s.ok()) return s;
      const std::string name = absl::StrFormat("%s/%010d", dir, a.step);
      if (auto s = f.write(name, a.x); !s.ok()) return s;
      if (auto s = f.set_attr(name, "step", a.step); !s.ok()) return s;
      if (auto s = f.set_attr(name, a.kind, a.value); !s.ok()) return s;
      if (a.labels.defined())
        if (auto s = f.write(name + "_labels", a.labels); !s.ok()) return s;
    }
    // rollouts/{positions, success, mode}: a policy's last closed-loop episodes.
    if (const auto& r = rec->rollouts_; r.positions.defined()) {
      const std::string rg = g + "/rollouts";
      if (auto s = f.create_group(rg); !s.ok()) return s;
      std::string modes;
      for (size_t m = 0; m < r.mode_names.size(); ++m) absl::StrAppend(&modes, m ? "\n" : "", r.mode_names[m]);
      for (auto s : {f.set_attr(rg, "step", r.step), f.set_attr(rg, "task", r.task), f.set_attr(rg, "mode_names", modes),
                     f.write(rg + "/positions", r.positions), f.write(rg + "/success", r.success),
                     f.write(rg + "/mode", r.mode)})
        if (!s.ok()) return s;
    }
    if (!rec->features_.empty()) {
      // features/<name>/<step>/{gen, real, drift_norm}
      if (auto s = f.create_group(g + "/features"); !s.ok()) return s;
      std::set<std::string> made;
      for (const auto& log : rec->features_)
        for (const auto& e : log.features) {
          const std::string fg = absl::StrCat(g, "/features/", e.name);
          if (made.insert(fg).second)
            if (auto s = f.create_group(fg); !s.ok()) return s;
          const std::string sg = absl::StrFormat("%s/%010d", fg, log.step);
          if (auto s = f.create_group(sg); !s.ok()) return s;
          if (auto s = f.set_attr(sg, "step", log.step); !s.ok()) return s;
          if (auto s = f.write(sg + "/gen", e.gen); !s.ok()) return s;
          if (auto s = f.write(sg + "/real", e.real); !s.ok()) return s;
          auto dn = torch::tensor(e.drift_norm, torch::kFloat64);
          if (auto s = f.write(sg + "/drift_norm", dn); !s.ok()) return s;
        }
    }
    if (!rec->generator_.empty()) {
      // generator/<parameter or buffer name>: the EMA weights after the last step.
      if (auto s = f.create_group(g + "/generator"); !s.ok()) return s;
      for (const auto& [name, t] : rec->generator_)
        if (auto s = f.write(g + "/generator/" + name, t); !s.ok()) return s;
    }
    return absl::OkStatus();
}

absl::StatusOr<CellRecorder> read_cell_recorder(const io::H5File& f, const std::string& g) {
  CellRecorder rec;
  if (f.is_dataset(g + "/train")) {
    auto t = io::read_table(f, g + "/train");
    if (!t.ok()) return t.status();
    rec.train_ = *std::move(t);
  }
  if (f.is_dataset(g + "/eval")) {
    auto t = io::read_table(f, g + "/eval");
    if (!t.ok()) return t.status();
    rec.eval_ = *std::move(t);
  }
  if (f.is_dataset(g + "/real_samples")) {
    auto t = f.read(g + "/real_samples");
    if (!t.ok()) return t.status();
    rec.real_ = *std::move(t);
  }
  if (f.is_group(g + "/samples")) {
    auto names = f.list(g + "/samples");
    if (!names.ok()) return names.status();
    for (const auto& n : *names) {  // sorted: %010d names are in step order
      if (absl::EndsWith(n, "_labels")) continue;
      const std::string name = g + "/samples/" + n;
      auto x = f.read(name);
      if (!x.ok()) return x.status();
      auto step = f.read_int_attr(name, "step");
      if (!step.ok()) return step.status();
      torch::Tensor labels;
      if (f.is_dataset(name + "_labels")) {
        auto l = f.read(name + "_labels");
        if (!l.ok()) return l.status();
        labels = *std::move(l);
      }
      rec.samples_.push_back({*step, {*std::move(x), labels}});
    }
  }
  if (f.is_group(g + "/features")) {
    // features/<name>/<step>/{gen, real, drift_norm}: one FeatureLog per step.
    std::map<int64_t, FeatureLog> by_step;
    auto names = f.list(g + "/features");
    if (!names.ok()) return names.status();
    for (const auto& name : *names) {
      const std::string fg = absl::StrCat(g, "/features/", name);
      auto steps = f.list(fg);
      if (!steps.ok()) return steps.status();
      for (const auto& s : *steps) {
        const std::string sg = absl::StrCat(fg, "/", s);
        auto step = f.read_int_attr(sg, "step");
        if (!step.ok()) return step.status();
        FeatureLog::Entry e;
        e.name = name;
        auto gen = f.read(sg + "/gen");
        if (!gen.ok()) return gen.status();
        auto real = f.read(sg + "/real");
        if (!real.ok()) return real.status();
        auto dn = f.read_as(sg + "/drift_norm", torch::kFloat64);
        if (!dn.ok()) return dn.status();
        e.gen = *std::move(gen);
        e.real = *std::move(real);
        const torch::Tensor d = dn->contiguous();
        e.drift_norm.assign(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
        FeatureLog& log = by_step[*step];
        log.step = *step;
        log.features.push_back(std::move(e));
      }
    }
    for (auto& [step, log] : by_step) rec.features_.push_back(std::move(log));
  }
  return rec;
}

absl::Status write_cell_file(const std::string& path, const config::ExperimentConfig& cfg,
                             const CellOutcome& outcome, const CellRecorder* rec,
                             const std::string& stderr_tail) {
  return io::write_h5_atomically(path, [&](io::H5File& f) -> absl::Status {
    return write_cell_group(f, "cell", cfg, outcome, rec, stderr_tail);
  }, io::AtomicWrite::kInMemory);
}

}  // namespace drift::train
