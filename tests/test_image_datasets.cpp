// The built-in image datasets: fashion_mnist (framework/src/data/fashion_mnist.cpp)
// and images (framework/src/data/images.cpp).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/fashion_mnist.hpp"
#include "data/images.hpp"
#include "io/h5.hpp"
#include "runtime/builtins.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"

namespace drift {
namespace {

using Given = std::map<std::string, ParamValue>;
using test::ScratchDir;

absl::StatusOr<std::unique_ptr<Dataset>> try_make(const std::string& name, const Given& given,
                                                  const DatasetContext& ctx = {}) {
  return test::try_make_dataset(name, given, ctx);
}
std::unique_ptr<Dataset> make(const std::string& name, const Given& given = {},
                              const DatasetContext& ctx = {}) {
  return test::make_dataset(name, given, ctx);
}

at::Generator gen(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

bool contains(const absl::Status& st, const std::string& s) {
  return std::string(st.message()).find(s) != std::string::npos;
}

// Per-class counts of a label tensor.
std::vector<int64_t> counts(const torch::Tensor& labels, int64_t k) {
  auto b = torch::bincount(labels, {}, k);
  return std::vector<int64_t>(b.data_ptr<int64_t>(), b.data_ptr<int64_t>() + b.numel());
}

// ----------------------------------------------------------------- IDX fixtures

void put_u32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr) << path;
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  fwrite(bytes.data(), 1, bytes.size(), f);
  fclose(f);
}

// An IDX images file: `n_header` images announced, pixels of the `n_data`
// images present: image i, pixel p holds (7 i + p) mod 256.
std::vector<uint8_t> idx_images(uint32_t n_header, uint32_t n_data, uint32_t magic = 0x803,
                                uint32_t side = 28) {
  std::vector<uint8_t> v;
  put_u32(v, magic);
  put_u32(v, n_header);
  put_u32(v, side);
  put_u32(v, side);
  for (uint32_t i = 0; i < n_data; ++i)
    for (uint32_t p = 0; p < side * side; ++p) v.push_back(static_cast<uint8_t>((7 * i + p) % 256));
  return v;
}

std::vector<uint8_t> idx_labels(uint32_t n, uint32_t magic = 0x801) {
  std::vector<uint8_t> v;
  put_u32(v, magic);
  put_u32(v, n);
  for (uint32_t i = 0; i < n; ++i) v.push_back(static_cast<uint8_t>(i % 10));
  return v;
}

// A complete fake split "train" with n images in dir.
void write_fake_split(const std::string& dir, uint32_t n) {
  write_gz(dir + "/train-images-idx3-ubyte.gz", idx_images(n, n));
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_labels(n));
}

// ----------------------------------------------------------------- fashion_mnist: the reader

TEST(FashionMnist, ReaderPadsAndPlacesEveryPixelOfAFixture) {
  ScratchDir dir("fmnist-fixture");
  write_fake_split(dir.path(), 12);
  auto s = data::load_fashion_mnist("train", dir.path());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->images.sizes(), (std::vector<int64_t>{12, 1, 32, 32}));
  EXPECT_EQ(s->images.dtype(), torch::kUInt8);
  ASSERT_EQ(s->labels.sizes(), (std::vector<int64_t>{12}));
  EXPECT_EQ(s->labels.dtype(), torch::kInt64);
  auto img = s->images.accessor<uint8_t, 4>();
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(s->labels[i].item<int64_t>(), i % 10);
    for (int64_t r = 0; r < 32; ++r)
      for (int64_t c = 0; c < 32; ++c) {
        const bool inside = r >= 2 && r < 30 && c >= 2 && c < 30;
        const int expected = inside ? (7 * i + (r - 2) * 28 + (c - 2)) % 256 : 0;
        ASSERT_EQ(img[i][0][r][c], expected) << "image " << i << " at " << r << "," << c;
      }
  }
}

TEST(FashionMnist, MissingFilesNameThePathAndThePackage) {
  ScratchDir dir("fmnist-missing");
  auto s = data::load_fashion_mnist("train", dir / "nowhere");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(contains(s.status(), dir / "nowhere/train-images-idx3-ubyte.gz")) << s.status();
  EXPECT_TRUE(contains(s.status(), "dataset-fashion-mnist")) << s.status();
  // Through the registry: the `dir` parameter, and the test split's file names.
  DatasetContext ctx;
  ctx.split = "test";
  auto d = try_make("fashion_mnist", {{"dir", dir / "nowhere"}}, ctx);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.status(), dir / "nowhere/t10k-images-idx3-ubyte.gz")) << d.status();
  // Labels missing, images present.
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_images(3, 3));
  s = data::load_fashion_mnist("train", dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.status(), dir / "train-labels-idx1-ubyte.gz")) << s.status();
}

