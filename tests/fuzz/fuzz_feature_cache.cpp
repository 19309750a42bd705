// Fuzz target: the feature-cache file (train/feature_cache.cpp), as
// FeatureCache::open finds it in its directory: a corrupt, truncated, foreign
// or altered file must be rebuilt (the directory is writable), never loaded,
// and never crash or hang the open.
// Property: open() succeeds and every lookup equals the encoder's own output
// (within float16 rounding).
//
// Inputs (first byte):
//   0x80..0xBF  the valid cache file with one alteration from the bytes: a
//               dataset removed, reshaped, retyped, or rewritten with probe
//               rows changed and its CRC-32 recomputed; an attribute removed,
//               retyped or rewritten
//   otherwise   fuzz_common.hpp's raw file image / spec file
#include <hdf5.h>
#include <zlib.h>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/images.hpp"
#include "fuzz_common.hpp"
#include "train/feature_cache.hpp"

namespace {
using namespace drift;

// Two features of an image [C=1, 4, 4]: "mean" [L=1, D=2] and "rows" [L=4, D=3].
struct TinyEncoder : FeatureEncoder {
  torch::Tensor w;
  TinyEncoder() { w = register_parameter("w", torch::linspace(-1, 1, 12).view({4, 3}), false); }
  std::vector<Feature> encode(const torch::Tensor& x) override {
    const int64_t G = x.size(0), n = x.size(1);
    auto img = x.reshape({G, n, 4, 4}).to(torch::kFloat32);
    auto mean = torch::stack({img.mean({2, 3}), img.amax({2, 3})}, -1).unsqueeze(1);  // [G, 1, n, 2]
    auto rows = torch::matmul(img, w).permute({0, 2, 1, 3}).contiguous();                  // [G, 4, n, 3]
    return {{"mean", mean}, {"rows", rows}};
  }
};

constexpr int64_t kN = 10;

struct Setup {
  std::shared_ptr<TinyEncoder> enc = std::make_shared<TinyEncoder>();
  std::unique_ptr<Dataset> data;
  train::FeatureCacheSpec spec;
  std::string path;
  std::vector<uint8_t> valid;     // the valid file's bytes
  std::vector<torch::Tensor> ref;  // per feature [1, L, kN, D]
  Setup() {
    enc->eval();
    auto x = torch::arange(kN * 16, torch::kLong).remainder(251).to(torch::kUInt8).view({kN, 1, 4, 4});
    data = data::make_in_memory_image_dataset(x, torch::Tensor(), 0);
    spec.dir = fuzz::scratch_dir() + "/cache";
    spec.encoder = "tiny";
    spec.encoder_params = "";
    spec.dataset = "images";
    spec.dataset_params = "path=fuzz";
    spec.split = "train";
    spec.progress = false;
    spec.dtype = torch::kFloat16;
    auto c = train::FeatureCache::open(spec, *enc, *data, torch::kCPU);
    if (!c.ok()) fuzz::fail(std::string(c.status().message()));
    path = c->path();
    valid = fuzz::read_file(path);
    torch::NoGradGuard ng;
    for (auto& f : enc->encode(data->get(torch::arange(kN, torch::kLong)).x.unsqueeze(0)))
      ref.push_back(f.value);
  }
};

Setup& setup() {
  static Setup* s = new Setup();
  return *s;
}

std::string crc_hex(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  const uLong crc = crc32_z(crc32_z(0L, Z_NULL, 0), static_cast<const Bytef*>(c.data_ptr()),
                            static_cast<size_t>(c.numel()) * c.element_size());
  return absl::StrFormat("%08x", static_cast<uint32_t>(crc));
}

// The valid file with one alteration (see the header).
void write_altered(const std::string& path, fuzz::Bytes& in) {
  Setup& s = setup();
  fuzz::write_file(path, s.valid.data(), s.valid.size());
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (id < 0) fuzz::fail("cannot open the valid cache file for writing");
  const char* feats[] = {"features/mean", "features/rows"};
  const char* ds = feats[in.u8() % 2];
  const char* attrs[] = {"key", "features", "n", "format"};
  const uint8_t op = in.u8() % 7;
  auto rewrite = [&](const torch::Tensor& t, bool with_crc) {
    // io::H5File writes only to files it creates: through HDF5 directly.
    H5Ldelete(id, ds, H5P_DEFAULT);
    const hid_t fid = id;
    const hid_t type = t.scalar_type() == torch::kFloat64 ? H5T_NATIVE_DOUBLE
                       : t.scalar_type() == torch::kFloat32 ? H5T_NATIVE_FLOAT
                                                            : H5T_NATIVE_UINT16;  // float16 bits
    std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t d = H5Dcreate2(fid, ds, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const torch::Tensor c = t.contiguous();
    if (d >= 0 && c.numel() > 0) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data_ptr());
    if (d >= 0 && with_crc) {
      const std::string crc = crc_hex(c);
      hid_t st = H5Tcopy(H5T_C_S1);
      H5Tset_size(st, H5T_VARIABLE);
      hid_t sp = H5Screate(H5S_SCALAR);
      hid_t a = H5Acreate2(d, "crc32", st, sp, H5P_DEFAULT, H5P_DEFAULT);
      const char* p = crc.c_str();
      if (a >= 0) H5Awrite(a, st, &p), H5Aclose(a);
      H5Sclose(sp);
      H5Tclose(st);
    }
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
  };
  const int j = ds == feats[0] ? 0 : 1;
  const torch::Tensor good = s.ref[j].select(0, 0).transpose(0, 1).contiguous();  // [N, L, D] float32
  switch (op) {
    case 0: H5Ldelete(id, ds, H5P_DEFAULT); break;
    case 1: {  // another shape (rows dropped or added), CRC consistent
      const int64_t n = 1 + in.u8() % (2 * kN);
      rewrite(torch::zeros({n, good.size(1), good.size(2)}, torch::kFloat16), true);
      break;
    }
    case 2: rewrite(good.to(torch::kFloat32), true); break;   // float32 in a float16 cache
    case 3: rewrite(good.to(torch::kFloat64), true); break;   // float64
    case 4: {  // probe rows altered, CRC recomputed: the probe check must catch it
      torch::Tensor t = good.clone();
      t.select(0, in.u8() % 4).add_(1.0 + in.u8());
      rewrite(t.to(torch::kFloat16), true);
      break;
    }
    case 5: H5Adelete(id, attrs[in.u8() % 4]); break;
    case 6: {  // an attribute rewritten as a number
      const char* a = attrs[in.u8() % 4];
      H5Adelete(id, a);
      hid_t sp = H5Screate(H5S_SCALAR);
      hid_t at = H5Acreate2(id, a, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
      const int64_t v = static_cast<int64_t>(in.u32());
      if (at >= 0) H5Awrite(at, H5T_NATIVE_INT64, &v), H5Aclose(at);
      H5Sclose(sp);
      break;
    }
  }
  if (id >= 0) H5Fclose(id);
}

const std::vector<std::string> kNames = {"features/mean", "features/rows", "key", "features", "n", "format", "crc32"};
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Setup& s = setup();
  if (size > 0 && data[0] >= 0x80 && data[0] < 0xC0) {
    fuzz::Bytes in(data + 1, size - 1);
    write_altered(s.path, in);
  } else {
    fuzz::write_h5_input(s.path, data, size, kNames);
  }
  auto c = train::FeatureCache::open(s.spec, *s.enc, *s.data, torch::kCPU);
  if (!c.ok()) {
    fuzz::check_one_line(c.status(), "FeatureCache::open");
    fuzz::fail(absl::StrCat("open() failed in a writable directory: ", c.status().message()));
  }
  fuzz::note(c->built() ? fuzz::kRefused : fuzz::kAccepted);
  const auto got = c->lookup(torch::arange(kN, torch::kLong).unsqueeze(0));
  if (got.size() != s.ref.size()) fuzz::fail("lookup gave another number of features");
  for (size_t j = 0; j < got.size(); ++j) {
    if (got[j].value.sizes() != s.ref[j].sizes())
      fuzz::fail(absl::StrCat("feature ", got[j].name, " has shape ", io::shape_string(got[j].value)));
    const double err = (got[j].value - s.ref[j]).abs().max().item<double>();
    const double tol = 1e-2 * (1 + s.ref[j].abs().max().item<double>());
    if (!(err <= tol))
      fuzz::fail(absl::StrCat("feature ", got[j].name, " differs from the encoder by ", err, " (",
                              c->built() ? "rebuilt" : "loaded from the altered file", ")"));
  }
  return 0;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  Setup& s = setup();
  std::vector<uint8_t> raw{0x00};
  raw.insert(raw.end(), s.valid.begin(), s.valid.end());
  fuzz::write_seed(dir, "valid_cache", raw);
  for (uint8_t op = 0; op < 7; ++op)
    fuzz::write_seed(dir, absl::StrCat("altered_", int(op)), {0x80, static_cast<uint8_t>(op), op, 1, 2, 3, 4});
  fuzz::write_seed(dir, "spec_wrong_key", fuzz::spec_seed({2, 2, 2, 2, 0, 5, 'o', 't', 'h', 'e', 'r', 0, 0, 7, 3, 5, 1, 2, 0, 0}));
  return 0;
}
