#include "train/feature_cache.hpp"

#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

#include <torch/torch.h>
#include <zlib.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "drift/checksum.hpp"
#include "drift/weights.hpp"
#include "io/file_lock.hpp"
#include "io/h5.hpp"

namespace drift::train {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kFormat = "drift feature cache 1";
// Images encoded to learn the feature names and shapes, and compared with the
// file's rows when it is opened.
constexpr int64_t kProbe = 4;
// How far (relative L2 norm, per feature) the file's probe rows may be from a
// fresh encoding: float16 rounding and another device's arithmetic stay far
// below it, another encoder (or weights) lands far above it.
constexpr double kProbeTolerance = 1e-2;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds (user + system, all threads) this process has used.
double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

std::string tensor_sha256(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  return sha256_hex(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
}

// SHA-256 over every parameter and buffer of `m`: name, dtype, shape, bytes.
std::string weights_sha256(torch::nn::Module& m) {
  std::string lines;
  for (const auto& p : m.named_parameters(true))
    absl::StrAppend(&lines, "parameter ", p.key(), " ", io::dtype_name(p.value().scalar_type()),
                    io::shape_string(p.value()), " ", tensor_sha256(p.value()), "\n");
  for (const auto& b : m.named_buffers(true))
    absl::StrAppend(&lines, "buffer ", b.key(), " ", io::dtype_name(b.value().scalar_type()),
                    io::shape_string(b.value()), " ", tensor_sha256(b.value()), "\n");
  return sha256_hex(lines.data(), lines.size());
}

// CRC-32 of a tensor's bytes, 8 hex digits: the content checksum of the
// file's datasets (zlib's CRC-32 runs at GB/s, SHA-256 here at about 250 MB/s,
// and a cache of 50k images is a GB).
std::string tensor_crc32(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  const uLong crc = crc32_z(crc32_z(0L, Z_NULL, 0), static_cast<const Bytef*>(c.data_ptr()),
                            static_cast<size_t>(c.numel()) * c.element_size());
  return absl::StrFormat("%08x", static_cast<uint32_t>(crc));
}

// A fingerprint of the dataset's samples and labels: SHA-256 over the CRC-32
// of each 1024 of them.
std::string data_fingerprint(Dataset& data, int64_t n) {
  constexpr int64_t batch = 1024;
  std::string parts;
  for (int64_t start = 0; start < n; start += batch) {
    const DataBatch b = data.get(torch::arange(start, std::min(n, start + batch), torch::kLong));
    absl::StrAppend(&parts, tensor_crc32(b.x), b.labels.defined() ? tensor_crc32(b.labels) : "-", "\n");
  }
  return sha256_hex(parts.data(), parts.size());
}

struct FileId {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileId& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
  }
};

FileId file_id(const std::string& path) {
  struct stat st {};
  FileId id;
  if (::stat(path.c_str(), &st) != 0) return id;
  id.exists = true;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  return id;
}

// An error's message without a leading "<path>: " (io:: errors start with the
// file name, which the cache's own messages already give).
std::string without_path(const absl::Status& st, const std::string& path) {
  std::string m(st.message());
  const std::string prefix = path + ": ";
  return m.compare(0, prefix.size(), prefix) == 0 ? m.substr(prefix.size()) : m;
}

std::string h5_dtype(torch::ScalarType t) { return t == torch::kFloat16 ? "float16" : "float32"; }

// One encoding of x [1, n, ...]: per feature [n, L, D] float32 on the CPU.
std::vector<torch::Tensor> encode_rows(FeatureEncoder& encoder, const torch::Tensor& x,
                                       std::vector<std::string>* names) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (auto& f : encoder.encode(x)) {
    if (names) names->push_back(f.name);
    out.push_back(f.value.select(0, 0).transpose(0, 1).to(torch::kCPU, torch::kFloat32));  // [n, L, D]
  }
  return out;
}

}  // namespace

std::string canonical_params(const Params& p) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : p.values()) parts.push_back(absl::StrCat(k, "=", format_param_value(v)));
  return absl::StrJoin(parts, "; ");
}

