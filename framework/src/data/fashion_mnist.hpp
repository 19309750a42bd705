// Fashion-MNIST (the Debian package `dataset-fashion-mnist`): the one place
// that reads its gzipped IDX files, and the built-in `fashion_mnist` dataset.
//
//   name           sample shape  labels (num_classes)  split (DatasetContext.split)
//   fashion_mnist  [1, 32, 32]   class 0..9 (10)       "train" (60k) or "test" (10k)
//
// The 28x28 images are padded to 32x32 with 2 background pixels (0) on each
// side and mapped to [-1, 1] (so the padding is -1). Sampling: without
// replacement, by epochs; finite and indexed: size() and get(), positions in
// the split (data/images.hpp).
#pragma once

#include <torch/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/registry.hpp"

namespace drift::data {

// Where the Debian package puts the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// One split, whole, as read from the IDX files.
struct FashionMnistSplit {
  torch::Tensor images;  // [N, 1, 32, 32] uint8 (0 = background, padding included)
  torch::Tensor labels;  // [N] int64 in [0, 10)
};

// Reads `dir`/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz for split "train"
// or "test". Read once per process and (dir, split); later calls share the
// tensors (do not modify them). Errors name the file and the Debian package.
// Use pixels_to_float() (data/images.hpp) for [-1, 1] floats.
// split: "train" (60k), "test" (10k), or the training split cut in two:
// "fit" (its first 50k) and "validation" (its last kValidationImages).
constexpr int64_t kValidationImages = 10000;
absl::StatusOr<FashionMnistSplit> load_fashion_mnist(const std::string& split,
                                                     const std::string& dir = kFashionMnistDir);

// Registers `fashion_mnist` as a built-in component of kind Dataset.
absl::Status register_fashion_mnist(drift::runtime::Registry& reg);

}  // namespace drift::data
