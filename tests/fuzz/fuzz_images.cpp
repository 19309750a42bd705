// Fuzz target: the `images` dataset's HDF5 file (data/images.cpp make_images).
// Property: a dataset whose images have the declared shape, finite pixels in
// [-1, 1] for uint8 files, labels in [0, num_classes); or a one-line error.
#include <torch/torch.h>

#include "drift/dataset.hpp"
#include "fuzz_common.hpp"
#include "fuzz_datasets.hpp"

namespace {
const std::vector<std::string> kNames = {"images", "labels", "x", "images/a", "y"};
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace drift;
  fuzz::warm_registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drift;
  const std::string path = fuzz::scratch_dir() + "/images.h5";
  fuzz::write_h5_input(path, data, size, kNames);
  fuzz::check_dataset("images", {{"path", path}}, /*finite_float_images=*/true);
  fuzz::check_dataset("images", {{"path", path}, {"num_classes", int64_t{3}}}, true);
  fuzz::check_dataset("images", {{"path", path}, {"labels", std::string("")}}, true);
  return 0;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  using namespace drift;
  const std::string tmp = fuzz::scratch_dir() + "/seed.h5";
  auto write = [&](const std::string& name, auto&& fill) {
    auto f = io::H5File::create(tmp);
    if (!f.ok()) fuzz::fail(std::string(f.status().message()));
    fill(*f);
    (void)f->close();
    fuzz::write_seed(dir, name, fuzz::raw_seed(tmp));
  };
  write("uint8_labelled", [](io::H5File& f) {
    (void)f.write("images", torch::arange(4 * 1 * 3 * 3, torch::kUInt8).view({4, 1, 3, 3}));
    (void)f.write("labels", torch::tensor({0, 2, 1, 2}, torch::kInt64));
  });
  write("float_unlabelled", [](io::H5File& f) {
    (void)f.write("images", torch::linspace(-1, 1, 2 * 2 * 2 * 2, torch::kFloat32).view({2, 2, 2, 2}));
  });
  fuzz::write_seed(dir, "spec_images_labels",
                   fuzz::spec_seed({2, 0, 0, 0, 4, 3, 1, 2, 2, 9, 1, 0, 1, 4, 1, 3, 0, 1}));
  fuzz::write_seed(dir, "spec_float64_be", fuzz::spec_seed({1, 0, 0, 8, 4, 1, 1, 2, 2, 0x7f, 0xf0}));
  return 0;
}
