#include "drift/version.hpp"

namespace drift {
int sdk_abi_version() { return DRIFT_SDK_ABI_VERSION; }
const char* framework_version() { return DRIFT_FRAMEWORK_VERSION; }
const char* torch_version() { return DRIFT_TORCH_VERSION; }
}  // namespace drift
