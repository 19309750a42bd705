// Fuzz target: encoder weights files (sdk/weights.cpp load_weights; the
// archive itself is read by LibTorch's torch::serialize::InputArchive).
// Property: load_weights succeeds only for a file with the module's exact
// parameter names, shapes and dtypes and the expected metadata; otherwise a
// one-line error, and the module is left as it was. Never a crash.
//
// Inputs (first byte):
//   0x80..0xBF  a weights file written by save_weights() from a module built
//               from the bytes: parameters and buffers with names and shapes
//               that may differ from the target module's, and metadata that
//               may differ ("wrong shapes")
//   otherwise   the rest is the file itself (bit flips, truncation of a valid
//               archive); loaded with its true SHA-256 given, as if the
//               checksum had been recomputed, and, when the first byte is
//               odd, also through a stale checksum file
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "drift/checksum.hpp"
#include "drift/weights.hpp"
#include "fuzz_common.hpp"

namespace {
using namespace drift;

const char* kMeta = "fuzz encoder v1";

struct Target : torch::nn::Module {
  torch::nn::Linear lin{nullptr};
  torch::Tensor scale;
  Target() {
    lin = register_module("lin", torch::nn::Linear(3, 2));
    scale = register_buffer("scale", torch::ones({2}));
  }
};

// The module's tensors, copied.
std::vector<torch::Tensor> snapshot(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.named_parameters(true)) out.push_back(p.value().detach().clone());
  for (const auto& b : m.named_buffers(true)) out.push_back(b.value().detach().clone());
  return out;
}

bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!a[i].sizes().equals(b[i].sizes()) || !torch::equal(a[i], b[i])) return false;
  return true;
}

void check_shapes(Target& m) {
  if (m.lin->weight.sizes() != torch::IntArrayRef({2, 3}) || m.lin->bias.sizes() != torch::IntArrayRef({2}) ||
      m.scale.sizes() != torch::IntArrayRef({2}))
    fuzz::fail("load_weights succeeded but left a tensor of another shape");
  for (const auto& t : {m.lin->weight, m.lin->bias, m.scale})
    if (t.scalar_type() != torch::kFloat32)
      fuzz::fail(absl::StrCat("load_weights succeeded but left a ", c10::toString(t.scalar_type()),
                              " tensor where the module has float32"));
}

