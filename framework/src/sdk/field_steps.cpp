#include "drift/field_steps.hpp"

#include <limits>
#include <stdexcept>
#include <utility>

namespace drift {
namespace {
constexpr double kMinSquaredDistance = 1e-8;  // docs/method.md §2 step 2: d = sqrt(max(||.||^2, 1e-8))
}  // namespace

PreparedField prepare_field(const DriftInputs& in, const Normalizer& norm) {
  torch::NoGradGuard no_grad;
  PreparedField p;
  p.Cg = in.gen.size(1);
  p.Cn = in.neg.size(1);
  p.Cp = in.pos.size(1);
  p.S = in.gen.size(2);

  // Step 1: old = stopgrad(gen); targets Y = [old, neg, pos], weights w.
  p.old = in.gen.detach();
  p.Y = torch::cat({p.old, in.neg, in.pos}, /*dim=*/1);
  p.w = torch::cat({in.w_gen, in.w_neg, in.w_pos}, /*dim=*/1);

  // Step 2: d[b,i,t] = sqrt(max(||old[b,i] - Y[b,t]||^2, 1e-8)). cdist with
  // compute_mode 2 ("donot_use_mm_for_euclid_dist") sums the squared
  // differences directly; the |a|^2 + |b|^2 - 2ab shortcut would cancel
  // catastrophically for coordinates of order 1e3.
  const torch::Tensor sq = torch::cdist(p.old, p.Y, /*p=*/2.0, /*compute_mode=*/2).pow(2);
  p.d = sq.clamp_min(kMinSquaredDistance).sqrt();

  // Step 3: scale = mean(d * w[b, None, t]) / mean(w), ONE scalar over the
  // whole batch (the tiny floor only matters when every weight is 0; scale is
  // then 0). The normalizer turns it into the distance divisor (default
  // max(scale, 1e-3)) and the coordinate divisor s (default
  // max(scale / sqrt(S), 1e-3)).
  const torch::Tensor mean_w = p.w.mean().clamp_min(std::numeric_limits<float>::min());
  p.scale = (p.d * p.w.unsqueeze(1)).mean() / mean_w;
  const FeatureScaling fs = norm.feature(p.scale, p.S);
  p.s = fs.coord_divisor.to(p.old.dtype());
  p.dn = p.d / fs.distance_divisor.to(p.old.dtype());

  // Coordinates in normalized units (used by every temperature).
  p.Y_n = p.Y / p.s;
  p.old_n = p.old / p.s;
  return p;
}

torch::Tensor PreparedField::drift_from_coefficients(const torch::Tensor& K) const {
  torch::NoGradGuard no_grad;
  return torch::bmm(K, Y_n) - K.sum(2, /*keepdim=*/true) * old_n;
}

DriftAccumulator::DriftAccumulator(const PreparedField& p, const Normalizer& norm)
    : p_(p), norm_(norm), V_(torch::zeros_like(p.old)) {}

void DriftAccumulator::add(const torch::Tensor& F) {
  torch::NoGradGuard no_grad;
  if (!F.defined() || F.sizes() != p_.old.sizes())
    throw std::invalid_argument("DriftAccumulator::add: the raw drift must have the shape of "
                                "the generated samples [B, Cg, S]");
  const torch::Tensor m_tau = F.pow(2).mean();
  V_ = V_ + F * norm_.drift_factor(m_tau).to(F.dtype());
  m_taus_.push_back(m_tau);
}

DriftOutputs DriftAccumulator::finish() && {
  if (m_taus_.empty())
    throw std::invalid_argument("DriftAccumulator::finish: no temperature was added");
  DriftOutputs out;
  out.V = V_;
  out.goal = p_.old_n + V_;
  out.m_tau = torch::stack(m_taus_);
  out.scale = p_.scale;
  out.coord_scale = p_.s;
  return out;
}

}  // namespace drift
