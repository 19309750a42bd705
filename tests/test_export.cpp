// drift-export's name check (export/export_generator.hpp): a parameter or buffer
// path with a Python keyword as one of its parts is what torch.jit.load in
// Python cannot read; everything else passes. (tests/cli/export.sh and
// tests/cli/out_of_tree_examples.sh run the whole export.)
#include <gtest/gtest.h>

#include "export/export_generator.hpp"

namespace {
using drift::exporter::python_unloadable_part;

TEST(ExportNames, PythonKeywordsAreFoundInAnyPart) {
  EXPECT_EQ(python_unloadable_part("in.weight"), "in");
  EXPECT_EQ(python_unloadable_part("blocks.0.lambda.bias"), "lambda");
  EXPECT_EQ(python_unloadable_part("head.None"), "None");
  EXPECT_EQ(python_unloadable_part("from"), "from");
}

TEST(ExportNames, OrdinaryNamesPass) {
  for (const char* ok : {"stem.weight", "blocks.0.norm.bias", "inner.weight", "In.weight", "is_x",
                         "freqs", "head.weight", "layers.10.w"})
    EXPECT_EQ(python_unloadable_part(ok), "") << ok;
}

}  // namespace
