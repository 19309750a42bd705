// The real-feature cache (framework/src/train/feature_cache.hpp): lookups equal
// the encoder's own output, a second open is a hit, other weights or another
// feature configuration get another file, truncated, corrupt and foreign
// files are rebuilt, an unwritable directory is an error naming the file, and
// two processes opening at once build it once.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "drift/checksum.hpp"
#include "io/file_lock.hpp"
#include "io/h5.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"
#include "train/feature_cache.hpp"

namespace {

using drift::ParamValue;
using drift::test::ScratchDir;
using drift::train::FeatureCache;
using drift::train::FeatureCacheSpec;
using Given = std::map<std::string, ParamValue>;

constexpr int64_t kImages = 300;

// kImages random uint8 images [1, 16, 16] with labels 0..3, as an `images` file.
void write_images(const std::string& path, int64_t n = kImages, uint64_t seed = 1) {
  auto g = at::detail::createCPUGenerator(seed);
  const torch::Tensor x = torch::randint(0, 256, {n, 1, 16, 16}, g, torch::kLong).to(torch::kUInt8);
  const torch::Tensor labels = torch::arange(n, torch::kLong).remainder(4);
  auto st = drift::io::write_h5_atomically(path, [&](drift::io::H5File& f) {
    auto s = f.write("images", x);
    return s.ok() ? f.write("labels", labels) : s;
  });
  ASSERT_TRUE(st.ok()) << st;
}

std::unique_ptr<drift::Dataset> images(const std::string& path) {
  return drift::test::make_dataset("images", {{"path", path}});
}

struct Enc {
  std::shared_ptr<drift::FeatureEncoder> encoder;
  std::string params;  // canonical
};

Enc random_resnet(const Given& extra = {}) {
  Given given{{"widths", std::vector<int64_t>{8, 16}}, {"blocks", std::vector<int64_t>{1, 1}}};
  for (const auto& [k, v] : extra) given[k] = v;
  auto& reg = drift::test::default_registry();
  auto p = reg.validate(drift::ComponentKind::Encoder, "random_resnet", given, "test");
  EXPECT_TRUE(p.ok()) << p.status();
  drift::EncoderContext ctx;
  ctx.sample_shape = {1, 16, 16};
  auto e = reg.make_encoder("random_resnet", *p, ctx);
  EXPECT_TRUE(e.ok()) << e.status();
  (*e)->eval();
  return {*e, drift::train::canonical_params(*p)};
}

FeatureCacheSpec spec_for(const std::string& dir, const Enc& enc, torch::ScalarType dtype) {
  FeatureCacheSpec s;
  s.dir = dir;
  s.encoder = "random_resnet";
  s.encoder_params = enc.params;
  s.dataset = "images";
  s.dataset_params = "path=test";
  s.split = "train";
  s.dtype = dtype;
  s.batch = 64;
  s.progress = false;
  return s;
}

FeatureCache open_ok(const FeatureCacheSpec& s, drift::FeatureEncoder& enc, drift::Dataset& data) {
  auto c = FeatureCache::open(s, enc, data, torch::kCPU);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) std::abort();
  return std::move(*c);
}

// Every feature of every sample, [N, sum(L * D)] float32: a whole-table fingerprint.
torch::Tensor all_rows(const FeatureCache& c) {
  std::vector<torch::Tensor> parts;
  for (const auto& f : c.lookup(torch::arange(c.size(), torch::kLong).unsqueeze(0)))
    parts.push_back(f.value.select(0, 0).transpose(0, 1).flatten(1));  // [N, L * D]
  return torch::cat(parts, 1);
}

