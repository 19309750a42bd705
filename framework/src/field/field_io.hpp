// The drift-field file layout (the layout of tests/golden/*.h5, see
// docs/method.md §2 and tests/golden/README.md).
//
// Input, at the root of the file:
//   gen [B, Cg, S], pos [B, Cp, S]        float32 or float64, required
//   neg [B, Cn, S]                        optional (absent: Cn = 0)
//   weight_gen [B, Cg], weight_pos [B, Cp], weight_neg [B, Cn]   optional (absent: ones)
//   attribute `temperatures` on `/`       float list (may be overridden by the caller)
// Output (written by write_field_outputs, at the root, all float64):
//   goal [B, Cg, S], V [B, Cg, S], loss [B], scale [], coord_scale [],
//   loss_per_temperature [n]; attributes temperatures, kernel, normalizer.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "drift/field.hpp"

namespace drift::field {

// Reads and validates a drift-field input file; tensors are converted to
// `dtype` (float32 or float64). Every error names the file, the dataset and the
// expected shape. With `temperatures` given, the file's attribute is not
// needed (and ignored); otherwise it must be present and non-empty.
absl::StatusOr<DriftInputs> read_field_inputs(
    const std::string& path, torch::ScalarType dtype,
    const std::optional<std::vector<double>>& temperatures = std::nullopt);

// What write_field_outputs stores besides the kernel outputs.
struct FieldRunInfo {
  std::string kernel;
  std::string normalizer;
  std::vector<double> temperatures;
};

// Writes the outputs (converted to float64) atomically to `path`: on error
// `path` is not created (or left as it was).
absl::Status write_field_outputs(const std::string& path, const DriftOutputs& out,
                                 const torch::Tensor& loss, const FieldRunInfo& info);

}  // namespace drift::field
