// `identity`: the raw sample, flattened, as the only feature (no encoder).
#include <drift/sdk.hpp>

namespace {
class Identity : public drift::FeatureEncoder {
 public:
  std::vector<drift::Feature> encode(const torch::Tensor& x) override {
    const int64_t G = x.size(0), N = x.size(1);
    return {drift::Feature{"raw", x.reshape({G, 1, N, -1})}};
  }
};
}  // namespace

DRIFT_PLUGIN("encoder_identity", r) {
  r.add_encoder("identity", "the raw sample, flattened (one feature, one location)", {},
                [](const drift::Params&, const drift::EncoderContext&)
                    -> absl::StatusOr<std::shared_ptr<drift::FeatureEncoder>> {
                  return std::make_shared<Identity>();
                });
}
