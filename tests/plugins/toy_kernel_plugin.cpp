// A tiny plugin used by the loader tests. Compile definitions turn it into a
// plugin built for another ABI or LibTorch version.
#include <drift/sdk.hpp>

#ifdef DRIFT_TEST_ABI_OVERRIDE
#undef DRIFT_SDK_ABI_VERSION
#define DRIFT_SDK_ABI_VERSION DRIFT_TEST_ABI_OVERRIDE
#endif
#ifdef DRIFT_TEST_TORCH_OVERRIDE
#undef DRIFT_TORCH_VERSION
#define DRIFT_TORCH_VERSION DRIFT_TEST_TORCH_OVERRIDE
#endif
#ifndef DRIFT_TEST_KERNEL_NAME
#define DRIFT_TEST_KERNEL_NAME "toy_zero"
#endif

namespace {
// A kernel whose drift is always zero: the goal is the (scaled) sample itself.
class ZeroKernel : public drift::DriftKernel {
 public:
  explicit ZeroKernel(double scale) : scale_(scale) {}
  drift::DriftOutputs compute(const drift::DriftInputs& in, const drift::Normalizer&) const override {
    drift::DriftOutputs out;
    auto old = in.gen.detach();
    out.coord_scale = torch::full({}, scale_, old.options());
    out.scale = torch::full({}, scale_, old.options());
    out.V = torch::zeros_like(old);
    out.goal = old / scale_;
    out.m_tau = torch::zeros({static_cast<int64_t>(in.temperatures.size())}, old.options());
    return out;
  }
 private:
  double scale_;
};
}  // namespace

DRIFT_PLUGIN("toy_test_plugin", r) {
  r.add_kernel(DRIFT_TEST_KERNEL_NAME, "zero drift (test plugin)",
               {drift::ParamSpec::Float("scale", 1.0, "coordinate divisor").positive()},
               [](const drift::Params& p) -> absl::StatusOr<std::unique_ptr<drift::DriftKernel>> {
                 return std::make_unique<ZeroKernel>(p.get_float("scale"));
               });
}
