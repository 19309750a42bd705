#include "fuzz_datasets.hpp"

#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "drift/dataset.hpp"
#include "fuzz_common.hpp"
#include "io/h5.hpp"
#include "runtime/builtins.hpp"
#include "runtime/registry.hpp"

namespace drift::fuzz {
namespace {
runtime::Registry& registry() {
  static runtime::Registry* reg = [] {
    auto* r = new runtime::Registry();
    if (auto st = runtime::register_builtins(*r); !st.ok()) fail(std::string(st.message()));
    return r;
  }();
  return *reg;
}

void check_batch(const DataBatch& b, int64_t n, const Dataset& d, bool finite, const char* what) {
  std::vector<int64_t> want{n};
  for (int64_t s : d.sample_shape()) want.push_back(s);
  if (!b.x.defined() || b.x.sizes().vec() != want || b.x.scalar_type() != torch::kFloat32)
    fail(absl::StrCat(what, ": x is ", b.x.defined() ? io::shape_string(b.x) : "undefined", ", expected ",
                      io::shape_string(want), " float32"));
  if (finite && n > 0 && !torch::isfinite(b.x).all().item<bool>()) fail(absl::StrCat(what, ": non-finite x"));
  if (d.num_classes() > 0) {
    if (!b.labels.defined() || b.labels.sizes().vec() != std::vector<int64_t>{n})
      fail(absl::StrCat(what, ": labels missing or of the wrong shape"));
    if (n > 0 && (b.labels.min().item<int64_t>() < 0 || b.labels.max().item<int64_t>() >= d.num_classes()))
      fail(absl::StrCat(what, ": a label outside [0, ", d.num_classes(), ")"));
  }
}
}  // namespace

void warm_registry() { (void)registry(); }

void check_dataset(const std::string& name, const std::map<std::string, ParamValue>& given,
                   bool finite_float_images) {
  auto& reg = registry();
  auto p = reg.validate(ComponentKind::Dataset, name, given, "fuzz");
  if (!p.ok()) fail(absl::StrCat("parameters refused: ", p.status().message()));
  DatasetContext ctx;
  auto d = reg.make_dataset(name, *p, ctx);
  if (!d.ok()) {
    check_one_line(d.status(), name.c_str());
    return;
  }
  note(kAccepted);
  Dataset& ds = **d;
  if (ds.num_classes() < 0) fail(absl::StrCat(name, ": num_classes() = ", ds.num_classes(), " < 0"));
  for (int64_t s : ds.sample_shape())
    if (s < 1) fail(absl::StrCat(name, ": sample_shape has a size ", s, " < 1"));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  for (int64_t n : {int64_t{0}, int64_t{3}, int64_t{5}}) check_batch(ds.sample(n, gen), n, ds, finite_float_images, "sample");
  if (ds.size() > 0) {
    const int64_t last = ds.size() - 1;
    check_batch(ds.get(torch::tensor({int64_t{0}, last}, torch::kLong)), 2, ds, finite_float_images, "get");
  }
}
}  // namespace drift::fuzz