int64_t FeatureCache::table_bytes() const {
  int64_t b = 0;
  for (const auto& t : table_) b += t.numel() * static_cast<int64_t>(t.element_size());
  return b;
}

absl::StatusOr<FeatureCache> FeatureCache::open(const FeatureCacheSpec& spec, FeatureEncoder& encoder,
                                                Dataset& data, torch::Device device) {
  const auto t_open = Clock::now();
  const int64_t N = data.size();
  if (N <= 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "feature cache: dataset '", spec.dataset, "' is not a finite indexed set (size() = 0): its "
        "features cannot be cached"));
  if (spec.dtype != torch::kFloat16 && spec.dtype != torch::kFloat32)
    return absl::InvalidArgumentError(absl::StrCat("feature cache: dtype ", io::dtype_name(spec.dtype),
                                                   ", expected float16 or float32"));
  const int64_t batch = std::max<int64_t>(1, spec.batch);
  auto report = [&](const std::string& note, int64_t done, int64_t total) {
    if (!spec.on_phase) return;
    PhaseLog p;
    p.phase = "cache";
    p.name = spec.encoder;
    p.note = note;
    p.done = done;
    p.total = total;
    spec.on_phase(p);
  };
  report("checking the encoder and the data", 0, 0);

  // The probe: the feature names and shapes, and reference rows.
  const int64_t n_probe = std::min(N, kProbe);
  const torch::Tensor probe_index = torch::arange(n_probe, torch::kLong);
  std::vector<std::string> names;
  const DataBatch probe_batch = data.get(probe_index);
  const std::vector<torch::Tensor> probe =
      encode_rows(encoder, probe_batch.x.to(device).unsqueeze(0), &names);
  std::vector<std::string> shapes;
  for (size_t j = 0; j < probe.size(); ++j)
    shapes.push_back(absl::StrCat(names[j], " [", probe[j].size(1), ", ", probe[j].size(2), "]"));
  std::vector<int64_t> sample_shape = probe_batch.x.sizes().vec();
  sample_shape.erase(sample_shape.begin());

  std::string key = absl::StrCat(
      kFormat, "\nencoder: ", spec.encoder, "\nencoder params: ", spec.encoder_params,
      "\nencoder weights: sha256 ", weights_sha256(encoder), "\nfeatures: ", absl::StrJoin(shapes, ", "),
      "\ndataset: ", spec.dataset, ", split ", spec.split, ", ", N, " samples of shape ",
      io::shape_string(sample_shape), "\ndataset params: ", spec.dataset_params,
      "\ndataset samples: ", data_fingerprint(data, N), "\ndtype: ", h5_dtype(spec.dtype));
  const std::string dir = spec.dir.empty() ? "." : spec.dir;
  FeatureCache c;
  c.path_ = absl::StrCat(dir, "/", spec.encoder, "-", sha256_hex(key.data(), key.size()).substr(0, 16), ".h5");
  c.key_ = std::move(key);
  c.n_ = N;
  c.names_ = names;
  c.device_ = device;
  const std::string& path = c.path_;
  const std::string what = absl::StrCat("the features of ", N, " samples of ", spec.dataset, " (",
                                        spec.split, " split) under encoder ", spec.encoder);

  // Loads the file into c.table_; an error says what is wrong with it.
  auto load = [&]() -> absl::Status {
    c.table_.clear();
    auto f = io::H5File::open_read(path, io::ReadGuard::kStrict);
    if (!f.ok()) return f.status();
    for (const char* a : {"key", "features"})
      if (!f->has_attr("/", a))
        return absl::DataLossError(absl::StrCat("no attribute '", a, "' (not a drift feature cache)"));
    auto k = f->read_string_attr("/", "key");
    if (!k.ok()) return k.status();
    if (*k != c.key_) {
      std::vector<std::string> ours = absl::StrSplit(c.key_, '\n'), theirs = absl::StrSplit(*k, '\n');
      std::string first;
      for (size_t i = 0; i < ours.size() && first.empty(); ++i)
        if (i >= theirs.size() || theirs[i] != ours[i])
          first = absl::StrCat(" (first difference: \"", i < theirs.size() ? theirs[i] : "", "\", expected \"",
                               ours[i], "\")");
      return absl::FailedPreconditionError(absl::StrCat("built for another key", first));
    }
    auto listed = f->read_string_attr("/", "features");
    if (!listed.ok()) return listed.status();
    if (*listed != absl::StrJoin(names, "\n"))
      return absl::DataLossError("its feature list differs from its key");
    for (size_t j = 0; j < names.size(); ++j) {
      const std::string ds = "features/" + names[j];
      const std::vector<int64_t> want{N, probe[j].size(1), probe[j].size(2)};
      auto inf = f->info(ds);
      if (!inf.ok()) return inf.status();
      if (inf->shape != want || inf->dtype != h5_dtype(spec.dtype))
        return absl::DataLossError(absl::StrCat("dataset '", ds, "' is ", inf->dtype, io::shape_string(inf->shape),
                                                ", expected ", h5_dtype(spec.dtype), io::shape_string(want)));
      auto crc = f->read_string_attr(ds, "crc32");
      if (!crc.ok()) return crc.status();
      auto t = f->read_as(ds, spec.dtype);
      if (!t.ok()) return t.status();
      const std::string got = tensor_crc32(*t);
      if (got != *crc)
        return absl::DataLossError(
            absl::StrCat("dataset '", ds, "' has CRC-32 ", got, ", recorded ", *crc, " (corrupt)"));
      c.table_.push_back(*t);
    }
    // A few rows against a fresh encoding of their images.
    for (size_t j = 0; j < names.size(); ++j) {
      const torch::Tensor rows = c.table_[j].slice(0, 0, n_probe).to(torch::kFloat32);
      const double err = (rows - probe[j]).norm().item<double>(), ref = probe[j].norm().item<double>();
      if (!(err <= kProbeTolerance * ref + 1e-6))
        return absl::FailedPreconditionError(absl::StrFormat(
            "feature '%s' of samples 0..%d differs from a fresh encoding (relative error %.3g): "
            "the encoder computes something else now",
            names[j], n_probe - 1, ref > 0 ? err / ref : err));
    }
    return absl::OkStatus();
  };
  auto finish = [&]() -> absl::StatusOr<FeatureCache> {
    c.file_bytes_ = file_id(path).size;
    c.open_s_ = since(t_open);
    return std::move(c);
  };

  // A complete file only ever appears by a rename: reading without the lock is safe.
  FileId seen = file_id(path);
  if (seen.exists) report(absl::StrCat("loading ", path), 0, 0);
  absl::Status st = seen.exists ? load() : absl::NotFoundError("no such file");
  if (st.ok()) return finish();

  auto refuse = [&](const std::string& why) {
    return absl::PermissionDeniedError(absl::StrCat(
        path, ": feature cache ", seen.exists ? absl::StrCat("invalid (", without_path(st, path), ")") : "missing",
        " and cannot be built: ", why, " (expected a writable directory for ", what, ")"));
  };
  if (auto mk = make_parent_dirs(path); !mk.ok()) return refuse(without_path(mk, path));
  report(absl::StrCat("waiting for ", path, ".lock (another process may be building it)"), 0, 0);
  io::FileLock lock(path + ".lock");
  if (!lock.ok()) return refuse(absl::StrCat("cannot lock ", path, ".lock: ", lock.error()));
  // Another cell may have built it while this one waited for the lock.
  if (const FileId now = file_id(path); !(now == seen)) {
    seen = now;
    if (now.exists) report(absl::StrCat("loading ", path), 0, 0);
    st = now.exists ? load() : absl::NotFoundError("no such file");
    if (st.ok()) return finish();
  }
  std::fprintf(stderr, "drift: feature cache %s: %s; %s %s\n", path.c_str(), without_path(st, path).c_str(),
               seen.exists ? "rebuilding" : "building", what.c_str());

  // --- build ----------------------------------------------------------------
  const auto t_build = Clock::now();
  const double cpu_build = process_cpu_seconds();
  c.table_.clear();
  for (const auto& p : probe) c.table_.push_back(torch::empty({N, p.size(1), p.size(2)}, spec.dtype));
  auto last_report = t_build;
  for (int64_t start = 0; start < N; start += batch) {
    const int64_t nb = std::min(batch, N - start);
    const DataBatch b = data.get(torch::arange(start, start + nb, torch::kLong));
    std::vector<std::string> got;
    const auto rows = encode_rows(encoder, b.x.to(device).unsqueeze(0), &got);
    if (got != names)
      return absl::InternalError(absl::StrCat(path, ": encoder ", spec.encoder, " returned features [",
                                              absl::StrJoin(got, ", "), "], expected [",
                                              absl::StrJoin(names, ", "), "]"));
    for (size_t j = 0; j < rows.size(); ++j) {
      torch::Tensor part = c.table_[j].narrow(0, start, nb);
      part.copy_(rows[j]);
      if (!torch::isfinite(part).all().item<bool>())
        return absl::OutOfRangeError(absl::StrCat(
            path, ": feature '", names[j], "' of samples ", start, "..", start + nb - 1, " holds values that are "
            "not finite in ", h5_dtype(spec.dtype),
            spec.dtype == torch::kFloat16 ? " (beyond its range: use [train] feature_cache = \"float32\")" : ""));
    }
    const int64_t done = start + nb;
    report("", done, N);
    if (spec.progress && (done == N || since(last_report) > 10.0)) {
      last_report = Clock::now();
      const double el = since(t_build), rate = el > 0 ? static_cast<double>(done) / el : 0.0;
      std::fprintf(stderr, "drift: feature cache %s: %lld/%lld images, %.0f images/s, ETA %.0f s\n",
                   path.c_str(), static_cast<long long>(done), static_cast<long long>(N), rate,
                   rate > 0 ? static_cast<double>(N - done) / rate : 0.0);
    }
  }
  report(absl::StrCat("writing ", path), 0, 0);
  std::vector<std::string> sums;
  for (const auto& t : c.table_) sums.push_back(tensor_crc32(t));
  absl::Status wr = io::write_h5_atomically(path, [&](io::H5File& out) -> absl::Status {
    if (auto s = out.create_group("features"); !s.ok()) return s;
    for (size_t j = 0; j < names.size(); ++j) {
      const std::string ds = "features/" + names[j];
      if (auto s = out.write(ds, c.table_[j]); !s.ok()) return s;
      if (auto s = out.set_attr(ds, "crc32", sums[j]); !s.ok()) return s;
    }
    if (auto s = out.set_attr("/", "format", kFormat); !s.ok()) return s;
    if (auto s = out.set_attr("/", "features", absl::StrJoin(names, "\n")); !s.ok()) return s;
    if (auto s = out.set_attr("/", "n", N); !s.ok()) return s;
    return out.set_attr("/", "key", c.key_);
  });
  if (!wr.ok()) return refuse(without_path(wr, path));
  c.built_ = true;
  c.build_s_ = since(t_build);
  c.build_cpu_s_ = process_cpu_seconds() - cpu_build;
  return finish();
}

