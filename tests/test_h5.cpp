// The HDF5 layer (io/h5.hpp) and the drift-field file layout (field/field_io.hpp).
#include <gtest/gtest.h>

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "field/field_io.hpp"
#include "absl/strings/str_cat.h"
#include "io/h5.hpp"
#include "io/h5_guard.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"

namespace {
namespace fs = std::filesystem;
using drift::io::H5File;

bool contains(const absl::Status& st, const std::string& needle) {
  return std::string(st.message()).find(needle) != std::string::npos;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(H5, RoundTripTensorsGroupsAndAttributes) {
  const drift::test::ScratchDir scratch("h5");
  const std::string path = scratch / "rt.h5";
  torch::manual_seed(0);
  const auto f32 = torch::randn({2, 3, 4});
  const auto f64 = torch::randn({5}, torch::kFloat64);
  const auto i64 = torch::arange(6, torch::kInt64).reshape({2, 3});
  const auto u8 = torch::tensor({0, 7, 255}, torch::kUInt8);
  const auto b = torch::tensor({true, false, true});
  const auto empty = torch::empty({4, 0, 7});
  const auto strided = torch::randn({4, 6}, torch::kFloat64).t();  // non-contiguous

  absl::Status st = drift::io::write_h5_atomically(path, [&](H5File& f) -> absl::Status {
    for (auto s : {f.create_group("a/b/c"), f.create_group("a"), f.write("f32", f32),
                   f.write("a/f64", f64), f.write("a/b/i64", i64), f.write("u8", u8),
                   f.write("bool", b), f.write("empty", empty), f.write("strided", strided),
                   f.write_scalar("scalar", 2.5), f.write_scalar("count", int64_t{42}),
                   f.set_attr("/", "name", "run \"x\" é"), f.set_attr("/", "n", 3),
                   f.set_attr("a", "lr", 1e-3),
                   f.set_attr("a/f64", "temps", std::vector<double>{0.02, 0.05}),
                   f.set_attr("/", "ints", std::vector<int64_t>{1, -2}),
                   f.set_attr("/", "none", std::vector<double>{}),
                   f.set_attr("/", "n", 4)})  // replaces the earlier value
      if (!s.ok()) return s;
    return absl::OkStatus();
  });
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_FALSE(fs::exists(drift::io::atomic_temp_path(path)));

  auto f = H5File::open_read(path);
  ASSERT_TRUE(f.ok()) << f.status();
  auto check = [&](const std::string& name, const torch::Tensor& ref, const std::string& dtype) {
    SCOPED_TRACE(name);
    auto inf = f->info(name);
    ASSERT_TRUE(inf.ok()) << inf.status();
    EXPECT_EQ(inf->dtype, dtype);
    EXPECT_EQ(inf->shape, ref.sizes().vec());
    auto t = f->read(name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(torch::equal(*t, ref));
  };
  check("f32", f32, "float32");
  check("a/f64", f64, "float64");
  check("/a/b/i64", i64, "int64");
  check("u8", u8, "uint8");
  check("bool", b.to(torch::kUInt8), "uint8");
  check("empty", empty, "float32");
  check("strided", strided, "float64");
  check("scalar", torch::tensor(2.5, torch::kFloat64), "float64");
  check("count", torch::tensor(int64_t{42}), "int64");

  auto conv = f->read_as("f32", torch::kFloat64);
  ASSERT_TRUE(conv.ok());
  EXPECT_EQ(conv->scalar_type(), torch::kFloat64);

  EXPECT_TRUE(f->is_group("a/b/c"));
  EXPECT_TRUE(f->is_dataset("a/b/i64"));
  EXPECT_FALSE(f->exists("a/x/y"));
  auto members = f->list("a");
  ASSERT_TRUE(members.ok());
  EXPECT_EQ(*members, (std::vector<std::string>{"b", "f64"}));

  EXPECT_EQ(*f->read_string_attr("/", "name"), "run \"x\" é");
  EXPECT_EQ(*f->read_int_attr("/", "n"), 4);
  EXPECT_DOUBLE_EQ(*f->read_float_attr("a", "lr"), 1e-3);
  EXPECT_EQ(*f->read_float_list_attr("a/f64", "temps"), (std::vector<double>{0.02, 0.05}));
  EXPECT_EQ(*f->read_float_list_attr("/", "ints"), (std::vector<double>{1, -2}));
  EXPECT_TRUE(f->read_float_list_attr("/", "none")->empty());
  EXPECT_TRUE(f->has_attr("/", "name"));
  EXPECT_FALSE(f->has_attr("/", "nope"));
  auto names = f->attr_names("/");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), 4u);
}

// float16 datasets: written as IEEE half, read back bit for bit as float16,
// or as float32 by read(); h5py sees numpy float16.
TEST(H5, Float16RoundTrip) {
  const drift::test::ScratchDir scratch("h5-f16");
  const std::string path = scratch / "half.h5";
  const torch::Tensor x =
      torch::tensor({0.0, -1.5, 3.140625, 65504.0, 6e-8, -2e-4}, torch::kFloat32).to(torch::kFloat16).view({2, 3});
  ASSERT_TRUE(drift::io::write_h5_atomically(path, [&](H5File& f) { return f.write("h", x); }).ok());
  auto f = H5File::open_read(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->info("h")->dtype, "float16");
  auto h = f->read_as("h", torch::kFloat16);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->scalar_type(), torch::kFloat16);
  EXPECT_TRUE(torch::equal(*h, x));
  auto w = f->read("h");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(*w, x.to(torch::kFloat32)));
  std::string out;
  ASSERT_EQ(drift::test::run_command(std::string(DRIFT_SOURCE_DIR) + "/.venv/bin/python -c \"import h5py; d = h5py.File('" +
                                         path + "')['h']; print(d.dtype, float(d[1, 0]))\"",
                                     &out),
            0)
      << out;
  EXPECT_EQ(out, "float16 65504.0\n");
}

