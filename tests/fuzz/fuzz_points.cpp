// Fuzz target: the `points` dataset's HDF5 file (data/toy.cpp make_points).
// Property: the file gives a dataset whose samples have the declared shape and
// labels in [0, num_classes), or a one-line error; never a crash or a hang.
#include <torch/torch.h>

#include "drift/dataset.hpp"
#include "fuzz_common.hpp"
#include "fuzz_datasets.hpp"

namespace {
const std::vector<std::string> kNames = {"x", "y", "labels", "points", "x/y", "z"};
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace drift;
  fuzz::warm_registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drift;
  const std::string path = fuzz::scratch_dir() + "/points.h5";
  fuzz::write_h5_input(path, data, size, kNames);
  // The unlabelled default, and labels from `y`.
  for (const char* labels : {"", "y"}) {
    fuzz::check_dataset("points", {{"path", path}, {"dataset", std::string("x")}, {"labels", std::string(labels)}},
                        /*finite_float_images=*/false);
  }
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
  write("valid_unlabelled", [](io::H5File& f) { (void)f.write("x", torch::arange(12, torch::kFloat32).view({6, 2})); });
  write("valid_labelled", [](io::H5File& f) {
    (void)f.write("x", torch::arange(8, torch::kFloat64).view({4, 2}));
    (void)f.write("y", torch::tensor({0, 1, 2, 1}, torch::kInt64));
  });
  write("uint8_points", [](io::H5File& f) {
    (void)f.write("x", torch::ones({3, 3}, torch::kUInt8));
    (void)f.write("y", torch::tensor({0, 0, 1}, torch::kUInt8));
  });
  // Spec seeds: x float32 [5, 2] + y int64 [5]; x int32 [0, 3]; only y.
  fuzz::write_seed(dir, "spec_x_y", fuzz::spec_seed({2, 0, 0, 6, 2, 5, 2, 1, 2, 0, 1, 4, 1, 5, 3, 0}));
  fuzz::write_seed(dir, "spec_empty_x", fuzz::spec_seed({1, 0, 0, 3, 2, 0, 3, 7, 7}));
  fuzz::write_seed(dir, "spec_string_x", fuzz::spec_seed({1, 0, 0, 12, 2, 2, 2, 3, 97, 98, 99}));
  return 0;
}
