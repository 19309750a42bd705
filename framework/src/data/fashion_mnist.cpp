#include "data/fashion_mnist.hpp"

#include <torch/torch.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/images.hpp"

namespace drift::data {
namespace {

constexpr int64_t kSide = 28, kPad = 2, kClasses = 10;
constexpr uint32_t kImagesMagic = 0x00000803;  // IDX: uint8, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // IDX: uint8, 1 dimension
constexpr const char* kPackage = "the Debian package dataset-fashion-mnist";

// "fashion_mnist: FILE: WHAT (... dataset-fashion-mnist ...)"
absl::Status file_error(const std::string& file, const std::string& what) {
  return absl::DataLossError(absl::StrCat("fashion_mnist: ", file, ": ", what,
                                          " (corrupt or not Fashion-MNIST; the files come from ",
                                          kPackage, ": reinstall it, or set [data] dir)"));
}

// The whole decompressed content of a gzip file.
absl::StatusOr<std::vector<uint8_t>> read_gz(const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec))
    return absl::NotFoundError(absl::StrCat("fashion_mnist: ", file, ": no such file (provided by ",
                                            kPackage, ": apt-get install dataset-fashion-mnist, ",
                                            "or set [data] dir)"));
  gzFile gz = gzopen(file.c_str(), "rb");
  if (gz == nullptr) return file_error(file, "cannot be opened");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  int n = 0;
  // Fashion-MNIST's largest file holds 47 MB: a file that inflates past this
  // bound is not one of its files (and is not read into memory whole).
  constexpr size_t kMaxBytes = size_t{256} << 20;
  while ((n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()))) > 0) {
    out.insert(out.end(), buf.begin(), buf.begin() + n);
    if (out.size() > kMaxBytes) {
      gzclose(gz);
      return file_error(file, "inflates to more than 256 MiB");
    }
  }
  int errnum = Z_OK;
  // gzerror's string belongs to the gzFile: copy it before gzclose frees it.
  const char* msg = gzerror(gz, &errnum);
  const std::string zlib_msg = (msg && *msg) ? msg : "error";
  gzclose(gz);
  if (n < 0 || (errnum != Z_OK && errnum != Z_STREAM_END))
    return file_error(file, absl::StrCat("corrupt gzip data (zlib: ", zlib_msg, ")"));
  return out;
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Parses an IDX file of `ndims` dimensions; returns its dimensions and checks
// that exactly their product of bytes follows the header.
absl::StatusOr<std::vector<int64_t>> idx_dims(const std::vector<uint8_t>& bytes, uint32_t magic,
                                              int ndims, const std::string& file) {
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  if (bytes.size() < header)
    return file_error(file, absl::StrCat("truncated: ", bytes.size(),
                                         " bytes, shorter than the IDX header (", header, ")"));
  const uint32_t got = big_endian_u32(bytes.data());
  if (got != magic)
    return file_error(file, absl::StrFormat("bad magic number 0x%08x, expected 0x%08x (IDX, uint8, "
                                            "%d dimension%s)",
                                            got, magic, ndims, ndims == 1 ? "" : "s"));
  std::vector<int64_t> dims;
  // Up to three 32-bit sizes: their product needs up to 96 bits.
  unsigned __int128 total = 1;
  for (int d = 0; d < ndims; ++d) {
    dims.push_back(big_endian_u32(bytes.data() + 4 + 4 * d));
    total *= static_cast<uint64_t>(dims.back());
  }
  const uint64_t data = bytes.size() - header;
  if (total != data) {
    const std::string announced = total > std::numeric_limits<uint64_t>::max()
                                      ? absl::StrCat(dims[0], " x ", dims[1], " x ", dims[2])
                                      : absl::StrCat(static_cast<uint64_t>(total));
    return file_error(file, absl::StrCat("the header announces ", announced, " bytes of data but the ",
                                         "file holds ", data, total > data ? " (truncated)" : ""));
  }
  return dims;
}

