#include "data/toy.hpp"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "io/h5.hpp"

namespace drift::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// A dataset whose sampler is a function of (n, rng). Samples are computed in
// float64 and returned as float32.
class FnDataset : public Dataset {
 public:
  using Sampler = std::function<DataBatch(int64_t n, at::Generator& rng)>;
  FnDataset(int64_t dim, int64_t num_classes, Sampler sampler, std::vector<Mode> modes = {})
      : dim_(dim), num_classes_(num_classes), sampler_(std::move(sampler)), modes_(std::move(modes)) {}

  std::vector<int64_t> sample_shape() const override { return {dim_}; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<Mode> modes() const override { return modes_; }

  DataBatch sample(int64_t n, at::Generator& rng) override {
    if (n < 0) throw std::invalid_argument(absl::StrCat("sample: n = ", n, " < 0"));
    DataBatch b;
    if (n == 0) {
      b.x = torch::zeros({0, dim_}, torch::kFloat32);
      if (num_classes_ > 0) b.labels = torch::zeros({0}, torch::kInt64);
      return b;
    }
    b = sampler_(n, rng);
    b.x = b.x.to(torch::kFloat32).contiguous();
    if (num_classes_ > 0) {
      b.labels = b.labels.to(torch::kInt64).contiguous();
    } else {
      b.labels = torch::Tensor();
    }
    return b;
  }

 private:
  int64_t dim_;
  int64_t num_classes_;
  Sampler sampler_;
  std::vector<Mode> modes_;
};

// A Gaussian mixture with isotropic components of one standard deviation.
std::unique_ptr<Dataset> gaussian_mixture(torch::Tensor centers /*[K, D] f64*/,
                                          std::vector<double> weights /*normalized*/, double std,
                                          double mode_radius, bool labeled) {
  const int64_t K = centers.size(0), D = centers.size(1);
  torch::Tensor probs = torch::tensor(weights, kF64);
  std::vector<Mode> modes;
  for (int64_t k = 0; k < K; ++k)
    modes.push_back(Mode{centers[k].to(torch::kFloat32).clone(), weights[k], mode_radius});
  auto sampler = [centers, probs, std, D](int64_t n, at::Generator& rng) {
    torch::Tensor comp = at::multinomial(probs, n, /*replacement=*/true, rng);
    torch::Tensor x = centers.index_select(0, comp) + std * at::randn({n, D}, rng, kF64);
    return DataBatch{x, comp};
  };
  return std::make_unique<FnDataset>(D, labeled ? K : 0, sampler, std::move(modes));
}

absl::StatusOr<std::unique_ptr<Dataset>> make_bimodal(const Params& p, const DatasetContext&) {
  const auto& a = p.get_float_list("center_a");
  const auto& b = p.get_float_list("center_b");
  if (a.size() != b.size())
    return absl::InvalidArgumentError(absl::StrCat("bimodal: center_a has ", a.size(),
                                                   " coordinates but center_b has ", b.size(),
                                                   "; they must have the same dimension"));
  const auto& w = p.get_float_list("weights");
  const double wsum = w[0] + w[1];
  if (!(wsum > 0))
    return absl::InvalidArgumentError("bimodal: weights must not both be 0");
  const int64_t D = static_cast<int64_t>(a.size());
  torch::Tensor centers = torch::empty({2, D}, kF64);
  double dist2 = 0;
  for (int64_t d = 0; d < D; ++d) {
    centers[0][d] = a[d];
    centers[1][d] = b[d];
    dist2 += (a[d] - b[d]) * (a[d] - b[d]);
  }
  if (!(dist2 > 0))
    return absl::InvalidArgumentError("bimodal: center_a and center_b must differ");
  const double std = p.get_float("std");
  const double radius = std::min(3.0 * std, 0.5 * std::sqrt(dist2));
  return gaussian_mixture(centers, {w[0] / wsum, w[1] / wsum}, std, radius, p.get_bool("labeled"));
}

absl::StatusOr<std::unique_ptr<Dataset>> make_eight_gaussians(const Params& p,
                                                              const DatasetContext&) {
  const double R = p.get_float("radius"), std = p.get_float("std");
  torch::Tensor centers = torch::empty({8, 2}, kF64);
  for (int k = 0; k < 8; ++k) {
    centers[k][0] = R * std::cos(2 * kPi * k / 8);
    centers[k][1] = R * std::sin(2 * kPi * k / 8);
  }
  // Half the distance between neighbouring centres is R sin(pi/8).
  const double radius = std::min(3.0 * std, R * std::sin(kPi / 8));
  return gaussian_mixture(centers, std::vector<double>(8, 1.0 / 8), std, radius,
                          p.get_bool("labeled"));
}

absl::StatusOr<std::unique_ptr<Dataset>> make_mixture(const Params& p, const DatasetContext&) {
  const int64_t D = p.get_int("dim");
  const auto& c = p.get_float_list("centers");
  if (c.empty() || static_cast<int64_t>(c.size()) % D != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "mixture: 'centers' has ", c.size(), " values, expected a non-empty multiple of dim = ",
        D, " (the centres' coordinates one after the other)"));
  const int64_t K = static_cast<int64_t>(c.size()) / D;
  std::vector<double> w = p.get_float_list("weights");
  if (w.empty()) w.assign(static_cast<size_t>(K), 1.0);
  if (static_cast<int64_t>(w.size()) != K)
    return absl::InvalidArgumentError(absl::StrCat("mixture: 'weights' has ", w.size(),
                                                   " values for ", K, " centres"));
  double wsum = 0;
  for (double x : w) wsum += x;
  if (!(wsum > 0)) return absl::InvalidArgumentError("mixture: the weights must not all be 0");
  for (double& x : w) x /= wsum;
  torch::Tensor centers = torch::tensor(c, kF64).reshape({K, D});
  const double std = p.get_float("std");
  // A mode is the ball of 3 std around its centre, or half the distance to the
  // nearest other centre when the Gaussians are closer than that.
  double radius = 3.0 * std;
  if (K > 1) {
    torch::Tensor dist = torch::cdist(centers, centers)
                             .masked_fill(torch::eye(K, torch::kBool),
                                          std::numeric_limits<double>::infinity());
    radius = std::min(radius, 0.5 * dist.min().item<double>());
  }
  if (!(radius > 0))
    return absl::InvalidArgumentError("mixture: two centres coincide");
  return gaussian_mixture(centers, w, std, radius, p.get_bool("labeled"));
}

