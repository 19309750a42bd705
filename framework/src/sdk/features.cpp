// The feature set of docs/method.md §4 (layout documented in drift/features.hpp).
#include "drift/features.hpp"

#include <algorithm>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drift {
namespace {

constexpr double kVarEps = 1e-6;

// [G, N, C, A, B] -> [G, A*B, N, C]: every spatial position a location.
torch::Tensor as_locations(const torch::Tensor& m) {
  const int64_t G = m.size(0), N = m.size(1), C = m.size(2);
  return m.permute({0, 3, 4, 1, 2}).reshape({G, m.size(3) * m.size(4), N, C});
}

// Mean and std over non-overlapping p x p patches of m [G, N, C, H, W], each
// [G, (H/p)*(W/p), N, C].
std::pair<torch::Tensor, torch::Tensor> patch_stats(const torch::Tensor& m, int64_t p) {
  const int64_t G = m.size(0), N = m.size(1), C = m.size(2);
  const int64_t hp = m.size(3) / p, wp = m.size(4) / p;
  auto t = m.slice(3, 0, hp * p).slice(4, 0, wp * p).reshape({G, N, C, hp, p, wp, p});
  auto mean = t.mean({4, 6}, /*keepdim=*/true);
  auto var = (t - mean).pow(2).mean({4, 6});
  mean = mean.squeeze(6).squeeze(4);
  return {as_locations(mean), as_locations((var + kVarEps).sqrt())};
}

}  // namespace

absl::StatusOr<FeatureSubset> parse_feature_subset(const std::string& s, const std::string& where) {
  if (s == "a,b") return FeatureSubset::AB;
  if (s == "a-c") return FeatureSubset::AC;
  if (s == "a-d") return FeatureSubset::AD;
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": feature subset \"", s, "\" is not one of \"a,b\", \"a-c\", \"a-d\""));
}

std::vector<ParamSpec> feature_set_params() {
  return {ParamSpec::String("features", "a-d",
                            "Per-map features (docs/method.md §4, App. A.5): \"a,b\" per-location "
                            "vectors + global mean/std; \"a-c\" adds 2x2-patch mean/std; \"a-d\" "
                            "adds 4x4-patch mean/std.")
              .one_of({"a,b", "a-c", "a-d"}),
          ParamSpec::StringList("maps", {},
                                "Names of the feature maps to use (see the encoder's doc); empty: "
                                "all."),
          ParamSpec::Bool("x2", true,
                          "Include sqrt(mean of x^2 over locations) per input channel (feature "
                          "\"x2\").")};
}

absl::StatusOr<FeatureSetOptions> feature_set_options(const Params& p,
                                                      const std::vector<std::string>& available,
                                                      const std::string& where) {
  FeatureSetOptions o;
  auto subset = parse_feature_subset(p.get_string("features"), where + " 'features'");
  if (!subset.ok()) return subset.status();
  o.subset = *subset;
  o.input_x2 = p.get_bool("x2");
  o.maps = p.get_string_list("maps");
  for (const auto& m : o.maps)
    if (std::find(available.begin(), available.end(), m) == available.end())
      return absl::InvalidArgumentError(absl::StrCat(where, " 'maps': no feature map \"", m,
                                                     "\"; this encoder has ",
                                                     absl::StrJoin(available, ", ")));
  return o;
}

std::vector<Feature> feature_set(const torch::Tensor& x, const std::vector<FeatureMap>& maps,
                                 const FeatureSetOptions& options) {
  if (x.dim() < 3)
    throw std::invalid_argument(
        absl::StrCat("feature_set: input has ", x.dim(), " dims; expected [G, N, ...]"));
  const int64_t G = x.size(0), N = x.size(1);
  std::vector<Feature> out;
  out.push_back({"raw", x.reshape({G, 1, N, -1})});
  if (x.dim() == 5 && options.input_x2)
    out.push_back({"x2", (x.pow(2).mean({3, 4}) + kVarEps).sqrt().unsqueeze(1)});

  for (const auto& fm : maps) {
    if (!options.maps.empty() &&
        std::find(options.maps.begin(), options.maps.end(), fm.name) == options.maps.end())
      continue;
    const auto& m = fm.value;
    if (m.dim() != 5 || m.size(0) != G || m.size(1) != N)
      throw std::invalid_argument(absl::StrCat("feature_set: map \"", fm.name, "\" has shape ",
                                               c10::str(m.sizes()), "; expected [", G, ", ", N,
                                               ", C, H, W]"));
    const int64_t H = m.size(3), W = m.size(4);
    out.push_back({fm.name + ".loc", as_locations(m)});  // (a)
    if (H * W > 1) {                                     // (b)
      auto mean = m.mean({3, 4});
      auto var = m.var({3, 4}, /*unbiased=*/false);
      out.push_back({fm.name + ".mean", mean.unsqueeze(1)});
      out.push_back({fm.name + ".std", (var + kVarEps).sqrt().unsqueeze(1)});
    }
    std::vector<int64_t> patches;
    if (options.subset != FeatureSubset::AB) patches.push_back(2);   // (c)
    if (options.subset == FeatureSubset::AD) patches.push_back(4);   // (d)
    for (int64_t p : patches) {
      if (H < p || W < p || (H == p && W == p)) continue;
      auto [mean, std] = patch_stats(m, p);
      out.push_back({absl::StrCat(fm.name, ".p", p, ".mean"), mean});
      out.push_back({absl::StrCat(fm.name, ".p", p, ".std"), std});
    }
  }
  return out;
}

}  // namespace drift