// float32 attributes (as h5py writes `np.float32([0.02])`) read back as the
// decimal they were meant to be: the golden cases depend on it at 1e-9.
TEST(H5, Float32AttributesWidenThroughTheirDecimalForm) {
  auto f = H5File::open_read(drift::test::golden_dir() + "/toy2d.h5");
  ASSERT_TRUE(f.ok()) << f.status();
  auto t = f->read_float_list_attr("/", "temperatures");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, (std::vector<double>{0.02, 0.05, 0.2}));
}

TEST(H5, ErrorsNameTheFileAndTheObject) {
  const drift::test::ScratchDir scratch("h5err");
  const std::string dir = scratch.path();
  const std::string path = dir + "/x.h5";
  ASSERT_TRUE(drift::io::write_h5_atomically(path, [](H5File& f) {
                auto st = f.write("v", torch::zeros({2, 3}, torch::kFloat64));
                if (st.ok()) st = f.set_attr("v", "s", "text");
                return st;
              }).ok());
  auto f = H5File::open_read(path);
  ASSERT_TRUE(f.ok());

  auto missing = f->read("w");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.status(), path)) << missing.status();
  EXPECT_TRUE(contains(missing.status(), "'w'")) << missing.status();

  auto shape = f->read_checked("v", torch::kFloat64, {2, 4}, "[B=2, C=4]");
  ASSERT_FALSE(shape.ok());
  EXPECT_TRUE(contains(shape.status(), path + ": dataset 'v' has shape [2, 3], expected [B=2, C=4]"))
      << shape.status();

  auto dtype = f->read_as("v", torch::kFloat32, {"float32"});
  ASSERT_FALSE(dtype.ok());
  EXPECT_TRUE(contains(dtype.status(), "'v' has dtype float64, expected float32")) << dtype.status();

  auto attr = f->read_float_list_attr("v", "s");
  ASSERT_FALSE(attr.ok());
  EXPECT_TRUE(contains(attr.status(), "attribute 's' on 'v'")) << attr.status();
  EXPECT_TRUE(contains(attr.status(), "expected a float")) << attr.status();
  auto noattr = f->read_string_attr("/", "t");
  ASSERT_FALSE(noattr.ok());
  EXPECT_TRUE(contains(noattr.status(), "attribute 't' on '/' not found")) << noattr.status();

  auto nofile = H5File::open_read(dir + "/absent.h5");
  ASSERT_FALSE(nofile.ok());
  EXPECT_TRUE(contains(nofile.status(), dir + "/absent.h5: no such file")) << nofile.status();
  const std::string text = dir + "/text.h5";
  std::ofstream(text) << "not hdf5\n";
  auto noth5 = H5File::open_read(text);
  ASSERT_FALSE(noth5.ok());
  EXPECT_TRUE(contains(noth5.status(), text + ": not an HDF5 file")) << noth5.status();

  // Writing into a read-only file, or a dataset whose group is missing.
  absl::Status ro = f->write("z", torch::zeros({1}));
  EXPECT_FALSE(ro.ok());
  EXPECT_TRUE(contains(ro, "'z'")) << ro;
  absl::Status st = drift::io::write_h5_atomically(dir + "/g.h5", [](H5File& out) {
    return out.write("no/such/group/x", torch::zeros({1}));
  });
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(contains(st, "'no/such/group/x'")) << st;
  EXPECT_FALSE(fs::exists(dir + "/g.h5"));
}