TEST(FashionMnist, CorruptFilesNameThePathAndThePackage) {
  struct Case {
    std::string what;
    std::function<void(const std::string&)> write;  // writes the dir's files
    std::string bad_file, message;
  };
  const std::vector<Case> cases = {
      {"not gzip",
       [](const std::string& d) {
         std::vector<uint8_t> junk = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef,
                                      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
         write_raw(d + "/train-images-idx3-ubyte.gz", junk);
         write_gz(d + "/train-labels-idx1-ubyte.gz", idx_labels(3));
       },
       "train-images-idx3-ubyte.gz", "gzip"},
      {"truncated gzip",
       [](const std::string& d) {
         ScratchDir tmp("fmnist-trunc");
         write_gz(tmp / "x.gz", idx_images(50, 50));
         FILE* f = fopen((tmp / "x.gz").c_str(), "rb");
         std::vector<uint8_t> all(1 << 20);
         all.resize(fread(all.data(), 1, all.size(), f));
         fclose(f);
         all.resize(all.size() / 2);
         write_raw(d + "/train-images-idx3-ubyte.gz", all);
         write_gz(d + "/train-labels-idx1-ubyte.gz", idx_labels(50));
       },
       "train-images-idx3-ubyte.gz", "gzip"},
      {"bad magic",
       [](const std::string& d) {
         write_gz(d + "/train-images-idx3-ubyte.gz", idx_images(3, 3, 0x801));
         write_gz(d + "/train-labels-idx1-ubyte.gz", idx_labels(3));
       },
       "train-images-idx3-ubyte.gz", "magic"},
      {"truncated data",
       [](const std::string& d) {
         write_gz(d + "/train-images-idx3-ubyte.gz", idx_images(5, 3));
         write_gz(d + "/train-labels-idx1-ubyte.gz", idx_labels(5));
       },
       "train-images-idx3-ubyte.gz", "truncated"},
      {"wrong label count",
       [](const std::string& d) {
         write_gz(d + "/train-images-idx3-ubyte.gz", idx_images(5, 5));
         write_gz(d + "/train-labels-idx1-ubyte.gz", idx_labels(4));
       },
       "train-labels-idx1-ubyte.gz", "4 labels"},
      {"wrong image size",
       [](const std::string& d) {
         write_gz(d + "/train-images-idx3-ubyte.gz", idx_images(2, 2, 0x803, 27));
         write_gz(d + "/train-labels-idx1-ubyte.gz", idx_labels(2));
       },
       "train-images-idx3-ubyte.gz", "27x27"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    ScratchDir dir("fmnist-corrupt");
    c.write(dir.path());
    auto s = data::load_fashion_mnist("train", dir.path());
    ASSERT_FALSE(s.ok());
    const std::string msg(s.status().message());
    EXPECT_TRUE(contains(s.status(), dir / c.bad_file)) << msg;
    EXPECT_TRUE(contains(s.status(), "dataset-fashion-mnist")) << msg;
    EXPECT_TRUE(contains(s.status(), c.message)) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    // Printable text only: a message built from freed memory shows up here.
    EXPECT_TRUE(std::all_of(msg.begin(), msg.end(),
                            [](unsigned char ch) { return ch >= 0x20 && ch < 0x7f; }))
        << "non-printable bytes in: " << msg;
  }
}

TEST(FashionMnist, UnknownSplitIsRefused) {
  DatasetContext ctx;
  ctx.split = "valid";
  auto d = try_make("fashion_mnist", {}, ctx);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(contains(d.status(), "\"valid\"")) << d.status();
  EXPECT_TRUE(contains(d.status(), "\"validation\"")) << d.status();
}

// ----------------------------------------------------------------- fashion_mnist: the real files

bool have_fashion_mnist() {
  return std::filesystem::exists(std::string(data::kFashionMnistDir) + "/train-images-idx3-ubyte.gz");
}
#define REQUIRE_FASHION_MNIST()                                                           \
  do {                                                                                    \
    if (!have_fashion_mnist()) GTEST_SKIP() << "!!! " << data::kFashionMnistDir           \
                                            << " missing (apt-get install dataset-fashion-mnist)"; \
  } while (0)

TEST(FashionMnist, SplitsHave6000And1000ImagesPerClass) {
  REQUIRE_FASHION_MNIST();
  auto train = data::load_fashion_mnist("train");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->images.sizes(), (std::vector<int64_t>{60000, 1, 32, 32}));
  EXPECT_EQ(counts(train->labels, 10), std::vector<int64_t>(10, 6000));
  auto test = data::load_fashion_mnist("test");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->images.sizes(), (std::vector<int64_t>{10000, 1, 32, 32}));
  EXPECT_EQ(counts(test->labels, 10), std::vector<int64_t>(10, 1000));
  // The padding is background; real images use the full pixel range.
  auto inner = train->images.slice(2, 2, 30).slice(3, 2, 30);
  EXPECT_EQ(train->images.sum().item<int64_t>(), inner.sum().item<int64_t>());
  EXPECT_EQ(train->images.max().item<int64_t>(), 255);
  // Read once: a second call shares the tensors.
  auto again = data::load_fashion_mnist("train");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->images.data_ptr(), train->images.data_ptr());

  // Image 0 equals the first 784 pixel bytes of the file, read here with zlib.
  gzFile gz = gzopen((std::string(data::kFashionMnistDir) + "/train-images-idx3-ubyte.gz").c_str(), "rb");
  ASSERT_NE(gz, nullptr);
  std::vector<uint8_t> head(16 + 784);
  ASSERT_EQ(gzread(gz, head.data(), static_cast<unsigned>(head.size())), static_cast<int>(head.size()));
  gzclose(gz);
  auto first = torch::from_blob(head.data() + 16, {28, 28}, torch::kUInt8);
  EXPECT_TRUE(torch::equal(inner[0][0], first));
}

