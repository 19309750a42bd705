// drift-field: computes the drift field of one input file (golden layout) and
// writes goal, V, loss, scale, coord_scale and loss_per_temperature to OUT.h5.
//
//   drift-field IN.h5 OUT.h5 [--kernel NAME] [--normalizer NAME]
//               [--temperatures 0.02,0.05,0.2] [--dtype float32|float64]
//               [--plugin-path P]...
//
// On any error: one line "drift-field: <message>" on stderr, exit status 1
// (2 for a usage error), and OUT.h5 is not created (it is written atomically,
// after everything else succeeded).
#include <torch/torch.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "drift/field.hpp"
#include "field/field_io.hpp"
#include "runtime/registry.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-field IN.h5 OUT.h5 [--kernel NAME] [--normalizer NAME]\n"
    "                   [--temperatures T1,T2,...] [--dtype float32|float64] [--plugin-path P]...\n"
    "Computes the drift field (docs/method.md §2) of the problems in IN.h5 (datasets gen, pos,\n"
    "optional neg and weight_gen/weight_pos/weight_neg, attribute temperatures) and writes\n"
    "goal, V, loss, scale, coord_scale and loss_per_temperature (float64) to OUT.h5.\n"
    "Defaults: --kernel laplace --normalizer feature_drift --dtype float64, temperatures from\n"
    "IN.h5. --plugin-path adds a plugin file or directory (repeatable).\n";

struct Options {
  std::string in, out;
  std::string kernel = "laplace";
  std::string normalizer = "feature_drift";
  std::optional<std::vector<double>> temperatures;
  torch::ScalarType dtype = torch::kFloat64;
  std::vector<std::string> plugin_paths;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<double> parse_temperatures(const std::string& s) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    double v;
    if (!absl::SimpleAtod(part, &v) || !(v > 0) || !std::isfinite(v))
      throw UsageError(absl::StrCat("--temperatures: '", part,
                                    "' is not a positive number (expected e.g. 0.02,0.05,0.2)"));
    out.push_back(v);
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (a.rfind("--", 0) == 0) {
      std::string key = a, value;
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        key = a.substr(0, eq);
        value = a.substr(eq + 1);
      } else {
        if (i + 1 >= argc) throw UsageError(absl::StrCat(key, " needs a value"));
        value = argv[++i];
      }
      if (key == "--kernel") o.kernel = value;
      else if (key == "--normalizer") o.normalizer = value;
      else if (key == "--temperatures") o.temperatures = parse_temperatures(value);
      else if (key == "--plugin-path") o.plugin_paths.push_back(value);
      else if (key == "--dtype") {
        if (value == "float32") o.dtype = torch::kFloat32;
        else if (value == "float64") o.dtype = torch::kFloat64;
        else throw UsageError(absl::StrCat("--dtype: '", value, "', expected float32 or float64"));
      } else {
        throw UsageError(absl::StrCat("unknown option '", key, "'"));
      }
      continue;
    }
    positional.push_back(a);
  }
  if (positional.size() != 2)
    throw UsageError(absl::StrCat("expected IN.h5 and OUT.h5, got ", positional.size(),
                                  " file argument(s)"));
  o.in = positional[0];
  o.out = positional[1];
  return o;
}

// One line: newlines in a message (e.g. from LibTorch) become spaces.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int fail(const std::string& msg, int code = 1) {
  std::cerr << "drift-field: " << one_line(msg) << "\n";
  return code;
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  drift::runtime::init_threads();
  Options opt;
  try {
    opt = parse(argc, argv);
  } catch (const UsageError& e) {
    return fail(absl::StrCat(e.what(), " (drift-field --help shows the usage)"), 2);
  }

  try {
    drift::runtime::Registry reg;
    absl::Status st = reg.load_default_paths();
    if (!st.ok()) return fail(std::string(st.message()));
    for (const auto& p : opt.plugin_paths) {
      st = reg.load_path(p);
      if (!st.ok()) return fail(absl::StrCat("--plugin-path: ", st.message()));
    }
    auto kparams = reg.validate(drift::ComponentKind::Kernel, opt.kernel, {}, "--kernel");
    if (!kparams.ok()) return fail(std::string(kparams.status().message()));
    auto kernel = reg.make_kernel(opt.kernel, *kparams);
    if (!kernel.ok()) return fail(std::string(kernel.status().message()));
    auto nparams =
        reg.validate(drift::ComponentKind::Normalizer, opt.normalizer, {}, "--normalizer");
    if (!nparams.ok()) return fail(std::string(nparams.status().message()));
    auto norm = reg.make_normalizer(opt.normalizer, *nparams);
    if (!norm.ok()) return fail(std::string(norm.status().message()));

    auto raw = drift::field::read_field_inputs(opt.in, opt.dtype, opt.temperatures);
    if (!raw.ok()) return fail(std::string(raw.status().message()));
    drift::DriftInputs in;
    try {
      in = drift::canonicalize_drift_inputs(*raw);
    } catch (const std::invalid_argument& e) {
      return fail(absl::StrCat(opt.in, ": ", e.what()));
    }

    drift::DriftOutputs out;
    torch::Tensor loss;
    {
      torch::NoGradGuard no_grad;
      out = (*kernel)->compute(in, **norm);
      loss = drift::drift_loss(in.gen, out);
    }
    for (const auto& [name, t] : {std::pair<const char*, torch::Tensor>{"goal", out.goal},
                                  {"V", out.V}, {"m_tau", out.m_tau}, {"scale", out.scale},
                                  {"coord_scale", out.coord_scale}})
      if (!t.defined())
        return fail(absl::StrCat("kernel '", opt.kernel, "' returned no '", name, "'"));

    drift::field::FieldRunInfo info{opt.kernel, opt.normalizer, in.temperatures};
    st = drift::field::write_field_outputs(opt.out, out, loss, info);
    if (!st.ok()) return fail(std::string(st.message()));

    const auto m = out.m_tau.to(torch::kCPU, torch::kFloat64);
    std::ostringstream s;
    s << opt.in << ": B=" << in.gen.size(0) << " problems, Cg=" << in.gen.size(1)
      << " generated, Cp=" << in.pos.size(1) << " positives, Cn=" << in.neg.size(1)
      << " negatives, S=" << in.gen.size(2) << " dims; kernel " << opt.kernel << ", normalizer "
      << opt.normalizer << ", " << (opt.dtype == torch::kFloat32 ? "float32" : "float64")
      << ". scale=" << fmt(out.scale.item<double>())
      << ", coord_scale=" << fmt(out.coord_scale.item<double>()) << "; m_tau:";
    for (size_t i = 0; i < in.temperatures.size(); ++i)
      s << (i ? "," : "") << " tau=" << fmt(in.temperatures[i]) << " -> "
        << fmt(m[static_cast<int64_t>(i)].item<double>());
    s << "; mean loss=" << fmt(loss.mean().item<double>())
      << (torch::isfinite(out.V).all().item<bool>() ? "" : " (WARNING: V has non-finite values)")
      << ". Wrote " << opt.out << ".";
    std::cout << s.str() << "\n";
    return 0;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