TEST(H5, AtomicWriteLeavesTargetUntouchedOnError) {
  const drift::test::ScratchDir scratch("h5atomic");
  const std::string dir = scratch.path();
  const std::string path = dir + "/out.h5";
  ASSERT_TRUE(drift::io::write_h5_atomically(path, [](H5File& f) {
                return f.write("x", torch::ones({3}));
              }).ok());
  const std::string before = read_all(path);
  ASSERT_FALSE(before.empty());

  // The callback fails after writing something: target unchanged, no temp file.
  bool temp_seen = false;
  absl::Status st = drift::io::write_h5_atomically(path, [&](H5File& f) -> absl::Status {
    temp_seen = fs::exists(drift::io::atomic_temp_path(path)) && f.path() != path;
    auto s = f.write("x", torch::zeros({100}));
    if (!s.ok()) return s;
    return absl::InternalError("simulated failure");
  });
  EXPECT_TRUE(temp_seen) << "the writer must write to a temporary file, not to the target";
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "simulated failure");
  EXPECT_EQ(read_all(path), before);
  EXPECT_FALSE(fs::exists(drift::io::atomic_temp_path(path)));

  // A throwing callback is an error too.
  st = drift::io::write_h5_atomically(path, [](H5File&) -> absl::Status {
    throw std::runtime_error("boom");
  });
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(contains(st, "boom"));
  EXPECT_EQ(read_all(path), before);
  EXPECT_FALSE(fs::exists(drift::io::atomic_temp_path(path)));

  // A failing first write never creates the target.
  const std::string fresh = dir + "/fresh.h5";
  st = drift::io::write_h5_atomically(fresh, [](H5File&) { return absl::InternalError("no"); });
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(drift::io::atomic_temp_path(fresh)));

  // A directory that does not exist: error naming the path, nothing created.
  st = drift::io::write_h5_atomically(dir + "/nodir/out.h5",
                                      [](H5File& f) { return f.write("x", torch::ones({1})); });
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(contains(st, dir + "/nodir/out.h5")) << st;

  // A successful rewrite replaces the content.
  ASSERT_TRUE(drift::io::write_h5_atomically(path, [](H5File& f) {
                return f.write("y", torch::ones({2}));
              }).ok());
  auto f = H5File::open_read(path);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->exists("y"));
  EXPECT_FALSE(f->exists("x"));
}

// ---------------------------------------------------------------- field layout

std::string write_input(const std::string& dir, const std::string& name,
                        const std::function<absl::Status(H5File&)>& fill) {
  const std::string path = dir + "/" + name + ".h5";
  auto st = drift::io::write_h5_atomically(path, fill);
  if (!st.ok()) ADD_FAILURE() << st;
  return path;
}

absl::Status base_layout(H5File& f) {
  for (auto st : {f.write("gen", torch::randn({2, 4, 3})), f.write("pos", torch::randn({2, 5, 3})),
                  f.set_attr("/", "temperatures", std::vector<double>{0.05, 0.2})})
    if (!st.ok()) return st;
  return absl::OkStatus();
}

TEST(FieldIO, ReadsTheLayoutWithDefaults) {
  const drift::test::ScratchDir scratch("fieldio");
  const std::string dir = scratch.path();
  const auto path = write_input(dir, "ok", base_layout);
  auto in = drift::field::read_field_inputs(path, torch::kFloat64);
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->gen.scalar_type(), torch::kFloat64);
  EXPECT_EQ(in->neg.sizes(), torch::IntArrayRef({2, 0, 3}));
  EXPECT_TRUE(torch::equal(in->w_pos, torch::ones({2, 5}, torch::kFloat64)));
  EXPECT_EQ(in->temperatures, (std::vector<double>{0.05, 0.2}));
  auto over = drift::field::read_field_inputs(path, torch::kFloat32, std::vector<double>{0.1});
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(over->temperatures, (std::vector<double>{0.1}));
  EXPECT_EQ(over->pos.scalar_type(), torch::kFloat32);
}

