// drift SDK: the feature set of docs/method.md §4, in one place.
//
// An encoder computes feature maps; `feature_set` turns the encoder input and
// those maps into the drift features (each a [G, L, N, D] tensor: G groups, L
// locations = independent drift problems sharing one normalization scale, N
// samples, D dims). Every encoder (the framework's and users') calls it, so all
// encoders yield the same, stably named features:
//
//   name            shape [G, L, N, D]                 what
//   raw             [G, 1, N, C*H*W]                   the input sample, flattened
//   x2              [G, 1, N, C]                       sqrt(mean over H, W of x^2 + 1e-6), per channel
//   <map>.loc       [G, H_i*W_i, N, C_i]               (a) one C_i-vector per location
//   <map>.mean      [G, 1, N, C_i]                     (b) mean over the H_i*W_i locations
//   <map>.std       [G, 1, N, C_i]                     (b) sqrt(var + 1e-6) over the locations
//   <map>.p2.mean   [G, (H_i/2)*(W_i/2), N, C_i]       (c) mean over each 2x2 patch; a patch is a location
//   <map>.p2.std    [G, (H_i/2)*(W_i/2), N, C_i]       (c) sqrt(var + 1e-6) over each 2x2 patch
//   <map>.p4.mean, <map>.p4.std                        (d) the same over 4x4 patches
//
// Patches do not overlap; rows/columns beyond the last whole patch are dropped
// (a 5x5 map has 2x2 patches at rows/columns 0-3). Locations are ordered row
// by row (location l = h * W + w). Skipped, so that no feature is empty or a
// duplicate: p x p patches of a map smaller than p in height or width, or of
// exactly p x p (its one patch is the global statistic (b)); the mean and std
// of a 1x1 map (the mean is its one location (a); its std is 0).
// The variances are population variances; the 1e-6 keeps the gradient finite
// where a statistic is constant. Everything is differentiable w.r.t. x and the maps.
//
// An input that is not image shaped ([G, N, D]) has "raw" only.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "drift/encoder.hpp"
#include "drift/params.hpp"

namespace drift {

// One named feature map of a batch: [G, N, C_i, H_i, W_i].
struct FeatureMap {
  std::string name;
  torch::Tensor value;
};

// Which per-map features (App. A.5 ablation): (a, b), (a-c) or (a-d).
enum class FeatureSubset { AB, AC, AD };

struct FeatureSetOptions {
  FeatureSubset subset = FeatureSubset::AD;
  std::vector<std::string> maps;  // names of the maps to use; empty: all
  bool input_x2 = true;           // the x2 feature (image inputs)
};

// "a,b" | "a-c" | "a-d"; anything else is an error naming `where` and the choices.
absl::StatusOr<FeatureSubset> parse_feature_subset(const std::string& s, const std::string& where);

// Parameters an encoder appends to its own to let users choose the feature set:
// `features` ("a,b" | "a-c" | "a-d", default "a-d"), `maps` (map names, default
// all) and `x2` (bool, default true). Read them back with feature_set_options.
std::vector<ParamSpec> feature_set_params();

// Options from validated params declared with feature_set_params(). Every name
// in `maps` must be one of `available` (the encoder's map names); otherwise an
// error naming `where`, the unknown name and the available ones.
absl::StatusOr<FeatureSetOptions> feature_set_options(const Params& p,
                                                      const std::vector<std::string>& available,
                                                      const std::string& where);

// The feature set of docs/method.md §4 (layout above). x: [G, N, C, H, W] (or
// [G, N, D]); maps: [G, N, C_i, H_i, W_i] each, in the order they are named.
// Throws std::invalid_argument on a map whose leading dims are not x's [G, N].
std::vector<Feature> feature_set(const torch::Tensor& x, const std::vector<FeatureMap>& maps,
                                 const FeatureSetOptions& options = {});

}  // namespace drift
