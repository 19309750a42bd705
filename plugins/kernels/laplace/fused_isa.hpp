// Which instruction-set copy of the fused CPU drift field (kernel "laplace",
// impl = "fused") runs. The kernel is compiled three times on x86-64:
//   v4       x86-64-v4 (AVX-512), 64-byte vectors
//   v3       x86-64-v3 (AVX2 + FMA), 32-byte vectors
//   default  x86-64 baseline (SSE2), 16-byte vectors; the only copy elsewhere
// and by default runs the best one the CPU supports. The environment variable
// DRIFT_FUSED_ISA=v4|v3|default forces one (auto or empty: the default
// choice), e.g. to test or time every copy on one machine; a copy the CPU
// cannot run is refused with an error. Read on every call.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace drift::laplace {

// True when this CPU can run the copy `isa` ("v4", "v3" or "default").
inline bool fused_isa_supported(const std::string& isa) {
  if (isa == "default") return true;
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  if (isa == "v4") return __builtin_cpu_supports("x86-64-v4");
  if (isa == "v3") return __builtin_cpu_supports("x86-64-v3");
#endif
  return false;
}

// The copy that runs now: DRIFT_FUSED_ISA if set, else the best supported.
// Throws std::invalid_argument (one line) for an unknown or unsupported value.
inline std::string fused_isa() {
  const char* env = std::getenv("DRIFT_FUSED_ISA");
  const std::string want = env ? env : "";
  if (want.empty() || want == "auto") {
    for (const char* isa : {"v4", "v3"})
      if (fused_isa_supported(isa)) return isa;
    return "default";
  }
  if (want != "v4" && want != "v3" && want != "default")
    throw std::invalid_argument("DRIFT_FUSED_ISA must be auto, v4, v3 or default, got '" + want + "'");
  if (!fused_isa_supported(want))
    throw std::invalid_argument("DRIFT_FUSED_ISA=" + want + ": this CPU cannot run that copy of the fused drift field (" +
                                (want == "v4" ? "x86-64-v4: AVX-512" : "x86-64-v3: AVX2 + FMA") + ")");
  return want;
}

}  // namespace drift::laplace
