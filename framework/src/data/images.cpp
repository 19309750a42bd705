#include "data/images.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "io/h5.hpp"

namespace drift::data {

torch::Tensor pixels_to_float(const torch::Tensor& images) {
  if (images.scalar_type() == torch::kUInt8)
    return images.to(torch::kFloat32).div_(127.5).sub_(1.0);
  return images.to(torch::kFloat32);
}

namespace {

// In-memory images sampled without replacement, by epochs (see images.hpp).
class InMemoryImages : public Dataset {
 public:
  InMemoryImages(torch::Tensor images, torch::Tensor labels, int64_t num_classes)
      : images_(std::move(images)), labels_(std::move(labels)), num_classes_(num_classes) {
    cursor_ = images_.size(0);  // the first sample() call starts an epoch
  }

  std::vector<int64_t> sample_shape() const override {
    return {images_.size(1), images_.size(2), images_.size(3)};
  }
  int64_t num_classes() const override { return num_classes_; }

  DataBatch sample(int64_t n, at::Generator& rng) override {
    if (n < 0) throw std::invalid_argument(absl::StrCat("sample: n = ", n, " < 0"));
    const int64_t N = images_.size(0);
    std::vector<torch::Tensor> parts;
    for (int64_t need = n; need > 0;) {
      if (cursor_ == N) {
        perm_ = torch::randperm(N, rng, torch::kLong);
        cursor_ = 0;
      }
      const int64_t take = std::min(need, N - cursor_);
      parts.push_back(perm_.slice(0, cursor_, cursor_ + take));
      cursor_ += take;
      need -= take;
    }
    return get(parts.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(parts));
  }

  int64_t size() const override { return images_.size(0); }

  // The epoch's order and the position in it (Dataset::state).
  std::vector<std::pair<std::string, torch::Tensor>> state() const override {
    std::vector<std::pair<std::string, torch::Tensor>> s = {{"cursor", torch::tensor(cursor_, torch::kLong)}};
    if (perm_.defined()) s.emplace_back("perm", perm_.clone());
    return s;
  }
  void set_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) override {
    const int64_t N = images_.size(0);
    torch::Tensor perm, cursor;
    for (const auto& [name, t] : state) {
      if (name == "perm") perm = t;
      else if (name == "cursor") cursor = t;
      else throw std::invalid_argument(absl::StrCat("images: unknown sampling state '", name, "'"));
    }
    if (!cursor.defined() || cursor.numel() != 1)
      throw std::invalid_argument("images: the sampling state has no scalar 'cursor'");
    const int64_t c = cursor.item<int64_t>();
    if (c < 0 || c > N || (c < N && (!perm.defined() || perm.numel() != N)))
      throw std::invalid_argument(absl::StrCat("images: sampling state of another set (cursor ", c, ", ",
                                               perm.defined() ? perm.numel() : 0, " positions; this set has ",
                                               N, " images)"));
    perm_ = perm.defined() ? perm.to(torch::kLong).clone() : torch::Tensor();
    cursor_ = c;
  }

  DataBatch get(const torch::Tensor& index) override {
    const torch::Tensor idx = index.to(torch::kCPU, torch::kLong).contiguous();
    if (idx.dim() != 1)
      throw std::invalid_argument(absl::StrCat("get: index of ", idx.dim(), " dimensions, expected [n]"));
    if (idx.numel() > 0) {
      const int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
      if (lo < 0 || hi >= images_.size(0))
        throw std::out_of_range(absl::StrCat("get: sample ", lo < 0 ? lo : hi, " outside [0, ",
                                             images_.size(0), ")"));
    }
    DataBatch b;
    b.x = pixels_to_float(images_.index_select(0, idx)).contiguous();
    if (num_classes_ > 0) b.labels = labels_.index_select(0, idx).contiguous();
    b.index = idx;
    return b;
  }

