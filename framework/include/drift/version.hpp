// drift SDK: versions a plugin is checked against when it is loaded.
#pragma once

// Bumped whenever a type in the SDK headers changes layout or meaning.
// A plugin built against another ABI version is refused at load time.
#define DRIFT_SDK_ABI_VERSION 4

#define DRIFT_FRAMEWORK_VERSION "0.1.0"

// Version of LibTorch the including translation unit is compiled against.
#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#else
#include <torch/version.h>
#endif
#define DRIFT_STRINGIFY_IMPL(x) #x
#define DRIFT_STRINGIFY(x) DRIFT_STRINGIFY_IMPL(x)
#define DRIFT_TORCH_VERSION                                                   \
  DRIFT_STRINGIFY(TORCH_VERSION_MAJOR) "." DRIFT_STRINGIFY(TORCH_VERSION_MINOR) \
  "." DRIFT_STRINGIFY(TORCH_VERSION_PATCH)

namespace drift {
// The values the framework itself was built with (defined in libdrift_sdk).
int sdk_abi_version();
const char* framework_version();
const char* torch_version();
}  // namespace drift
