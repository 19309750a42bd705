// Shared by the drift-field tests that compare an implementation of kernel
// "laplace" against the plain reference (test_fused_field, test_cuda_field):
// the random-input cases, building them, running one impl, comparing outputs.
#pragma once

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "drift/field.hpp"
#include "test_util.hpp"

namespace drift::test {

// Kernel laplace's parameters: `impl` plus any others (e.g. the affinity floor).
inline drift::Params impl_params(const std::string& impl,
                                 std::map<std::string, drift::ParamValue> extra = {}) {
  extra["impl"] = drift::ParamValue(impl);
  return drift::Params(std::move(extra));
}

// The field of kernel laplace with `impl` and `normalizer` (and further kernel
// parameters `extra`); CUDA errors surface here.
inline drift::DriftOutputs compute(const drift::DriftInputs& raw, const std::string& impl,
                                   const std::string& normalizer = "feature_drift",
                                   std::map<std::string, drift::ParamValue> extra = {}) {
  auto& reg = default_registry();
  auto k = reg.make_kernel("laplace", impl_params(impl, std::move(extra)));
  auto n = reg.make_normalizer(normalizer, {});
  if (!k.ok()) throw std::runtime_error(std::string(k.status().message()));
  if (!n.ok()) throw std::runtime_error(std::string(n.status().message()));
  const auto in = drift::canonicalize_drift_inputs(raw);
  torch::NoGradGuard ng;
  auto out = (*k)->compute(in, **n);
  if (out.V.is_cuda()) torch::cuda::synchronize();  // surface asynchronous errors here
  return out;
}

// ||out - ref|| / ||ref|| in float64 on the CPU.
inline double rel_err(const torch::Tensor& out, const torch::Tensor& ref) {
  auto o = out.detach().to(torch::kCPU, torch::kFloat64).reshape(-1);
  auto r = ref.detach().to(torch::kCPU, torch::kFloat64).reshape(-1);
  const double denom = r.norm().item<double>();
  const double num = (o - r).norm().item<double>();
  return denom > 0 ? num / denom : num;
}

inline drift::DriftInputs to(const drift::DriftInputs& in, torch::Device dev,
                             torch::ScalarType dt) {
  drift::DriftInputs o = in;
  for (torch::Tensor* t : {&o.gen, &o.pos, &o.neg, &o.w_gen, &o.w_pos, &o.w_neg})
    if (t->defined()) *t = t->to(dev, dt);
  return o;
}

struct Case {
  std::string name;
  int64_t B, Cg, Cp, Cn, S;
  std::vector<double> temps = {0.02, 0.05, 0.2};
  enum Weights { kOnes, kRandom, kSomeZero, kAllZeroGen } weights = kRandom;
  double coord = 1.0;   // spread of the samples
  double offset = 0.0;  // common offset added to every coordinate
  bool collapsed = false;
  bool far_apart = false;
};

inline drift::DriftInputs make_inputs(const Case& c, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(torch::kFloat64);
  drift::DriftInputs in;
  in.gen = torch::randn({c.B, c.Cg, c.S}, o);
  in.pos = torch::randn({c.B, c.Cp, c.S}, o) + 0.7;
  in.neg = torch::randn({c.B, c.Cn, c.S}, o) - 0.4;
  if (c.collapsed) in.gen = torch::randn({c.B, 1, c.S}, o) + 1e-6 * in.gen;
  if (c.far_apart) {
    // every sample far from every other: all exp(logits) underflow
    in.gen = in.gen + 1e4 * torch::arange(c.Cg, o).reshape({1, c.Cg, 1});
    in.pos = in.pos - 1e4 * (1 + torch::arange(c.Cp, o)).reshape({1, c.Cp, 1});
    in.neg = in.neg + 1e4 * (c.Cg + torch::arange(c.Cn, o)).reshape({1, c.Cn, 1});
  }
  in.gen = in.gen * c.coord + c.offset;
  in.pos = in.pos * c.coord + c.offset;
  in.neg = in.neg * c.coord + c.offset;
  switch (c.weights) {
    case Case::kOnes:
      break;  // undefined: all ones
    case Case::kRandom:
      in.w_gen = torch::rand({c.B, c.Cg}, o) + 0.5;
      in.w_pos = torch::rand({c.B, c.Cp}, o) + 0.5;
      in.w_neg = torch::rand({c.B, c.Cn}, o) * 3.0;
      break;
    case Case::kSomeZero:
      in.w_gen = (torch::rand({c.B, c.Cg}, o) > 0.3).to(torch::kFloat64);
      in.w_pos = torch::rand({c.B, c.Cp}, o) * (torch::rand({c.B, c.Cp}, o) > 0.3);
      in.w_neg = torch::rand({c.B, c.Cn}, o) * (torch::rand({c.B, c.Cn}, o) > 0.5);
      break;
    case Case::kAllZeroGen:
      in.w_gen = torch::zeros({c.B, c.Cg}, o);
      in.w_pos = torch::rand({c.B, c.Cp}, o) + 0.5;
      in.w_neg = torch::rand({c.B, c.Cn}, o) + 0.5;
      break;
  }
  in.temperatures = c.temps;
  return in;
}

inline std::map<std::string, torch::Tensor> fields(const drift::DriftOutputs& o) {
  return {{"V", o.V}, {"goal", o.goal}, {"m_tau", o.m_tau}, {"scale", o.scale},
          {"coord_scale", o.coord_scale}};
}

inline bool all_finite(const drift::DriftOutputs& o) {
  for (const auto& [name, t] : fields(o))
    if (!t.defined() || !torch::isfinite(t).all().item<bool>()) return false;
  return true;
}

}  // namespace drift::test
