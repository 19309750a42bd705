#include "field/field_io.hpp"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "io/h5.hpp"

namespace drift::field {
namespace {

const std::vector<std::string> kFloatTypes = {"float32", "float64"};

std::string dims(const std::vector<std::pair<std::string, int64_t>>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += ", ";
    s += d[i].second >= 0 ? absl::StrCat(d[i].first, "=", d[i].second) : d[i].first;
  }
  return s + "]";
}

// Reads one float dataset of the expected shape (-1 = any) and converts it.
absl::StatusOr<torch::Tensor> read_float(const io::H5File& f, const std::string& name,
                                         torch::ScalarType dtype,
                                         const std::vector<std::pair<std::string, int64_t>>& shape) {
  const std::string what = dims(shape);
  if (!f.is_dataset(name))
    return absl::NotFoundError(
        absl::StrCat(f.path(), ": dataset '", name, "' not found, expected ", what));
  auto inf = f.info(name);
  if (!inf.ok()) return inf.status();
  if (inf->dtype != "float32" && inf->dtype != "float64")
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": dataset '", name, "' has dtype ",
                                                   inf->dtype, ", expected float32 or float64 ",
                                                   what));
  std::vector<int64_t> expected;
  for (const auto& d : shape) expected.push_back(d.second);
  return f.read_checked(name, dtype, expected, what);
}

}  // namespace

absl::StatusOr<DriftInputs> read_field_inputs(
    const std::string& path, torch::ScalarType dtype,
    const std::optional<std::vector<double>>& temperatures) {
  if (dtype != torch::kFloat32 && dtype != torch::kFloat64)
    return absl::InvalidArgumentError(absl::StrCat(path, ": compute dtype must be float32 or float64"));
  auto file = io::H5File::open_read(path);
  if (!file.ok()) return file.status();
  const io::H5File& f = *file;

  DriftInputs in;
  auto gen = read_float(f, "gen", dtype, {{"B", -1}, {"Cg", -1}, {"S", -1}});
  if (!gen.ok()) return gen.status();
  in.gen = *gen;
  const int64_t B = in.gen.size(0), Cg = in.gen.size(1), S = in.gen.size(2);
  if (B < 1 || Cg < 1 || S < 1)
    return absl::InvalidArgumentError(absl::StrCat(path, ": dataset 'gen' has shape ",
                                                   io::shape_string(in.gen),
                                                   ", expected [B, Cg, S] with B, Cg, S >= 1"));

  auto pos = read_float(f, "pos", dtype, {{"B", B}, {"Cp", -1}, {"S", S}});
  if (!pos.ok()) return pos.status();
  in.pos = *pos;
  const int64_t Cp = in.pos.size(1);
  if (Cp < 1)
    return absl::InvalidArgumentError(absl::StrCat(path, ": dataset 'pos' has shape ",
                                                   io::shape_string(in.pos),
                                                   ", expected at least one positive (Cp >= 1)"));

  int64_t Cn = 0;
  if (f.exists("neg")) {
    auto neg = read_float(f, "neg", dtype, {{"B", B}, {"Cn", -1}, {"S", S}});
    if (!neg.ok()) return neg.status();
    in.neg = *neg;
    Cn = in.neg.size(1);
  } else {
    in.neg = torch::empty({B, 0, S}, torch::TensorOptions().dtype(dtype));
  }

  struct W { const char* name; int64_t C; const char* cname; torch::Tensor* out; };
  for (const W& w : {W{"weight_gen", Cg, "Cg", &in.w_gen}, W{"weight_pos", Cp, "Cp", &in.w_pos},
                     W{"weight_neg", Cn, "Cn", &in.w_neg}}) {
    if (!f.exists(w.name)) {
      *w.out = torch::ones({B, w.C}, torch::TensorOptions().dtype(dtype));
      continue;
    }
    auto t = read_float(f, w.name, dtype, {{"B", B}, {w.cname, w.C}});
    if (!t.ok()) return t.status();
    *w.out = *t;
  }

  if (temperatures) {
    in.temperatures = *temperatures;
  } else {
    if (!f.has_attr("/", "temperatures"))
      return absl::NotFoundError(absl::StrCat(
          path, ": attribute 'temperatures' on '/' not found, expected a list of floats "
                "(or give the temperatures explicitly)"));
    auto t = f.read_float_list_attr("/", "temperatures");
    if (!t.ok()) return t.status();
    in.temperatures = *t;
  }
  if (in.temperatures.empty())
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": 'temperatures' is empty, expected at least one value"));
  for (double t : in.temperatures)
    if (!(t > 0) || !std::isfinite(t))
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": temperature ", t, " is not a positive number"));
  return in;
}

absl::Status write_field_outputs(const std::string& path, const DriftOutputs& out,
                                 const torch::Tensor& loss, const FieldRunInfo& info) {
  auto f64 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64); };
  return io::write_h5_atomically(path, [&](io::H5File& f) -> absl::Status {
    for (const auto& [name, t] : std::vector<std::pair<std::string, torch::Tensor>>{
             {"goal", out.goal},
             {"V", out.V},
             {"loss", loss},
             {"scale", out.scale},
             {"coord_scale", out.coord_scale},
             {"loss_per_temperature", out.m_tau}}) {
      if (!t.defined())
        return absl::InternalError(absl::StrCat(path, ": output '", name, "' is missing"));
      absl::Status st = f.write(name, f64(t));
      if (!st.ok()) return st;
    }
    absl::Status st = f.set_attr("/", "temperatures", info.temperatures);
    if (st.ok()) st = f.set_attr("/", "kernel", info.kernel);
    if (st.ok()) st = f.set_attr("/", "normalizer", info.normalizer);
    return st;
  });
}

}  // namespace drift::field