std::vector<Feature> FeatureCache::lookup(const torch::Tensor& index) const {
  if (!index.defined() || index.dim() != 2)
    throw std::invalid_argument(absl::StrCat(path_, ": lookup index of shape ", io::shape_string(index),
                                             ", expected [G, n]"));
  const torch::Tensor idx = index.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t G = idx.size(0), n = idx.size(1);
  if (idx.numel() > 0) {
    const int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
    if (lo < 0 || hi >= n_)
      throw std::out_of_range(absl::StrCat(path_, ": lookup of sample ", lo < 0 ? lo : hi, " outside [0, ",
                                           n_, ")"));
  }
  const torch::Tensor flat = idx.flatten();
  std::vector<Feature> out;
  out.reserve(table_.size());
  for (size_t j = 0; j < table_.size(); ++j) {
    const torch::Tensor& t = table_[j];  // [N, L, D]
    const torch::Tensor rows = t.index_select(0, flat).view({G, n, t.size(1), t.size(2)});
    torch::Tensor v = torch::empty({G, t.size(1), n, t.size(2)}, torch::kFloat32);
    v.copy_(rows.permute({0, 2, 1, 3}));
    out.push_back({names_[j], device_.is_cpu() ? v : v.to(device_)});
  }
  return out;
}

}  // namespace drift::train