absl::StatusOr<FashionMnistSplit> read_split(const std::string& split, const std::string& dir) {
  const std::string stem = split == "train" ? "train" : "t10k";
  const std::string ifile = absl::StrCat(dir, "/", stem, "-images-idx3-ubyte.gz");
  const std::string lfile = absl::StrCat(dir, "/", stem, "-labels-idx1-ubyte.gz");

  auto ibytes = read_gz(ifile);
  if (!ibytes.ok()) return ibytes.status();
  auto idims = idx_dims(*ibytes, kImagesMagic, 3, ifile);
  if (!idims.ok()) return idims.status();
  if ((*idims)[1] != kSide || (*idims)[2] != kSide)
    return file_error(ifile, absl::StrCat("images are ", (*idims)[1], "x", (*idims)[2],
                                          ", expected ", kSide, "x", kSide));
  const int64_t N = (*idims)[0];
  if (N == 0) return file_error(ifile, "holds 0 images");

  auto lbytes = read_gz(lfile);
  if (!lbytes.ok()) return lbytes.status();
  auto ldims = idx_dims(*lbytes, kLabelsMagic, 1, lfile);
  if (!ldims.ok()) return ldims.status();
  if ((*ldims)[0] != N)
    return file_error(lfile, absl::StrCat("holds ", (*ldims)[0], " labels but ", ifile, " holds ",
                                          N, " images"));

  FashionMnistSplit s;
  torch::Tensor raw = torch::from_blob(ibytes->data() + 16, {N, 1, kSide, kSide}, torch::kUInt8);
  s.images = torch::zeros({N, 1, kSide + 2 * kPad, kSide + 2 * kPad}, torch::kUInt8);
  s.images.slice(2, kPad, kPad + kSide).slice(3, kPad, kPad + kSide).copy_(raw);
  s.labels = torch::from_blob(lbytes->data() + 8, {N}, torch::kUInt8).to(torch::kInt64);
  const int64_t hi = s.labels.max().item<int64_t>();
  if (hi >= kClasses)
    return file_error(lfile, absl::StrCat("holds label ", hi, ", expected 0..", kClasses - 1));
  return s;
}

absl::StatusOr<std::unique_ptr<Dataset>> make_fashion_mnist(const Params& p,
                                                            const DatasetContext& ctx) {
  namespace fs = std::filesystem;
  fs::path dir(p.get_string("dir"));
  if (dir.is_relative() && !ctx.base_dir.empty()) dir = fs::path(ctx.base_dir) / dir;
  auto s = load_fashion_mnist(ctx.split, dir.lexically_normal().string());
  if (!s.ok()) return s.status();
  return make_in_memory_image_dataset(s->images, s->labels, kClasses);
}

}  // namespace

absl::StatusOr<FashionMnistSplit> load_fashion_mnist(const std::string& split,
                                                     const std::string& dir) {
  if (split == "fit" || split == "validation") {
    // The training split cut in two: the first 50k images to train on, the
    // last 10k to select recipes on (schemas: [eval] reference).
    auto train = load_fashion_mnist("train", dir);
    if (!train.ok()) return train.status();
    const int64_t n = train->images.size(0), cut = n - kValidationImages;
    FashionMnistSplit s;
    s.images = split == "fit" ? train->images.slice(0, 0, cut) : train->images.slice(0, cut, n);
    s.labels = split == "fit" ? train->labels.slice(0, 0, cut) : train->labels.slice(0, cut, n);
    return s;
  }
  if (split != "train" && split != "test")
    return absl::InvalidArgumentError(absl::StrCat("fashion_mnist: split \"", split,
                                                   "\", expected \"train\", \"test\", \"fit\" or \"validation\""));
  static std::mutex mu;
  static std::map<std::string, FashionMnistSplit> cache;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = absl::StrCat(dir, "\n", split);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto s = read_split(split, dir);
  if (!s.ok()) return s.status();
  cache.emplace(key, *s);
  return *s;
}

absl::Status register_fashion_mnist(drift::runtime::Registry& reg) {
  ComponentInfo c;
  c.kind = ComponentKind::Dataset;
  c.name = "fashion_mnist";
  c.doc =
      "Fashion-MNIST (Debian package dataset-fashion-mnist): [1, 32, 32] in [-1, 1] (28x28 "
      "padded by 2), 10 classes, split train (60k) / test (10k); sampled without replacement";
  c.params = {ParamSpec::String("dir", kFashionMnistDir,
                                "folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz "
                                "(relative paths resolve against the experiment file)")};
  c.factory = DatasetFactory(make_fashion_mnist);
  return reg.add_builtin(std::move(c));
}

}  // namespace drift::data
