// drift-eval: image metrics of generated Fashion-MNIST samples under the fixed
// evaluator (metrics/evaluator.hpp, docs/guide/evaluator.md), with their floors.
//
//   drift-eval SAMPLES.h5 [--cell ID] [--step STEP] [--alpha A | --ema R] [--metrics LIST]
//              [--k K] [--json OUT.json] [--seed N] [--evaluator PATH] [--inception FILE]
//              [--n-ref N] [--data-dir DIR] [--reference test|validation]
//
// SAMPLES.h5 is a plain HDF5 file with `samples` [N, 1, 32, 32] (float in
// [-1, 1], or uint8) and optional `labels` [N], or a results file of drift-run
// (schemas/results.md): an experiment file (`cells/<id>/...`, --cell picks the
// cell; needed when there are several) or a cell file (`cell/...`). There the
// samples of the last step are used (--step picks another), or those generated
// at guidance --alpha A (`alpha_samples/<A>/<step>`, [eval] cfg_alphas) or
// with the further weight average of rate --ema R (`ema_samples/<R>/<step>`,
// [eval] ema_rates; R = the cell's [train] ema names its default samples). The
// input is only read.
//
// Prints a table of each metric and its floor; --json also writes them to a
// file (atomically). Any error: one line on stderr naming the file or dataset
// at fault and what was expected, exit status 1 (2 for a usage error).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <toml++/toml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "io/h5.hpp"
#include "io/results_cell.hpp"
#include "metrics/evaluator.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-eval SAMPLES.h5 [--cell ID] [--step STEP] [--alpha A | --ema R] [--metrics LIST]\n"
    "                  [--k K] [--json OUT.json] [--seed N] [--evaluator PATH] [--inception FILE]\n"
    "                  [--n-ref N] [--data-dir DIR] [--reference test|validation]\n"
    "Image metrics of generated Fashion-MNIST samples [N, 1, 32, 32] under the fixed evaluator:\n"
    "fid, precision, recall (k-NN manifolds, --k 3), accuracy (per class; needs labels), is,\n"
    "each with its floor (N real training images against the test split). SAMPLES.h5: datasets\n"
    "`samples` and optional `labels`, or a drift-run results file (--cell ID, --step STEP,\n"
    "--alpha A select the samples; --ema R those of the weight average of rate R, [eval]\n"
    "ema_rates, or [train] ema for the default ones; default: the only cell, the last step).\n"
    "--inception FILE adds fid_inception (standard FID with a TorchScript Inception network;\n"
    "slow on a CPU).\n"
    "--metrics default: fid,precision,recall,accuracy,is. --seed picks the floor's training\n"
    "images (default 0). --n-ref uses the first N test images as the reference (default all).\n"
    "--reference validation scores against the last 10k training images instead of the test\n"
    "split (for choosing settings; the floor is then drawn from the first 50k).\n";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The samples a run keeps beside its default ones, selected by an option's
// value: `<cell>/<kind>_samples/<value>/<step>`.
struct VariantKind {
  const char* option;    // "--alpha"
  const char* kind;      // "alpha": the group <kind>_samples
  const char* expected;  // what a value must be
  const char* phrase;    // "at alpha", in "has no samples at alpha 3"
  const char* records;   // the setting that records other values
  bool (*valid)(double);
  // The value whose samples are the cell's default ones, if known.
  std::optional<double> (*default_value)(const drift::io::H5File&, const std::string& cell);
};

// The cell's `[train] ema`, from its resolved configuration.
std::optional<double> train_ema(const drift::io::H5File& f, const std::string& cell) {
  auto text = f.read_string_attr(cell, "config_toml");
  if (!text.ok()) return std::nullopt;
  try {
    toml::table cfg = toml::parse(*text);
    return cfg["train"]["ema"].value<double>();
  } catch (const toml::parse_error&) {
    return std::nullopt;
  }
}

const VariantKind kAlpha{"--alpha", "alpha", "a number > 0", "at alpha", "[eval] cfg_alphas",
                         [](double a) { return a > 0; },
                         [](const drift::io::H5File&, const std::string&) -> std::optional<double> { return 1.0; }};
const VariantKind kEma{"--ema", "ema", "a decay rate in (0, 1)", "with ema", "[eval] ema_rates",
                       [](double r) { return r > 0 && r < 1; }, train_ema};

struct Variant {
  const VariantKind* kind;
  std::string value;  // as given
};

