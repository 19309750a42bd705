// drift-pretrain: pre-trains the encoder weights an experiment's cells need
// (docs/method.md §8), before running it or on another machine.
//
//   drift-pretrain [--cells 0,2-5] [--device cpu|cuda] FILE
//
// For every selected cell whose encoder is pre-trained by the framework
// (mae_resnet, contrastive_resnet, a plugin's PretrainableEncoder) and whose
// weights file does not exist, trains it on the cell's dataset and writes the
// file and its `.sha256` beside it — exactly what `drift-run FILE` would do
// before the first such cell trains. Cells sharing a weights file train it
// once. Prints one line per weights file. Exit status: 0 ok, 1 an error
// (printed, naming the file at fault), 2 usage.
#include <filesystem>
#include <iostream>
#include <set>
#include <string>

#include "config/dry_run.hpp"
#include "config/experiment.hpp"
#include "drift/pretrain.hpp"
#include "runtime/registry.hpp"
#include "runtime/allocator.hpp"
#include "runtime/threads.hpp"
#include "sweep/sweep.hpp"
#include "train/pretrain_stage.hpp"

namespace {

constexpr const char* kUsage = "usage: drift-pretrain [--cells 0,2-5] [--device cpu|cuda] FILE\n";

int run(const std::string& file, const std::string& cells_spec, const std::string& device_name) {
  drift::runtime::Registry reg;
  if (auto st = reg.load_default_paths(); !st.ok()) {
    std::cerr << "drift-pretrain: " << st.message() << "\n";
    return 1;
  }
  auto checked = drift::config::check_experiment_file(file, reg);
  if (!checked.ok()) {
    std::cerr << checked.status().message() << "\n";
    return 1;
  }
  std::vector<size_t> cells;
  if (cells_spec.empty()) {
    for (size_t i = 0; i < checked->cells.size(); ++i) cells.push_back(i);
  } else {
    auto parsed = drift::sweep::parse_cell_list(cells_spec, checked->cells.size());
    if (!parsed.ok()) {
      std::cerr << "drift-pretrain: " << parsed.status().message() << "\n";
      return 2;
    }
    cells = *parsed;
  }
  torch::Device device(device_name == "cuda" ? torch::kCUDA : torch::kCPU);
  if (device.is_cuda() && !torch::hasCUDA()) {
    std::cerr << "drift-pretrain: --device cuda but no CUDA device is available\n";
    return 1;
  }
  std::set<std::string> done;
  for (size_t i : cells) {
    const auto& cfg = checked->cells[i];
    drift::runtime::init_threads(static_cast<int>(cfg.threads));
    drift::DatasetContext dctx;
    dctx.seed = static_cast<uint64_t>(cfg.seed);
    dctx.base_dir = std::filesystem::path(cfg.file).parent_path().string();
    auto data = reg.make_dataset(cfg.data.name, cfg.data.params, dctx);
    if (!data.ok()) {
      std::cerr << data.status().message() << "\n";
      return 1;
    }
    drift::EncoderContext ectx;
    ectx.sample_shape = (*data)->sample_shape();
    ectx.seed = static_cast<uint64_t>(cfg.seed);
    ectx.base_dir = dctx.base_dir;
    auto enc = reg.make_encoder(cfg.encoder.name, cfg.encoder.params, ectx);
    if (!enc.ok()) {
      std::cerr << enc.status().message() << "\n";
      return 1;
    }
    auto* pre = dynamic_cast<drift::PretrainableEncoder*>(enc->get());
    if (pre == nullptr || !done.insert(pre->weights_path()).second) continue;
    auto report = drift::train::ensure_encoder_weights(cfg, reg, **enc, device);
    if (!report.ok()) {
      std::cerr << report.status().message() << "\n";
      return 1;
    }
    std::cout << "cell " << i << ": " << cfg.encoder.name << " " << report->weights
              << (report->pretrained ? " pre-trained in " + std::to_string(report->seconds) + " s"
                                     : std::string(" exists (checksum verified)"))
              << "\n";
  }
  if (done.empty()) std::cout << "no cell of " << file << " uses pre-trained encoder weights\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  drift::runtime::init_allocator();
  std::string file, cells, device = "cpu";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--cells" && i + 1 < argc) cells = argv[++i];
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (!a.empty() && a[0] != '-' && file.empty()) file = a;
    else {
      std::cerr << kUsage;
      return 2;
    }
  }
  if (file.empty() || (device != "cpu" && device != "cuda")) {
    std::cerr << kUsage;
    return 2;
  }
  return run(file, cells, device);
}
