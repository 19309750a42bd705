#include "export/export_generator.hpp"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/script.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "config/experiment.hpp"
#include "drift/version.hpp"
#include "io/h5.hpp"
#include "io/results_cell.hpp"
#include "policy/demo_dataset.hpp"
#include "runtime/registry.hpp"
#include "train/trainer.hpp"

namespace drift::exporter {
namespace {

namespace jit = torch::jit;

absl::Status error(const std::string& m) { return absl::InvalidArgumentError(m); }

// The first non-empty line of an exception message (torch's start with a newline at times).
std::string first_line(const std::string& what) {
  for (absl::string_view line : absl::StrSplit(what, '\n'))
    if (!absl::StripAsciiWhitespace(line).empty()) return std::string(absl::StripAsciiWhitespace(line));
  return what;
}

// TorchScript run on any batch size: forward() (traced at batch_size) on chunks.
constexpr const char* kSampleMethod = R"JIT(
def sample(self, n: int, labels: Optional[Tensor] = None, alpha: Optional[Tensor] = None) -> Tensor:
    assert n >= 0, "sample: n must be >= 0"
    assert self.n_classes == 0 or labels is not None, "sample: this generator is class-conditional: pass labels, an int64 tensor [n] of classes in [0, n_classes)"
    lab = torch.zeros([n]).long()
    if labels is not None:
        lab = labels.long().reshape([-1])
    al = torch.ones([n])
    if alpha is not None:
        al = alpha.float().reshape([-1])
    assert lab.size(0) == n and al.size(0) == n, "sample: labels and alpha must have n entries"
    if self.n_classes > 0 and n > 0:
        assert int(lab.min()) >= 0 and int(lab.max()) < self.n_classes, "sample: labels must lie in [0, n_classes)"
    if n == 0:
        return torch.empty([0] + self.sample_shape)
    B = self.batch_size
    outs: List[Tensor] = []
    start = 0
    while start < n:
        k = min(B, n - start)
        lb = lab[start:start + k]
        ab = al[start:start + k]
        if k < B:
            lb = torch.cat([lb, torch.zeros([B - k]).long()])
            ab = torch.cat([ab, torch.ones([B - k])])
        outs.append(self.forward(lb, ab)[:k])
        start += k
    return torch.cat(outs)
)JIT";

// A TorchScript module tree with the generator's parameters and buffers (the
// same tensors, so that tracing maps them to attribute reads) under their
// dotted names: blocks.0.attn.qkv.weight -> submodules blocks / 0 / attn / qkv.
class ModuleTree {
 public:
  explicit ModuleTree(std::shared_ptr<jit::CompilationUnit> cu)
      : cu_(std::move(cu)), root_(c10::QualifiedName("__torch__.drift.ExportedGenerator"), cu_) {}

  void add(const std::string& dotted, const torch::Tensor& t, bool is_buffer) {
    std::vector<std::string> parts = absl::StrSplit(dotted, '.');
    const std::string leaf = parts.back();
    parts.pop_back();
    jit::Module owner = root_;
    std::string prefix;
    for (const auto& p : parts) {
      prefix = prefix.empty() ? p : prefix + "." + p;
      auto it = subs_.find(prefix);
      if (it == subs_.end()) {
        jit::Module child(c10::QualifiedName("__torch__.drift.ExportedGenerator.Sub"), cu_,
                          /*shouldMangle=*/true);
        owner.register_module(p, child);
        it = subs_.emplace(prefix, child).first;
      }
      owner = it->second;
    }
    if (is_buffer) owner.register_buffer(leaf, t);
    else owner.register_parameter(leaf, t, /*is_buffer=*/false);
  }
  jit::Module& root() { return root_; }