absl::StatusOr<std::unique_ptr<Dataset>> make_checkerboard(const Params& p,
                                                           const DatasetContext&) {
  const int64_t cells = p.get_int("cells");
  const double scale = p.get_float("scale");
  std::vector<double> ij;
  for (int64_t i = 0; i < cells; ++i)
    for (int64_t j = 0; j < cells; ++j)
      if ((i + j) % 2 == 0) {
        ij.push_back(static_cast<double>(i));
        ij.push_back(static_cast<double>(j));
      }
  const int64_t nb = static_cast<int64_t>(ij.size() / 2);
  torch::Tensor black = torch::tensor(ij, kF64).reshape({nb, 2});
  const double width = 2 * scale / static_cast<double>(cells);
  const double noise = p.get_float("noise");
  auto sampler = [black, nb, width, scale, noise](int64_t n, at::Generator& rng) {
    torch::Tensor idx = at::randint(nb, {n}, rng, torch::kInt64);
    torch::Tensor u = at::rand({n, 2}, rng, kF64);
    torch::Tensor x = -scale + (black.index_select(0, idx) + u) * width;
    if (noise > 0) x = x + noise * at::randn({n, 2}, rng, kF64);
    return DataBatch{x, torch::Tensor()};
  };
  return std::make_unique<FnDataset>(2, 0, sampler);
}

absl::StatusOr<std::unique_ptr<Dataset>> make_swiss_roll(const Params& p, const DatasetContext&) {
  const double scale = p.get_float("scale"), noise = p.get_float("noise");
  const double t0 = 2 * kPi * p.get_float("start_turns"), t1 = t0 + 2 * kPi * p.get_float("turns");
  auto sampler = [=](int64_t n, at::Generator& rng) {
    torch::Tensor t = t0 + (t1 - t0) * at::rand({n}, rng, kF64);
    torch::Tensor x = torch::stack({t * torch::cos(t), t * torch::sin(t)}, 1) * (scale / t1);
    return DataBatch{x + noise * at::randn({n, 2}, rng, kF64), torch::Tensor()};
  };
  return std::make_unique<FnDataset>(2, 0, sampler);
}

