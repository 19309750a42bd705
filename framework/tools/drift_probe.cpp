// drift-probe: linear-probe accuracy of the encoders of an experiment's cells
// on Fashion-MNIST (metrics/linear_probe.hpp), the way SSL papers measure an
// encoder: a softmax classifier on frozen features, fitted on the first 50k
// training images, its weight decay chosen on the last 10k (validation), its
// accuracy reported on the 10k test images.
//
//   drift-probe [--cells 0,2-5] [--fit N] FILE
//
// Encoders whose weights file is missing are pre-trained first, as drift-run
// would. Prints a Markdown table, one row per selected cell. Exit status: 0 ok,
// 1 an error (printed, naming the file or cell), 2 usage.
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>

#include "absl/strings/str_format.h"
#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "metrics/linear_probe.hpp"
#include "runtime/registry.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"
#include "sweep/sweep.hpp"
#include "train/pretrain_stage.hpp"

namespace {

constexpr const char* kUsage = "usage: drift-probe [--cells 0,2-5] [--fit N] FILE\n";

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  std::string file, cells_spec;
  int64_t n_fit = 50000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--cells" && i + 1 < argc) cells_spec = argv[++i];
    else if (a == "--fit" && i + 1 < argc) n_fit = std::atoll(argv[++i]);
    else if (!a.empty() && a[0] != '-' && file.empty()) file = a;
    else {
      std::cerr << kUsage;
      return 2;
    }
  }
  if (file.empty() || n_fit < 10 || n_fit > 50000) {
    std::cerr << kUsage << "(--fit: 10 to 50000 images)\n";
    return 2;
  }
  drift::runtime::Registry reg;
  auto loaded = drift::sweep::load_all(file, reg);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return 1;
  }
  auto cells = drift::sweep::select_cells(cells_spec, loaded->cells.size());
  if (!cells.ok()) {
    std::cerr << "drift-probe: " << cells.status().message() << "\n";
    return 2;
  }
  auto train = drift::data::load_fashion_mnist("train");
  auto test = drift::data::load_fashion_mnist("test");
  if (!train.ok() || !test.ok()) {
    std::cerr << "drift-probe: " << (train.ok() ? test.status() : train.status()).message() << "\n";
    return 1;
  }
  // Fit: the first n_fit of the first 50k training images; validation: the
  // last 10k training images; test: the test split.
  const torch::Tensor fit_x = drift::data::pixels_to_float(train->images.slice(0, 0, n_fit));
  const torch::Tensor fit_y = train->labels.slice(0, 0, n_fit);
  const torch::Tensor val_x = drift::data::pixels_to_float(train->images.slice(0, 50000, 60000));
  const torch::Tensor val_y = train->labels.slice(0, 50000, 60000);
  const torch::Tensor test_x = drift::data::pixels_to_float(test->images);

  std::cout << "| cell | encoder | features | weight decay | validation accuracy | test accuracy | probe CPU s |\n"
            << "|---:|---|---:|---:|---:|---:|---:|\n";
  for (size_t i : *cells) {
    const auto& cfg = loaded->cells[i];
    drift::runtime::init_threads(static_cast<int>(cfg.threads));
    drift::EncoderContext ectx;
    ectx.sample_shape = {1, 32, 32};
    ectx.base_dir = std::filesystem::path(cfg.file).parent_path().string();
    auto enc = reg.make_encoder(cfg.encoder.name, cfg.encoder.params, ectx);
    if (!enc.ok()) {
      std::cerr << "drift-probe: cell " << i << ": " << enc.status().message() << "\n";
      return 1;
    }
    auto pre = drift::train::ensure_encoder_weights(cfg, reg, **enc, torch::Device(torch::kCPU));
    if (!pre.ok()) {
      std::cerr << "drift-probe: cell " << i << ": " << pre.status().message() << "\n";
      return 1;
    }
    (*enc)->eval();
    const double c0 = static_cast<double>(std::clock()) / CLOCKS_PER_SEC;
    auto r = drift::metrics::linear_probe(drift::metrics::probe_features(**enc, fit_x), fit_y,
                                          drift::metrics::probe_features(**enc, val_x), val_y,
                                          drift::metrics::probe_features(**enc, test_x), test->labels, 10);
    const double cpu = static_cast<double>(std::clock()) / CLOCKS_PER_SEC - c0;
    std::cout << absl::StrFormat("| %d | %s | %d | %g | %.4f | %.4f | %.0f |\n", i, cfg.encoder.name, r.features,
                                 r.weight_decay, r.val_accuracy, r.test_accuracy, cpu)
              << std::flush;
  }
  return 0;
}
