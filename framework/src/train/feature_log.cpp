#include "train/feature_log.hpp"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "drift/field.hpp"

namespace drift::train {
namespace {

// [n, *shape] -> the encoder's features of one group of n samples.
std::vector<Feature> encode_group(FeatureEncoder& enc, const torch::Tensor& x) {
  std::vector<int64_t> shape{1};
  for (int64_t d = 0; d < x.dim(); ++d) shape.push_back(x.size(d));
  return enc.encode(x.reshape(shape));
}

}  // namespace

absl::StatusOr<FeatureLogger> FeatureLogger::create(const Params& eval, FeatureEncoder& encoder,
                                                    const std::string& encoder_name,
                                                    const torch::Tensor& real,
                                                    torch::Device device) {
  FeatureLogger out;
  out.names_ = eval.get_string_list("features");
  if (out.names_.empty()) return out;
  out.device_ = device;
  const int64_t n = std::min<int64_t>(eval.get_int("feature_samples"), real.size(0));
  out.real_ = real.slice(0, 0, n).to(device);
  torch::NoGradGuard no_grad;
  std::vector<std::string> have;
  for (const auto& f : encode_group(encoder, out.real_.slice(0, 0, 1))) have.push_back(f.name);
  for (const auto& name : out.names_)
    if (std::find(have.begin(), have.end(), name) == have.end())
      return absl::InvalidArgumentError(absl::StrCat("[eval] features: encoder '", encoder_name,
                                                     "' has no feature \"", name, "\"; it has ",
                                                     absl::StrJoin(have, ", ")));
  return out;
}

FeatureLog FeatureLogger::log(int64_t step, const torch::Tensor& gen, FeatureEncoder& encoder,
                              const DriftKernel& kernel, const Normalizer& normalizer,
                              const std::vector<double>& temperatures) const {
  FeatureLog log;
  log.step = step;
  if (!enabled()) return log;
  torch::NoGradGuard no_grad;
  const int64_t n = real_.size(0);
  auto gf = encode_group(encoder, gen.slice(0, 0, n).to(device_));
  auto rf = encode_group(encoder, real_);
  for (const auto& name : names_)
    for (size_t j = 0; j < gf.size(); ++j) {
      if (gf[j].name != name) continue;
      // [1, L, n, D] -> problems [L, n, D] for the kernel; [n, L, D] for the file.
      const auto& g = gf[j].value.to(torch::kFloat32);
      const auto& r = rf.at(j).value.to(torch::kFloat32);
      DriftInputs in;
      in.gen = g[0];
      in.pos = r[0];
      in.temperatures = temperatures;
      auto out = kernel.compute(canonicalize_drift_inputs(in), normalizer);
      auto m = out.m_tau.to(torch::kCPU, torch::kFloat64);
      FeatureLog::Entry e;
      e.name = name;
      e.gen = g[0].permute({1, 0, 2}).contiguous().to(torch::kCPU);
      e.real = r[0].permute({1, 0, 2}).contiguous().to(torch::kCPU);
      // m_tau is the mean of F^2 over coordinates: D * m_tau is the mean ||F||^2.
      const double D = static_cast<double>(g.size(3));
      for (int64_t t = 0; t < m.numel(); ++t) e.drift_norm.push_back(std::sqrt(D * m[t].item<double>()));
      log.features.push_back(std::move(e));
      break;
    }
  return log;
}

}  // namespace drift::train