absl::StatusOr<std::unique_ptr<Dataset>> make_two_moons(const Params& p, const DatasetContext&) {
  const double scale = p.get_float("scale"), noise = p.get_float("noise");
  auto sampler = [=](int64_t n, at::Generator& rng) {
    torch::Tensor moon = at::randint(2, {n}, rng, torch::kInt64);
    torch::Tensor th = kPi * at::rand({n}, rng, kF64);
    torch::Tensor m = moon.to(torch::kFloat64);
    // Moon 0: (cos t, sin t); moon 1: (1 - cos t, 0.5 - sin t); centred on (0.5, 0.25).
    torch::Tensor cx = (1 - m) * torch::cos(th) + m * (1 - torch::cos(th)) - 0.5;
    torch::Tensor cy = (1 - m) * torch::sin(th) + m * (0.5 - torch::sin(th)) - 0.25;
    torch::Tensor x = scale * torch::stack({cx, cy}, 1) + noise * at::randn({n, 2}, rng, kF64);
    return DataBatch{x, moon};
  };
  return std::make_unique<FnDataset>(2, p.get_bool("labeled") ? 2 : 0, sampler);
}

absl::StatusOr<std::unique_ptr<Dataset>> make_rings(const Params& p, const DatasetContext&) {
  std::vector<double> radii = p.get_float_list("radii");
  if (radii.empty()) {
    const int64_t k = p.get_int("num_rings");
    const double rmax = p.get_float("max_radius");
    for (int64_t i = 1; i <= k; ++i) radii.push_back(rmax * static_cast<double>(i) / k);
  }
  const double noise = p.get_float("noise");
  const int64_t K = static_cast<int64_t>(radii.size());
  torch::Tensor r = torch::tensor(radii, kF64);
  torch::Tensor probs = r / r.sum();  // uniform density along the union of the circles
  auto sampler = [=](int64_t n, at::Generator& rng) {
    torch::Tensor ring = at::multinomial(probs, n, /*replacement=*/true, rng);
    torch::Tensor th = 2 * kPi * at::rand({n}, rng, kF64);
    torch::Tensor rr = r.index_select(0, ring);
    torch::Tensor x = torch::stack({rr * torch::cos(th), rr * torch::sin(th)}, 1) +
                      noise * at::randn({n, 2}, rng, kF64);
    return DataBatch{x, ring};
  };
  return std::make_unique<FnDataset>(2, p.get_bool("labeled") ? K : 0, sampler);
}

// ----------------------------------------------------------------- points (HDF5)

class PointsDataset : public Dataset {
 public:
  PointsDataset(torch::Tensor x, torch::Tensor labels, int64_t num_classes)
      : x_(std::move(x)), labels_(std::move(labels)), num_classes_(num_classes) {}
  std::vector<int64_t> sample_shape() const override { return {x_.size(1)}; }
  int64_t num_classes() const override { return num_classes_; }
  DataBatch sample(int64_t n, at::Generator& rng) override {
    if (n < 0) throw std::invalid_argument(absl::StrCat("sample: n = ", n, " < 0"));
    torch::Tensor idx = at::randint(x_.size(0), {n}, rng, torch::kInt64);
    DataBatch b;
    b.x = x_.index_select(0, idx);
    if (labels_.defined()) b.labels = labels_.index_select(0, idx);
    return b;
  }

 private:
  torch::Tensor x_;       // [N, D] float32
  torch::Tensor labels_;  // [N] int64 or undefined
  int64_t num_classes_;
};

bool is_int_dtype(const std::string& dt) {
  return absl::StartsWith(dt, "int") || absl::StartsWith(dt, "uint");
}

// "points: " before an io:: error (which starts with the file name).
absl::Status points_error(const absl::Status& st) {
  return absl::Status(st.code(), absl::StrCat("points: ", st.message()));
}

// The largest label a labels dataset may hold (num_classes = max + 1 must stay
// an int64 and, in practice, a size a per-class table can have).
constexpr int64_t kMaxLabel = 2147483647;

