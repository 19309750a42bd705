// `torchscript`: any torch.jit module file a user brings (a MoCo or MAE
// exported from PyTorch, ...) as a frozen feature encoder. The module takes a
// batch [N, C, H, W] and returns its feature maps [N, C_i, H_i, W_i]: a dict
// (the names in `outputs` pick the maps), a tuple or list (one name per
// element, in order), or one tensor (one name). The maps go through the
// feature set of docs/method.md §4 (drift/features.hpp).
#include <torch/script.h>

#include <cstdio>

#include <drift/checksum.hpp>
#include <drift/features.hpp>
#include <drift/sdk.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace {

using drift::ParamSpec;
using EncoderOr = absl::StatusOr<std::shared_ptr<drift::FeatureEncoder>>;

std::string one_line(const std::string& s) { return s.substr(0, s.find('\n')); }

class TorchScriptEncoder : public drift::FeatureEncoder {
 public:
  TorchScriptEncoder(torch::jit::Module m, std::string path, std::vector<std::string> outputs,
                     drift::FeatureSetOptions o)
      : module_(std::move(m)), path_(std::move(path)), outputs_(std::move(outputs)), opts_(std::move(o)) {
    module_.eval();
    for (auto p : module_.parameters()) p.set_requires_grad(false);
  }

  // The module's named maps of a batch [B, C, H, W]; errors name the file.
  absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> maps(const torch::Tensor& x) {
    c10::IValue out;
    try {
      out = module_.forward({x});
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": forward failed: ", one_line(e.what())));
    }
    std::vector<std::pair<std::string, torch::Tensor>> result;
    if (out.isGenericDict()) {
      auto dict = out.toGenericDict();
      std::vector<std::string> keys;
      for (const auto& kv : dict) keys.push_back(kv.key().isString() ? kv.key().toStringRef() : "?");
      for (const auto& name : outputs_) {
        auto it = dict.find(c10::IValue(name));
        if (it == dict.end())
          return absl::InvalidArgumentError(absl::StrCat(path_, ": the module's output has no '", name,
                                                         "'; it has ", absl::StrJoin(keys, ", ")));
        result.emplace_back(name, it->value().toTensor());
      }
    } else {
      std::vector<c10::IValue> items;
      if (out.isTuple()) items = out.toTupleRef().elements().vec();
      else if (out.isList()) items = out.toList().vec();
      else items.push_back(out);
      if (items.size() != outputs_.size())
        return absl::InvalidArgumentError(absl::StrCat(path_, ": the module returns ", items.size(),
                                                       " outputs, but 'outputs' names ", outputs_.size()));
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].isTensor())
          return absl::InvalidArgumentError(absl::StrCat(path_, ": output ", i, " is not a tensor"));
        result.emplace_back(outputs_[i], items[i].toTensor());
      }
    }
    for (const auto& [name, t] : result)
      if (t.dim() != 4 || t.size(0) != x.size(0))
        return absl::InvalidArgumentError(absl::StrCat(path_, ": output '", name, "' has shape ",
                                                       c10::str(t.sizes()), "; expected [",
                                                       x.size(0), ", C, H, W]"));
    return result;
  }

  std::vector<drift::Feature> encode(const torch::Tensor& x) override {
    const int64_t G = x.size(0), N = x.size(1);
    std::vector<int64_t> flat_shape{G * N};
    for (int64_t d = 2; d < x.dim(); ++d) flat_shape.push_back(x.size(d));
    auto named = maps(x.reshape(flat_shape));
    if (!named.ok()) throw std::runtime_error(std::string(named.status().message()));
    std::vector<drift::FeatureMap> fm;
    for (auto& [name, m] : *named) fm.push_back({name, m.view({G, N, m.size(1), m.size(2), m.size(3)})});
    return drift::feature_set(x, fm, opts_);
  }

  void to(torch::Device device, bool non_blocking = false) override {
    module_.to(device, non_blocking);
    drift::FeatureEncoder::to(device, non_blocking);
  }

 private:
  torch::jit::Module module_;
  std::string path_;
  std::vector<std::string> outputs_;
  drift::FeatureSetOptions opts_;
};

EncoderOr make(const drift::Params& p, const drift::EncoderContext& ctx) {
  std::string path = p.get_string("path");
  if (!path.empty() && path.front() != '/' && !ctx.base_dir.empty()) path = ctx.base_dir + "/" + path;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) std::fclose(f);
  else return absl::NotFoundError(absl::StrCat(path, ": TorchScript module file not found"));
  if (const auto& want = p.get_string("sha256"); !want.empty()) {
    auto sha = drift::sha256_file(path);
    if (!sha.ok()) return sha.status();
    if (*sha != want)
      return absl::DataLossError(absl::StrCat(path, ": SHA-256 is ", *sha, ", expected ", want));
  }
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a TorchScript module file: ", one_line(e.what())));
  }
  if (ctx.sample_shape.size() != 3)
    return absl::InvalidArgumentError(absl::StrCat(
        "torchscript: needs image samples [C, H, W]; the data's samples have shape [",
        absl::StrJoin(ctx.sample_shape, ", "), "]"));
  auto opts = drift::feature_set_options(p, p.get_string_list("outputs"), "torchscript");
  if (!opts.ok()) return opts.status();
  auto enc = std::make_shared<TorchScriptEncoder>(std::move(m), path, p.get_string_list("outputs"), *opts);
  // One forward pass on a blank sample: a module that does not return the
  // named maps is refused here, not in the middle of training.
  std::vector<int64_t> shape{1};
  shape.insert(shape.end(), ctx.sample_shape.begin(), ctx.sample_shape.end());
  torch::NoGradGuard no_grad;
  auto probe = enc->maps(torch::zeros(shape));
  if (!probe.ok()) return probe.status();
  return enc;
}

}  // namespace

DRIFT_PLUGIN("encoder_torchscript", r) {
  auto params = std::vector<ParamSpec>{
      ParamSpec::Required("path", drift::ParamType::String,
                          "TorchScript module file (torch.jit.save); relative paths are relative "
                          "to the experiment file. forward([N, C, H, W]) returns its feature maps."),
      ParamSpec::Required("outputs", drift::ParamType::StringList,
                          "Names of the module's feature maps: the dict keys to use, or one name "
                          "per tuple element, in order.")
          .non_empty(),
      ParamSpec::String("sha256", "", "Expected SHA-256 of the file; empty: not checked.")};
  for (auto& s : drift::feature_set_params()) params.push_back(std::move(s));
  r.add_encoder("torchscript",
                "a user's torch.jit module returning feature maps (dict/tuple); the feature set "
                "of those maps",
                std::move(params), make);
}
