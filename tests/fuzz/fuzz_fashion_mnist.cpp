// Fuzz target: the Fashion-MNIST reader (data/fashion_mnist.cpp
// load_fashion_mnist), its gzip layer and its IDX parser.
//
// Input: byte 0 picks how each file is stored (bit 0: the images file, bit 1:
// the labels file; set = the target gzips the bytes itself, so that mutations
// reach the IDX parser; clear = the bytes are written as they are, so that
// mutations reach zlib's checks), bytes 1-4 (big-endian) where the images
// file's bytes end and the labels file's begin (modulo what is left).
// Property: the split has images [N, 1, 32, 32] uint8 whose 2-pixel border is
// 0, labels [N] int64 in [0, 10), N >= 1; or an error on one line naming one of
// the two files.
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <torch/torch.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "data/fashion_mnist.hpp"
#include "fuzz_common.hpp"

namespace {
using namespace drift;

std::vector<uint8_t> gzip_bytes(const uint8_t* d, size_t n) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) fuzz::fail("deflateInit2");
  std::vector<uint8_t> out(deflateBound(&zs, n) + 64);
  zs.next_in = const_cast<Bytef*>(d);
  zs.avail_in = static_cast<uInt>(n);
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) fuzz::fail("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void put_file(const std::string& path, const uint8_t* d, size_t n, bool gz) {
  if (gz) {
    const auto z = gzip_bytes(d, n);
    fuzz::write_file(path, z.data(), z.size());
  } else {
    fuzz::write_file(path, d, n);
  }
}

std::vector<uint8_t> be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
          static_cast<uint8_t>(v)};
}

// A valid pair of IDX files holding `n` images and labels.
std::vector<uint8_t> seed(uint8_t mode, uint32_t n, uint32_t side, uint8_t top_label) {
  std::vector<uint8_t> images = be32(0x803), labels = be32(0x801);
  for (uint32_t v : {n, side, side}) {
    auto b = be32(v);
    images.insert(images.end(), b.begin(), b.end());
  }
  for (uint32_t i = 0; i < n * side * side; ++i) images.push_back(static_cast<uint8_t>(i * 37));
  auto b = be32(n);
  labels.insert(labels.end(), b.begin(), b.end());
  for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<uint8_t>(i % (top_label + 1)));
  std::vector<uint8_t> in{mode};
  auto cut = be32(static_cast<uint32_t>(images.size()));
  in.insert(in.end(), cut.begin(), cut.end());
  in.insert(in.end(), images.begin(), images.end());
  in.insert(in.end(), labels.begin(), labels.end());
  return in;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::scratch_dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The reader keeps each (directory, split) it loaded for the process: a fresh
  // directory per input.
  static std::atomic<uint64_t> count{0};
  const std::string dir = absl::StrCat(fuzz::scratch_dir(), "/fm", count++);
  if (::mkdir(dir.c_str(), 0755) != 0) fuzz::fail(absl::StrCat("cannot create ", dir));
  fuzz::Bytes in(data, size);
  const uint8_t mode = in.u8();
  const uint32_t cut_at = in.u32();
  const size_t left = in.left();
  const size_t cut = left ? cut_at % (left + 1) : 0;
  const std::string ifile = dir + "/t10k-images-idx3-ubyte.gz", lfile = dir + "/t10k-labels-idx1-ubyte.gz";
  put_file(ifile, in.rest(), cut, mode & 1);
  put_file(lfile, in.rest() + cut, left - cut, mode & 2);

  auto s = data::load_fashion_mnist("test", dir);
  if (!s.ok()) {
    fuzz::check_one_line(s.status(), "load_fashion_mnist");
    const std::string m(s.status().message());
    if (m.find(ifile) == std::string::npos && m.find(lfile) == std::string::npos)
      fuzz::fail(absl::StrCat("the error names neither file: ", m));
  } else {
    fuzz::note(fuzz::kAccepted);
    const auto& im = s->images;
    const auto& lb = s->labels;
    if (im.dim() != 4 || im.size(0) < 1 || im.size(1) != 1 || im.size(2) != 32 || im.size(3) != 32 ||
        im.scalar_type() != torch::kUInt8)
      fuzz::fail(absl::StrCat("images are ", io::shape_string(im), " ", io::dtype_name(im.scalar_type())));
    if (lb.dim() != 1 || lb.size(0) != im.size(0) || lb.scalar_type() != torch::kInt64)
      fuzz::fail(absl::StrCat("labels are ", io::shape_string(lb), " for ", im.size(0), " images"));
    if (lb.min().item<int64_t>() < 0 || lb.max().item<int64_t>() > 9) fuzz::fail("a label outside 0..9");
    const auto border = im.sum().item<int64_t>() - im.slice(2, 2, 30).slice(3, 2, 30).sum().item<int64_t>();
    if (border != 0) fuzz::fail("the 2-pixel border is not background");
  }
  std::remove(ifile.c_str());
  std::remove(lfile.c_str());
  ::rmdir(dir.c_str());
  return 0;
}

int drift_fuzz_write_seeds(const std::string& dir) {
  fuzz::write_seed(dir, "valid_gz", seed(3, 3, 28, 9));
  fuzz::write_seed(dir, "valid_raw_files", seed(0, 2, 28, 9));
  fuzz::write_seed(dir, "label_10", seed(3, 11, 28, 10));
  fuzz::write_seed(dir, "side_27", seed(3, 2, 27, 9));
  fuzz::write_seed(dir, "zero_images", seed(3, 0, 28, 9));
  // Three sizes of 2^32 - 1: their product overflowed a 64-bit integer (signed
  // overflow) before the reader counted in 128 bits.
  fuzz::write_seed(dir, "regress_dims_overflow",
                   {3, 0, 0, 0, 16, 0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255});
  return 0;
}
