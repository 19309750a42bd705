#include <gtest/gtest.h>

#include "drift/params.hpp"

using drift::ParamSpec;
using drift::ParamValue;

namespace {
std::vector<ParamSpec> specs() {
  return {ParamSpec::FloatList("temperatures", {0.02, 0.05, 0.2}, "kernel temperatures")
              .positive()
              .non_empty(),
          ParamSpec::Int("n_pos", 64, "positives per class").at_least(1),
          ParamSpec::String("device", "cpu", "where to run").one_of({"cpu", "cuda", "auto"}),
          ParamSpec::Float("lr", 1e-3, "learning rate").positive(),
          ParamSpec::Required("path", drift::ParamType::String, "input file")};
}
}  // namespace

TEST(Params, DefaultsFilledAndIntCoercedToFloat) {
  auto p = drift::validate_params(specs(), {{"lr", int64_t{1}}, {"path", std::string("x.h5")}}, "f.toml: [train]");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_DOUBLE_EQ(p->get_float("lr"), 1.0);
  EXPECT_EQ(p->get_int("n_pos"), 64);
  EXPECT_EQ(p->get_float_list("temperatures").size(), 3u);
  EXPECT_EQ(p->get_string("device"), "cpu");
}

TEST(Params, UnknownKeySuggestsClosest) {
  auto p = drift::validate_params(specs(), {{"temperatres", std::vector<double>{0.1}}, {"path", std::string("x")}}, "f.toml: [kernel]");
  ASSERT_FALSE(p.ok());
  std::string m(p.status().message());
  EXPECT_NE(m.find("f.toml: [kernel]"), std::string::npos) << m;
  EXPECT_NE(m.find("'temperatres'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'temperatures'"), std::string::npos) << m;
}

TEST(Params, OutOfRangeNamesKeyValueAndAllowed) {
  auto p = drift::validate_params(specs(), {{"temperatures", std::vector<double>{0.02, -0.5}}, {"path", std::string("x")}}, "w");
  ASSERT_FALSE(p.ok());
  std::string m(p.status().message());
  EXPECT_NE(m.find("'temperatures' = [0.02, -0.5]"), std::string::npos) << m;
  EXPECT_NE(m.find("non-empty list of float > 0"), std::string::npos) << m;

  p = drift::validate_params(specs(), {{"temperatures", std::vector<double>{}}, {"path", std::string("x")}}, "w");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("wrong number of items"), std::string::npos);

  p = drift::validate_params(specs(), {{"n_pos", int64_t{0}}, {"path", std::string("x")}}, "w");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("'n_pos' = 0 is out of range; expected an int >= 1"),
            std::string::npos) << p.status();
}

TEST(Params, WrongTypeAndChoices) {
  auto p = drift::validate_params(specs(), {{"lr", std::string("fast")}, {"path", std::string("x")}}, "w");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("is a string; expected a float > 0"), std::string::npos) << p.status();
  p = drift::validate_params(specs(), {{"device", std::string("cuad")}, {"path", std::string("x")}}, "w");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("did you mean \"cuda\""), std::string::npos) << p.status();
}

TEST(Params, MissingRequired) {
  auto p = drift::validate_params(specs(), {}, "w");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("missing required key 'path'"), std::string::npos) << p.status();
}

TEST(Params, FormatRoundTrip) {
  EXPECT_EQ(drift::format_param_value(ParamValue{std::vector<double>{0.02, 1.0}}), "[0.02, 1.0]");
  EXPECT_EQ(drift::format_param_value(ParamValue{std::string("a\"b")}), "\"a\\\"b\"");
  EXPECT_EQ(drift::format_param_value(ParamValue{true}), "true");
}