absl::StatusOr<std::unique_ptr<Dataset>> make_points(const Params& p, const DatasetContext& ctx) {
  namespace fs = std::filesystem;
  fs::path path(p.get_string("path"));
  if (path.is_relative() && !ctx.base_dir.empty()) path = fs::path(ctx.base_dir) / path;
  const std::string file = path.lexically_normal().string();
  const std::string xname = p.get_string("dataset");
  const std::string lname = p.get_string("labels");
  const std::string pre = absl::StrCat("points: ", file, ": ");

  std::error_code ec;
  if (!fs::exists(file, ec))
    return absl::NotFoundError(absl::StrCat(pre, "no such file (expected an HDF5 file with dataset '",
                                            xname, "' of shape [N, D])"));
  auto f = io::H5File::open_read(file);
  if (!f.ok()) return points_error(f.status());

  if (!f->is_dataset(xname))
    return absl::NotFoundError(absl::StrCat(pre, "no dataset '", xname, "' (expected [N, D] float)"));
  auto xinfo = f->info(xname);
  if (!xinfo.ok()) return points_error(xinfo.status());
  const std::vector<int64_t>& dims = xinfo->shape;
  if (dims.size() != 2)
    return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", xname, "' has shape ",
                                                   io::shape_string(dims), ", expected [N, D]"));
  if (dims[0] == 0 || dims[1] == 0)
    return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", xname, "' has shape ",
                                                   io::shape_string(dims),
                                                   ", expected [N, D] with N >= 1, D >= 1"));
  if (!absl::StartsWith(xinfo->dtype, "float") && !is_int_dtype(xinfo->dtype))
    return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", xname, "' has dtype ",
                                                   xinfo->dtype, ", expected [N, D] float"));
  const int64_t N = dims[0];
  auto x = f->read_as(xname, torch::kFloat32);
  if (!x.ok()) return points_error(x.status());

  torch::Tensor labels;
  int64_t num_classes = 0;
  if (!lname.empty()) {
    const std::string expected =
        absl::StrCat("[", N, "] (one integer label per point of '", xname, "')");
    if (!f->is_dataset(lname))
      return absl::NotFoundError(
          absl::StrCat(pre, "no dataset '", lname, "' (expected labels ", expected, ")"));
    auto linfo = f->info(lname);
    if (!linfo.ok()) return points_error(linfo.status());
    if (linfo->shape.size() != 1 || linfo->shape[0] != N)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' has shape ",
                                                     io::shape_string(linfo->shape), ", expected ",
                                                     expected));
    if (!is_int_dtype(linfo->dtype))
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' has dtype ",
                                                     linfo->dtype, ", expected integer labels ",
                                                     expected));
    auto l = f->read_as(lname, torch::kInt64);
    if (!l.ok()) return points_error(l.status());
    labels = l->contiguous();
    const int64_t lo = labels.min().item<int64_t>();
    if (lo < 0)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname,
                                                     "' holds a negative label (", lo,
                                                     "); labels must be 0, 1, ..."));
    // num_classes is max + 1: a label near 2^63 (a corrupt file) would overflow it.
    const int64_t hi = labels.max().item<int64_t>();
    if (hi > kMaxLabel)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' holds label ", hi,
                                                     "; labels must be below ", kMaxLabel + 1));
    num_classes = hi + 1;
  }
  return std::make_unique<PointsDataset>(x->contiguous(), labels, num_classes);
}

// ----------------------------------------------------------------- registration

ComponentInfo dataset(std::string name, std::string doc, std::vector<ParamSpec> params,
                      DatasetFactory f) {
  ComponentInfo c;
  c.kind = ComponentKind::Dataset;
  c.name = std::move(name);
  c.doc = std::move(doc);
  c.params = std::move(params);
  c.factory = std::move(f);
  return c;
}

ParamSpec labeled_param(const std::string& what) {
  return ParamSpec::Bool("labeled", false,
                         "return labels (" + what + ") for class-conditional runs");
}

}  // namespace

