#include <gtest/gtest.h>

#include "runtime/threads.hpp"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  drift::runtime::init_threads();
  return RUN_ALL_TESTS();
}
