// drift-export: a trained generator of a drift-run results file as a
// TorchScript file for PyTorch (export/export_generator.hpp, docs/guide/export.md).
//
//   drift-export RESULTS.h5 [--cell ID] [--out FILE.pt] [--batch B]
//
// Any error: one line on stderr naming the file, cell or dataset at fault, exit
// status 1 (2 for a usage error); the output file is then not written.
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "export/export_generator.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: drift-export RESULTS.h5 [--cell ID] [--out FILE.pt] [--batch B]\n"
    "Writes the trained generator of a finished cell (its EMA weights, /cells/<id>/generator)\n"
    "as a TorchScript file: in Python, m = torch.jit.load(FILE.pt); m.sample(n, labels, alpha)\n"
    "draws n samples from torch's default generator (torch.manual_seed seeds it);\n"
    "m.forward(labels, alpha) is one traced batch of exactly B samples.\n"
    "--cell: needed when the file has several cells. --out: default <results stem>_<cell>.pt\n"
    "beside RESULTS.h5. --batch: the traced batch size B (default: the cell's [eval]\n"
    "n_samples, so that torch.manual_seed(m.eval_noise_seed); m(labels, alpha) reproduces the\n"
    "cell's recorded samples).\n";

int fail(const std::string& msg, int code = 1) {
  std::string line = msg;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  std::cerr << "drift-export: " << line << (code == 2 ? " (drift-export --help shows the usage)" : "")
            << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  drift::runtime::init_threads();
  drift::exporter::ExportOptions o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      positional.push_back(a);
      continue;
    }
    if (i + 1 >= argc) return fail(absl::StrCat(a, " needs a value"), 2);
    const std::string v = argv[++i];
    int64_t n;
    if (a == "--cell") o.cell = v;
    else if (a == "--out") o.out = v;
    else if (a == "--batch" && absl::SimpleAtoi(v, &n) && n >= 1) o.batch = n;
    else return fail(absl::StrCat("unknown option or bad value '", a, " ", v, "'"), 2);
  }
  if (positional.size() != 1)
    return fail(absl::StrCat("expected one RESULTS.h5, got ", positional.size(), " file arguments"), 2);
  o.results = positional[0];
  if (o.out.empty()) {
    std::filesystem::path p(o.results);
    std::string cell = o.cell ? *o.cell : "";
    int64_t n;
    if (absl::SimpleAtoi(cell, &n) && n >= 0) cell = absl::StrCat(n);
    o.out = (p.parent_path() / (p.stem().string() + (cell.empty() ? "" : "_" + cell) + ".pt")).string();
  }
  if (std::filesystem::exists(o.out) && std::filesystem::equivalent(o.out, o.results))
    return fail(absl::StrCat("--out ", o.out, ": is the input file (refusing to overwrite it)"));
  try {
    auto rep = drift::exporter::export_generator(o);
    if (!rep.ok()) return fail(std::string(rep.status().message()));
    std::cout << "drift-export: " << o.results << " " << rep->cell_group << ": generator '"
              << rep->generator << "' (" << rep->parameters << " parameters, samples ["
              << absl::StrJoin(rep->sample_shape, ", ") << "], "
              << (rep->policy ? std::string("a policy: forward(obs, noise) -> actions, as drift-rollout runs it")
                  : rep->n_classes > 0 ? absl::StrCat(rep->n_classes, " classes") : "unconditional")
              << ", traced at batch " << rep->batch << ") -> " << o.out << "\n";
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
