// Experiment files: loading, grid expansion, validation, error messages.
// Uses fake components registered into a private registry, so that it does not
// depend on the real plugins.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdlib.h>
#include <unistd.h>

#include "config/dry_run.hpp"
#include "config/experiment.hpp"
#include "config/schema.hpp"
#include "runtime/registry.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"

namespace {
namespace fs = std::filesystem;


using drift::ComponentInfo;
using drift::ComponentKind;
using drift::ParamSpec;
using drift::ParamValue;
using drift::config::ExperimentConfig;

constexpr const char* kPath = "cfgtest/exp.toml";
constexpr const char* kMinimal = "[data]\ndataset = \"toy2d\"\n[generator]\nplugin = \"mlp\"\n";

drift::runtime::Registry& fakes() {
  static auto* reg = [] {
    auto* r = new drift::runtime::Registry();
    auto add = [&](ComponentKind kind, std::string name, std::vector<ParamSpec> params,
                   drift::AnyFactory f) {
      auto st = r->add_builtin(ComponentInfo{kind, std::move(name), "fake", std::move(params), f});
      if (!st.ok()) std::abort();
    };
    add(ComponentKind::Dataset, "toy2d",
        {ParamSpec::Int("n_modes", 2, "modes").at_least(1),
         ParamSpec::Float("spread", 0.1, "std").positive()},
        drift::DatasetFactory{});
    add(ComponentKind::Dataset, "rings", {ParamSpec::Float("radius", 1.0, "r")},
        drift::DatasetFactory{});
    add(ComponentKind::Generator, "mlp",
        {ParamSpec::IntList("hidden", {64, 64}, "widths"),
         ParamSpec::String("activation", "silu", "act").one_of({"silu", "relu"})},
        drift::GeneratorFactory{});
    add(ComponentKind::Encoder, "identity", {}, drift::EncoderFactory{});
    add(ComponentKind::Encoder, "mae_resnet", {ParamSpec::Int("depth", 2, "blocks").at_least(1)},
        drift::EncoderFactory{});
    add(ComponentKind::Kernel, "laplace", {}, drift::KernelFactory{});
    add(ComponentKind::Kernel, "gauss", {ParamSpec::Float("bandwidth", 1.0, "h").positive()},
        drift::KernelFactory{});
    add(ComponentKind::Normalizer, "feature_drift", {}, drift::NormalizerFactory{});
    return r;
  }();
  return *reg;
}

absl::StatusOr<ExperimentConfig> resolve(const std::string& text, size_t cell = 0) {
  auto exp = drift::config::parse_experiment(text, kPath);
  if (!exp.ok()) return exp.status();
  return drift::config::resolve_cell(*exp, cell, fakes());
}

// The error of loading+resolving every cell of `text`; fails if it succeeds.
std::string error_of(const std::string& text) {
  auto exp = drift::config::parse_experiment(text, kPath);
  if (!exp.ok()) return std::string(exp.status().message());
  auto cells = drift::config::resolve_all(*exp, fakes());
  if (cells.ok()) {
    ADD_FAILURE() << "expected an error for:\n" << text;
    return "";
  }
  return std::string(cells.status().message());
}

void expect_has(const std::string& msg, std::initializer_list<const char*> parts) {
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
  EXPECT_EQ(msg.rfind(kPath, 0), 0u) << "not prefixed with the file: " << msg;
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  std::string p = dir + "/" + name;
  std::ofstream(p) << text;
  return p;
}

}  // namespace

