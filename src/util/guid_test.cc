#include "vhdx/guid.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace vhdx {
namespace {

constexpr uint8_t kExampleBytes[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                                       0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08};

TEST(Guid, MicrosoftByteOrder) {
  Result<Guid> g = Guid::Parse("2DC27766-F623-4200-9D64-115E9BFD4A08");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(0, std::memcmp(g->bytes.data(), kExampleBytes, 16));
  EXPECT_EQ("2DC27766-F623-4200-9D64-115E9BFD4A08", g->ToString());
  EXPECT_EQ("{2dc27766-f623-4200-9d64-115e9bfd4a08}", g->ToString(true, true));
  EXPECT_EQ("{2DC27766-F623-4200-9D64-115E9BFD4A08}", g->ToString(true, false));
  EXPECT_EQ("2dc27766-f623-4200-9d64-115e9bfd4a08", g->ToString(false, true));
}

TEST(Guid, BytesRoundTrip) {
  Guid g = Guid::FromBytes(std::span<const uint8_t, 16>(kExampleBytes, 16));
  EXPECT_EQ("2DC27766-F623-4200-9D64-115E9BFD4A08", g.ToString());
  uint8_t out[16] = {};
  g.ToBytes(out);
  EXPECT_EQ(0, std::memcmp(out, kExampleBytes, 16));
}

TEST(Guid, ParseVariants) {
  const Guid expected = Guid::FromBytes(std::span<const uint8_t, 16>(kExampleBytes, 16));
  for (const char* text : {"2DC27766-F623-4200-9D64-115E9BFD4A08", "2dc27766-f623-4200-9d64-115e9bfd4a08",
                           "{2DC27766-F623-4200-9D64-115E9BFD4A08}", "{2dc27766-F623-4200-9d64-115E9bfd4a08}"}) {
    Result<Guid> g = Guid::Parse(text);
    ASSERT_TRUE(g.ok()) << text << ": " << g.status().ToString();
    EXPECT_EQ(expected, *g) << text;
  }
}

TEST(Guid, ParseRejectsBadInput) {
  for (const char* text : {
           "",
           "{}",
           "2DC27766-F623-4200-9D64-115E9BFD4A0",    // short
           "2DC27766-F623-4200-9D64-115E9BFD4A088",  // long
           "2DC27766F623-4200-9D64-115E9BFD4A08a",   // hyphen missing
           "2DC27766-F6234-200-9D64-115E9BFD4A08",   // hyphen misplaced
           "2DC27766-F623-4200-9D64_115E9BFD4A08",   // wrong separator
           "2DC2776G-F623-4200-9D64-115E9BFD4A08",   // non-hex
           "{2DC27766-F623-4200-9D64-115E9BFD4A08",  // unbalanced
           "2DC27766-F623-4200-9D64-115E9BFD4A08}",  // unbalanced
           "(2DC27766-F623-4200-9D64-115E9BFD4A08)",  // wrong brackets
           " 2DC27766-F623-4200-9D64-115E9BFD4A08",  // whitespace
           "+DC27766-F623-4200-9D64-115E9BFD4A08",   // sign
       }) {
    Result<Guid> g = Guid::Parse(text);
    EXPECT_FALSE(g.ok()) << "accepted '" << text << "'";
    if (!g.ok()) {
      EXPECT_EQ(ErrorCode::kInvalidArgument, g.status().code());
    }
  }
}

TEST(Guid, IsZero) {
  Guid g;
  EXPECT_TRUE(g.IsZero());
  EXPECT_EQ("00000000-0000-0000-0000-000000000000", g.ToString());
  g.bytes[15] = 1;
  EXPECT_FALSE(g.IsZero());
}

TEST(Guid, RandomIsDistinctAndVersion4) {
  std::set<Guid> seen;
  for (int i = 0; i < 1000; ++i) {
    Guid g = Guid::Random();
    EXPECT_FALSE(g.IsZero());
    EXPECT_TRUE(seen.insert(g).second) << "duplicate " << g.ToString();
    // Text form: xxxxxxxx-xxxx-4xxx-[89AB]xxx-xxxxxxxxxxxx
    const std::string text = g.ToString();
    EXPECT_EQ('4', text[14]) << text;
    EXPECT_NE(std::string::npos, std::string("89AB").find(text[19])) << text;
    // In the stored bytes: high nibble of bytes[7], top bits of bytes[8].
    EXPECT_EQ(0x40, g.bytes[7] & 0xF0);
    EXPECT_EQ(0x80, g.bytes[8] & 0xC0);
    Result<Guid> back = Guid::Parse(text);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(g, *back);
  }
}

}  // namespace
}  // namespace vhdx
