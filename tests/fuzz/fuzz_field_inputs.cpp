// Fuzz target: drift-field input files (field/field_io.cpp read_field_inputs).
// Property: inputs that satisfy the documented layout (gen [B, Cg, S],
// pos [B, Cp, S], neg [B, Cn, S], weights [B, C*], temperatures > 0, finite),
// in the asked dtype; or a one-line error.
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "field/field_io.hpp"
#include "fuzz_common.hpp"

namespace {
const std::vector<std::string> kNames = {"gen", "pos", "neg", "weight_gen", "weight_pos", "weight_neg",
                                         "temperatures", "gen/x"};

void check(const drift::DriftInputs& in, torch::ScalarType dtype) {
  using drift::fuzz::fail;
  auto is = [&](const torch::Tensor& t, std::vector<int64_t> shape, const char* name) {
    if (!t.defined() || t.sizes().vec() != shape || t.scalar_type() != dtype)
      fail(absl::StrCat(name, " is ", t.defined() ? drift::io::shape_string(t) : "undefined", ", expected ",
                        drift::io::shape_string(shape)));
  };
  if (!in.gen.defined() || in.gen.dim() != 3) fail("gen is not [B, Cg, S]");
  const int64_t B = in.gen.size(0), Cg = in.gen.size(1), S = in.gen.size(2);
  if (B < 1 || Cg < 1 || S < 1) fail("gen has an empty dimension");
  if (!in.pos.defined() || in.pos.dim() != 3) fail("pos is not [B, Cp, S]");
  const int64_t Cp = in.pos.size(1);
  if (Cp < 1) fail("no positives");
  is(in.pos, {B, Cp, S}, "pos");
  const int64_t Cn = in.neg.defined() ? in.neg.size(1) : 0;
  if (in.neg.defined()) is(in.neg, {B, Cn, S}, "neg");
  is(in.w_gen, {B, Cg}, "weight_gen");
  is(in.w_pos, {B, Cp}, "weight_pos");
  is(in.w_neg, {B, Cn}, "weight_neg");
  if (in.temperatures.empty()) fail("no temperatures");
  for (double t : in.temperatures)
    if (!(t > 0) || !std::isfinite(t)) fail(absl::StrCat("temperature ", t));
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace drift;
  (void)fuzz::scratch_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drift;
  const std::string path = fuzz::scratch_dir() + "/field.h5";
  fuzz::write_h5_input(path, data, size, kNames);
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto in = field::read_field_inputs(path, dtype);
    if (in.ok()) check(*in, dtype), fuzz::note(fuzz::kAccepted);
    else fuzz::check_one_line(in.status(), "read_field_inputs");
  }
  auto in = field::read_field_inputs(path, torch::kFloat64, std::vector<double>{0.5, 2.0});
  if (in.ok()) check(*in, torch::kFloat64), fuzz::note(fuzz::kAccepted);
  else fuzz::check_one_line(in.status(), "read_field_inputs (temperatures given)");
  return 0;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  using namespace drift;
  const std::string tmp = fuzz::scratch_dir() + "/seed.h5";
  auto write = [&](const std::string& name, auto&& fill) {
    auto f = io::H5File::create(tmp);
    if (!f.ok()) fuzz::fail(std::string(f.status().message()));
    fill(*f);
    (void)f->close();
    fuzz::write_seed(dir, name, fuzz::raw_seed(tmp));
  };
  write("minimal", [](io::H5File& f) {
    (void)f.write("gen", torch::randn({1, 2, 2}, torch::kFloat32));
    (void)f.write("pos", torch::randn({1, 3, 2}, torch::kFloat32));
    (void)f.set_attr("/", "temperatures", std::vector<double>{0.05, 0.2});
  });
  write("full", [](io::H5File& f) {
    (void)f.write("gen", torch::randn({2, 2, 3}, torch::kFloat64));
    (void)f.write("pos", torch::randn({2, 2, 3}, torch::kFloat64));
    (void)f.write("neg", torch::randn({2, 1, 3}, torch::kFloat64));
    (void)f.write("weight_gen", torch::ones({2, 2}, torch::kFloat64));
    (void)f.write("weight_pos", torch::ones({2, 2}, torch::kFloat64));
    (void)f.write("weight_neg", torch::ones({2, 1}, torch::kFloat64));
    (void)f.set_attr("/", "temperatures", std::vector<double>{1.0});
  });
  // gen f32 [1,2,2], pos f64 [1,1,2], temperatures attribute (a float list).
  fuzz::write_seed(dir, "spec_gen_pos_temps",
                   fuzz::spec_seed({3, 0, 0, 6, 3, 1, 2, 2, 0x3f, 0x10, 0, 1, 7, 3, 1, 1, 2, 0x3f, 0x20,
                                    0x12, 0, 6, 3, 7, 3, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}));
  return 0;
}