TEST(Config, DefaultsFilled) {
  auto c = resolve(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "exp");  // the file's stem
  EXPECT_EQ(c->output, "results/exp.h5");
  EXPECT_EQ(c->device, "cpu");
  EXPECT_EQ(c->seed, 0);
  EXPECT_EQ(c->threads, 0);
  EXPECT_EQ(c->data.name, "toy2d");
  EXPECT_EQ(c->data.params.get_int("n_modes"), 2);
  EXPECT_EQ(c->generator.params.get_int_list("hidden"), (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(c->encoder.name, "identity");
  EXPECT_EQ(c->kernel.name, "laplace");
  EXPECT_EQ(c->normalizer.name, "feature_drift");
  EXPECT_EQ(c->temperatures, (std::vector<double>{0.02, 0.05, 0.2}));
  EXPECT_EQ(c->train.get_int("steps"), 2000);
  EXPECT_EQ(c->train.get_int("n_pos"), 256);
  EXPECT_EQ(c->train.get_int("n_unc"), 0);
  EXPECT_DOUBLE_EQ(c->train.get_float("lr"), 1e-3);
  EXPECT_DOUBLE_EQ(c->train.get_float("ema"), 0.999);
  EXPECT_EQ(c->train.get_string("lr_schedule"), "constant");
  EXPECT_EQ(c->eval.get_string_list("metrics"),
            (std::vector<std::string>{"mmd", "energy", "sliced_w"}));
  EXPECT_EQ(c->eval.get_int("n_samples"), 2048);
  EXPECT_EQ(c->num_cells, 1u);
  EXPECT_TRUE(c->grid_values.empty());
}

TEST(Config, ExplicitValuesAndDerivedOutput) {
  auto c = resolve(std::string("[experiment]\nname = \"run1\"\nseed = 7\ndevice = \"auto\"\n") +
                   kMinimal + "n_modes = 5\nspread = 0.5\n" /* still in [generator]? no */);
  // n_modes after [generator] belongs to the generator, which does not declare it.
  ASSERT_FALSE(c.ok());
  expect_has(std::string(c.status().message()),
             {"[generator] (mlp): unknown key 'n_modes'", "parameter of generator 'mlp'",
              "valid keys: plugin, hidden, activation"});

  c = resolve(
      "[experiment]\nname = \"run1\"\nseed = 7\ndevice = \"auto\"\n"
      "[data]\ndataset = \"toy2d\"\nn_modes = 5\n[generator]\nplugin = \"mlp\"\n"
      "activation = \"relu\"\n[kernel]\nplugin = \"gauss\"\nbandwidth = 2\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "run1");
  EXPECT_EQ(c->output, "results/run1.h5");
  EXPECT_EQ(c->seed, 7);
  EXPECT_EQ(c->device, "auto");
  EXPECT_EQ(c->data.params.get_int("n_modes"), 5);
  EXPECT_EQ(c->generator.params.get_string("activation"), "relu");
  EXPECT_EQ(c->kernel.name, "gauss");
  EXPECT_DOUBLE_EQ(c->kernel.params.get_float("bandwidth"), 2.0);  // int -> float
}

TEST(Config, IntCoercedToFloat) {
  auto c = resolve(std::string(kMinimal) +
                   "[kernel]\ntemperatures = [1, 0.5]\n[train]\nlr = 1\ngrad_clip = 3\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->temperatures, (std::vector<double>{1.0, 0.5}));
  EXPECT_DOUBLE_EQ(c->train.get_float("lr"), 1.0);
  EXPECT_DOUBLE_EQ(c->train.get_float("grad_clip"), 3.0);

  c = resolve(std::string(kMinimal) + "[kernel]\ntemperatures = [1, 2]\n");  // all ints
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->temperatures, (std::vector<double>{1.0, 2.0}));

  c = resolve(std::string(kMinimal) + "[grid]\n\"train.lr\" = [1, 0.5]\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->grid_values.size(), 1u);
  EXPECT_EQ(c->grid_values[0].first, "train.lr");
  ASSERT_TRUE(std::holds_alternative<double>(c->grid_values[0].second));
  EXPECT_DOUBLE_EQ(std::get<double>(c->grid_values[0].second), 1.0);
  EXPECT_DOUBLE_EQ(c->train.get_float("lr"), 1.0);
}

TEST(Config, GridExpansionFirstKeyVariesSlowest) {
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) +
          "[train]\nsteps = 5\n[grid]\n\"kernel.temperatures\" = [[0.02], [0.05, 0.2]]\n"
          "\"train.n_pos\" = [1, 2, 3]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  ASSERT_EQ(exp->num_cells(), 6u);
  ASSERT_EQ(exp->grid.size(), 2u);
  EXPECT_EQ(exp->grid[0].key, "kernel.temperatures");
  EXPECT_EQ(exp->grid[1].key, "train.n_pos");
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  ASSERT_EQ(cells->size(), 6u);
  std::vector<std::pair<std::vector<double>, int64_t>> expected = {
      {{0.02}, 1}, {{0.02}, 2}, {{0.02}, 3}, {{0.05, 0.2}, 1}, {{0.05, 0.2}, 2}, {{0.05, 0.2}, 3}};
  for (size_t i = 0; i < 6; ++i) {
    const auto& c = (*cells)[i];
    EXPECT_EQ(c.cell, i);
    EXPECT_EQ(c.num_cells, 6u);
    EXPECT_EQ(c.temperatures, expected[i].first) << "cell " << i;
    EXPECT_EQ(c.train.get_int("n_pos"), expected[i].second) << "cell " << i;
    EXPECT_EQ(c.train.get_int("steps"), 5) << "not overridden keys stay";
    ASSERT_EQ(c.grid_values.size(), 2u);
    EXPECT_EQ(c.grid_values[0].first, "kernel.temperatures");
    EXPECT_EQ(std::get<std::vector<double>>(c.grid_values[0].second), expected[i].first);
    EXPECT_EQ(std::get<int64_t>(c.grid_values[1].second), expected[i].second);
  }
}

TEST(Config, LinkedGridKeysStepTogether) {
  // Two linked keys (3 tuples) times one plain key (2 values): 6 cells, not 18.
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) +
          "[grid]\n\"train.n_pos, train.n_gen\" = [[1, 8], [2, 4], [4, 2]]\n"
          "\"kernel.temperatures\" = [[0.02], [0.05, 0.2]]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  ASSERT_EQ(exp->grid.size(), 3u);
  EXPECT_EQ(exp->grid[0].key, "train.n_pos");
  EXPECT_EQ(exp->grid[1].key, "train.n_gen");
  ASSERT_EQ(exp->num_cells(), 6u);
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  const std::vector<std::pair<int64_t, int64_t>> pairs = {{1, 8}, {2, 4}, {4, 2}};
  for (size_t i = 0; i < 6; ++i) {
    const auto& c = (*cells)[i];
    EXPECT_EQ(c.train.get_int("n_pos"), pairs[i / 2].first) << "cell " << i;
    EXPECT_EQ(c.train.get_int("n_gen"), pairs[i / 2].second) << "cell " << i;
    EXPECT_EQ(c.temperatures, (i % 2 == 0 ? std::vector<double>{0.02} : std::vector<double>{0.05, 0.2}))
        << "cell " << i;
    ASSERT_EQ(c.grid_values.size(), 3u);
    EXPECT_EQ(c.grid_values[1].first, "train.n_gen");
  }
  // --dry-run shows the linked keys as one axis.
  const std::string dry = drift::config::format_dry_run(*exp, *cells);
  EXPECT_EQ(dry.substr(0, dry.find('\n')),
            "cfgtest/exp.toml: experiment \"exp\", 6 cells, all valid (grid: (train.n_pos, "
            "train.n_gen linked), kernel.temperatures; the first key varies slowest)");
  // Errors name the linked key and what a tuple must be.
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.n_pos, train.n_gen\" = [[1, 8], [2]]\n"),
             {"[grid] 'train.n_pos, train.n_gen' value #2 = [2]", "an array of 2 values"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.n_pos, train.n_gne\" = [[1, 8]]\n"),
             {"[grid] 'train.n_gne' (in 'train.n_pos, train.n_gne')", "did you mean 'n_gen'?"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.n_pos, train.n_pos\" = [[1, 8]]\n"),
             {"given twice"});
}

