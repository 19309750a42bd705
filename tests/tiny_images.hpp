// A small synthetic image dataset for encoder tests: `tiny_images`, 1 x 16 x 16
// in [-1, 1], 4 classes; class k is a Gaussian blob centred in quadrant k,
// jittered by up to 2 pixels, random amplitude, on a -1 background, plus
// noise of std 0.05. Structure an autoencoder can learn (smooth blobs) and a
// contrastive encoder can tell apart (where the blob is).
#pragma once

#include <memory>

#include "drift/dataset.hpp"
#include "drift/plugin.hpp"
#include "runtime/registry.hpp"

namespace drift::test {

class TinyImages : public Dataset {
 public:
  std::vector<int64_t> sample_shape() const override { return {1, 16, 16}; }
  int64_t num_classes() const override { return 4; }
  DataBatch sample(int64_t n, at::Generator& rng) override {
    auto labels = torch::randint(0, 4, {n}, rng, torch::kLong);
    auto jitter = torch::randint(-2, 3, {n, 2}, rng, torch::kLong).to(torch::kFloat32);
    auto amp = 1.0 + torch::rand({n}, rng);
    auto cy = 4.0 + 8.0 * (labels / 2).to(torch::kFloat32) + jitter.select(1, 0);
    auto cx = 4.0 + 8.0 * (labels % 2).to(torch::kFloat32) + jitter.select(1, 1);
    auto grid = torch::arange(16, torch::kFloat32);
    auto dy = grid.view({1, 16, 1}) - cy.view({n, 1, 1});
    auto dx = grid.view({1, 1, 16}) - cx.view({n, 1, 1});
    auto blob = amp.view({n, 1, 1}) * torch::exp(-(dy * dy + dx * dx) / 8.0);
    auto x = -1.0 + blob + 0.05 * torch::randn({n, 16, 16}, rng);
    return {x.clamp(-1, 1).unsqueeze(1).to(torch::kFloat32), labels};
  }
};

// Adds `tiny_images` to reg as a built-in dataset (once).
inline void add_tiny_images(runtime::Registry& reg) {
  if (reg.find(ComponentKind::Dataset, "tiny_images")) return;
  ComponentInfo info;
  info.kind = ComponentKind::Dataset;
  info.name = "tiny_images";
  info.doc = "test images: 4 classes of Gaussian blobs, 1 x 16 x 16";
  info.factory = DatasetFactory([](const Params&, const DatasetContext&)
                                    -> absl::StatusOr<std::unique_ptr<Dataset>> {
    return std::make_unique<TinyImages>();
  });
  (void)reg.add_builtin(std::move(info));
}

}  // namespace drift::test