TEST(FashionMnist, FitAndValidationCutTheTrainingSplitWithoutOverlap) {
  REQUIRE_FASHION_MNIST();
  auto train = data::load_fashion_mnist("train");
  auto fit = data::load_fashion_mnist("fit");
  auto val = data::load_fashion_mnist("validation");
  ASSERT_TRUE(train.ok() && fit.ok() && val.ok());
  EXPECT_EQ(fit->images.size(0), 50000);
  EXPECT_EQ(val->images.size(0), data::kValidationImages);
  EXPECT_TRUE(torch::equal(torch::cat({fit->images, val->images}), train->images));
  EXPECT_TRUE(torch::equal(torch::cat({fit->labels, val->labels}), train->labels));
  // Every class is in the held-out part (about 1000 each).
  for (int64_t c : counts(val->labels, 10)) EXPECT_GT(c, 800);
}

TEST(FashionMnist, SamplesAreInRangeWithPaddingAtMinusOne) {
  REQUIRE_FASHION_MNIST();
  auto d = make("fashion_mnist");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sample_shape(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(d->num_classes(), 10);
  at::Generator g = gen(3);
  DataBatch b = d->sample(500, g);
  ASSERT_EQ(b.x.sizes(), (std::vector<int64_t>{500, 1, 32, 32}));
  EXPECT_EQ(b.x.dtype(), torch::kFloat32);
  ASSERT_EQ(b.labels.sizes(), (std::vector<int64_t>{500}));
  EXPECT_EQ(b.labels.dtype(), torch::kInt64);
  EXPECT_EQ(b.x.min().item<float>(), -1.0f);
  EXPECT_EQ(b.x.max().item<float>(), 1.0f);
  for (auto border : {b.x.slice(2, 0, 2), b.x.slice(2, 30, 32), b.x.slice(3, 0, 2), b.x.slice(3, 30, 32)})
    EXPECT_TRUE((border == -1.0f).all().item<bool>());
  EXPECT_GE(b.labels.min().item<int64_t>(), 0);
  EXPECT_LE(b.labels.max().item<int64_t>(), 9);
}

TEST(FashionMnist, AnEpochVisitsEveryImageOnceAndIsDeterministic) {
  REQUIRE_FASHION_MNIST();
  auto d1 = make("fashion_mnist"), d2 = make("fashion_mnist"), d3 = make("fashion_mnist");
  ASSERT_TRUE(d1 && d2 && d3);
  at::Generator g1 = gen(11), g2 = gen(11), g3 = gen(12);
  std::vector<torch::Tensor> xs, ls;
  int64_t total = 0;
  for (int64_t n : {1000, 7, 20000, 8993, 30000}) {  // 60000 in all
    DataBatch a = d1->sample(n, g1), b = d2->sample(n, g2), c = d3->sample(n, g3);
    EXPECT_TRUE(torch::equal(a.x, b.x));
    EXPECT_TRUE(torch::equal(a.labels, b.labels));
    EXPECT_FALSE(torch::equal(a.labels, c.labels));
    xs.push_back(a.x);
    ls.push_back(a.labels);
    total += n;
  }
  ASSERT_EQ(total, 60000);
  EXPECT_EQ(counts(torch::cat(ls), 10), std::vector<int64_t>(10, 6000));
  // Every image exactly once: the sorted per-image pixel sums match the split's.
  auto all = data::load_fashion_mnist("train");
  ASSERT_TRUE(all.ok());
  auto sums = [](const torch::Tensor& x) {
    return std::get<0>(x.to(torch::kFloat64).flatten(1).sum(1).sort());
  };
  EXPECT_TRUE(torch::allclose(sums(torch::cat(xs)), sums(data::pixels_to_float(all->images))));
}

// Finite and indexed: size() per split, sample() says which images it drew,
// get() returns them.
TEST(FashionMnist, EverySplitIsIndexed) {
  REQUIRE_FASHION_MNIST();
  for (const auto& [split, n] : std::vector<std::pair<std::string, int64_t>>{
           {"train", 60000}, {"test", 10000}, {"fit", 50000}, {"validation", 10000}}) {
    DatasetContext ctx;
    ctx.split = split;
    auto d = make("fashion_mnist", {}, ctx);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->size(), n) << split;
    at::Generator g = gen(4);
    DataBatch b = d->sample(300, g);
    ASSERT_TRUE(b.index.defined()) << split;
    EXPECT_GE(b.index.min().item<int64_t>(), 0);
    EXPECT_LT(b.index.max().item<int64_t>(), n);
    DataBatch again = d->get(b.index);
    EXPECT_TRUE(torch::equal(again.x, b.x)) << split;
    EXPECT_TRUE(torch::equal(again.labels, b.labels)) << split;
  }
}

