// Image datasets held in memory, and the built-in `images` dataset: a user's
// image set from an HDF5 file (the way a GPU user brings ImageNet latents or
// any other data).
//
//   name    sample shape  labels (num_classes)
//   images  [C, H, W]     optional `labels` dataset ([data] num_classes, or max + 1)
//
// Pixels: uint8 images are mapped to [-1, 1] (x / 127.5 - 1) batch by batch
// (the set stays uint8 in memory); float images are taken as they are.
//
// Both are finite and indexed: Dataset::size() is the number of images, get()
// returns the images at given positions, and sample() fills DataBatch::index.
//
// Sampling: without replacement, by epochs. The first sample() call (and every
// call that exhausts the current epoch) draws a fresh permutation of the whole
// set from the generator it is handed; later calls continue along it. So one
// epoch visits every image exactly once, and the draws are deterministic given
// the sequence of generators passed to sample() on a fresh dataset.
// DatasetContext.split is ignored by `images` (one set per file).
#pragma once

#include <torch/types.h>

#include <memory>

#include "absl/status/status.h"
#include "drift/dataset.hpp"
#include "runtime/registry.hpp"

namespace drift::data {

// uint8 pixels -> float32 in [-1, 1]; float tensors -> float32 unchanged.
torch::Tensor pixels_to_float(const torch::Tensor& images);

// A Dataset over in-memory images [N, C, H, W] (uint8 or float) and labels
// ([N] int64 in [0, num_classes), or undefined with num_classes = 0), sampled
// by epochs as described above. The tensors are shared, not copied.
std::unique_ptr<Dataset> make_in_memory_image_dataset(torch::Tensor images, torch::Tensor labels,
                                                      int64_t num_classes);

// Registers `images` as a built-in component of kind Dataset.
absl::Status register_image_datasets(drift::runtime::Registry& reg);

}  // namespace drift::data
