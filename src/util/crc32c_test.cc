#include "util/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace vhdx::crc32c {
namespace {

uint32_t Crc(const std::vector<uint8_t>& v) { return Value(v.data(), v.size()); }

// RFC 3720 appendix B.4 known answers.
TEST(Crc32c, Rfc3720Vectors) {
  std::vector<uint8_t> buf(32, 0x00);
  EXPECT_EQ(0x8A9136AAu, Crc(buf));
  std::fill(buf.begin(), buf.end(), 0xFF);
  EXPECT_EQ(0x62A8AB43u, Crc(buf));
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(0x46DD794Eu, Crc(buf));
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(0x113FDB5Cu, Crc(buf));
}

TEST(Crc32c, PortableRfc3720Vectors) {
  std::vector<uint8_t> buf(32, 0x00);
  EXPECT_EQ(0x8A9136AAu, ExtendPortable(0, buf.data(), buf.size()));
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(0x46DD794Eu, ExtendPortable(0, buf.data(), buf.size()));
}

TEST(Crc32c, CheckString) {
  const char* s = "123456789";
  EXPECT_EQ(0xE3069283u, Value(reinterpret_cast<const uint8_t*>(s), 9));
  EXPECT_EQ(0xE3069283u, ExtendPortable(0, reinterpret_cast<const uint8_t*>(s), 9));
}

TEST(Crc32c, ZeroPage) {
  std::vector<uint8_t> buf(4096, 0);
  EXPECT_EQ(0x98F94189u, Crc(buf));
  EXPECT_EQ(0x98F94189u, ExtendPortable(0, buf.data(), buf.size()));
}

TEST(Crc32c, Empty) {
  EXPECT_EQ(0u, Value(nullptr, 0));
  EXPECT_EQ(0x12345678u, Extend(0x12345678u, nullptr, 0));
}

TEST(Crc32c, ReportsAcceleration) {
  // Informational: the hardware path is exercised below only when present.
  RecordProperty("hardware", HardwareAccelerated() ? "yes" : "no");
  SUCCEED();
}

// Every length 0..1024 at every start alignment 0..7, against the portable code.
TEST(Crc32c, HardwareMatchesPortable) {
  std::mt19937 rng(12345);
  std::vector<uint8_t> buf(1024 + 16);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t start = 0; start < 8; ++start) {
    for (size_t n = 0; n <= 1024; ++n) {
      const uint8_t* p = buf.data() + start;
      ASSERT_EQ(ExtendPortable(0, p, n), Extend(0, p, n)) << "start " << start << " length " << n;
      ASSERT_EQ(ExtendPortable(0xDEADBEEF, p, n), Extend(0xDEADBEEF, p, n)) << "start " << start << " length " << n;
    }
  }
}

// Lengths around the three-lane block sizes (3 x 256 and 3 x 8192 bytes).
TEST(Crc32c, HardwareMatchesPortableLarge) {
  std::mt19937 rng(777);
  std::vector<uint8_t> buf(200000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const size_t lengths[] = {767, 768, 769, 1536, 2000, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1,
                            3 * 8192 + 768 + 13, 2 * 3 * 8192 + 5, 65536, 1 << 17, 199990};
  for (size_t start : {0, 1, 3, 7}) {
    for (size_t n : lengths) {
      const uint8_t* p = buf.data() + start;
      ASSERT_EQ(ExtendPortable(0, p, n), Extend(0, p, n)) << "start " << start << " length " << n;
    }
  }
}

TEST(Crc32c, ExtendChains) {
  std::mt19937 rng(99);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const uint32_t whole = Value(buf.data(), buf.size());
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{4096}, size_t{30001}, buf.size()}) {
    const uint32_t first = Value(buf.data(), split);
    EXPECT_EQ(whole, Extend(first, buf.data() + split, buf.size() - split)) << split;
    EXPECT_EQ(whole, ExtendPortable(ExtendPortable(0, buf.data(), split), buf.data() + split,
                                    buf.size() - split))
        << split;
  }
  const std::string hello = "hello ", world = "world";
  const std::string both = hello + world;
  EXPECT_EQ(Value(reinterpret_cast<const uint8_t*>(both.data()), both.size()),
            Extend(Value(reinterpret_cast<const uint8_t*>(hello.data()), hello.size()),
                   reinterpret_cast<const uint8_t*>(world.data()), world.size()));
}

TEST(Crc32c, ValueWithZeroedField) {
  std::mt19937 rng(5);
  std::vector<uint8_t> buf(4096);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t off : {size_t{0}, size_t{4}, size_t{100}, buf.size() - 4}) {
    std::vector<uint8_t> zeroed = buf;
    std::memset(zeroed.data() + off, 0, 4);
    EXPECT_EQ(Crc(zeroed), ValueWithZeroedField(buf.data(), buf.size(), off)) << off;
    // The stored checksum value does not matter.
    buf[off] ^= 0xFF;
    EXPECT_EQ(Crc(zeroed), ValueWithZeroedField(buf.data(), buf.size(), off)) << off;
  }
}

// A structure whose bytes are all zero must not carry a valid checksum of
// zero: an all-zero sector must never validate.
TEST(Crc32c, AllZeroStructureDoesNotValidate) {
  std::vector<uint8_t> zeros(4096, 0);
  EXPECT_NE(0u, ValueWithZeroedField(zeros.data(), zeros.size(), 4));
  std::vector<uint8_t> zeros64k(65536, 0);
  EXPECT_NE(0u, ValueWithZeroedField(zeros64k.data(), zeros64k.size(), 4));
}

}  // namespace
}  // namespace vhdx::crc32c
