// Built-in low-dimensional datasets: the 2-D toys of the paper (Fig. 3) and a
// user's point cloud read from an HDF5 file.
//
// Every dataset samples i.i.d. and is deterministic given the at::Generator it
// is handed (all randomness comes from that generator, on the CPU). Samples are
// float32 [n, D]; labels are int64 [n] where the dataset is labelled, else an
// undefined tensor.
//
//   name             D    labels (num_classes)         modes()
//   bimodal          any  `labeled`: mode index (2)    the two Gaussians
//   eight_gaussians  2    `labeled`: mode index (8)    the eight Gaussians
//   mixture          any  `labeled`: mode index (K)    the K Gaussians (3 std balls)
//   checkerboard     2    none                         none
//   swiss_roll       2    none                         none
//   two_moons        2    `labeled`: moon index (2)    none
//   rings            2    `labeled`: ring index (#rings) none
//   points           any  `labels` dataset (max + 1)   none
//
// Parameters (name, type, default, range, doc) are declared in toy.cpp and
// listed by `drift-run --list-plugins`.
#pragma once

#include "absl/status/status.h"
#include "runtime/registry.hpp"

namespace drift::data {

// Registers the datasets above as built-in components of kind Dataset.
absl::Status register_toy_datasets(drift::runtime::Registry& reg);

}  // namespace drift::data
