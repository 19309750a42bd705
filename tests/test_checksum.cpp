// SHA-256 against the FIPS 180-2 / NIST test vectors, and of a file.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "drift/checksum.hpp"
#include "scratch_dir.hpp"

namespace {

TEST(Checksum, KnownVectors) {
  EXPECT_EQ(drift::sha256_hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(drift::sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(drift::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Checksum, MillionA) {
  const std::string a(1000000, 'a');
  EXPECT_EQ(drift::sha256_hex(a.data(), a.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Checksum, FileMatchesBytes) {
  drift::test::ScratchDir dir("checksum");
  const std::string path = dir / "data.bin";
  // 200000 bytes: crosses the 64 KiB read chunks and the 64-byte blocks unevenly.
  std::string bytes(200000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131 + 7) % 251);
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  auto h = drift::sha256_file(path);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(*h, drift::sha256_hex(bytes.data(), bytes.size()));
  EXPECT_EQ(h->size(), 64u);
}

TEST(Checksum, MissingFileNamesPath) {
  auto h = drift::sha256_file("/nonexistent/dir/weights.pt");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(std::string(h.status().message()).find("/nonexistent/dir/weights.pt"), std::string::npos);
}

}  // namespace