TEST(Config, GridOverASubTableKeyOfOneComponent) {
  // Cells 0-1 the gauss kernel with two bandwidths; cell 2 laplace (the
  // bandwidth of [kernel.gauss] does not apply to it).
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) +
          "[kernel]\nplugin = \"laplace\"\n[grid]\n"
          "\"kernel.plugin, kernel.gauss.bandwidth\" = [[\"gauss\", 0.5], [\"gauss\", 2.0], [\"laplace\", 1.0]]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  EXPECT_EQ(exp->grid[1].key, "kernel.gauss.bandwidth");
  EXPECT_EQ(exp->grid[1].component, "gauss");
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  ASSERT_EQ(cells->size(), 3u);
  EXPECT_EQ((*cells)[0].kernel.name, "gauss");
  EXPECT_DOUBLE_EQ((*cells)[0].kernel.params.get_float("bandwidth"), 0.5);
  EXPECT_DOUBLE_EQ((*cells)[1].kernel.params.get_float("bandwidth"), 2.0);
  EXPECT_EQ((*cells)[2].kernel.name, "laplace");
  EXPECT_EQ((*cells)[2].resolved_toml.find("\nbandwidth = "), std::string::npos)
      << "a key of an unselected component is not part of the cell: " << (*cells)[2].resolved_toml;
  ASSERT_EQ((*cells)[1].grid_values.size(), 2u);
  EXPECT_EQ((*cells)[1].grid_values[1].first, "kernel.gauss.bandwidth");
  // Checked against the component in every cell, like a written sub-table.
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"kernel.gauss.bandwidht\" = [0.5]\n"),
             {"[kernel.gauss]", "has no parameter 'bandwidht'", "did you mean 'bandwidth'?"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"kernel.gauss.bandwidth\" = [-1.0]\n"),
             {"[kernel.gauss]", "'bandwidth' = -1"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.x.steps\" = [1]\n"),
             {"[grid] 'train.x.steps'", "'section.component.key'"});
}

TEST(Config, GridOrderIsFileOrderNotAlphabetical) {
  // "train" sorts after "kernel", but it is written first: it varies slowest.
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) +
          "[grid]\n\"train.n_pos\" = [1, 2]\n\"kernel.temperatures\" = [[0.1], [0.3]]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto c1 = drift::config::resolve_cell(*exp, 1, fakes());
  ASSERT_TRUE(c1.ok()) << c1.status();
  EXPECT_EQ(c1->train.get_int("n_pos"), 1);
  EXPECT_EQ(c1->temperatures, std::vector<double>{0.3});
  EXPECT_EQ(exp->cell_coordinates(2), (std::vector<size_t>{1, 0}));
}

