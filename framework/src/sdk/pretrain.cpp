#include "drift/pretrain.hpp"

namespace drift {

// The key function: PretrainableEncoder's type information is emitted here, in
// drift_sdk, so dynamic_cast to it works across plugin libraries.
PretrainableEncoder::~PretrainableEncoder() = default;

}  // namespace drift
