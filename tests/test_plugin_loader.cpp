// Plugin loading: good plugins register, bad ones are refused with an error
// naming the file (and both versions where they differ), never a crash.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "drift/version.hpp"
#include "runtime/registry.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using drift::ComponentKind;
using drift::runtime::Registry;

namespace {
std::string plugin(const std::string& name) {
  return std::string(DRIFT_TEST_PLUGIN_DIR) + "/" + name + ".so";
}
std::string msg(const absl::Status& s) { return std::string(s.message()); }
struct UnitNormalizer : drift::Normalizer {
  drift::FeatureScaling feature(const torch::Tensor& scale, int64_t) const override {
    return {torch::ones_like(scale), torch::ones_like(scale)};
  }
  torch::Tensor drift_factor(const torch::Tensor& m) const override { return torch::ones_like(m); }
};
}  // namespace

TEST(PluginLoader, LoadsGoodPluginAndRecordsItsFile) {
  Registry reg;
  ASSERT_TRUE(reg.load_file(plugin("good_toy_plugin")).ok());
  const auto* c = reg.find(ComponentKind::Kernel, "toy_zero");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->source, fs::canonical(plugin("good_toy_plugin")).string());
  ASSERT_EQ(c->info.params.size(), 1u);
  EXPECT_EQ(c->info.params[0].name, "scale");
  // Loading the same file again is a no-op, not a duplicate.
  EXPECT_TRUE(reg.load_file(plugin("good_toy_plugin")).ok());
  EXPECT_EQ(reg.names(ComponentKind::Kernel).size(), 1u);
}

TEST(PluginLoader, CreatedComponentWorks) {
  Registry reg;
  ASSERT_TRUE(reg.load_file(plugin("good_toy_plugin")).ok());
  auto params = reg.validate(ComponentKind::Kernel, "toy_zero", {{"scale", 2.0}}, "test");
  ASSERT_TRUE(params.ok()) << params.status();
  auto k = reg.make_kernel("toy_zero", *params);
  ASSERT_TRUE(k.ok()) << k.status();
  drift::DriftInputs in;
  in.gen = torch::ones({1, 3, 2});
  in.pos = torch::zeros({1, 4, 2});
  in.temperatures = {0.1, 0.2};
  auto out = (*k)->compute(drift::canonicalize_drift_inputs(in), UnitNormalizer{});
  EXPECT_TRUE(torch::allclose(out.goal, torch::full({1, 3, 2}, 0.5)));
  EXPECT_EQ(out.m_tau.numel(), 2);
}