TEST(FashionMnist, TestSplitThroughTheContext) {
  REQUIRE_FASHION_MNIST();
  DatasetContext ctx;
  ctx.split = "test";
  auto d = make("fashion_mnist", {}, ctx);
  ASSERT_TRUE(d);
  at::Generator g = gen(1);
  DataBatch b = d->sample(10000, g);
  EXPECT_EQ(counts(b.labels, 10), std::vector<int64_t>(10, 1000));
}

// ----------------------------------------------------------------- images (HDF5)

// N images of shape [C, H, W]; image i is filled with the value i (uint8) or
// i / 10 - 1 (float).
void write_images_file(const std::string& path, int64_t N, int64_t C, int64_t H, int64_t W,
                       torch::ScalarType dtype, const torch::Tensor& labels = {},
                       const std::string& xname = "images", const std::string& lname = "labels") {
  auto idx = torch::arange(N, torch::kFloat64).view({N, 1, 1, 1}).expand({N, C, H, W});
  torch::Tensor x = dtype == torch::kUInt8 ? idx.to(torch::kUInt8) : (idx / 10.0 - 1).to(dtype);
  absl::Status st = io::write_h5_atomically(path, [&](io::H5File& f) {
    absl::Status s = f.write(xname, x);
    if (s.ok() && labels.defined()) s = f.write(lname, labels);
    return s;
  });
  ASSERT_TRUE(st.ok()) << st;
}

// The index of each sampled image (the value it was filled with).
torch::Tensor image_ids(const torch::Tensor& x, bool from_uint8) {
  auto v = x.flatten(1).select(1, 0).to(torch::kFloat64);
  return (from_uint8 ? (v + 1) * 127.5 : (v + 1) * 10).round().to(torch::kLong);
}