TEST(Config, GridOverridesFileValueAndNestedGridSyntax) {
  // Unquoted dotted keys in [grid] are nested tables in TOML: accepted too.
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) +
          "[kernel]\ntemperatures = [0.7]\n[grid]\nkernel.temperatures = [[0.3], [0.4]]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  ASSERT_EQ(exp->num_cells(), 2u);
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  EXPECT_EQ((*cells)[0].temperatures, std::vector<double>{0.3});
  EXPECT_EQ((*cells)[1].temperatures, std::vector<double>{0.4});
}

TEST(Config, GridOverPluginSelection) {
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) + "[grid]\n\"encoder.plugin\" = [\"identity\", \"mae_resnet\"]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  EXPECT_EQ((*cells)[0].encoder.name, "identity");
  EXPECT_FALSE((*cells)[0].encoder.params.has("depth"));
  EXPECT_EQ((*cells)[1].encoder.name, "mae_resnet");
  EXPECT_EQ((*cells)[1].encoder.params.get_int("depth"), 2);
  // A section absent from the file is created by the grid.
  auto exp2 = drift::config::parse_experiment(
      std::string(kMinimal) + "[grid]\n\"kernel.plugin\" = [\"gauss\"]\n\"kernel.bandwidth\" = [0.5, 3]\n",
      kPath);
  ASSERT_TRUE(exp2.ok()) << exp2.status();
  auto c = drift::config::resolve_cell(*exp2, 1, fakes());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->kernel.params.get_float("bandwidth"), 3.0);
}

TEST(Config, PerComponentSubTables) {
  // [encoder.mae_resnet] applies only where mae_resnet is selected, so a grid
  // over the encoder can give it parameters identity does not have.
  const std::string text = std::string(kMinimal) +
                           "[encoder.mae_resnet]\ndepth = 5\n[kernel.gauss]\nbandwidth = 0.25\n"
                           "[grid]\n\"encoder.plugin\" = [\"identity\", \"mae_resnet\"]\n";
  auto exp = drift::config::parse_experiment(text, kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  EXPECT_EQ((*cells)[0].encoder.name, "identity");
  EXPECT_FALSE((*cells)[0].encoder.params.has("depth"));
  EXPECT_EQ((*cells)[1].encoder.params.get_int("depth"), 5);
  EXPECT_EQ((*cells)[1].kernel.name, "laplace");
  // The resolved file has plain keys and resolves to the same values.
  EXPECT_NE((*cells)[1].resolved_toml.find("[encoder]\nplugin = \"mae_resnet\"\ndepth = 5\n"),
            std::string::npos)
      << (*cells)[1].resolved_toml;
  auto again = drift::config::parse_experiment((*cells)[1].resolved_toml, kPath);
  ASSERT_TRUE(again.ok()) << again.status();
  auto c2 = drift::config::resolve_cell(*again, 0, fakes());
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->encoder.params.get_int("depth"), 5);
  auto k = resolve(std::string(kMinimal) + "[kernel]\nplugin = \"gauss\"\n[kernel.gauss]\nbandwidth = 0.25\n");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_DOUBLE_EQ(k->kernel.params.get_float("bandwidth"), 0.25);

  // Checked in every cell, selected or not: unknown component, unknown or
  // out-of-range parameter, a key given twice.
  expect_has(error_of(std::string(kMinimal) + "[encoder.mae_resnt]\ndepth = 3\n"),
             {"[encoder.mae_resnt]: no encoder 'mae_resnt'", "did you mean 'mae_resnet'?"});
  expect_has(error_of(std::string(kMinimal) + "[encoder.mae_resnet]\ndepht = 3\n"),
             {"[encoder.mae_resnet]: the encoder 'mae_resnet' has no parameter 'depht'",
              "did you mean 'depth'?"});
  expect_has(error_of(std::string(kMinimal) + "[encoder.mae_resnet]\ndepth = 0\n"),
             {"[encoder.mae_resnet]", "depth"});
  expect_has(error_of(std::string(kMinimal) + "[encoder.mae_resnet]\nplugin = \"identity\"\n"),
             {"[encoder.mae_resnet]: the encoder 'mae_resnet' has no parameter 'plugin'"});
  expect_has(error_of(std::string(kMinimal) +
                      "[encoder]\nplugin = \"mae_resnet\"\ndepth = 2\n[encoder.mae_resnet]\ndepth = 3\n"),
             {"[encoder.mae_resnet] 'depth': also given in [encoder]"});
  expect_has(error_of(std::string(kMinimal) + "[encoder.mae_resnet]\ndepth = 3\n[grid]\n"
                      "\"encoder.plugin\" = [\"mae_resnet\"]\n\"encoder.depth\" = [4]\n"),
             {"[encoder.mae_resnet] 'depth': also given by [grid] 'encoder.depth'"});
  // Sections that select no component keep refusing tables.
  expect_has(error_of(std::string(kMinimal) + "[train.x]\nsteps = 3\n"), {"[train]", "'x'"});
}