TEST(FieldIO, ValidationErrorsNameFileDatasetAndExpectedShape) {
  const drift::test::ScratchDir scratch("fieldbad");
  const std::string dir = scratch.path();
  struct Case {
    std::string name;
    std::function<absl::Status(H5File&)> fill;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"nogen", [](H5File& f) { return f.write("pos", torch::randn({2, 5, 3})); },
       "dataset 'gen' not found, expected [B, Cg, S]"},
      {"nopos", [](H5File& f) { return f.write("gen", torch::randn({2, 5, 3})); },
       "dataset 'pos' not found, expected [B=2, Cp, S=3]"},
      {"rank",
       [](H5File& f) {
         auto st = base_layout(f);
         if (st.ok()) st = f.write("neg", torch::randn({2, 3}));
         return st;
       },
       "dataset 'neg' has shape [2, 3], expected [B=2, Cn, S=3]"},
      {"pos_S",
       [](H5File& f) {
         auto st = f.write("gen", torch::randn({2, 4, 3}));
         if (st.ok()) st = f.write("pos", torch::randn({2, 5, 4}));
         return st;
       },
       "dataset 'pos' has shape [2, 5, 4], expected [B=2, Cp, S=3]"},
      {"pos_B",
       [](H5File& f) {
         auto st = f.write("gen", torch::randn({2, 4, 3}));
         if (st.ok()) st = f.write("pos", torch::randn({1, 5, 3}));
         return st;
       },
       "expected [B=2, Cp, S=3]"},
      {"wshape",
       [](H5File& f) {
         auto st = base_layout(f);
         if (st.ok()) st = f.write("weight_pos", torch::ones({2, 4}));
         return st;
       },
       "dataset 'weight_pos' has shape [2, 4], expected [B=2, Cp=5]"},
      {"dtype",
       [](H5File& f) {
         auto st = f.write("gen", torch::zeros({2, 4, 3}, torch::kInt64));
         if (st.ok()) st = f.write("pos", torch::randn({2, 5, 3}));
         return st;
       },
       "dataset 'gen' has dtype int64, expected float32 or float64"},
      {"notemps",
       [](H5File& f) {
         auto st = f.write("gen", torch::randn({2, 4, 3}));
         if (st.ok()) st = f.write("pos", torch::randn({2, 5, 3}));
         return st;
       },
       "attribute 'temperatures' on '/' not found"},
      {"badtemp",
       [](H5File& f) {
         auto st = base_layout(f);
         if (st.ok()) st = f.set_attr("/", "temperatures", std::vector<double>{0.1, 0.0});
         return st;
       },
       "is not a positive number"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = write_input(dir, c.name, c.fill);
    auto in = drift::field::read_field_inputs(path, torch::kFloat64);
    ASSERT_FALSE(in.ok());
    EXPECT_TRUE(contains(in.status(), path + ": ")) << in.status();
    EXPECT_TRUE(contains(in.status(), c.needle)) << in.status();
  }
}

TEST(FieldIO, WritesOutputsAsFloat64) {
  const drift::test::ScratchDir scratch("fieldout");
  const std::string dir = scratch.path();
  drift::DriftOutputs out;
  out.V = torch::randn({2, 4, 3});
  out.goal = torch::randn({2, 4, 3});
  out.m_tau = torch::rand({2});
  out.scale = torch::tensor(1.5f);
  out.coord_scale = torch::tensor(0.5f);
  const auto loss = torch::rand({2});
  const std::string path = dir + "/out.h5";
  ASSERT_TRUE(drift::field::write_field_outputs(path, out, loss, {"laplace", "none", {0.1, 0.2}}).ok());
  auto f = H5File::open_read(path);
  ASSERT_TRUE(f.ok());
  for (const std::string name : {"goal", "V", "loss", "scale", "coord_scale", "loss_per_temperature"})
    EXPECT_EQ(f->info(name)->dtype, "float64") << name;
  EXPECT_EQ(f->info("scale")->shape.size(), 0u);
  EXPECT_TRUE(torch::allclose(*f->read("V"), out.V.to(torch::kFloat64)));
  EXPECT_EQ(*f->read_string_attr("/", "kernel"), "laplace");
  EXPECT_EQ(*f->read_float_list_attr("/", "temperatures"), (std::vector<double>{0.1, 0.2}));
  // An undefined output: error, and nothing written.
  out.V = torch::Tensor();
  const std::string bad = dir + "/bad.h5";
  EXPECT_FALSE(drift::field::write_field_outputs(bad, out, loss, {}).ok());
  EXPECT_FALSE(fs::exists(bad));
}

}  // namespace