 private:
  std::shared_ptr<jit::CompilationUnit> cu_;
  jit::Module root_;
  std::map<std::string, jit::Module> subs_;
};

// Loads /<group>/generator/<name> into every parameter and buffer of `gen`.
absl::Status load_weights(const io::H5File& f, const std::string& group, const std::string& plugin,
                          torch::nn::Module& gen) {
  const std::string where = absl::StrCat(f.path(), ": /", group, "/generator");
  auto names = f.list(group + "/generator");
  if (!names.ok()) return names.status();
  std::set<std::string> stored(names->begin(), names->end());
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& name, torch::Tensor& t) -> absl::Status {
    if (!stored.erase(name))
      return error(absl::StrCat(where, "/", name, ": missing (generator '", plugin, "' has this ",
                                io::shape_string(t), " tensor; was the cell trained with other "
                                "generator parameters?)"));
    auto v = f.read(group + "/generator/" + name);
    if (!v.ok()) return v.status();
    if (v->sizes() != t.sizes())
      return error(absl::StrCat(where, "/", name, ": shape ", io::shape_string(*v), ", generator '",
                                plugin, "' expects ", io::shape_string(t)));
    t.copy_(v->to(t.dtype()));
    return absl::OkStatus();
  };
  for (auto& kv : gen.named_parameters())
    if (auto st = load(kv.key(), kv.value()); !st.ok()) return st;
  for (auto& kv : gen.named_buffers())
    if (auto st = load(kv.key(), kv.value()); !st.ok()) return st;
  if (!stored.empty())
    return error(absl::StrCat(where, ": datasets that generator '", plugin, "' does not have: ",
                              absl::StrJoin(stored, ", ")));
  return absl::OkStatus();
}

}  // namespace

std::string python_unloadable_part(const std::string& dotted_name) {
  static const char* const kKeywords[] = {
      "False", "None",   "True",    "and",      "as",     "assert", "async",  "await",
      "break", "class",  "continue", "def",     "del",    "elif",   "else",   "except",
      "finally", "for",  "from",    "global",   "if",     "import", "in",     "is",
      "lambda", "nonlocal", "not",  "or",       "pass",   "raise",  "return", "try",
      "while", "with",   "yield"};
  for (absl::string_view part : absl::StrSplit(dotted_name, '.'))
    for (const char* k : kKeywords)
      if (part == k) return std::string(part);
  return "";
}