struct Options {
  std::string in, json, evaluator, inception, data_dir = drift::data::kFashionMnistDir;
  std::string reference = "test";
  std::optional<std::string> cell;
  std::optional<Variant> variant;  // --alpha or --ema
  std::optional<int64_t> step;
  std::vector<std::string> metrics = drift::metrics::image_metric_names();
  int64_t k = 3, seed = 0, n_ref = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) {
      positional.push_back(a);
      continue;
    }
    if (i + 1 >= argc) throw UsageError(absl::StrCat(a, " needs a value"));
    const std::string v = argv[++i];
    int64_t n;
    if (a == "--cell") o.cell = v;
    else if (a == kAlpha.option || a == kEma.option) {
      if (o.variant)
        throw UsageError("--alpha and --ema: a run records the further weight averages at alpha = 1 only; give one");
      o.variant = Variant{a == kAlpha.option ? &kAlpha : &kEma, v};
    }
    else if (a == "--json") o.json = v;
    else if (a == "--evaluator") o.evaluator = v;
    else if (a == "--inception") o.inception = v;
    else if (a == "--data-dir") o.data_dir = v;
    else if (a == "--reference" && (v == "test" || v == "validation")) o.reference = v;
    else if (a == "--step" && absl::SimpleAtoi(v, &n) && n >= 0) o.step = n;
    else if (a == "--k" && absl::SimpleAtoi(v, &n) && n >= 1) o.k = n;
    else if (a == "--seed" && absl::SimpleAtoi(v, &n) && n >= 0) o.seed = n;
    else if (a == "--n-ref" && absl::SimpleAtoi(v, &n) && n >= 2) o.n_ref = n;
    else if (a == "--metrics") {
      o.metrics = absl::StrSplit(v, ',', absl::SkipEmpty());
      for (const auto& m : o.metrics)
        if (!drift::metrics::is_image_metric(m))
          throw UsageError(absl::StrCat("--metrics: unknown metric '", m, "' (valid: ",
                                        absl::StrJoin(drift::metrics::image_metric_names(), ", "), ")"));
    } else {
      throw UsageError(absl::StrCat("unknown option or bad value '", a, " ", v, "'"));
    }
  }
  if (positional.size() != 1)
    throw UsageError(absl::StrCat("expected one SAMPLES.h5, got ", positional.size(), " file arguments"));
  o.in = positional[0];
  return o;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

int fail(const std::string& msg, int code = 1) {
  std::cerr << "drift-eval: " << one_line(msg) << "\n";
  return code;
}

absl::Status error(const std::string& msg) { return absl::InvalidArgumentError(msg); }

struct Samples {
  std::string dataset;  // where in the file
  torch::Tensor x;      // float [N, 1, 32, 32]
  torch::Tensor labels; // [N] int64 or undefined
};

// The group of the selected cell: "" (plain file), "cell" or "cells/<id>".
absl::StatusOr<std::string> cell_group(const drift::io::H5File& f, const Options& o) {
  if (f.is_dataset("samples")) {
    if (o.cell) return error(absl::StrCat(f.path(), ": --cell given but the file is a plain samples file"));
    return std::string();
  }
  if (!f.is_group("cell") && !f.is_group("cells"))
    return error(absl::StrCat(f.path(), ": no dataset 'samples' [N, 1, 32, 32] and no drift-run "
                                        "results ('cells/<id>' or 'cell')"));
  return drift::io::select_results_cell(f, o.cell);
}

// The group of the cell's samples: `<cell>/samples` by default; with --alpha A
// or --ema R the recorded `<cell>/<kind>_samples/<v>` whose value is A or R,
// or `<cell>/samples` when the value is the default one's (alpha 1, the cell's
// [train] ema). Values compare as numbers, so "2", "2.0" and "2.00" all name
// alpha_samples/2.0. A value that was not recorded is an error that lists the
// recorded ones.
absl::StatusOr<std::string> samples_group(const drift::io::H5File& f, const std::string& cell, const Options& o) {
  const std::string plain = absl::StrCat(cell, "/samples");
  if (!o.variant) return plain;
  const VariantKind& k = *o.variant->kind;
  const std::string& given = o.variant->value;
  double v;
  if (!absl::SimpleAtod(given, &v) || !k.valid(v))
    return error(absl::StrCat(k.option, " '", given, "': expected ", k.expected));
  auto same = [](double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(b)); };
  std::vector<std::string> recorded;
  if (auto d = k.default_value(f, cell)) {
    if (same(*d, v)) return plain;
    recorded.push_back(absl::StrCat(*d));
  }
  const std::string root = absl::StrCat(cell, "/", k.kind, "_samples");
  if (f.is_group(root)) {
    auto names = f.list(root);
    if (!names.ok()) return names.status();
    for (const auto& n : *names) {
      double r;
      if (!absl::SimpleAtod(n, &r)) continue;
      if (same(r, v)) return absl::StrCat(root, "/", n);
      recorded.push_back(n);
    }
  }
  return error(absl::StrCat(f.path(), ": ", cell, " has no samples ", k.phrase, " ", given, " (recorded: ",
                            recorded.empty() ? "none" : absl::StrJoin(recorded, ", "), "; others need ",
                            k.records, ")"));
}