TEST(Config, SyntaxErrorHasFileLineColumn) {
  drift::test::ScratchDir tmp("cfg-syntax");
  const std::string& dir = tmp.path();
  std::string p = write_file(dir, "bad.toml", "[train]\nsteps = 3\nlr = = 2\n");
  auto exp = drift::config::load_experiment(p);
  ASSERT_FALSE(exp.ok());
  std::string m(exp.status().message());
  EXPECT_EQ(m.rfind(p + ":3:", 0), 0u) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  // LINE:COLUMN: then the parser's message.
  EXPECT_NE(m.find(p + ":3:6: "), std::string::npos) << m;
}

TEST(Config, MissingFile) {
  auto exp = drift::config::load_experiment("/nonexistent/dir/x.toml");
  ASSERT_FALSE(exp.ok());
  EXPECT_NE(exp.status().message().find("/nonexistent/dir/x.toml: cannot open"),
            std::string::npos)
      << exp.status();
}

TEST(Config, UnknownSectionSuggestsClosest) {
  expect_has(error_of(std::string(kMinimal) + "[trian]\nsteps = 3\n"),
             {"unknown section [trian]", "did you mean [train]?"});
  expect_has(error_of("seed = 3\n" + std::string(kMinimal)),
             {"key 'seed' is outside any section", "[experiment]"});
}

TEST(Config, UnknownKeySuggestsClosest) {
  expect_has(error_of(std::string(kMinimal) + "[train]\nstpes = 3\n"),
             {"[train]", "unknown key 'stpes'", "did you mean 'steps'?"});
  // Plugin sections suggest among framework and component keys.
  expect_has(error_of(std::string(kMinimal) + "[kernel]\ntemperatres = [0.1]\n"),
             {"[kernel]", "'temperatres'", "did you mean 'temperatures'?"});
  expect_has(error_of("[data]\ndataset = \"toy2d\"\nn_mode = 3\n[generator]\nplugin = \"mlp\"\n"),
             {"[data]", "'n_mode'", "did you mean 'n_modes'?"});
}

TEST(Config, OutOfRangeValues) {
  expect_has(error_of(std::string(kMinimal) + "[kernel]\ntemperatures = [0.02, -0.5]\n"),
             {"[kernel]", "'temperatures' = [0.02, -0.5]", "out of range",
              "non-empty list of float > 0"});
  expect_has(error_of(std::string(kMinimal) + "[kernel]\ntemperatures = []\n"),
             {"[kernel]", "'temperatures' = []", "non-empty list of float > 0"});
  expect_has(error_of(std::string(kMinimal) + "[train]\nn_pos = 0\n"),
             {"[train]", "'n_pos' = 0", "out of range", "int >= 1"});
  expect_has(error_of(std::string(kMinimal) + "[train]\nema = 1.0\n"),
             {"[train]", "'ema' = 1.0", "< 1"});
  expect_has(error_of("[data]\ndataset = \"toy2d\"\nn_modes = 0\n[generator]\nplugin = \"mlp\"\n"),
             {"[data]", "toy2d", "'n_modes' = 0"});
  expect_has(error_of(std::string(kMinimal) + "[experiment]\ndevice = \"gpu\"\n"),
             {"[experiment]", "'device' = \"gpu\"", "\"cpu\", \"cuda\", \"auto\""});
  expect_has(error_of(std::string(kMinimal) + "[eval]\nmetrics = [\"mmd\", \"fidd\"]\n"),
             {"[eval]", "'metrics'", "\"fidd\""});
  expect_has(error_of(std::string(kMinimal) + "[train]\ncfg_alpha_min = 3\ncfg_alpha_max = 2\n"),
             {"[train] 'cfg_alpha_max' = 2.0", "'cfg_alpha_min' = 3.0"});
}

TEST(Config, WrongTypes) {
  expect_has(error_of(std::string(kMinimal) + "[train]\nsteps = \"many\"\n"),
             {"[train]", "'steps' = \"many\"", "is a string", "int >= 1"});
  expect_has(error_of(std::string(kMinimal) + "[train]\nsteps = 1.5\n"),
             {"'steps' = 1.5", "is a float"});
  expect_has(error_of("[data]\ndataset = \"toy2d\"\nspread = { a = 1 }\n[generator]\nplugin = \"mlp\"\n"),
             {"[data] 'spread'", "is a table"});
  expect_has(error_of(std::string(kMinimal) + "[experiment]\nname = 1979-05-27\n"),
             {"[experiment] 'name'", "is a date"});
  expect_has(error_of(std::string(kMinimal) + "[eval]\nmetrics = [\"mmd\", 1]\n"),
             {"[eval] 'metrics'", "mixing strings and numbers"});
  expect_has(error_of(std::string(kMinimal) + "[kernel]\ntemperatures = [[0.1]]\n"),
             {"[kernel] 'temperatures'", "array of arrays"});
  expect_has(error_of("train = 3\n" + std::string(kMinimal)),
             {"'train' must be a section"});
}

