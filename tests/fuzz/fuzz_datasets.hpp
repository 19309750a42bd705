// The dataset targets' common check (fuzz_points.cpp, fuzz_images.cpp).
#pragma once

#include <map>
#include <string>

#include "drift/params.hpp"

namespace drift::fuzz {
// Makes dataset `name` with `given` parameters through the registry with the
// built-in components; an error must be one line. A dataset must keep its
// promises: num_classes() >= 0, sample() and (when indexed) get() give
// [n, *sample_shape()] float32 values, finite when `finite_float_images`,
// labels in [0, num_classes()) exactly when num_classes() > 0.
// Builds the registry (before the first input, so that -fork=1 children share it).
void warm_registry();
void check_dataset(const std::string& name, const std::map<std::string, ParamValue>& given,
                   bool finite_float_images);
}  // namespace drift::fuzz