absl::StatusOr<Samples> read_samples(const drift::io::H5File& f, const Options& o) {
  auto g = cell_group(f, o);
  if (!g.ok()) return g.status();
  Samples s;
  std::string labels_name;
  if (g->empty()) {
    if (o.step || o.variant)
      return error(absl::StrCat(f.path(), ": --step/--alpha/--ema need a drift-run results file"));
    s.dataset = "samples";
    labels_name = "labels";
  } else {
    auto variant_dir = samples_group(f, *g, o);
    if (!variant_dir.ok()) return variant_dir.status();
    const std::string dir = *variant_dir;
    if (!f.is_group(dir)) return error(absl::StrCat(f.path(), ": no group '", dir, "' (the cell recorded no samples)"));
    auto names = f.list(dir);
    if (!names.ok()) return names.status();
    std::string chosen;
    for (const auto& n : *names) {
      if (n.size() > 7 && n.substr(n.size() - 7) == "_labels") continue;
      int64_t st;
      if (!absl::SimpleAtoi(n, &st)) continue;
      if (!o.step || *o.step == st) chosen = n;  // names sort by step: the last one wins
    }
    if (chosen.empty())
      return error(absl::StrCat(f.path(), ": no samples in '", dir, "'",
                                o.step ? absl::StrCat(" at step ", *o.step) : std::string()));
    s.dataset = dir + "/" + chosen;
    labels_name = s.dataset + "_labels";
  }
  auto info = f.info(s.dataset);
  if (!info.ok()) return info.status();
  const auto& sh = info->shape;
  const bool dtype_ok = info->dtype == "float32" || info->dtype == "float64" || info->dtype == "uint8";
  if (sh.size() != 4 || sh[1] != 1 || sh[2] != 32 || sh[3] != 32 || sh[0] < 2 || !dtype_ok)
    return error(absl::StrCat(f.path(), ": dataset '", s.dataset,
                              "': expected images [N >= 2, 1, 32, 32] (float in [-1, 1] or uint8), got ",
                              info->dtype, " ", drift::io::shape_string(sh)));
  auto x = f.read(s.dataset);
  if (!x.ok()) return x.status();
  s.x = drift::data::pixels_to_float(*x);
  if (!torch::isfinite(s.x).all().item<bool>())
    return error(absl::StrCat(f.path(), ": dataset '", s.dataset, "': non-finite values"));
  if (f.exists(labels_name)) {
    auto l = f.read(labels_name);
    if (!l.ok()) return l.status();
    if (l->dim() != 1 || l->size(0) != sh[0] || l->is_floating_point() ||
        (l->numel() && (l->min().item<int64_t>() < 0 || l->max().item<int64_t>() >= drift::metrics::kEvaluatorClasses)))
      return error(absl::StrCat(f.path(), ": dataset '", labels_name, "': expected integer labels [",
                                sh[0], "] in [0, 10), got ", drift::io::dtype_name(l->scalar_type()), " ",
                                drift::io::shape_string(*l)));
    s.labels = l->to(torch::kInt64);
  }
  return s;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.10g", v);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  drift::runtime::init_threads();
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const UsageError& e) {
    return fail(absl::StrCat(e.what(), " (drift-eval --help shows the usage)"), 2);
  }
  try {
    if (!o.json.empty()) {
      char a[PATH_MAX], b[PATH_MAX];
      if (o.json == o.in || (realpath(o.in.c_str(), a) && realpath(o.json.c_str(), b) && std::string(a) == b))
        return fail(absl::StrCat("--json ", o.json, ": is the input file (refusing to overwrite it)"));
    }
    auto f = drift::io::H5File::open_read(o.in);
    if (!f.ok()) return fail(std::string(f.status().message()));
    auto s = read_samples(*f, o);
    if (!s.ok()) return fail(std::string(s.status().message()));
    const int64_t n = s->x.size(0);

    auto ev = drift::metrics::Evaluator::load(o.evaluator.empty() ? drift::metrics::default_evaluator_path()
                                                                  : o.evaluator);
    if (!ev.ok()) return fail(std::string(ev.status().message()));
    auto train = drift::data::load_fashion_mnist(o.reference == "validation" ? "fit" : "train", o.data_dir);
    if (!train.ok()) return fail(std::string(train.status().message()));
    if (n > train->images.size(0))
      return fail(absl::StrCat(o.in, ": ", n, " samples, more than the ", train->images.size(0),
                               " training images the floor is drawn from"));
    // The floor: n training images drawn without replacement (seeded).
    auto idx = torch::randperm(train->images.size(0), at::detail::createCPUGenerator(o.seed), torch::kLong)
                   .slice(0, 0, n);
    auto floor_x = drift::data::pixels_to_float(train->images.index_select(0, idx));
    auto floor_y = train->labels.index_select(0, idx);

    std::vector<std::string> metrics = o.metrics;
    auto im = drift::metrics::fashion_mnist_image_metrics(*ev, metrics, floor_x, floor_y, o.k, o.data_dir,
                                                             o.reference);
    if (!im.ok()) return fail(std::string(im.status().message()));
    auto values = im->evaluate(ev->embed(s->x), s->labels);

    if (!o.inception.empty()) {
      auto inc = drift::metrics::InceptionFeatures::load(o.inception);
      if (!inc.ok()) return fail(std::string(inc.status().message()));
      auto test = drift::data::load_fashion_mnist(o.reference, o.data_dir);
      if (!test.ok()) return fail(std::string(test.status().message()));
      auto ref_x = drift::data::pixels_to_float(test->images);
      if (o.n_ref > 0 && o.n_ref < ref_x.size(0)) ref_x = ref_x.slice(0, 0, o.n_ref);
      auto fr = inc->features(ref_x), fg = inc->features(s->x), ff = inc->features(floor_x);
      for (const auto* r : {&fr, &fg, &ff})
        if (!r->ok()) return fail(std::string(r->status().message()));
      auto ref_fit = drift::metrics::fit_gaussian(*fr);
      values.emplace_back("fid_inception", drift::metrics::frechet_distance(drift::metrics::fit_gaussian(*fg), ref_fit));
      values.emplace_back("fid_inception_floor",
                          drift::metrics::frechet_distance(drift::metrics::fit_gaussian(*ff), ref_fit));
    }

    // Table: metric, value, floor.
    std::cout << absl::StrFormat("%s: %s, %d samples%s; reference: Fashion-MNIST %s split; floor: %d "
                                 "training images (seed %d)\n",
                                 o.in, s->dataset, n, s->labels.defined() ? " with labels" : " (no labels)",
                                 o.reference, n, o.seed);
    std::cout << absl::StrFormat("%-16s %12s %12s\n", "metric", "value", "floor");
    auto find = [&](const std::string& name) -> std::optional<double> {
      for (const auto& [k, v] : values)
        if (k == name) return v;
      return std::nullopt;
    };
    for (const auto& [name, v] : values) {
      if (name.size() > 6 && name.substr(name.size() - 6) == "_floor") continue;
      auto fl = find(name + "_floor");
      std::cout << absl::StrFormat("%-16s %12.5g %12s\n", name, v, fl ? absl::StrFormat("%.5g", *fl) : "");
    }

    if (!o.json.empty()) {
      std::string j = absl::StrCat("{\n  \"file\": ", json_string(o.in), ",\n  \"dataset\": ",
                                   json_string(s->dataset), ",\n  \"n\": ", n, ",\n  \"labels\": ",
                                   s->labels.defined() ? "true" : "false", ",\n  \"floor_seed\": ", o.seed,
                                   ",\n  \"evaluator_sha256\": ", json_string(drift::metrics::kEvaluatorSha256),
                                   ",\n  \"metrics\": {");
      for (size_t i = 0; i < values.size(); ++i)
        absl::StrAppend(&j, i ? "," : "", "\n    ", json_string(values[i].first), ": ",
                        json_number(values[i].second));
      absl::StrAppend(&j, "\n  }\n}\n");
      const std::string tmp = absl::StrCat(o.json, ".tmp-", ::getpid());
      {
        std::ofstream out(tmp);
        out << j;
        out.close();
        if (!out) {
          std::remove(tmp.c_str());
          return fail(absl::StrCat("--json ", o.json, ": cannot write ", tmp));
        }
      }
      if (std::rename(tmp.c_str(), o.json.c_str()) != 0) {
        std::remove(tmp.c_str());
        return fail(absl::StrCat("--json ", o.json, ": cannot rename ", tmp, " onto it"));
      }
      std::cout << "wrote " << o.json << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