TEST(Config, RequiredSelectors) {
  expect_has(error_of("[generator]\nplugin = \"mlp\"\n"),
             {"[data]", "missing required key 'dataset'"});
  expect_has(error_of("[data]\ndataset = \"toy2d\"\n"),
             {"[generator]", "missing required key 'plugin'"});
}

TEST(Config, UnknownPluginListsAvailable) {
  expect_has(error_of(std::string(kMinimal) + "[kernel]\nplugin = \"lapalce\"\n"),
             {"[kernel] 'plugin' = \"lapalce\"", "unknown kernel 'lapalce'",
              "did you mean 'laplace'", "available: gauss, laplace"});
  expect_has(error_of("[data]\ndataset = \"mnist\"\n[generator]\nplugin = \"mlp\"\n"),
             {"[data] 'dataset' = \"mnist\"", "unknown dataset 'mnist'", "available: rings, toy2d"});
}

TEST(Config, GridKeyErrors) {
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"trian.steps\" = [1]\n"),
             {"[grid] 'trian.steps'", "unknown section [trian]", "did you mean [train]?"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.stpes\" = [1]\n"),
             {"[grid] 'train.stpes'", "[train] has no key 'stpes'", "did you mean 'steps'?"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"steps\" = [1]\n"),
             {"[grid] 'steps'", "'section.key'"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"plugins.paths\" = [[\"a\"]]\n"),
             {"[grid] 'plugins.paths'", "cannot be overridden"});
  // A parameter the selected plugin does not declare (laplace has none).
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"kernel.bandwidth\" = [0.5]\n"),
             {"[grid] 'kernel.bandwidth'", "kernel 'laplace' has no parameter 'bandwidth'"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"data.n_mode\" = [2, 3]\n"),
             {"[grid] 'data.n_mode'", "dataset 'toy2d' has no parameter 'n_mode'",
              "did you mean 'n_modes'?"});
}

TEST(Config, GridValueErrors) {
  expect_has(error_of(std::string(kMinimal) +
                      "[grid]\n\"train.steps\" = [1]\ntrain.steps = [2]\n"),
             {"[grid] 'train.steps'", "given twice"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.steps\" = 5\n"),
             {"[grid] 'train.steps' = 5", "must be a non-empty array"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.steps\" = []\n"),
             {"[grid] 'train.steps' = []", "must be a non-empty array"});
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"train.steps\" = [1, { a = 2 }]\n"),
             {"[grid] 'train.steps' value #2", "is a table"});
  // A bad value in one cell names the key, the value and the cell.
  expect_has(error_of(std::string(kMinimal) + "[grid]\n\"kernel.temperatures\" = [[0.1], [-0.1]]\n"),
             {"[kernel]", "'temperatures' = [-0.1]", "float > 0",
              "grid cell 1: kernel.temperatures = [-0.1]"});
}

TEST(Config, CellOutOfRange) {
  auto exp = drift::config::parse_experiment(kMinimal, kPath);
  ASSERT_TRUE(exp.ok());
  auto c = drift::config::resolve_cell(*exp, 1, fakes());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("cell 1 does not exist"), std::string::npos);
}

TEST(Config, PluginPathsRelativeToFileAndLoaded) {
  auto exp = drift::config::parse_experiment(
      std::string("[plugins]\npaths = [\"../p/x.so\", \"/abs/y\"]\n") + kMinimal, "/tmp/a/b/exp.toml");
  ASSERT_TRUE(exp.ok()) << exp.status();
  EXPECT_EQ(exp->plugin_paths, (std::vector<std::string>{"/tmp/a/p/x.so", "/abs/y"}));

  drift::runtime::Registry reg;
  auto st = drift::config::load_experiment_plugins(*exp, reg);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/tmp/a/b/exp.toml: [plugins] paths: /tmp/a/p/x.so: no such file"),
            std::string::npos)
      << st;

  expect_has(error_of(std::string("[plugins]\npath = [\"x\"]\n") + kMinimal),
             {"[plugins]", "'path'", "did you mean 'paths'?"});

  // A real plugin file, relative to the experiment's directory.
  drift::test::ScratchDir tmp("cfg-plugins");
  const std::string& dir = tmp.path();
  std::string rel = fs::relative(fs::path(DRIFT_TEST_PLUGIN_DIR) / "good_toy_plugin.so", dir).string();
  std::string p = write_file(dir, "toy.toml",
                             "[plugins]\npaths = [\"" + rel + "\"]\n" + kMinimal +
                                 "[kernel]\nplugin = \"toy_zero\"\nscale = 2\n");
  auto exp2 = drift::config::load_experiment(p);
  ASSERT_TRUE(exp2.ok()) << exp2.status();
  drift::runtime::Registry reg2;
  for (auto kind : {ComponentKind::Dataset, ComponentKind::Generator, ComponentKind::Encoder,
                    ComponentKind::Normalizer})
    for (const auto* c : fakes().all())
      if (c->info.kind == kind) ASSERT_TRUE(reg2.add_builtin(c->info).ok());
  ASSERT_TRUE(drift::config::load_experiment_plugins(*exp2, reg2).ok());
  auto c = drift::config::resolve_cell(*exp2, 0, reg2);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kernel.name, "toy_zero");
  EXPECT_DOUBLE_EQ(c->kernel.params.get_float("scale"), 2.0);
}