absl::StatusOr<ExportReport> export_generator(const ExportOptions& o) {
  auto f = io::H5File::open_read(o.results);
  if (!f.ok()) return f.status();
  auto group = io::select_results_cell(*f, o.cell);
  if (!group.ok()) return group.status();
  const std::string where = absl::StrCat(o.results, ": /", *group);
  auto status = f->read_string_attr(*group, "status");
  if (!status.ok()) return status.status();
  if (*status != "done")
    return error(absl::StrCat(where, ": status '", *status,
                              "': only a cell that finished training has a generator to export"));
  if (!f->is_group(*group + "/generator"))
    return error(absl::StrCat(where, "/generator: missing (the cell was written before drift "
                                     "recorded generator weights; run it again)"));
  auto toml = f->read_string_attr(*group, "config_toml");
  if (!toml.ok()) return toml.status();
  auto exp_file = f->read_string_attr("/", "experiment_file");

  // The cell's generator, created as the trainer created it.
  auto exp = config::parse_experiment(*toml, exp_file.ok() ? *exp_file : o.results);
  if (!exp.ok()) return exp.status();
  runtime::Registry reg;
  if (auto st = reg.load_default_paths(); !st.ok()) return st;
  if (auto st = config::load_experiment_plugins(*exp, reg); !st.ok()) return st;
  auto cfg = config::resolve_cell(*exp, 0, reg);
  if (!cfg.ok()) return cfg.status();
  DatasetContext dctx;
  dctx.seed = static_cast<uint64_t>(cfg->seed);
  dctx.base_dir = std::filesystem::path(cfg->file).parent_path().string();
  auto data = reg.make_dataset(cfg->data.name, cfg->data.params, dctx);
  if (!data.ok()) return data.status();
  const GeneratorContext gctx = train::generator_context(*cfg, **data);
  auto gen_or = reg.make_generator(cfg->generator.name, cfg->generator.params, gctx);
  if (!gen_or.ok()) return gen_or.status();
  auto generator = *gen_or;
  if (auto st = load_weights(*f, *group, cfg->generator.name, *generator); !st.ok()) return st;
  generator->eval();
  // An inference export: its outputs do not require grad (a user who fine-tunes
  // sets requires_grad on the loaded parameters).
  for (auto& p : generator->parameters()) p.requires_grad_(false);

  // A policy (a generator conditioned on observation windows) is exported in
  // drift-rollout's interface instead: forward(obs, noise) -> actions.
  const bool is_policy = !gctx.cond_shape.empty();
  const auto* demos = dynamic_cast<const policy::DemoDataset*>(data->get());
  if (is_policy && demos == nullptr)
    return error(absl::StrCat(where, ": dataset '", cfg->data.name, "' has conditions but is not the built-in "
                              "'demonstrations'; only its policies can be exported"));

  ExportReport rep;
  rep.cell_group = "/" + *group;
  rep.generator = cfg->generator.name;
  rep.policy = is_policy;
  rep.batch = o.batch > 0 ? o.batch : is_policy ? 1 : cfg->eval.get_int("n_samples");
  rep.n_classes = gctx.n_classes;
  rep.sample_shape = gctx.sample_shape;
  rep.eval_noise_seed = train::eval_noise_seed(cfg->seed);
  const int64_t B = rep.batch;

  // Names Python cannot load back (the C++ self-check below would not notice).
  for (const auto& [what, tensors] : {std::pair{"parameter", generator->named_parameters()},
                                      std::pair{"buffer", generator->named_buffers()}})
    for (const auto& kv : tensors)
      if (auto bad = python_unloadable_part(kv.key()); !bad.empty())
        return error(absl::StrCat(where, ": generator '", cfg->generator.name, "' has a ", what, " '",
                                  kv.key(), "': '", bad, "' is a Python keyword, so torch.jit.load "
                                  "in Python could not read the exported file; rename it in the plugin"));

  // Trace generate() with the noise drawn from the default generator (a
  // generator object cannot be an input of a trace).
  auto cu = std::make_shared<jit::CompilationUnit>();
  ModuleTree tree(cu);
  for (const auto& kv : generator->named_parameters()) {
    tree.add(kv.key(), kv.value(), false);
    rep.parameters += kv.value().numel();
  }
  for (const auto& kv : generator->named_buffers()) tree.add(kv.key(), kv.value(), true);
  jit::Module& m = tree.root();
  const bool conditional = gctx.n_classes > 0;
  auto generate = [&](const torch::Tensor& labels, const torch::Tensor& alpha) {
    GenerateRequest req;
    req.n = B;
    if (conditional) req.labels = labels;
    req.alpha = alpha;
    return generator->generate(req);
  };
  torch::NoGradGuard no_grad;
  if (is_policy) {
    // Raw observation window -> condition -> chunk -> raw actions; the noise
    // input is not used (the generator draws its own from torch's default
    // CPU generator), so that the file has drift-rollout's interface.
    auto act = [&](const torch::Tensor& obs) {
      GenerateRequest req;
      req.n = B;
      req.cond = demos->to_cond(obs);
      return demos->to_actions(generator->generate(req));
    };
    const auto& cs = gctx.cond_shape;
    auto example_obs = torch::zeros({B, cs[0], cs[1]});
    auto example_noise = torch::zeros({B, gctx.sample_shape[0], gctx.sample_shape[1]});
    try {
      auto traced = jit::tracer::trace(
          {example_obs, example_noise}, [&](jit::Stack in) -> jit::Stack { return {act(in[0].toTensor())}; },
          [](const torch::autograd::Variable&) { return std::string(); }, /*strict=*/true,
          /*force_outplace=*/false, &m, {"obs", "noise"});
      auto fn = cu->create_function(c10::QualifiedName(*m.type()->name(), "forward"), traced.first->graph);
      m.type()->addMethod(fn);
      m.register_attribute("batch_size", c10::IntType::get(), B);
      m.register_attribute("task", c10::StringType::get(), demos->task());
      m.register_attribute("obs_horizon", c10::IntType::get(), demos->obs_horizon());
      m.register_attribute("pred_horizon", c10::IntType::get(), demos->pred_horizon());
      m.register_attribute("config_toml", c10::StringType::get(), *toml);
      m.register_attribute("experiment_name", c10::StringType::get(), cfg->name);
      m.register_attribute("cell", c10::StringType::get(), *group);
      m.register_attribute("drift_version", c10::StringType::get(), std::string(drift::framework_version()));
    } catch (const std::exception& e) {
      std::string what = e.what();
      return absl::InternalError(absl::StrCat(where, ": cannot trace policy '", cfg->generator.name,
                                              "': ", first_line(what)));
    }
    torch::manual_seed(rep.eval_noise_seed);
    auto eager = act(example_obs);
    torch::manual_seed(rep.eval_noise_seed);
    auto via_trace = m.forward({example_obs, example_noise}).toTensor();
    const double diff = (eager - via_trace).abs().max().item<double>();
    if (!(diff <= 1e-5 * std::max(1.0, eager.abs().max().item<double>())))
      return absl::InternalError(absl::StrCat(where, ": the traced policy '", cfg->generator.name,
                                              "' differs from the generator by ", diff, "; nothing written"));
  } else {
  auto example_labels = torch::arange(B, torch::kLong).remainder(std::max<int64_t>(gctx.n_classes, 1));
  auto example_alpha = torch::ones({B}, torch::kFloat32);
  try {
    auto traced = jit::tracer::trace(
        {example_labels, example_alpha},
        [&](jit::Stack in) -> jit::Stack {
          return {generate(in[0].toTensor(), in[1].toTensor())};
        },
        [](const torch::autograd::Variable&) { return std::string(); }, /*strict=*/true,
        /*force_outplace=*/false, &m, {"labels", "alpha"});
    auto fn = cu->create_function(c10::QualifiedName(*m.type()->name(), "forward"),
                                  traced.first->graph);
    m.type()->addMethod(fn);
    m.register_attribute("batch_size", c10::IntType::get(), B);
    m.register_attribute("n_classes", c10::IntType::get(), gctx.n_classes);
    m.register_attribute("sample_shape", c10::ListType::ofInts(), c10::List<int64_t>(gctx.sample_shape));
    m.register_attribute("eval_noise_seed", c10::IntType::get(), static_cast<int64_t>(rep.eval_noise_seed));
    m.register_attribute("config_toml", c10::StringType::get(), *toml);
    m.register_attribute("experiment_name", c10::StringType::get(), cfg->name);
    m.register_attribute("cell", c10::StringType::get(), *group);
    m.register_attribute("drift_version", c10::StringType::get(), std::string(drift::framework_version()));
    m.define(kSampleMethod);
  } catch (const std::exception& e) {
    std::string what = e.what();
    return absl::InternalError(absl::StrCat(where, ": cannot trace generator '", cfg->generator.name,
                                            "': ", first_line(what)));
  }

  // The traced module must draw the same samples as the generator itself.
  const uint64_t check_seed = rep.eval_noise_seed;
  torch::manual_seed(check_seed);
  auto eager = generate(example_labels, example_alpha);
  torch::manual_seed(check_seed);
  auto via_trace = m.forward({example_labels, example_alpha}).toTensor();
  const double diff = (eager - via_trace).abs().max().item<double>();
  if (!(diff <= 1e-5 * std::max(1.0, eager.abs().max().item<double>())))
    return absl::InternalError(absl::StrCat(
        where, ": the traced generator '", cfg->generator.name, "' differs from the generator by ",
        diff, " (does its generate() branch on tensor values?); nothing written"));
  }

  // Written atomically: a reader never sees half a file.
  const std::string tmp = o.out + ".tmp";
  try {
    m.save(tmp);
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    std::string what = e.what();
    return absl::InternalError(absl::StrCat(o.out, ": cannot write: ", first_line(what)));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, o.out, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat(o.out, ": cannot write: ", ec.message()));
  }
  return rep;
}

}  // namespace drift::exporter