TEST(ImagesDataset, Uint8ImagesMapToMinusOneOneAndLabelsInferTheClasses) {
  ScratchDir dir("images-u8");
  auto labels = torch::arange(30, torch::kLong).remainder(3);
  write_images_file(dir / "set.h5", 30, 3, 4, 6, torch::kUInt8, labels);
  DatasetContext ctx;
  ctx.base_dir = dir.path();
  auto d = make("images", {{"path", std::string("set.h5")}}, ctx);  // relative to base_dir
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sample_shape(), (std::vector<int64_t>{3, 4, 6}));
  EXPECT_EQ(d->num_classes(), 3);
  at::Generator g = gen(5);
  DataBatch b = d->sample(30, g);
  ASSERT_EQ(b.x.sizes(), (std::vector<int64_t>{30, 3, 4, 6}));
  EXPECT_EQ(b.x.dtype(), torch::kFloat32);
  // Pixel value v -> v / 127.5 - 1; image i was filled with i.
  auto ids = image_ids(b.x, true);
  EXPECT_TRUE(torch::allclose(b.x.flatten(1).select(1, 0), ids.to(torch::kFloat32) / 127.5 - 1));
  EXPECT_TRUE(torch::equal(b.labels, ids.remainder(3)));
  // Explicit num_classes above the largest label.
  auto d5 = make("images", {{"path", dir / "set.h5"}, {"num_classes", int64_t{5}}});
  ASSERT_TRUE(d5);
  EXPECT_EQ(d5->num_classes(), 5);
  // labels = "": unlabelled.
  auto du = make("images", {{"path", dir / "set.h5"}, {"labels", std::string("")}});
  ASSERT_TRUE(du);
  EXPECT_EQ(du->num_classes(), 0);
  EXPECT_FALSE(du->sample(4, g).labels.defined());
}

// Finite and indexed: size(), sample() fills index with the drawn images'
// positions, get() returns those images and labels without moving the epoch.
TEST(ImagesDataset, SizeGetAndSampleIndex) {
  ScratchDir dir("images-index");
  write_images_file(dir / "set.h5", 30, 1, 2, 2, torch::kUInt8, torch::arange(30, torch::kLong).remainder(3));
  auto d = make("images", {{"path", dir / "set.h5"}});
  auto d2 = make("images", {{"path", dir / "set.h5"}});
  ASSERT_TRUE(d && d2);
  EXPECT_EQ(d->size(), 30);
  at::Generator g = gen(3), g2 = gen(3);
  DataBatch b = d->sample(12, g);
  ASSERT_TRUE(b.index.defined());
  EXPECT_EQ(b.index.dtype(), torch::kInt64);
  EXPECT_TRUE(torch::equal(b.index, image_ids(b.x, true)));
  DataBatch got = d2->get(b.index);
  EXPECT_TRUE(torch::equal(got.x, b.x));
  EXPECT_TRUE(torch::equal(got.labels, b.labels));
  EXPECT_TRUE(torch::equal(got.index, b.index));
  EXPECT_TRUE(torch::equal(d2->sample(12, g2).index, b.index));  // get() left the sampling alone
  EXPECT_THROW(d->get(torch::tensor({30}, torch::kLong)), std::out_of_range);
  // A dataset that is not a finite set says so.
  auto toy = make("bimodal");
  ASSERT_TRUE(toy);
  EXPECT_EQ(toy->size(), 0);
  EXPECT_THROW(toy->get(torch::tensor({0}, torch::kLong)), std::logic_error);
  at::Generator g3 = gen(1);
  EXPECT_FALSE(toy->sample(3, g3).index.defined());
}

TEST(ImagesDataset, FloatImagesAreTakenAsTheyAre) {
  ScratchDir dir("images-f");
  write_images_file(dir / "lat.h5", 20, 4, 2, 2, torch::kFloat64, {}, "latents");
  auto d = make("images", {{"path", dir / "lat.h5"}, {"images", std::string("latents")}});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->num_classes(), 0);  // no labels dataset in the file
  at::Generator g = gen(2);
  DataBatch b = d->sample(20, g);
  EXPECT_EQ(b.x.dtype(), torch::kFloat32);
  EXPECT_FALSE(b.labels.defined());
  auto ids = image_ids(b.x, false);
  EXPECT_TRUE(torch::allclose(b.x, (ids.to(torch::kFloat32) / 10 - 1).view({20, 1, 1, 1}).expand_as(b.x)));
  EXPECT_LT(b.x.min().item<float>(), -0.95f);  // -1 for image 0: not rescaled
  EXPECT_GT(b.x.max().item<float>(), 0.85f);   // 0.9 for image 19
}

