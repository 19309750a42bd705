#include "policy/formations.hpp"

#include <drift/formation.hpp>

#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"

namespace drift::policy {
namespace {

// [G, *C] -> [G, n, *C]
torch::Tensor repeat_each(const torch::Tensor& t, int64_t n) {
  std::vector<int64_t> shape{t.size(0), n};
  for (int64_t d = 1; d < t.dim(); ++d) shape.push_back(t.size(d));
  return t.unsqueeze(1).expand(shape).contiguous();
}

void need_conditions(const DataBatch& b, const char* who) {
  if (!b.cond.defined())
    throw std::invalid_argument(absl::StrCat(who, ": the dataset gives no conditions (DataBatch::cond)"));
}

class ExpertFormation : public Formation {
 public:
  ConditionalBatch form(Dataset& data, int64_t G, int64_t n_gen, int64_t n_pos, at::Generator& rng) override {
    if (n_pos != 1)
      throw std::invalid_argument(absl::StrCat(
          "formation 'expert': [train] n_pos = ", n_pos,
          " but each observation has one expert chunk (set n_pos = 1, or use 'knn' for more positives)"));
    DataBatch b = data.sample(G, rng);
    need_conditions(b, "formation 'expert'");
    ConditionalBatch out;
    out.gen_cond = repeat_each(b.cond, n_gen);
    out.pos = b.x.unsqueeze(1);
    return out;
  }
};

class KnnFormation : public Formation {
 public:
  ConditionalBatch form(Dataset& data, int64_t G, int64_t n_gen, int64_t n_pos, at::Generator& rng) override {
    if (neighbours_.size(1) != n_pos) build(data, n_pos);
    DataBatch b = data.sample(G, rng);
    need_conditions(b, "formation 'knn'");
    const torch::Tensor nn = neighbours_.index_select(0, b.index).flatten();  // [G * n_pos]
    DataBatch p = data.get(nn);
    ConditionalBatch out;
    out.gen_cond = repeat_each(b.cond, n_gen);
    std::vector<int64_t> shape{G, n_pos};
    for (int64_t d = 1; d < p.x.dim(); ++d) shape.push_back(p.x.size(d));
    out.pos = p.x.view(shape);
    return out;
  }

 private:
  // The n_pos nearest windows of every window by Euclidean distance between
  // (flattened) conditions, itself first; ties go to the lower index.
  void build(Dataset& data, int64_t k) {
    const int64_t N = data.size();
    if (N <= 0) throw std::invalid_argument("formation 'knn': needs a finite, indexed dataset (size() > 0)");
    if (k > N)
      throw std::invalid_argument(absl::StrCat("formation 'knn': [train] n_pos = ", k, " but the dataset has only ",
                                               N, " windows"));
    DataBatch all = data.get(torch::arange(N, torch::kLong));
    need_conditions(all, "formation 'knn'");
    const torch::Tensor c = all.cond.flatten(1).to(torch::kFloat64);
    std::vector<torch::Tensor> parts;
    // In blocks of 128 windows: the exact differences of a block take
    // 128 * N * dim doubles (8 MB per 1000 windows of 8 values).
    for (int64_t i = 0; i < N; i += 128) {
      const torch::Tensor q = c.narrow(0, i, std::min<int64_t>(128, N - i));
      torch::Tensor d2 = (q.unsqueeze(1) - c.unsqueeze(0)).square().sum(2);  // exact, [q, N]
      // Stable order: distance, then index (itself is at distance 0).
      parts.push_back(std::get<1>(d2.sort(/*stable=*/true, 1, false)).narrow(1, 0, k));
    }
    neighbours_ = torch::cat(parts);
  }
  torch::Tensor neighbours_ = torch::empty({0, 0}, torch::kLong);
};

class JointFormation : public Formation {
 public:
  explicit JointFormation(double weight) : weight_(weight) {}
  ConditionalBatch form(Dataset& data, int64_t G, int64_t n_gen, int64_t n_pos, at::Generator& rng) override {
    if (n_gen % n_pos != 0)
      throw std::invalid_argument(absl::StrCat("formation 'joint': [train] n_gen = ", n_gen,
                                               " must be a multiple of n_pos = ", n_pos,
                                               " (each window of a group gets n_gen / n_pos generated chunks)"));
    DataBatch b = data.sample(G * n_pos, rng);
    need_conditions(b, "formation 'joint'");
    auto group = [&](const torch::Tensor& t) {
      std::vector<int64_t> shape{G, n_pos};
      for (int64_t d = 1; d < t.dim(); ++d) shape.push_back(t.size(d));
      return t.view(shape);
    };
    ConditionalBatch out;
    out.pos = group(b.x);
    out.pos_cond = group(b.cond);
    out.gen_cond = out.pos_cond.repeat_interleave(n_gen / n_pos, 1);
    out.cond_weight = weight_;
    return out;
  }

 private:
  double weight_;
};

template <class F, class... A>
FormationFactory factory(A... a) {
  return [=](const Params&, const FormationContext&) -> absl::StatusOr<std::unique_ptr<Formation>> {
    return std::unique_ptr<Formation>(new F(a...));
  };
}

}  // namespace

absl::Status register_formations(runtime::Registry& reg) {
  auto add = [&](std::string name, std::string doc, std::vector<ParamSpec> params, FormationFactory f) {
    ComponentInfo c;
    c.kind = ComponentKind::Formation;
    c.name = std::move(name);
    c.doc = std::move(doc);
    c.params = std::move(params);
    c.factory = std::move(f);
    return reg.add_builtin(std::move(c));
  };
  absl::Status st = add("expert",
                        "one window per group; its expert chunk is the only positive (n_pos = 1), the "
                        "group's other generated chunks the negatives",
                        {}, factory<ExpertFormation>());
  if (st.ok())
    st = add("knn",
             "one window per group; the positives are the expert chunks of the n_pos windows with the "
             "nearest conditions (itself included)",
             {}, factory<KnnFormation>());
  if (st.ok())
    st = add("joint",
             "n_pos windows per group, n_gen / n_pos generated chunks each; a joint kernel over "
             "(weight * condition, chunk)",
             {ParamSpec::Float("weight", 1.0, "scale of the condition in the joint kernel's distances").positive()},
             [](const Params& p, const FormationContext&) -> absl::StatusOr<std::unique_ptr<Formation>> {
               return std::unique_ptr<Formation>(new JointFormation(p.get_float("weight")));
             });
  return st;
}

}  // namespace drift::policy