 private:
  torch::Tensor images_;  // [N, C, H, W] uint8 or float
  torch::Tensor labels_;  // [N] int64, or undefined
  int64_t num_classes_;
  torch::Tensor perm_;    // the current epoch's order
  int64_t cursor_ = 0;    // next position in perm_
};

// "images: " before an io:: error (which starts with the file name).
absl::Status images_error(const absl::Status& st) {
  return absl::Status(st.code(), absl::StrCat("images: ", st.message()));
}

bool is_int_dtype(const std::string& dt) {
  return absl::StartsWith(dt, "int") || absl::StartsWith(dt, "uint");
}

// The largest label a labels dataset may hold when num_classes is its max + 1.
constexpr int64_t kMaxLabel = 2147483647;

absl::StatusOr<std::unique_ptr<Dataset>> make_images(const Params& p, const DatasetContext& ctx) {
  namespace fs = std::filesystem;
  fs::path path(p.get_string("path"));
  if (path.is_relative() && !ctx.base_dir.empty()) path = fs::path(ctx.base_dir) / path;
  const std::string file = path.lexically_normal().string();
  const std::string xname = p.get_string("images");
  const std::string lname = p.get_string("labels");
  const int64_t want_classes = p.get_int("num_classes");
  const std::string pre = absl::StrCat("images: ", file, ": ");
  const std::string x_expected = "[N, C, H, W] uint8 (mapped to [-1, 1]) or float32/float64";

  std::error_code ec;
  if (!fs::exists(file, ec))
    return absl::NotFoundError(absl::StrCat(pre, "no such file (expected an HDF5 file with dataset '",
                                            xname, "' ", x_expected, ")"));
  auto f = io::H5File::open_read(file);
  if (!f.ok()) return images_error(f.status());

  if (!f->is_dataset(xname))
    return absl::NotFoundError(absl::StrCat(pre, "no dataset '", xname, "' (expected ", x_expected, ")"));
  auto xinfo = f->info(xname);
  if (!xinfo.ok()) return images_error(xinfo.status());
  const std::vector<int64_t>& dims = xinfo->shape;
  if (dims.size() != 4 || dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || dims[3] < 1)
    return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", xname, "' has shape ",
                                                   io::shape_string(dims), ", expected ",
                                                   x_expected, " with every size >= 1"));
  const std::string& dt = xinfo->dtype;
  if (dt != "uint8" && dt != "float32" && dt != "float64")
    return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", xname, "' has dtype ", dt,
                                                   ", expected ", x_expected));
  const int64_t N = dims[0];
  auto x = dt == "uint8" ? f->read(xname) : f->read_as(xname, torch::kFloat32);
  if (!x.ok()) return images_error(x.status());
  if (x->is_floating_point() && !torch::isfinite(*x).all().item<bool>())
    return absl::InvalidArgumentError(
        absl::StrCat(pre, "dataset '", xname, "' holds NaN or infinite values"));

  torch::Tensor labels;
  int64_t num_classes = 0;
  const bool has_labels = !lname.empty() && f->is_dataset(lname);
  if (!has_labels && want_classes > 0)
    return absl::NotFoundError(absl::StrCat(
        pre, "num_classes = ", want_classes, " but there is no labels dataset '", lname,
        "' (expected [", N, "] integer labels)"));
  if (has_labels) {
    const std::string expected =
        absl::StrCat("[", N, "] (one integer label per image of '", xname, "')");
    auto linfo = f->info(lname);
    if (!linfo.ok()) return images_error(linfo.status());
    if (linfo->shape.size() != 1 || linfo->shape[0] != N)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' has shape ",
                                                     io::shape_string(linfo->shape),
                                                     ", expected ", expected));
    if (!is_int_dtype(linfo->dtype))
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' has dtype ",
                                                     linfo->dtype, ", expected integer labels ",
                                                     expected));
    auto l = f->read_as(lname, torch::kInt64);
    if (!l.ok()) return images_error(l.status());
    labels = l->contiguous();
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    if (lo < 0)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname,
                                                     "' holds a negative label (", lo,
                                                     "); labels must be 0, 1, ..."));
    // num_classes defaults to max + 1: a label near 2^63 (a corrupt file) would overflow it.
    if (want_classes == 0 && hi > kMaxLabel)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' holds label ", hi,
                                                     "; labels must be below ", kMaxLabel + 1));
    if (want_classes > 0 && hi >= want_classes)
      return absl::InvalidArgumentError(absl::StrCat(pre, "dataset '", lname, "' holds label ", hi,
                                                     " but num_classes = ", want_classes,
                                                     " (labels must be < num_classes)"));
    num_classes = want_classes > 0 ? want_classes : hi + 1;
  }
  return make_in_memory_image_dataset(x->contiguous(), labels, num_classes);
}

}  // namespace

std::unique_ptr<Dataset> make_in_memory_image_dataset(torch::Tensor images, torch::Tensor labels,
                                                      int64_t num_classes) {
  return std::make_unique<InMemoryImages>(std::move(images), std::move(labels), num_classes);
}

absl::Status register_image_datasets(drift::runtime::Registry& reg) {
  ComponentInfo c;
  c.kind = ComponentKind::Dataset;
  c.name = "images";
  c.doc =
      "an image set [N, C, H, W] from an HDF5 file (uint8 mapped to [-1, 1], float as is), "
      "optional labels; sampled without replacement by epochs";
  c.params = {
      ParamSpec::Required("path", ParamType::String,
                          "HDF5 file (relative paths resolve against the experiment file)"),
      ParamSpec::String("images", "images",
                        "dataset of shape [N, C, H, W]: uint8 (x / 127.5 - 1) or float (as is)"),
      ParamSpec::String("labels", "labels",
                        "dataset of N integer labels >= 0, used when the file has it "
                        "(\"\": unlabelled)"),
      ParamSpec::Int("num_classes", 0,
                     "number of classes; 0: max label + 1 (needs the labels dataset when > 0)")
          .at_least(0)};
  c.factory = DatasetFactory(make_images);
  return reg.add_builtin(std::move(c));
}

}  // namespace drift::data