TEST(Config, ResolvedTomlRoundTrips) {
  auto c = resolve(std::string(kMinimal) +
                   "hidden = [8, 8]\n[train]\nlr = 2\n[grid]\n\"kernel.temperatures\" = [[0.5], [1]]\n",
                   1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(c->resolved_toml.find("[kernel]\nplugin = \"laplace\"\ntemperatures = [1.0]\n"),
            std::string::npos)
      << c->resolved_toml;
  EXPECT_NE(c->resolved_toml.find("# grid: kernel.temperatures = [1.0]"), std::string::npos);
  EXPECT_EQ(c->resolved_toml.find("[grid]"), std::string::npos);
  auto again = drift::config::parse_experiment(c->resolved_toml, "other/dir/again.toml");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << c->resolved_toml;
  auto c2 = drift::config::resolve_cell(*again, 0, fakes());
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->name, "exp");
  EXPECT_EQ(c2->output, "results/exp.h5");
  EXPECT_EQ(c2->temperatures, std::vector<double>{1.0});
  EXPECT_DOUBLE_EQ(c2->train.get_float("lr"), 2.0);
  EXPECT_EQ(c2->generator.params.get_int_list("hidden"), (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(c2->train.values(), c->train.values());
  EXPECT_EQ(c2->eval.values(), c->eval.values());
  // Same sections and keys (only the header comments differ).
  auto strip = [](const std::string& s) { return s.substr(s.find("\n[")); };
  EXPECT_EQ(strip(c2->resolved_toml), strip(c->resolved_toml));
}

TEST(Config, DryRunListsOnlyVaryingKeys) {
  auto exp = drift::config::parse_experiment(
      std::string(kMinimal) +
          "[grid]\n\"kernel.temperatures\" = [[0.02], [0.05, 0.2]]\n\"train.steps\" = [10]\n",
      kPath);
  ASSERT_TRUE(exp.ok()) << exp.status();
  auto cells = drift::config::resolve_all(*exp, fakes());
  ASSERT_TRUE(cells.ok()) << cells.status();
  std::string out = drift::config::format_dry_run(*exp, *cells);
  EXPECT_EQ(out,
            "cfgtest/exp.toml: experiment \"exp\", 2 cells, all valid (grid: kernel.temperatures, "
            "train.steps; the first key varies slowest)\n"
            "  cell 0 kernel.temperatures=[0.02]      output=results/exp.h5\n"
            "  cell 1 kernel.temperatures=[0.05, 0.2] output=results/exp.h5\n");
  auto one = drift::config::parse_experiment(kMinimal, kPath);
  auto one_cells = drift::config::resolve_all(*one, fakes());
  ASSERT_TRUE(one_cells.ok());
  EXPECT_EQ(drift::config::format_dry_run(*one, *one_cells),
            "cfgtest/exp.toml: experiment \"exp\", 1 cell, all valid\n"
            "  cell 0 output=results/exp.h5\n");
}

TEST(ConfigSchema, EveryKeyDocumentedAndDefaultsValid) {
  for (const auto& s : drift::config::experiment_schema()) {
    EXPECT_FALSE(s.doc.empty()) << s.name;
    if (s.is_plugin_section) EXPECT_FALSE(s.selector.empty()) << s.name;
    for (const auto& k : s.keys) {
      EXPECT_FALSE(k.doc.empty()) << s.name << "." << k.name;
      if (k.default_value)
        EXPECT_TRUE(drift::validate_param(k, *k.default_value, s.name).ok()) << s.name << "." << k.name;
    }
  }
  std::string md = drift::config::schema_markdown();
  EXPECT_NE(md.find("### [train]"), std::string::npos);
  EXPECT_NE(md.find("| `n_pos` | int | `256` | an int >= 1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `temperatures` | list of float | `[0.02, 0.05, 0.2]` |"), std::string::npos);
  EXPECT_NE(md.find("| `dataset` | string | required |"), std::string::npos);
}

TEST(ConfigSchema, DocumentationIsUpToDate) {
  std::ifstream f(std::string(DRIFT_SOURCE_DIR) + "/schemas/experiment.md");
  ASSERT_TRUE(f) << "schemas/experiment.md missing";
  std::string doc((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::string begin = "<!-- BEGIN GENERATED -->\n", end = "<!-- END GENERATED -->";
  size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  std::string generated = doc.substr(b + begin.size(), e - b - begin.size());
  EXPECT_EQ(generated, drift::config::schema_markdown())
      << "schemas/experiment.md is stale: regenerate the part between the markers with "
         "drift-run --print-schema";
}

namespace {
// `toml` without its line "<key> = ..." (which must be there once).
std::string without_line(const std::string& toml, const std::string& key) {
  const std::string start = "\n" + key + " = ";
  const size_t at = toml.find(start);
  EXPECT_NE(at, std::string::npos) << key << " not in:\n" << toml;
  EXPECT_EQ(toml.find(start, at + 1), std::string::npos) << key << " twice in:\n" << toml;
  if (at == std::string::npos) return toml;
  return toml.substr(0, at) + toml.substr(toml.find('\n', at + 1));
}
}  // namespace

// A finished cell recorded before a key existed (its config_toml lacks it)
// still matches when the cell leaves that key at its default; anything else
// that differs does not.
TEST(Config, SameConfigurationToleratesOnlyKeysAddedAtTheirDefault) {
  using drift::config::same_configuration;
  auto c = resolve(std::string(kMinimal) + "[train]\nsteps = 5\nlr = 0.002\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string& toml = c->resolved_toml;
  EXPECT_TRUE(same_configuration(toml, *c));
  // The first line (cell index, cell count, file) does not decide.
  const std::string body = toml.substr(toml.find('\n'));
  EXPECT_TRUE(same_configuration("# drift experiment \"other\", cell 3 of 9 (cells 0-8), resolved from x.toml" + body, *c));
  // Keys the stored configuration lacks, left at their default here: a
  // framework key ([train] sample_every) and a plugin's ([data] toy2d's spread).
  EXPECT_TRUE(same_configuration(without_line(toml, "sample_every"), *c));
  EXPECT_TRUE(same_configuration(without_line(without_line(toml, "spread"), "sample_every"), *c));
  // Keys the file sets are not defaulted, even where the stored one lacks them.
  EXPECT_FALSE(same_configuration(without_line(toml, "steps"), *c));
  EXPECT_FALSE(same_configuration(without_line(toml, "lr"), *c));
  // A changed value, or a key the stored configuration has and this one lacks.
  std::string changed = toml;
  changed.replace(changed.find("\nsteps = 5\n"), 11, "\nsteps = 6\n");
  EXPECT_FALSE(same_configuration(changed, *c));
  std::string extra = toml;
  extra.replace(extra.find("\n[train]\n"), 9, "\n[train]\nretired_key = 1\n");
  EXPECT_FALSE(same_configuration(extra, *c));
  // A key written in the file at its default value counts as set.
  auto explicit_default = resolve(std::string(kMinimal) + "[train]\nsteps = 5\nlr = 0.002\nsample_every = 0\n");
  ASSERT_TRUE(explicit_default.ok()) << explicit_default.status();
  EXPECT_FALSE(same_configuration(without_line(toml, "sample_every"), *explicit_default));
  // A key set by the grid is set too.
  auto gridded = resolve(std::string(kMinimal) + "[train]\nsteps = 5\n[grid]\n\"train.lr\" = [0.002, 0.003]\n");
  ASSERT_TRUE(gridded.ok()) << gridded.status();
  EXPECT_TRUE(same_configuration(gridded->resolved_toml, *gridded));
  EXPECT_FALSE(same_configuration(without_line(gridded->resolved_toml, "lr"), *gridded));
}

// What differs is named by its key, whichever line it sits on.
TEST(Config, ConfigurationDifferenceNamesTheKey) {
  using drift::config::configuration_difference;
  auto c = resolve(std::string(kMinimal) + "[train]\nsteps = 5\nlr = 0.002\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string& toml = c->resolved_toml;
  EXPECT_EQ(configuration_difference(toml, *c), "");
  EXPECT_EQ(configuration_difference(without_line(toml, "sample_every"), *c), "");
  std::string changed = toml;
  changed.replace(changed.find("\nsteps = 5\n"), 11, "\nsteps = 6\n");
  EXPECT_EQ(configuration_difference(changed, *c), "[train] steps = 6 there, steps = 5 here");
  // A key set here that the stored configuration lacks: named, not the line after it.
  EXPECT_EQ(configuration_difference(without_line(toml, "lr"), *c), "[train] lr not set there, lr = 0.002 here");
  std::string extra = toml;
  extra.replace(extra.find("\n[train]\n"), 9, "\n[train]\nretired_key = 1\n");
  EXPECT_EQ(configuration_difference(extra, *c), "[train] retired_key = 1 there, not a key here");
}
