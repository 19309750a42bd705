// Torch-facing side of the CUDA drift field (kernel "laplace", impl = "cuda"):
// buffers from the caching allocator, the current stream, the normalizer calls
// between the stages, K @ Yc through at::bmm. See laplace_cuda.hpp / .cu.
#include "laplace_cuda.hpp"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <drift/affinity.hpp>
#include <drift/field.hpp>
#include <drift/normalizer.hpp>
#include <torch/types.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace drift::laplace {
namespace {

void check(const std::string& err) {
  if (!err.empty()) throw std::runtime_error(err);
}

// A normalizer's 0-d answer as a contiguous 0-d tensor on the inputs' device and dtype.
torch::Tensor on_device(const torch::Tensor& t, const torch::TensorOptions& opts,
                        const char* what) {
  if (!t.defined() || t.numel() != 1)
    throw std::runtime_error(std::string("laplace cuda: the normalizer's ") + what +
                             " must be one number, got " +
                             (t.defined() ? std::to_string(t.numel()) + " elements" : "none"));
  return t.to(opts.device(), opts.dtype().toScalarType()).reshape({}).contiguous();
}

template <typename T>
DriftOutputs cuda_impl(const DriftInputs& in, const Normalizer& norm, const AffinityFloor& af) {
  const c10::cuda::CUDAGuard guard(in.gen.device());
  CUstream_st* stream = c10::cuda::getCurrentCUDAStream(in.gen.device().index()).stream();
  const auto opts = in.gen.options().requires_grad(false);
  const auto dopts = opts.dtype(torch::kFloat64);

  cuda::Shape sh;
  sh.B = in.gen.size(0);
  sh.Cg = in.gen.size(1);
  sh.S = in.gen.size(2);
  sh.Cn = in.neg.size(1);
  sh.Cp = in.pos.size(1);
  sh.Tn = sh.Cg + sh.Cn + sh.Cp;
  sh.n = static_cast<int>(in.temperatures.size());
  const double floor = af.product_floor(sh.Cg, sh.Tn);
  sh.log_min_product = floor > 0.0 ? std::log(floor) : -std::numeric_limits<double>::infinity();
  const int64_t B = sh.B, Cg = sh.Cg, S = sh.S, Tn = sh.Tn, n = sh.n;

  const torch::Tensor gen = in.gen.detach().contiguous();
  const torch::Tensor neg = in.neg.contiguous(), pos = in.pos.contiguous();
  const torch::Tensor w_gen = in.w_gen.contiguous(), w_neg = in.w_neg.contiguous(),
                      w_pos = in.w_pos.contiguous();
  // DRIFT_LAPLACE_CUDA_POISON=1 (tests): every buffer starts as NaN, so an
  // element no kernel writes shows up in the outputs.
  const char* poison_env = std::getenv("DRIFT_LAPLACE_CUDA_POISON");
  const bool poison = poison_env && std::string(poison_env) == "1";
  auto alloc = [&](at::IntArrayRef shape, const torch::TensorOptions& o) {
    return poison ? torch::full(shape, std::numeric_limits<double>::quiet_NaN(), o)
                  : torch::empty(shape, o);
  };
  torch::Tensor Yc = alloc({B, Tn, S}, opts);
  torch::Tensor w = alloc({B, Tn}, opts);
  torch::Tensor dn = alloc({B, Cg, Tn}, opts);
  torch::Tensor rmin = alloc({B * Cg}, opts);
  torch::Tensor lzr = alloc({B * Cg, n}, opts);
  torch::Tensor cmin = alloc({B * Tn}, opts);
  torch::Tensor lzc = alloc({n, B * Tn}, opts);
  torch::Tensor K = alloc({B, n * Cg, Tn}, opts);
  torch::Tensor F = alloc({B, n * Cg, S}, opts);
  torch::Tensor partials = alloc({cuda::workspace_doubles(sh)}, dopts);
  torch::Tensor scale = alloc({1}, opts);
  torch::Tensor m_tau = alloc({n}, opts);
  torch::Tensor V = alloc({B, Cg, S}, opts);
  torch::Tensor goal = alloc({B, Cg, S}, opts);

  cuda::Buffers<T> bu;
  bu.gen = gen.data_ptr<T>();
  bu.neg = neg.data_ptr<T>();
  bu.pos = pos.data_ptr<T>();
  bu.w_gen = w_gen.data_ptr<T>();
  bu.w_neg = w_neg.data_ptr<T>();
  bu.w_pos = w_pos.data_ptr<T>();
  bu.Yc = Yc.data_ptr<T>();
  bu.w = w.data_ptr<T>();
  bu.dn = dn.data_ptr<T>();
  bu.rmin = rmin.data_ptr<T>();
  bu.lzr = lzr.data_ptr<T>();
  bu.cmin = cmin.data_ptr<T>();
  bu.lzc = lzc.data_ptr<T>();
  bu.K = K.data_ptr<T>();
  bu.F = F.data_ptr<T>();
  bu.partials = partials.data_ptr<double>();
  bu.scale = scale.data_ptr<T>();
  bu.m_tau = m_tau.data_ptr<T>();
  bu.V = V.data_ptr<T>();
  bu.goal = goal.data_ptr<T>();

  // Steps 1-3: centred targets, distances, scale; then the normalizer (once).
  check(cuda::distances<T>(sh, bu, stream));
  const torch::Tensor scale0 = scale.reshape({});
  const FeatureScaling fs = norm.feature(scale0, S);
  const torch::Tensor dist_div = on_device(fs.distance_divisor, opts, "distance_divisor");
  const torch::Tensor s = on_device(fs.coord_divisor, opts, "coord_divisor");

  // Steps 4-5: normalized distances, log-sum-exps, K for every temperature.
  check(cuda::coefficients<T>(sh, bu, dist_div.data_ptr<T>(), in.temperatures.data(), stream));
  // F = K' @ Yc for all temperatures at once (cuBLAS strided batched GEMM).
  at::bmm_out(F, K, Yc);
  check(cuda::mean_squares<T>(sh, bu, s.data_ptr<T>(), stream));

  // The normalizer once per temperature, as the plain code calls it.
  std::vector<torch::Tensor> factors;
  factors.reserve(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    factors.push_back(on_device(norm.drift_factor(m_tau.select(0, k)), opts, "drift_factor"));
  const torch::Tensor fac = torch::stack(factors).contiguous();

  // Step 6: V and goal.
  check(cuda::combine<T>(sh, bu, s.data_ptr<T>(), fac.data_ptr<T>(), stream));

  DriftOutputs out;
  out.V = V;
  out.goal = goal;
  out.m_tau = m_tau;
  out.scale = scale0;
  out.coord_scale = s;
  return out;
}

}  // namespace

std::string cuda_unsupported_reason(const DriftInputs& in) {
  if (!in.gen.defined()) return "'gen' is undefined";
  const auto dt = in.gen.scalar_type();
  if (dt != torch::kFloat32 && dt != torch::kFloat64)
    return std::string("dtype ") + c10::toString(dt) + ", expected float32 or float64";
  const auto dev = in.gen.device();
  if (!dev.is_cuda()) return "'gen' is on " + dev.str() + ", expected a CUDA device";
  const std::pair<const char*, const torch::Tensor*> all[] = {
      {"gen", &in.gen},     {"pos", &in.pos},     {"neg", &in.neg},
      {"w_gen", &in.w_gen}, {"w_pos", &in.w_pos}, {"w_neg", &in.w_neg}};
  for (const auto& [name, t] : all) {
    if (!t->defined()) return std::string("'") + name + "' is undefined";
    if (t->device() != dev)
      return std::string("'") + name + "' is on " + t->device().str() + ", 'gen' on " + dev.str();
    if (t->layout() != torch::kStrided) return std::string("'") + name + "' is not strided";
    if (t->scalar_type() != dt)
      return std::string("'") + name + "' is " + c10::toString(t->scalar_type()) + ", 'gen' " +
             c10::toString(dt);
  }
  const auto n = in.temperatures.size();
  if (n < 1 || n > static_cast<size_t>(cuda::kMaxTemperatures))
    return std::to_string(n) + " temperatures, expected 1 to " +
           std::to_string(cuda::kMaxTemperatures);
  return "";
}

bool cuda_supports(const DriftInputs& in) { return cuda_unsupported_reason(in).empty(); }

DriftOutputs compute_cuda(const DriftInputs& in, const Normalizer& norm,
                          const AffinityFloor& floor) {
  const std::string why = cuda_unsupported_reason(in);
  if (!why.empty()) throw std::invalid_argument("laplace impl = \"cuda\": " + why);
  if (!(floor.min_normalizer == 0.0))
    throw std::invalid_argument("laplace impl = \"cuda\": min_normalizer > 0 is computed by "
                                "the plain code only");
  torch::NoGradGuard no_grad;
  if (in.gen.scalar_type() == torch::kFloat64) return cuda_impl<double>(in, norm, floor);
  return cuda_impl<float>(in, norm, floor);
}

}  // namespace drift::laplace