TEST(PluginLoader, RefusesOtherAbiNamingBothVersions) {
  Registry reg;
  auto st = reg.load_file(plugin("wrong_abi_plugin"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find("wrong_abi_plugin.so"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find("ABI version 999"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find("ABI version " + std::to_string(DRIFT_SDK_ABI_VERSION)), std::string::npos) << msg(st);
  EXPECT_TRUE(reg.all().empty());
}

TEST(PluginLoader, RefusesOtherTorchNamingBothVersions) {
  Registry reg;
  auto st = reg.load_file(plugin("wrong_torch_plugin"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find("wrong_torch_plugin.so"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find("LibTorch 1.13.1"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find(std::string("LibTorch ") + DRIFT_TORCH_VERSION), std::string::npos) << msg(st);
  EXPECT_TRUE(reg.all().empty());
}

TEST(PluginLoader, RefusesLibraryWithoutEntryPoint) {
  Registry reg;
  auto st = reg.load_file(plugin("no_entry_plugin"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find("no_entry_plugin.so"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find("no entry point 'drift_plugin_entry'"), std::string::npos) << msg(st);
}

TEST(PluginLoader, RefusesFileThatIsNotASharedLibrary) {
  Registry reg;
  auto st = reg.load_file(plugin("not_a_library"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find("not_a_library.so"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find("not a shared library"), std::string::npos) << msg(st);

  // An ELF file that is not loadable (truncated) also gets the file named.
  std::string dir = drift::test::temp_dir("loader");
  std::string broken = dir + "/broken.so";
  {
    std::ifstream src(plugin("good_toy_plugin"), std::ios::binary);
    std::ofstream dst(broken, std::ios::binary);
    char buf[64];
    src.read(buf, sizeof buf);
    dst.write(buf, src.gcount());
  }
  st = reg.load_file(broken);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find(fs::canonical(broken).string()), std::string::npos) << msg(st);

  st = reg.load_file(dir + "/does_not_exist.so");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find("does_not_exist.so: no such file"), std::string::npos) << msg(st);
}

TEST(PluginLoader, DuplicateComponentNamesBothFiles) {
  std::string dir = drift::test::temp_dir("dup");
  std::string copy = dir + "/copy_of_toy.so";
  fs::copy_file(plugin("good_toy_plugin"), copy);
  Registry reg;
  ASSERT_TRUE(reg.load_file(plugin("good_toy_plugin")).ok());
  auto st = reg.load_file(copy);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(msg(st).find("kernel 'toy_zero' is registered twice"), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find(fs::canonical(plugin("good_toy_plugin")).string()), std::string::npos) << msg(st);
  EXPECT_NE(msg(st).find(fs::canonical(copy).string()), std::string::npos) << msg(st);
}

TEST(PluginLoader, DirectoryAndEnvironmentDiscovery) {
  std::string dir = drift::test::temp_dir("env");
  fs::copy_file(plugin("good_toy_plugin"), dir + "/toy.so");
  std::ofstream(dir + "/README.txt") << "not a plugin, ignored (no .so suffix)\n";
  {
    Registry reg;
    ASSERT_TRUE(reg.load_path(dir).ok());
    EXPECT_NE(reg.find(ComponentKind::Kernel, "toy_zero"), nullptr);
  }
  {
    setenv("DRIFT_PLUGIN_PATH", (dir + "/nonexistent:" + dir).c_str(), 1);
    Registry reg;
    auto st = reg.load_default_paths();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(msg(st).find("DRIFT_PLUGIN_PATH entry " + dir + "/nonexistent"), std::string::npos) << msg(st);
  }
  {
    setenv("DRIFT_PLUGIN_PATH", (":" + dir + "/toy.so:").c_str(), 1);
    Registry reg;
    auto st = reg.load_default_paths();
    ASSERT_TRUE(st.ok()) << msg(st);
    EXPECT_NE(reg.find(ComponentKind::Kernel, "toy_zero"), nullptr);
  }
  unsetenv("DRIFT_PLUGIN_PATH");
}

TEST(PluginLoader, UnknownComponentListsAvailable) {
  Registry reg;
  ASSERT_TRUE(reg.load_file(plugin("good_toy_plugin")).ok());
  auto c = reg.get(ComponentKind::Kernel, "toy_zreo");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(msg(c.status()).find("unknown kernel 'toy_zreo'"), std::string::npos) << c.status();
  EXPECT_NE(msg(c.status()).find("did you mean 'toy_zero'"), std::string::npos) << c.status();
  EXPECT_NE(msg(c.status()).find("available: toy_zero"), std::string::npos) << c.status();
  auto g = reg.get(ComponentKind::Generator, "mlp");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(msg(g.status()).find("available: none"), std::string::npos) << g.status();
}

TEST(PluginLoader, ParametersValidatedAgainstDeclaration) {
  Registry reg;
  ASSERT_TRUE(reg.load_file(plugin("good_toy_plugin")).ok());
  auto p = reg.validate(ComponentKind::Kernel, "toy_zero", {{"scale", -1.0}}, "exp.toml: [kernel]");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(msg(p.status()).find("exp.toml: [kernel] (toy_zero): 'scale' = -1.0 is out of range; expected a float > 0"),
            std::string::npos) << p.status();
}
