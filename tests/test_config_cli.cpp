// drift-run --dry-run / --print-schema / FILE, run as a process.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <stdlib.h>
#include <unistd.h>

#include "config/schema.hpp"
#include "scratch_dir.hpp"
#include "test_util.hpp"

namespace {
namespace fs = std::filesystem;



std::string drift_run() { return std::string(DRIFT_BINARY_DIR) + "/bin/drift-run"; }

std::string write_file(const std::string& dir, const std::string& name, const std::string& text) {
  std::string p = dir + "/" + name;
  std::ofstream(p) << text;
  return p;
}

int count_lines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

// Whether the default plugins provide what experiments/start/example.toml names.
bool example_components_available() {
  std::string out;
  if (drift::test::run_command(drift_run() + " --list-plugins", &out) != 0) return false;
  for (const char* name : {"bimodal", "mlp", "identity", "laplace", "feature_drift"})
    if (out.find(name) == std::string::npos) return false;
  return true;
}

}  // namespace

TEST(DriftRunCli, PrintSchemaMatchesGenerator) {
  std::string out;
  ASSERT_EQ(drift::test::run_command(drift_run() + " --print-schema", &out), 0) << out;
  EXPECT_EQ(out, drift::config::schema_markdown());
}

TEST(DriftRunCli, UsageExitTwo) {
  std::string out;
  EXPECT_EQ(drift::test::run_command(drift_run(), &out), 2);
  EXPECT_NE(out.find("usage: drift-run"), std::string::npos) << out;
  EXPECT_EQ(drift::test::run_command(drift_run() + " --dry-run", &out), 2);
  EXPECT_EQ(drift::test::run_command(drift_run() + " --bogus", &out), 2);
}

TEST(DriftRunCli, DryRunSyntaxErrorExitsNonZeroAndWritesNothing) {
  drift::test::ScratchDir tmp("cli-syntax");
  const std::string& dir = tmp.path();
  std::string results = dir + "/out.h5";
  std::string p = write_file(dir, "bad.toml",
                             "[experiment]\noutput = \"" + results + "\"\n[train\nsteps = 3\n");
  std::string out;
  EXPECT_EQ(drift::test::run_command(drift_run() + " --dry-run " + p, &out), 1);
  EXPECT_EQ(out.rfind(p + ":3:", 0), 0u) << out;
  EXPECT_EQ(count_lines(out), 1) << out;
  EXPECT_FALSE(fs::exists(results));
}

TEST(DriftRunCli, DryRunValidationErrorsAreOneLine) {
  drift::test::ScratchDir tmp("cli-invalid");
  const std::string& dir = tmp.path();
  struct Case { std::string text; std::vector<std::string> parts; };
  std::vector<Case> cases = {
      {"[trian]\nsteps = 1\n", {"unknown section [trian]", "did you mean [train]?"}},
      {"[grid]\n\"kernel.temperatures\" = 0.2\n",
       {"[grid] 'kernel.temperatures' = 0.2", "non-empty array"}},
      {"[grid]\n\"train.n_poss\" = [1]\n", {"[grid] 'train.n_poss'", "did you mean 'n_pos'?"}},
      {"[data]\ndataset = \"no_such_dataset\"\n[generator]\nplugin = \"x\"\n",
       {"[data] 'dataset' = \"no_such_dataset\"", "unknown dataset 'no_such_dataset'",
        "available:"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string results = dir + "/r" + std::to_string(i) + ".h5";
    std::string p = write_file(dir, "c" + std::to_string(i) + ".toml",
                               "[experiment]\noutput = \"" + results + "\"\n" + cases[i].text);
    for (const std::string mode : {" --dry-run ", " "}) {
      std::string out;
      EXPECT_EQ(drift::test::run_command(drift_run() + mode + p, &out), 1) << out;
      EXPECT_EQ(out.rfind(p + ": ", 0), 0u) << out;
      EXPECT_EQ(count_lines(out), 1) << out;
      for (const auto& part : cases[i].parts)
        EXPECT_NE(out.find(part), std::string::npos) << "'" << part << "' not in: " << out;
      EXPECT_FALSE(fs::exists(results));
    }
  }
}

TEST(DriftRunCli, DryRunExample) {
  ASSERT_TRUE(example_components_available())
      << "the default plugins do not provide bimodal/mlp/identity/laplace/feature_drift";
  std::string example = std::string(DRIFT_SOURCE_DIR) + "/experiments/start/example.toml";
  std::string out;
  ASSERT_EQ(drift::test::run_command(drift_run() + " --dry-run " + example, &out), 0) << out;
  EXPECT_EQ(out,
            example + ": experiment \"example\", 4 cells, all valid (grid: kernel.temperatures)\n"
            "  cell 0 kernel.temperatures=[0.02]            output=results/example.h5\n"
            "  cell 1 kernel.temperatures=[0.05]            output=results/example.h5\n"
            "  cell 2 kernel.temperatures=[0.2]             output=results/example.h5\n"
            "  cell 3 kernel.temperatures=[0.02, 0.05, 0.2] output=results/example.h5\n");
}