absl::Status register_toy_datasets(drift::runtime::Registry& reg) {
  std::vector<ComponentInfo> all;
  all.push_back(dataset(
      "bimodal", "two Gaussians (the paper's Fig. 3 toy); modes() are the two Gaussians",
      {ParamSpec::FloatList("center_a", {-2.0, 0.0}, "centre of the first Gaussian (its length is D)")
           .non_empty(),
       ParamSpec::FloatList("center_b", {2.0, 0.0}, "centre of the second Gaussian (same length)")
           .non_empty(),
       ParamSpec::Float("std", 0.5, "standard deviation of each Gaussian (isotropic)").positive(),
       ParamSpec::FloatList("weights", {0.5, 0.5},
                            "mixture weights of the two Gaussians, normalized to sum to 1")
           .non_negative()
           .items(2, 2),
       labeled_param("0 = center_a, 1 = center_b")},
      make_bimodal));
  all.push_back(dataset(
      "mixture",
      "isotropic Gaussians of one std at given centres with given weights; modes() are the "
      "balls of radius min(3 std, half the distance between the nearest centres)",
      {ParamSpec::Int("dim", 2, "dimension D of the samples").at_least(1),
       ParamSpec::FloatList("centers", {-4.0, -3.0, 4.0, -4.0, 0.0, 1.0, -4.0, 4.0, 4.5, 4.0},
                            "the centres' coordinates one after the other (K * dim values); "
                            "default: five modes spread over [-5, 5]^2")
           .non_empty(),
       ParamSpec::FloatList("weights", {0.35, 0.25, 0.2, 0.12, 0.08},
                            "mixture weights (K values, normalized to sum to 1); []: equal")
           .non_negative(),
       ParamSpec::Float("std", 0.3, "standard deviation of each Gaussian (isotropic)").positive(),
       labeled_param("mode index, in the order of the centres")},
      make_mixture));
  all.push_back(dataset(
      "eight_gaussians", "8 equal Gaussians evenly spaced on a circle; modes() are the Gaussians",
      {ParamSpec::Float("radius", 2.0, "radius of the circle of centres").positive(),
       ParamSpec::Float("std", 0.1, "standard deviation of each Gaussian (isotropic)").positive(),
       labeled_param("mode index k, centre at angle 2 pi k / 8")},
      make_eight_gaussians));
  all.push_back(dataset(
      "checkerboard", "uniform on the black cells of a checkerboard centred at the origin",
      {ParamSpec::Int("cells", 4, "cells per side").at_least(2),
       ParamSpec::Float("scale", 2.0, "half side length: the board is [-scale, scale]^2").positive(),
       ParamSpec::Float("noise", 0.0,
                        "std of the Gaussian noise added to each coordinate (the authors' toy "
                        "demo: 0.05 on a board of scale 1)")
           .non_negative()},
      make_checkerboard));
  all.push_back(dataset(
      "swiss_roll",
      "2-D Swiss roll: a spiral t (cos t, sin t), t uniform from 2 pi start_turns over `turns` "
      "turns, scaled so that its outer end has radius `scale`, plus Gaussian noise",
      {ParamSpec::Float("scale", 2.0, "radius of the outer end of the spiral").positive(),
       ParamSpec::Float("turns", 1.5, "number of turns of the spiral").positive(),
       ParamSpec::Float("start_turns", 0.75,
                        "angle where the spiral starts, in turns (0.75: t0 = 1.5 pi; the "
                        "authors' toy demo: 0.25 with turns = 2)")
           .non_negative(),
       ParamSpec::Float("noise", 0.05, "std of the Gaussian noise added to each coordinate")
           .non_negative()},
      make_swiss_roll));
  all.push_back(dataset(
      "two_moons", "two interleaved half circles (equal probability), centred at the origin",
      {ParamSpec::Float("scale", 1.0, "radius of each half circle").positive(),
       ParamSpec::Float("noise", 0.1, "std of the Gaussian noise added to each coordinate")
           .non_negative(),
       labeled_param("moon index 0 or 1")},
      make_two_moons));
  all.push_back(dataset(
      "rings", "concentric circles with uniform density along their length, plus Gaussian noise",
      {ParamSpec::Int("num_rings", 2, "number of rings (when radii is empty)").at_least(1),
       ParamSpec::Float("max_radius", 2.0,
                        "radius of the outer ring; radii are max_radius * k / num_rings")
           .positive(),
       ParamSpec::FloatList("radii", {}, "explicit radii (overrides num_rings and max_radius)")
           .positive(),
       ParamSpec::Float("noise", 0.05, "std of the Gaussian noise added to each coordinate")
           .non_negative(),
       labeled_param("ring index, in the order of the radii")},
      make_rings));
  all.push_back(dataset(
      "points", "a point cloud [N, D] from an HDF5 file, sampled i.i.d. with replacement",
      {ParamSpec::Required("path", ParamType::String,
                           "HDF5 file (relative paths resolve against the experiment file)"),
       ParamSpec::String("dataset", "x", "dataset of shape [N, D], float or integer"),
       ParamSpec::String("labels", "",
                         "optional dataset of N integer labels >= 0 (\"\": unlabelled)")},
      make_points));
  for (auto& c : all) {
    absl::Status st = reg.add_builtin(std::move(c));
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace drift::data