struct FileStamp {
  ino_t ino;
  int64_t mtime_ns;
};
FileStamp stamp(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return {st.st_ino, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(FeatureCache, LookupEqualsTheEncoderInFloat32AndFloat16) {
  ScratchDir dir("fc-lookup");
  write_images(dir / "set.h5");
  auto data = images(dir / "set.h5");
  Enc enc = random_resnet();
  // [G = 2, n = 5], a repeat and the last sample included.
  const torch::Tensor index = torch::tensor({3, 17, 3, 299, 0, 150, 151, 42, 7, 298}, torch::kLong).view({2, 5});
  const torch::Tensor x = data->get(index.flatten()).x.view({2, 5, 1, 16, 16});
  std::vector<drift::Feature> want;
  {
    torch::NoGradGuard no_grad;
    want = enc.encoder->encode(x);
  }
  for (auto dtype : {torch::kFloat32, torch::kFloat16}) {
    FeatureCache c = open_ok(spec_for(dir / "features", enc, dtype), *enc.encoder, *data);
    EXPECT_TRUE(c.built());
    EXPECT_EQ(c.size(), kImages);
    EXPECT_GT(c.file_bytes(), c.table_bytes());
    const auto got = c.lookup(index);
    ASSERT_EQ(got.size(), want.size());
    for (size_t j = 0; j < want.size(); ++j) {
      EXPECT_EQ(got[j].name, want[j].name);
      ASSERT_EQ(got[j].value.sizes(), want[j].value.sizes()) << want[j].name;
      EXPECT_EQ(got[j].value.scalar_type(), torch::kFloat32);
      const double rtol = dtype == torch::kFloat32 ? 1e-6 : 2e-3;
      EXPECT_TRUE(torch::allclose(got[j].value, want[j].value, rtol, 1e-6))
          << want[j].name << " " << c10::toString(dtype) << ": max abs diff "
          << (got[j].value - want[j].value).abs().max().item<double>();
    }
  }
  // The float16 table is half the float32 one.
  auto c32 = open_ok(spec_for(dir / "features", enc, torch::kFloat32), *enc.encoder, *data);
  auto c16 = open_ok(spec_for(dir / "features", enc, torch::kFloat16), *enc.encoder, *data);
  EXPECT_NE(c32.path(), c16.path());
  EXPECT_EQ(c32.table_bytes(), 2 * c16.table_bytes());
  EXPECT_THROW(c32.lookup(torch::tensor({int64_t{0}, kImages}, torch::kLong).view({1, 2})), std::out_of_range);
}

TEST(FeatureCache, SecondOpenIsAHit) {
  ScratchDir dir("fc-hit");
  write_images(dir / "set.h5");
  auto data = images(dir / "set.h5");
  Enc enc = random_resnet();
  const auto spec = spec_for(dir / "features", enc, torch::kFloat16);
  FeatureCache a = open_ok(spec, *enc.encoder, *data);
  ASSERT_TRUE(a.built());
  EXPECT_GT(a.build_seconds(), 0);
  const FileStamp before = stamp(a.path());
  // File name: <encoder>-<16 hex of the key's SHA-256>.h5, in the directory.
  EXPECT_EQ(a.path(), dir / "features" + "/random_resnet-" +
                          drift::sha256_hex(a.key().data(), a.key().size()).substr(0, 16) + ".h5");
  FeatureCache b = open_ok(spec, *enc.encoder, *data);
  EXPECT_FALSE(b.built());
  EXPECT_EQ(b.build_seconds(), 0);
  EXPECT_EQ(b.path(), a.path());
  const FileStamp after = stamp(b.path());
  EXPECT_EQ(after.ino, before.ino);
  EXPECT_EQ(after.mtime_ns, before.mtime_ns);
  EXPECT_TRUE(torch::equal(all_rows(a), all_rows(b)));
  // The cell's sampling is not disturbed by building (get() is not sample()).
  auto fresh = images(dir / "set.h5");
  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  EXPECT_TRUE(torch::equal(data->sample(20, g1).index, fresh->sample(20, g2).index));
}

TEST(FeatureCache, OtherWeightsAreAMiss) {
  ScratchDir dir("fc-weights");
  write_images(dir / "set.h5");
  auto data = images(dir / "set.h5");
  Enc enc = random_resnet();
  const auto spec = spec_for(dir / "features", enc, torch::kFloat32);
  FeatureCache a = open_ok(spec, *enc.encoder, *data);
  ASSERT_TRUE(a.built());
  {
    // One weight changed in place: same parameters, another key and file.
    torch::NoGradGuard no_grad;
    auto p = enc.encoder->parameters().front();
    p.view(-1)[0] += 0.5;
  }
  FeatureCache b = open_ok(spec, *enc.encoder, *data);
  EXPECT_TRUE(b.built());
  EXPECT_NE(b.path(), a.path());
  EXPECT_NE(b.key(), a.key());
  EXPECT_FALSE(torch::equal(all_rows(a), all_rows(b)));
  // Another seed: another file too.
  Enc other = random_resnet({{"seed", int64_t{1}}});
  FeatureCache c = open_ok(spec_for(dir / "features", other, torch::kFloat32), *other.encoder, *data);
  EXPECT_TRUE(c.built());
  EXPECT_NE(c.path(), a.path());
  EXPECT_NE(c.path(), b.path());
}

TEST(FeatureCache, AnotherFeatureConfigurationIsAnotherKey) {
  ScratchDir dir("fc-maps");
  write_images(dir / "set.h5");
  auto data = images(dir / "set.h5");
  Enc s1 = random_resnet({{"maps", std::vector<std::string>{"s1"}}});
  Enc s2 = random_resnet({{"maps", std::vector<std::string>{"s2"}}});
  Enc ab = random_resnet({{"maps", std::vector<std::string>{"s2"}}, {"features", std::string("a,b")}});
  FeatureCache a = open_ok(spec_for(dir / "features", s1, torch::kFloat16), *s1.encoder, *data);
  FeatureCache b = open_ok(spec_for(dir / "features", s2, torch::kFloat16), *s2.encoder, *data);
  FeatureCache c = open_ok(spec_for(dir / "features", ab, torch::kFloat16), *ab.encoder, *data);
  EXPECT_TRUE(a.built() && b.built() && c.built());
  EXPECT_NE(a.key(), b.key());
  EXPECT_NE(b.key(), c.key());
  EXPECT_NE(a.path(), b.path());
  EXPECT_NE(b.path(), c.path());
  EXPECT_TRUE(contains(b.key(), "s2.loc [16, 16]")) << b.key();
  EXPECT_FALSE(contains(c.key(), "s2.p2.mean")) << c.key();
  // Other data (same name and parameters, other images): another key too.
  write_images(dir / "other.h5", kImages, 2);
  auto other = images(dir / "other.h5");
  FeatureCache d = open_ok(spec_for(dir / "features", s2, torch::kFloat16), *s2.encoder, *other);
  EXPECT_TRUE(d.built());
  EXPECT_NE(d.path(), b.path());
}

TEST(FeatureCache, TruncatedCorruptAndForeignFilesAreRebuilt) {
  ScratchDir dir("fc-bad");
  write_images(dir / "set.h5");
  auto data = images(dir / "set.h5");
  Enc enc = random_resnet();
  const auto spec = spec_for(dir / "features", enc, torch::kFloat16);
  FeatureCache good = open_ok(spec, *enc.encoder, *data);
  const std::string path = good.path();
  const torch::Tensor rows = all_rows(good);
  auto reopen = [&](const std::string& why) {
    testing::internal::CaptureStderr();
    FeatureCache c = open_ok(spec, *enc.encoder, *data);
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_TRUE(c.built()) << why;
    EXPECT_TRUE(contains(err, "drift: feature cache " + path + ": ")) << why << ": " << err;
    EXPECT_TRUE(contains(err, "rebuilding")) << why << ": " << err;
    EXPECT_TRUE(torch::equal(all_rows(c), rows)) << why;
    return err;
  };

  // Truncated (a copy cut short, as by a full disk or a killed writer).
  ASSERT_EQ(::truncate(path.c_str(), good.file_bytes() / 2), 0);
  reopen("truncated");

  // Flipped bytes inside a feature's data block.
  {
    auto f = drift::io::H5File::open_read(path);
    ASSERT_TRUE(f.ok()) << f.status();
    const hid_t ds = H5Dopen2(f->native_id(), "features/s1.loc", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    const haddr_t offset = H5Dget_offset(ds);
    H5Dclose(ds);
    ASSERT_NE(offset, HADDR_UNDEF);
    f->close().IgnoreError();
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(offset + 1000));
    char b[4];
    io.read(b, 4);
    for (char& ch : b) ch = static_cast<char>(~ch);
    io.seekp(static_cast<std::streamoff>(offset + 1000));
    io.write(b, 4);
  }
  EXPECT_TRUE(contains(reopen("flipped bytes"), "CRC-32"));

  // A foreign HDF5 file at the path (no key), and one built for another key.
  ASSERT_TRUE(drift::io::write_h5_atomically(path, [](drift::io::H5File& f) {
                return f.write("x", torch::zeros({3}));
              }).ok());
  EXPECT_TRUE(contains(reopen("foreign"), "not a drift feature cache"));
  Enc other = random_resnet({{"seed", int64_t{9}}});
  FeatureCache o = open_ok(spec_for(dir / "other", other, torch::kFloat16), *other.encoder, *data);
  ASSERT_EQ(std::rename(o.path().c_str(), path.c_str()), 0);
  EXPECT_TRUE(contains(reopen("another key"), "built for another key"));

  // Not HDF5 at all.
  { std::ofstream(path) << "hello"; }
  reopen("not HDF5");
}

TEST(FeatureCache, UnbuildableIsAnErrorNamingTheFile) {
  ScratchDir dir("fc-unwritable");
  write_images(dir / "set.h5");
  auto data = images(dir / "set.h5");
  Enc enc = random_resnet();
  // The directory cannot be created: a regular file sits where its parent should be.
  { std::ofstream(dir / "file") << "x"; }
  auto c = FeatureCache::open(spec_for(dir / "file/features", enc, torch::kFloat16), *enc.encoder, *data,
                              torch::kCPU);
  ASSERT_FALSE(c.ok());
  const std::string msg(c.status().message());
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_EQ(msg.rfind(dir / "file/features/random_resnet-", 0), 0u) << msg;
  EXPECT_TRUE(contains(msg, ".h5: feature cache missing and cannot be built")) << msg;
  EXPECT_TRUE(contains(msg, "expected a writable directory")) << msg;

  // A dataset that is not finite and indexed.
  auto toy = drift::test::make_dataset("bimodal");
  ASSERT_TRUE(toy);
  auto t = FeatureCache::open(spec_for(dir / "features", enc, torch::kFloat16), *enc.encoder, *toy, torch::kCPU);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(contains(std::string(t.status().message()), "not a finite indexed set")) << t.status();
}

// Features beyond float16's range are refused, naming the way out.
TEST(FeatureCache, Float16OverflowIsAnError) {
  ScratchDir dir("fc-overflow");
  torch::Tensor x = torch::zeros({10, 1, 4, 4});
  x[7][0][1][2] = 1e5;
  ASSERT_TRUE(drift::io::write_h5_atomically(dir / "big.h5", [&](drift::io::H5File& f) {
                return f.write("images", x);
              }).ok());
  auto data = images(dir / "big.h5");
  auto& reg = drift::test::default_registry();
  auto p = reg.validate(drift::ComponentKind::Encoder, "identity", {}, "test");
  ASSERT_TRUE(p.ok()) << p.status();
  drift::EncoderContext ctx;
  ctx.sample_shape = {1, 4, 4};
  auto enc = reg.make_encoder("identity", *p, ctx);
  ASSERT_TRUE(enc.ok()) << enc.status();
  FeatureCacheSpec s;
  s.dir = dir / "features";
  s.encoder = "identity";
  s.dataset = "images";
  s.dtype = torch::kFloat16;
  s.progress = false;
  auto c = FeatureCache::open(s, **enc, *data, torch::kCPU);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(contains(std::string(c.status().message()), "feature 'raw' of samples 0..9 holds values that are not "
                                                          "finite in float16"))
      << c.status();
  EXPECT_TRUE(contains(std::string(c.status().message()), "feature_cache = \"float32\"")) << c.status();
  s.dtype = torch::kFloat32;
  auto c32 = FeatureCache::open(s, **enc, *data, torch::kCPU);
  ASSERT_TRUE(c32.ok()) << c32.status();
  EXPECT_EQ(c32->lookup(torch::tensor({int64_t{7}}, torch::kLong).view({1, 1}))[0].value.max().item<float>(), 1e5f);
}

// The child of ConcurrentOpensBuildOnce (runs only under it): opens the cache
// of $DRIFT_FC_IMAGES in $DRIFT_FC_DIR and prints whether it built it and a
// fingerprint of its whole table.
TEST(FeatureCacheChild, Open) {
  const char* images_file = std::getenv("DRIFT_FC_IMAGES");
  const char* cache_dir = std::getenv("DRIFT_FC_DIR");
  if (!images_file || !cache_dir) GTEST_SKIP() << "run by FeatureCache.ConcurrentOpensBuildOnce";
  auto data = images(images_file);
  Enc enc = random_resnet();
  FeatureCache c = open_ok(spec_for(cache_dir, enc, torch::kFloat16), *enc.encoder, *data);
  const torch::Tensor rows = all_rows(c).contiguous();
  std::printf("child: built=%d table=%s\n", c.built() ? 1 : 0,
              drift::sha256_hex(rows.data_ptr(), rows.numel() * sizeof(float)).c_str());
}

TEST(FeatureCache, ConcurrentOpensBuildOnce) {
  ScratchDir dir("fc-concurrent");
  write_images(dir / "set.h5");
  // The cache's file name, from a build elsewhere.
  std::string name;
  {
    auto data = images(dir / "set.h5");
    Enc enc = random_resnet();
    FeatureCache c = open_ok(spec_for(dir / "probe", enc, torch::kFloat16), *enc.encoder, *data);
    name = c.path().substr(c.path().find_last_of('/') + 1);
  }
  ASSERT_EQ(::mkdir((dir / "cache").c_str(), 0755), 0);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
  const std::string child = std::string("DRIFT_FC_IMAGES='") + (dir / "set.h5") + "' DRIFT_FC_DIR='" +
                            (dir / "cache") + "' '" + exe + "' --gtest_filter=FeatureCacheChild.Open";
  {
    // Both children find no file and queue on its lock while this test holds
    // it (the shell touches `go` once they had time to get there); released,
    // one builds and the other waits, then loads.
    std::optional<drift::io::FileLock> hold;
    hold.emplace(dir / "cache/" + name + ".lock");
    ASSERT_TRUE(hold->ok()) << hold->error();
    const std::string cmd = "(" + child + " > '" + (dir / "a.out") + "' 2>&1 & " + child + " > '" +
                            (dir / "b.out") + "' 2>&1 & sleep 3; touch '" + (dir / "go") + "'; wait)";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    for (int i = 0; i < 1200 && ::access((dir / "go").c_str(), F_OK) != 0; ++i) ::usleep(50000);
    hold.reset();
    EXPECT_EQ(pclose(p), 0);
  }
  std::vector<std::string> lines;
  for (const char* f : {"a.out", "b.out"}) {
    std::ifstream in(dir / f);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const auto at = text.find("child: built=");
    ASSERT_NE(at, std::string::npos) << text;
    lines.push_back(text.substr(at, text.find('\n', at) - at));
    EXPECT_TRUE(contains(text, "[  PASSED  ] 1 test")) << text;
  }
  const int built = (contains(lines[0], "built=1") ? 1 : 0) + (contains(lines[1], "built=1") ? 1 : 0);
  EXPECT_EQ(built, 1) << lines[0] << "\n" << lines[1];
  EXPECT_EQ(lines[0].substr(lines[0].find("table=")), lines[1].substr(lines[1].find("table=")));
}