// A full device while writing atomically, on a real 256 KiB tmpfs (skipped where
// mount(2) is not allowed): both ways of writing fail with kResourceExhausted,
// one line naming the path and "the device is full"; the previous file is
// intact and no temporary file is left. (On disk, HDF5 itself hits ENOSPC; in
// memory, the final write() does.)
class TinyTmpfs {
 public:
  TinyTmpfs() : dir_("h5-full") {
    mnt_ = dir_.path() + "/mnt";
    std::filesystem::create_directory(mnt_);
    mounted_ = ::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=256k") == 0;
    if (!mounted_) why_ = std::strerror(errno);
  }
  ~TinyTmpfs() {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return mnt_; }

 private:
  drift::test::ScratchDir dir_;
  std::string mnt_, why_;
  bool mounted_ = false;
};

TEST(H5, AtomicWriteOnAFullDeviceNamesItAndKeepsThePreviousFile) {
  TinyTmpfs fs;
  if (!fs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << fs.why();
  const std::string path = fs.path() + "/out.h5";
  const auto small = torch::arange(10, torch::kFloat64);
  ASSERT_TRUE(drift::io::write_h5_atomically(path, [&](H5File& f) { return f.write("x", small); }).ok());
  const auto big = torch::rand({512, 1024}, torch::kFloat32);  // 2 MiB: does not fit
  for (auto where : {drift::io::AtomicWrite::kOnDisk, drift::io::AtomicWrite::kInMemory}) {
    SCOPED_TRACE(where == drift::io::AtomicWrite::kOnDisk ? "on disk" : "in memory");
    const auto st = drift::io::write_h5_atomically(
        path, [&](H5File& f) { return f.write("x", big); }, where);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
    EXPECT_TRUE(drift::io::is_disk_full(st)) << st;
    const std::string msg(st.message());
    EXPECT_EQ(msg.rfind(path + ": cannot write, the device is full", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& e : std::filesystem::directory_iterator(fs.path()))
      EXPECT_EQ(e.path().filename().string(), "out.h5") << "left behind: " << e.path();
    auto f = H5File::open_read(path);
    ASSERT_TRUE(f.ok()) << f.status();
    auto x = f->read("x");
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_TRUE(torch::equal(*x, small));
  }
  // Space again: the same write goes through.
  ::unlink(path.c_str());
  const auto fits = torch::rand({64, 64}, torch::kFloat32);
  EXPECT_TRUE(drift::io::write_h5_atomically(
                  path, [&](H5File& f) { return f.write("x", fits); },
                  drift::io::AtomicWrite::kInMemory)
                  .ok());
}

TEST(H5, IsDiskFullReadsCodesAndSystemMessages) {
  EXPECT_TRUE(drift::io::is_disk_full(absl::ResourceExhaustedError("x")));
  EXPECT_TRUE(drift::io::is_disk_full(absl::DataLossError(std::string("a: ") + std::strerror(ENOSPC))));
  EXPECT_TRUE(drift::io::is_disk_full(absl::UnknownError(std::string("b: ") + std::strerror(EDQUOT))));
  EXPECT_FALSE(drift::io::is_disk_full(absl::DataLossError(std::string("c: ") + std::strerror(EIO))));
  EXPECT_FALSE(drift::io::is_disk_full(absl::OkStatus()));
}

// ------------------------------------------------------------------ read guards (io/h5_guard.hpp)

namespace guard {
using drift::io::ChecksumCheck;
using drift::io::ChecksumState;
using drift::io::ReadGuard;

void write_sample(const std::string& path, drift::io::AtomicWrite where) {
  auto st = drift::io::write_h5_atomically(
      path,
      [](H5File& f) -> absl::Status {
        if (auto st = f.create_group("cell"); !st.ok()) return st;
        if (auto st = f.write("cell/x", torch::arange(4096, torch::kFloat32).reshape({64, 64})); !st.ok()) return st;
        return f.set_attr("cell", "status", std::string("done"));
      },
      where);
  ASSERT_TRUE(st.ok()) << st;
}

ChecksumState state_of(const std::string& path) {
  ChecksumCheck c;
  EXPECT_TRUE(drift::io::check_file_checksum(path, &c).ok());
  return c.state;
}

void flip_byte(const std::string& path, int64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(offset);
  f.write(&c, 1);
}
}  // namespace guard

TEST(H5Guard, AtomicWritesCarryAChecksumThatMatchesAndReadBack) {
  const drift::test::ScratchDir scratch("h5guard");
  for (auto where : {drift::io::AtomicWrite::kOnDisk, drift::io::AtomicWrite::kInMemory}) {
    const std::string path = scratch / (where == drift::io::AtomicWrite::kOnDisk ? "disk.h5" : "mem.h5");
    guard::write_sample(path, where);
    EXPECT_EQ(read_all(path).rfind("drift-h5 checksum v1\ncrc32 ", 0), 0u) << path;
    EXPECT_EQ(guard::state_of(path), guard::ChecksumState::kMatch) << path;
    auto f = H5File::open_read(path, guard::ReadGuard::kStrict);
    ASSERT_TRUE(f.ok()) << f.status();
    auto x = f->read("cell/x");
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_TRUE(torch::equal(*x, torch::arange(4096, torch::kFloat32).reshape({64, 64})));
  }
}

TEST(H5Guard, AChangedByteAfterTheHeaderIsRefusedWhenStrictAndProbedOtherwise) {
  const drift::test::ScratchDir scratch("h5guard");
  const std::string ref = scratch / "ref.h5";
  guard::write_sample(ref, drift::io::AtomicWrite::kInMemory);
  const std::string bytes = read_all(ref);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) {
    const std::string path = scratch / "flipped.h5";
    fs::copy_file(ref, path, fs::copy_options::overwrite_existing);
    const int64_t at = drift::io::kChecksumBlockBytes +
                       static_cast<int64_t>(rng() % (bytes.size() - drift::io::kChecksumBlockBytes));
    guard::flip_byte(path, at);
    EXPECT_EQ(guard::state_of(path), guard::ChecksumState::kMismatch) << "byte " << at;
    auto strict = H5File::open_read(path, guard::ReadGuard::kStrict);
    ASSERT_FALSE(strict.ok()) << "byte " << at;
    EXPECT_EQ(strict.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_TRUE(contains(strict.status(), path + ": corrupt: the file changed after drift wrote it (CRC-32 "))
        << strict.status();
    // kDefault walks it in a child first: it opens, or fails with one line; it never takes this process down.
    auto lenient = H5File::open_read(path);
    if (!lenient.ok()) EXPECT_EQ(std::string(lenient.status().message()).find('\n'), std::string::npos);
  }
}

TEST(H5Guard, ATruncatedFileIsRefusedWhenStrict) {
  const drift::test::ScratchDir scratch("h5guard");
  const std::string path = scratch / "t.h5";
  guard::write_sample(path, drift::io::AtomicWrite::kOnDisk);
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 100);
  auto f = H5File::open_read(path, guard::ReadGuard::kStrict);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(contains(f.status(), absl::StrCat(size - 100 - 512, " bytes after the header, recorded ", size - 512)))
      << f.status();
}

TEST(H5Guard, AFileWithoutTheHeaderIsReadAfterTheChildsWalk) {
  const drift::test::ScratchDir scratch("h5guard");
  const std::string path = scratch / "foreign.h5";
  {
    auto f = H5File::create(path);  // no user block: what another program writes
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write("x", torch::ones({3})).ok());
    ASSERT_TRUE(f->set_attr("/", "note", std::string("written elsewhere")).ok());
    ASSERT_TRUE(f->close().ok());
  }
  EXPECT_EQ(guard::state_of(path), guard::ChecksumState::kNone);
  auto f = H5File::open_read(path, guard::ReadGuard::kStrict);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*f->read_string_attr("/", "note"), "written elsewhere");
}