// A module with parameters named and shaped from the bytes.
struct Built : torch::nn::Module {
  explicit Built(fuzz::Bytes& in) {
    static const char* kNames[] = {"weight", "bias", "scale", "w2", ""};
    const int np = in.u8() % 4;
    auto lin = std::make_shared<torch::nn::Module>();
    bool any_lin = false;
    for (int i = 0; i < np; ++i) {
      const char* name = kNames[in.u8() % 4];
      std::vector<int64_t> shape;
      const int rank = in.u8() % 3;
      for (int r = 0; r < rank; ++r) shape.push_back(in.u8() % 5);
      const auto dt = in.u8() % 4 == 0 ? torch::kFloat64 : torch::kFloat32;
      if (lin->named_parameters(false).contains(name)) continue;
      lin->register_parameter(name, torch::full(shape, 0.5, dt));
      any_lin = true;
    }
    if (any_lin) register_module("lin", lin);
    if (in.u8() % 2) {
      std::vector<int64_t> shape{in.u8() % 4};
      register_buffer("scale", torch::ones(shape));
    }
  }
};
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace drift;
  (void)fuzz::scratch_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = fuzz::scratch_dir();
  const std::string path = dir + "/enc.pt";
  Target m;
  const auto before = snapshot(m);
  if (size > 0 && data[0] >= 0x80 && data[0] < 0xC0) {
    fuzz::Bytes in(data + 1, size - 1);
    Built b(in);
    const std::string meta = in.u8() % 4 ? kMeta : in.str(20);
    auto sha = save_weights(b, path, meta);
    if (!sha.ok()) fuzz::fail(absl::StrCat("save_weights: ", sha.status().message()));
    // Exactly the names and shapes of Target, and the metadata: success.
    std::map<std::string, std::vector<int64_t>> want, got;
    for (const auto& p : m.named_parameters(true)) want[p.key()] = p.value().sizes().vec();
    for (const auto& p : m.named_buffers(true)) want[p.key()] = p.value().sizes().vec();
    auto st = load_weights(m, path, "", kMeta);
    fuzz::check_one_line(st, "load_weights (built)");
    // (A tensor of another dtype counts as another shape here: refused too.)
    auto shape_of = [](const torch::Tensor& t) {
      std::vector<int64_t> v = t.sizes().vec();
      if (t.scalar_type() != torch::kFloat32) v.push_back(-1);
      return v;
    };
    for (const auto& p : b.named_parameters(true)) got[p.key()] = shape_of(p.value());
    for (const auto& p : b.named_buffers(true)) got[p.key()] = shape_of(p.value());
    const bool matches = want == got && meta == kMeta;
    if (st.ok()) check_shapes(m);
    if (st.ok() && want != got && !b.named_parameters(true).is_empty() && meta == kMeta) {
      // Extra tensors in the file are allowed (load reads what the module
      // has); missing ones must fail.
      for (const auto& [k, v] : want)
        if (!got.count(k)) fuzz::fail(absl::StrCat("load_weights succeeded without tensor '", k, "'"));
    }
    if (!st.ok() && matches) fuzz::fail(absl::StrCat("a matching file was refused: ", st.message()));
    if (!st.ok() && !same(before, snapshot(m)))
      fuzz::fail(absl::StrCat("a refused file changed the module (", st.message(), ")"));
    return 0;
  }
  const uint8_t* bytes = size ? data + 1 : data;
  const size_t n = size ? size - 1 : 0;
  fuzz::write_file(path, bytes, n);
  const std::string sha = sha256_hex(bytes, n);
  if (size > 0 && (data[0] & 1)) {
    // A stale checksum file: must be refused before anything is read.
    const std::string stale = absl::StrCat(std::string(64, '0'), "  enc.pt\n");
    fuzz::write_file(checksum_path(path), stale.data(), stale.size());
    auto st = load_weights(m, path, "", kMeta);
    if (st.ok()) fuzz::fail("a file with a stale checksum was loaded");
    fuzz::check_one_line(st, "load_weights (stale checksum)");
    if (!same(before, snapshot(m))) fuzz::fail("a checksum mismatch changed the module");
  }
  auto st = load_weights(m, path, sha, kMeta);
  fuzz::check_one_line(st, "load_weights");
  if (st.ok()) check_shapes(m);
  if (!st.ok() && !same(before, snapshot(m)))
    fuzz::fail(absl::StrCat("a refused file changed the module (", st.message(), ")"));
  return 0;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  const std::string path = fuzz::scratch_dir() + "/seed.pt";
  Target m;
  auto sha = save_weights(m, path, kMeta);
  if (!sha.ok()) fuzz::fail(std::string(sha.status().message()));
  auto valid = fuzz::read_file(path);
  std::vector<uint8_t> raw{0x00};
  raw.insert(raw.end(), valid.begin(), valid.end());
  fuzz::write_seed(dir, "valid", raw);
  raw[0] = 0x01;
  fuzz::write_seed(dir, "valid_stale_checksum", raw);
  // Built modules: Target's own layout; a wrong bias shape; a missing buffer.
  fuzz::write_seed(dir, "built_matching", {0x80, 2, 0, 2, 2, 3, 1, 1, 1, 2, 1, 1, 2, 1});
  fuzz::write_seed(dir, "built_wrong_shape", {0x80, 2, 0, 2, 2, 3, 1, 1, 1, 3, 1, 1, 2, 1});
  fuzz::write_seed(dir, "built_no_buffer", {0x80, 2, 0, 2, 2, 3, 1, 1, 1, 2, 1, 0, 1});
  return 0;
}