TEST(ImagesDataset, EpochsAreWithoutReplacementAndDeterministic) {
  ScratchDir dir("images-epoch");
  write_images_file(dir / "set.h5", 30, 1, 2, 2, torch::kUInt8);
  auto d1 = make("images", {{"path", dir / "set.h5"}});
  auto d2 = make("images", {{"path", dir / "set.h5"}});
  ASSERT_TRUE(d1 && d2);
  at::Generator g1 = gen(9), g2 = gen(9);
  std::vector<torch::Tensor> epoch1, epoch2;
  for (int64_t n : {7, 7, 7, 9}) epoch1.push_back(image_ids(d1->sample(n, g1).x, true));
  for (int64_t n : {13, 17}) epoch2.push_back(image_ids(d1->sample(n, g1).x, true));
  auto e1 = torch::cat(epoch1), e2 = torch::cat(epoch2);
  EXPECT_TRUE(torch::equal(std::get<0>(e1.sort()), torch::arange(30, torch::kLong)));
  EXPECT_TRUE(torch::equal(std::get<0>(e2.sort()), torch::arange(30, torch::kLong)));
  EXPECT_FALSE(torch::equal(e1, e2));  // a fresh shuffle per epoch
  // Same generator, same draws: one call of 30 gives the first epoch's order.
  EXPECT_TRUE(torch::equal(image_ids(d2->sample(30, g2).x, true), e1));
  // A batch larger than the set spans epochs: each id at most twice in 40.
  auto d3 = make("images", {{"path", dir / "set.h5"}});
  at::Generator g3 = gen(1);
  auto c = torch::bincount(image_ids(d3->sample(40, g3).x, true), {}, 30);
  EXPECT_GE(c.min().item<int64_t>(), 1);
  EXPECT_LE(c.max().item<int64_t>(), 2);
}

TEST(ImagesDataset, WrongFilesNameTheFileTheDatasetAndWhatWasExpected) {
  ScratchDir dir("images-bad");
  struct Case {
    std::string what;
    std::function<void(const std::string&)> write;
    Given extra;
    std::vector<std::string> message;
  };
  auto u8 = [](std::vector<int64_t> shape) { return torch::zeros(shape, torch::kUInt8); };
  auto file_with = [](const std::string& path, std::map<std::string, torch::Tensor> sets) {
    absl::Status st = io::write_h5_atomically(path, [&](io::H5File& f) {
      for (auto& [k, v] : sets) {
        absl::Status s = f.write(k, v);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    });
    ASSERT_TRUE(st.ok()) << st;
  };
  const std::vector<Case> cases = {
      {"3-D images", [&](const std::string& p) { file_with(p, {{"images", u8({5, 4, 4})}}); }, {},
       {"'images'", "[5, 4, 4]", "[N, C, H, W]"}},
      {"int64 images",
       [&](const std::string& p) { file_with(p, {{"images", torch::zeros({5, 1, 4, 4}, torch::kLong)}}); },
       {}, {"'images'", "int64", "uint8"}},
      {"no images dataset", [&](const std::string& p) { file_with(p, {{"x", u8({5, 1, 4, 4})}}); }, {},
       {"'images'", "[N, C, H, W]"}},
      {"labels of the wrong length",
       [&](const std::string& p) {
         file_with(p, {{"images", u8({5, 1, 4, 4})}, {"labels", torch::zeros({4}, torch::kLong)}});
       },
       {}, {"'labels'", "[4]", "[5]"}},
      {"float labels",
       [&](const std::string& p) {
         file_with(p, {{"images", u8({5, 1, 4, 4})}, {"labels", torch::zeros({5}, torch::kFloat32)}});
       },
       {}, {"'labels'", "float32", "integer"}},
      {"negative label",
       [&](const std::string& p) {
         file_with(p, {{"images", u8({3, 1, 4, 4})}, {"labels", torch::tensor({0L, -1L, 2L})}});
       },
       {}, {"'labels'", "negative"}},
      {"label >= num_classes",
       [&](const std::string& p) {
         file_with(p, {{"images", u8({3, 1, 4, 4})}, {"labels", torch::tensor({0L, 4L, 2L})}});
       },
       {{"num_classes", int64_t{3}}}, {"'labels'", "num_classes = 3"}},
      {"num_classes without labels",
       [&](const std::string& p) { file_with(p, {{"images", u8({3, 1, 4, 4})}}); },
       {{"num_classes", int64_t{3}}}, {"'labels'", "num_classes = 3"}},
  };
  int k = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = dir / ("f" + std::to_string(k++) + ".h5");
    c.write(path);
    Given given = c.extra;
    given["path"] = path;
    auto d = try_make("images", given);
    ASSERT_FALSE(d.ok());
    const std::string msg(d.status().message());
    EXPECT_TRUE(contains(d.status(), path)) << msg;
    for (const auto& m : c.message) EXPECT_TRUE(contains(d.status(), m)) << m << " in: " << msg;
  }
  auto missing = try_make("images", {{"path", dir / "none.h5"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.status(), dir / "none.h5")) << missing.status();
  EXPECT_FALSE(try_make("images", {}).ok());  // path is required
}

}  // namespace
}  // namespace drift
