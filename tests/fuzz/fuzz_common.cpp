#include "fuzz_common.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ftw.h>

#include "absl/strings/str_cat.h"
#include "io/h5_guard.hpp"
#include "io/table.hpp"

namespace drift::fuzz {
namespace {

// The targets exercise the readers behind H5File::open_read()'s guards (drift's
// checksum, the test read in a child process: io/h5_guard.hpp), so the guards
// are off, unless DRIFT_FUZZ_GUARDS=1 asks to check the guards themselves (the
// `fuzz_*_guarded` tests replay tests/fuzz/library_faults/ that way).
[[maybe_unused]] const bool kGuards = [] {
  const char* e = std::getenv("DRIFT_FUZZ_GUARDS");
  const bool on = e != nullptr && std::string(e) == "1";
  io::set_read_guards(on);
  return on;
}();

std::string make_scratch() {
  std::vector<std::string> bases;
  if (const char* e = std::getenv("DRIFT_FUZZ_TMP")) bases.push_back(e);
  bases.push_back("/dev/shm");
  if (const char* t = std::getenv("TMPDIR")) bases.push_back(t);
  bases.push_back("/tmp");
  for (const auto& b : bases) {
    std::string tmpl = b + "/drift-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data())) return tmpl;
  }
  fail("cannot create a scratch directory");
}

int remove_entry(const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }

struct Scratch {
  std::string dir = make_scratch();
  ~Scratch() { ::nftw(dir.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS); }
};

}  // namespace

const std::string& scratch_dir() {
  static Scratch s;
  return s.dir;
}

void fail(const std::string& what) {
  std::fprintf(stderr, "drift-fuzz: FAILED: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

void write_file(const std::string& path, const void* data, size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  const char* p = static_cast<const char*>(data);
  for (size_t off = 0; off < n;) {
    const ssize_t w = ::write(fd, p + off, n - off);
    if (w <= 0) fail(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    off += static_cast<size_t>(w);
  }
  ::close(fd);
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(absl::StrCat("cannot read ", path));
  uint8_t buf[65536];
  size_t k;
  while ((k = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + k);
  std::fclose(f);
  return out;
}

namespace {
uint64_t g_local_outcomes[2] = {0, 0};
uint64_t* g_outcomes = g_local_outcomes;
}  // namespace

void note(Outcome o) { ++g_outcomes[o]; }
uint64_t* outcome_counters() { return g_outcomes; }
void set_outcome_storage(uint64_t* two) { g_outcomes = two; }

void check_one_line(const absl::Status& st, const char* where) {
  note(st.ok() ? kAccepted : kRefused);
  if (st.ok()) return;
  const std::string m(st.message());
  static const bool verbose = std::getenv("DRIFT_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "drift-fuzz: %s refused: %s\n", where, m.c_str());
  if (m.empty()) fail(absl::StrCat(where, ": error with an empty message (", st.ToString(), ")"));
  if (m.find('\n') != std::string::npos || m.find('\r') != std::string::npos ||
      m.find('\0') != std::string::npos)
    fail(absl::StrCat(where, ": error message is not one line: [", m, "]"));
}

// --------------------------------------------------------------- spec files
namespace {

// The element types a spec may use: what drift writes and what users'
// files may hold instead.
hid_t spec_type(uint8_t k, bool* is_string) {
  *is_string = false;
  switch (k % 13) {
    case 0: return H5T_STD_U8LE;
    case 1: return H5T_STD_I8LE;
    case 2: return H5T_STD_I16LE;
    case 3: return H5T_STD_I32LE;
    case 4: return H5T_STD_I64LE;
    case 5: return H5T_STD_U64LE;
    case 6: return H5T_IEEE_F32LE;
    case 7: return H5T_IEEE_F64LE;
    case 8: return H5T_IEEE_F64BE;
    case 9: return H5T_STD_I32BE;
    case 10: return H5T_STD_U16LE;
    case 11: return H5T_IEEE_F32BE;
    default: *is_string = true; return -1;
  }
}

hid_t native_of(hid_t t) { return H5Tget_native_type(t, H5T_DIR_ASCEND); }

void make_parents(hid_t file, const std::string& name) {
  for (size_t p = name.find('/', 1); p != std::string::npos; p = name.find('/', p + 1)) {
    const std::string g = name.substr(0, p);
    if (H5Lexists(file, g.c_str(), H5P_DEFAULT) > 0) continue;
    hid_t id = H5Gcreate2(file, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (id >= 0) H5Gclose(id);
  }
}

void write_dataset(hid_t file, const std::string& name, Bytes& in) {
  bool is_string = false;
  hid_t type = spec_type(in.u8(), &is_string);
  const int rank = in.u8() % 5;
  hsize_t dims[4];
  hsize_t n = 1;
  for (int i = 0; i < rank; ++i) {
    const uint8_t d = in.u8();
    dims[i] = d < 0xF0 ? d % 6 : static_cast<hsize_t>(d - 0xE0) * 4;  // mostly small, some up to 124
    n *= dims[i];
  }
  if (n > (1u << 16)) return;
  make_parents(file, name);
  hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, nullptr);
  if (is_string) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    std::vector<std::string> vals(n);
    std::vector<const char*> ptrs(n);
    for (hsize_t i = 0; i < n; ++i) {
      vals[i] = in.str(12);
      ptrs[i] = vals[i].c_str();
    }
    hid_t ds = H5Dcreate2(file, name.c_str(), st, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) {
      if (n) H5Dwrite(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
      H5Dclose(ds);
    }
    H5Tclose(st);
  } else {
    const size_t esz = H5Tget_size(type);
    std::vector<uint8_t> buf(n * esz);
    // Values: a pattern byte pair from the input, so NaN, Inf, negatives,
    // huge and zero values all show up.
    const uint8_t a = in.u8(), b = in.u8();
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = i % 2 ? a : static_cast<uint8_t>(b + i / esz);
    hid_t ds = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) {
      // Written in the file's byte order, as raw bytes.
      if (n) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
      H5Dclose(ds);
    }
  }
  H5Sclose(space);
}

void write_attr(hid_t file, const std::string& object, const std::string& attr, Bytes& in) {
  make_parents(file, object + "/x");
  if (object != "/" && H5Lexists(file, object.c_str(), H5P_DEFAULT) <= 0) {
    hid_t g = H5Gcreate2(file, object.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
  }
  hid_t obj = H5Oopen(file, object.c_str(), H5P_DEFAULT);
  if (obj < 0) return;
  if (H5Aexists(obj, attr.c_str()) > 0) H5Adelete(obj, attr.c_str());
  const uint8_t kind = in.u8() % 4;
  if (kind == 0 || kind == 1) {  // string: variable (0) or fixed (1) length
    const std::string v = in.str(40);
    hid_t st = H5Tcopy(H5T_C_S1);
    if (kind == 0) H5Tset_size(st, H5T_VARIABLE);
    else H5Tset_size(st, std::max<size_t>(1, v.size()));
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, attr.c_str(), st, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
      const char* p = v.c_str();
      std::string fixed = v.empty() ? std::string(1, '\0') : v;
      H5Awrite(a, st, kind == 0 ? static_cast<const void*>(&p) : fixed.data());
      H5Aclose(a);
    }
    H5Sclose(space);
    H5Tclose(st);
  } else {  // numbers: a list (or a scalar) of some type
    bool is_string = false;
    hid_t type = spec_type(in.u8() % 12, &is_string);
    const uint8_t len = in.u8() % 6;
    hsize_t dims[1] = {len};
    hid_t space = kind == 2 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr);
    const size_t n = kind == 2 ? 1 : len;
    std::vector<uint8_t> buf(std::max<size_t>(1, n * H5Tget_size(type)));
    for (auto& c : buf) c = in.u8();
    hid_t a = H5Acreate2(obj, attr.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
      if (n) H5Awrite(a, type, buf.data());
      H5Aclose(a);
    }
    H5Sclose(space);
  }
  H5Oclose(obj);
}

void write_spec_table(io::H5File& f, const std::string& name, Bytes& in) {
  io::Table t;
  const int cols = in.u8() % 5, rows = in.u8() % 4;
  static const char* kCols[] = {"cell", "status", "step", "loss", "final_loss", "seconds", "name", "error"};
  for (int c = 0; c < cols; ++c)
    t.add_column(kCols[in.u8() % 8], static_cast<io::Table::Type>(in.u8() % 3));
  for (int r = 0; r < rows; ++r) {
    t.new_row();
    for (const auto& c : t.columns()) {
      if (c.type == io::Table::Type::Int) t.set(c.name, static_cast<int64_t>(in.u32()));
      else if (c.type == io::Table::Type::Float) t.set(c.name, static_cast<double>(static_cast<int32_t>(in.u32())) / 7);
      else t.set(c.name, in.str(10));
    }
  }
  make_parents(static_cast<hid_t>(f.native_id()), name);
  (void)io::write_table(f, name, t);
}

}  // namespace

void write_h5_input(const std::string& path, const uint8_t* data, size_t n,
                    const std::vector<std::string>& names) {
  if (n == 0 || data[0] < 0xC0) {
    write_file(path, n ? data + 1 : data, n ? n - 1 : 0);
    return;
  }
  Bytes in(data + 1, n - 1);
  auto f = io::H5File::create(path);
  if (!f.ok()) fail(std::string(f.status().message()));
  const hid_t id = static_cast<hid_t>(f->native_id());
  const int count = in.u8() % 10;
  for (int i = 0; i < count && in.left() > 0; ++i) {
    const uint8_t what = in.u8();
    const std::string& name = names[in.u8() % names.size()];
    switch (what % 4) {
      case 0:
      case 1: write_dataset(id, name, in); break;
      case 2: {
        // An attribute on the root or on one of the named objects.
        const std::string attr = names[in.u8() % names.size()];
        const auto slash = attr.rfind('/');
        write_attr(id, what & 0x10 ? std::string("/") : name,
                   slash == std::string::npos ? attr : attr.substr(slash + 1), in);
        break;
      }
      case 3: write_spec_table(*f, name, in); break;
    }
  }
  if (auto st = f->close(); !st.ok()) fail(std::string(st.message()));
}

std::vector<uint8_t> raw_seed(const std::string& h5_path) {
  std::vector<uint8_t> out{0x00};
  auto bytes = read_file(h5_path);
  out.insert(out.end(), bytes.begin(), bytes.end());
  return out;
}

std::vector<uint8_t> spec_seed(const std::vector<uint8_t>& spec) {
  std::vector<uint8_t> out;
  out.reserve(spec.size() + 1);
  out.push_back(0xC0);
  for (uint8_t b : spec) out.push_back(b);
  return out;
}

void write_seed(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  write_file(dir + "/" + name, bytes.data(), bytes.size());
}

}  // namespace drift::fuzz
