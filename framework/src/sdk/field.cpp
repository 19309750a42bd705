#include "drift/field.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace drift {
namespace {

std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

void check_samples(const torch::Tensor& t, const char* name, int64_t B, int64_t S,
                   const torch::Tensor& gen) {
  if (t.dim() != 3 || t.size(0) != B || t.size(2) != S)
    fail(std::string("drift inputs: '") + name + "' has shape " + shape_str(t) +
         ", expected [B=" + std::to_string(B) + ", C, S=" + std::to_string(S) + "]");
  if (t.scalar_type() != gen.scalar_type() || t.device() != gen.device())
    fail(std::string("drift inputs: '") + name + "' is " + std::string(c10::toString(t.scalar_type())) +
         " on " + t.device().str() + ", expected " + c10::toString(gen.scalar_type()) + " on " +
         gen.device().str() + " like 'gen'");
}

torch::Tensor weights_or_ones(const torch::Tensor& w, const char* name, const torch::Tensor& x) {
  const int64_t B = x.size(0), C = x.size(1);
  if (!w.defined()) return torch::ones({B, C}, x.options());
  if (w.dim() != 2 || w.size(0) != B || w.size(1) != C)
    fail(std::string("drift inputs: '") + name + "' has shape " + shape_str(w) + ", expected [" +
         std::to_string(B) + ", " + std::to_string(C) + "]");
  return w.to(x.options());
}

}  // namespace

DriftInputs canonicalize_drift_inputs(const DriftInputs& in) {
  if (!in.gen.defined() || in.gen.dim() != 3)
    fail("drift inputs: 'gen' has shape " + (in.gen.defined() ? shape_str(in.gen) : "<none>") +
         ", expected [B, Cg, S]");
  if (!in.gen.is_floating_point())
    fail("drift inputs: 'gen' must be a floating-point tensor");
  const int64_t B = in.gen.size(0), S = in.gen.size(2);
  if (B < 1 || in.gen.size(1) < 1 || S < 1)
    fail("drift inputs: 'gen' has shape " + shape_str(in.gen) + ", expected B, Cg, S >= 1");
  if (!in.pos.defined()) fail("drift inputs: 'pos' is missing, expected [B, Cp, S]");
  check_samples(in.pos, "pos", B, S, in.gen);
  if (in.pos.size(1) < 1) fail("drift inputs: 'pos' has no samples (Cp = 0), expected Cp >= 1");
  if (in.temperatures.empty()) fail("drift inputs: 'temperatures' is empty, expected >= 1 value");
  for (double t : in.temperatures)
    if (!(t > 0) || !std::isfinite(t))
      fail("drift inputs: temperature " + std::to_string(t) + " is not a positive number");

  DriftInputs out;
  out.gen = in.gen;
  out.pos = in.pos;
  out.neg = in.neg.defined() ? in.neg : torch::empty({B, 0, S}, in.gen.options());
  check_samples(out.neg, "neg", B, S, in.gen);
  out.w_gen = weights_or_ones(in.w_gen, "w_gen", out.gen);
  out.w_pos = weights_or_ones(in.w_pos, "w_pos", out.pos);
  out.w_neg = weights_or_ones(in.w_neg, "w_neg", out.neg);
  out.temperatures = in.temperatures;
  return out;
}

torch::Tensor drift_loss(const torch::Tensor& gen, const DriftOutputs& out) {
  auto diff = gen / out.coord_scale.to(gen.dtype()) - out.goal.to(gen.dtype());
  return diff.pow(2).mean({1, 2});
}

}  // namespace drift
