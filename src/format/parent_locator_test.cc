#include "format/parent_locator.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"

namespace vhdx::format {
namespace {

std::vector<uint8_t> ReadFixture(const std::string& name) {
  std::ifstream in(std::string(VHDX_SAMPLES_DIR) + "/structs/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

constexpr uint64_t kItemOffset = 0x220000;

ParentLocator WindowsLike() {
  ParentLocator loc;
  loc.locator_type = VhdxParentLocatorTypeGuid();
  loc.Set("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}");
  loc.Set("relative_path", "..\\..\\path2\\sub3\\parent.vhdx");
  loc.Set("volume_path", "\\\\?\\Volume{26A21BDA-A627-11D7-9931-806E6F6E6963}\\path2\\sub3\\parent.vhdx");
  loc.Set("absolute_win32_path", "\\\\?\\d:\\path2\\sub3\\parent.vhdx");
  loc.Set("parent_linkage2", "{00000000-24c8-49a6-a959-5e4bf1288bfb}");
  return loc;
}

Status DecodeStatus(const std::vector<uint8_t>& raw) {
  Result<ParentLocator> r = ParentLocator::Decode(raw, kItemOffset);
  return r.ok() ? Status::OK() : r.status();
}

void ExpectCorrupt(const std::vector<uint8_t>& raw, const std::string& field) {
  Status s = DecodeStatus(raw);
  ASSERT_FALSE(s.ok()) << "expected failure on " << field;
  EXPECT_EQ(s.code(), ErrorCode::kCorruption);
  EXPECT_NE(s.message().find(field), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("parent locator"), std::string::npos) << s.ToString();
}

TEST(ParentLocatorTest, SampleFixturesMatchOurEncoding) {
  std::vector<uint8_t> header = ReadFixture("parent_locator_header.1");
  std::vector<uint8_t> entry = ReadFixture("parent_locator_entry.1");
  ASSERT_EQ(header.size(), 20u);
  ASSERT_EQ(entry.size(), 12u);
  EXPECT_EQ(Guid::FromBytes(std::span<const uint8_t, 16>(header.data(), 16)), VhdxParentLocatorTypeGuid());
  EXPECT_EQ(LoadLE16(header.data() + 16), 0);
  EXPECT_EQ(LoadLE16(header.data() + 18), 5);
  EXPECT_EQ(LoadLE32(entry.data() + 0), 80u);
  EXPECT_EQ(LoadLE32(entry.data() + 4), 108u);
  EXPECT_EQ(LoadLE16(entry.data() + 8), 28);
  EXPECT_EQ(LoadLE16(entry.data() + 10), 76);

  // A five-key locator starting with parent_linkage, encoded by us, has the
  // same header and first entry as the Windows-made fixture.
  std::vector<uint8_t> raw = WindowsLike().Encode();
  EXPECT_TRUE(std::equal(header.begin(), header.end(), raw.begin()));
  EXPECT_TRUE(std::equal(entry.begin(), entry.end(), raw.begin() + 20));
}

TEST(ParentLocatorTest, RoundTrip) {
  ParentLocator loc = WindowsLike();
  loc.Set("relative_path", "..\\d\xC3\xA9j\xC3\xA0 vu\\\xF0\x9F\x98\x80.vhdx");
  std::vector<uint8_t> raw = loc.Encode();
  Result<ParentLocator> d = ParentLocator::Decode(raw, kItemOffset);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->locator_type, loc.locator_type);
  EXPECT_EQ(d->entries, loc.entries);
  EXPECT_EQ(d->Get("relative_path"), loc.Get("relative_path"));
  EXPECT_EQ(d->Get("missing"), std::nullopt);
}

TEST(ParentLocatorTest, GetSetErase) {
  ParentLocator loc = WindowsLike();
  loc.Set("relative_path", "x.vhdx");
  EXPECT_EQ(loc.entries.size(), 5u);
  EXPECT_EQ(*loc.Get("relative_path"), "x.vhdx");
  loc.Erase("volume_path");
  EXPECT_EQ(loc.entries.size(), 4u);
  EXPECT_FALSE(loc.Get("volume_path"));
  loc.Erase("volume_path");  // absent: no-op
  EXPECT_EQ(loc.entries.size(), 4u);
  loc.Set("new_key", "v");
  EXPECT_EQ(loc.entries.back().first, "new_key");
}

TEST(ParentLocatorTest, AcceptsUppercaseGuidAndStringsAnywhere) {
  ParentLocator loc = WindowsLike();
  loc.Set("parent_linkage", "{83ED0EC3-24C8-49A6-A959-5E4BF1288BFB}");
  std::vector<uint8_t> raw = loc.Encode();
  raw.resize(raw.size() + 100, 0xCC);  // garbage after the strings is fine
  EXPECT_TRUE(DecodeStatus(raw).ok());

  // Minimal: linkage and one path key.
  ParentLocator min;
  min.locator_type = VhdxParentLocatorTypeGuid();
  min.Set("absolute_win32_path", "\\\\?\\c:\\p.vhdx");
  min.Set("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}");
  EXPECT_TRUE(DecodeStatus(min.Encode()).ok());
}

TEST(ParentLocatorTest, UnknownTypeIsNotSupported) {
  ParentLocator loc = WindowsLike();
  loc.locator_type = *Guid::Parse("B04AEFB7-D19E-4A81-B789-25B8E9445914");
  Status s = DecodeStatus(loc.Encode());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kNotSupported);
}

TEST(ParentLocatorTest, RejectsDamage) {
  const std::vector<uint8_t> good = WindowsLike().Encode();
  auto mutate = [&](auto fn, const std::string& field) {
    std::vector<uint8_t> b = good;
    fn(b);
    ExpectCorrupt(b, field);
  };
  // Header: reserved, count.
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 16, 1); }, "Reserved");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 18, 257); }, "KeyValueCount");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 18, 0xFFFF); }, "KeyValueCount");
  mutate([](std::vector<uint8_t>& b) { b.resize(20 + 4 * 12); }, "KeyValueCount");  // table outside item
  // Entry 0 (at 20): KeyOffset, ValueOffset, KeyLength, ValueLength.
  mutate([](std::vector<uint8_t>& b) { StoreLE32(b.data() + 20, 0); }, "entry 0 KeyOffset");
  mutate([](std::vector<uint8_t>& b) { StoreLE32(b.data() + 24, 0); }, "entry 0 ValueOffset");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 28, 0); }, "entry 0 KeyLength");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 28, 27); }, "entry 0 KeyLength");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 30, 0); }, "entry 0 ValueLength");
  mutate([](std::vector<uint8_t>& b) { StoreLE32(b.data() + 20, static_cast<uint32_t>(b.size()) - 2); },
         "entry 0 KeyOffset");
  mutate([](std::vector<uint8_t>& b) { StoreLE32(b.data() + 24, 0xFFFFFFFFu); }, "entry 0 ValueOffset");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 30, 0xFFFE); }, "entry 0 ValueOffset");
  // Strings: unpaired surrogate, NUL.
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 80, 0xDC00); }, "entry 0 Key");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 82, 0); }, "NUL");
  // Duplicate key: point entry 1's key at entry 0's key.
  mutate([](std::vector<uint8_t>& b) {
    StoreLE32(b.data() + 32, 80);
    StoreLE16(b.data() + 40, 28);
  }, "repeats");
  // Linkage not a GUID: overwrite the first value character '{'.
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 108, 'x'); }, "parent_linkage");
  mutate([](std::vector<uint8_t>& b) { StoreLE16(b.data() + 110, 'z'); }, "parent_linkage");
}

TEST(ParentLocatorTest, RejectsMissingKeys) {
  ParentLocator loc = WindowsLike();
  loc.Erase("parent_linkage");
  ExpectCorrupt(loc.Encode(), "parent_linkage");

  loc = WindowsLike();
  loc.Set("parent_linkage", "83ed0ec3-24c8-49a6-a959-5e4bf1288bfb");  // no braces
  ExpectCorrupt(loc.Encode(), "parent_linkage");

  loc = WindowsLike();
  loc.Set("parent_linkage2", "{not a guid}");
  ExpectCorrupt(loc.Encode(), "parent_linkage2");

  loc = WindowsLike();
  loc.Erase("relative_path");
  loc.Erase("volume_path");
  loc.Erase("absolute_win32_path");
  ExpectCorrupt(loc.Encode(), "none of relative_path");

  loc = WindowsLike();
  loc.Erase("parent_linkage2");  // optional
  EXPECT_TRUE(DecodeStatus(loc.Encode()).ok());
}

TEST(ParentLocatorTest, RejectsTruncatedAndAllZero) {
  std::vector<uint8_t> good = WindowsLike().Encode();
  for (size_t n : {0u, 19u}) {
    ExpectCorrupt(std::vector<uint8_t>(good.begin(), good.begin() + n), "size");
  }
  // Cut inside the strings.
  ExpectCorrupt(std::vector<uint8_t>(good.begin(), good.end() - 2), "entry 4 ValueOffset");
  std::vector<uint8_t> zeros(200, 0);
  EXPECT_FALSE(DecodeStatus(zeros).ok());
  // Right type, zero everything else: no entries, so parent_linkage missing.
  VhdxParentLocatorTypeGuid().ToBytes(std::span<uint8_t, 16>(zeros.data(), 16));
  ExpectCorrupt(zeros, "parent_linkage");
}

TEST(ParentLocatorTest, RandomMutationsNeverCrash) {
  const std::vector<uint8_t> good = WindowsLike().Encode();
  std::mt19937 rng(777);
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = (rng() % 2 == 0) ? rng() % 80 : rng() % b.size();
      b[pos] = static_cast<uint8_t>(rng());
    }
    if (rng() % 8 == 0) b.resize(rng() % b.size());
    Result<ParentLocator> r = ParentLocator::Decode(b, kItemOffset);
    if (r.ok()) {
      EXPECT_TRUE(r->Get("parent_linkage").has_value());
    }
  }
}

// ---- UTF-16 ----------------------------------------------------------------

TEST(Utf16Test, RoundTripsAllPlanes) {
  const std::string text = "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBF";  // A é € 😀 U+FFFF
  std::vector<uint8_t> u16 = Utf8ToUtf16Le(text);
  const std::vector<uint8_t> want = {0x41, 0x00, 0xE9, 0x00, 0xAC, 0x20, 0x3D, 0xD8, 0x00, 0xDE, 0xFF, 0xFF};
  EXPECT_EQ(u16, want);
  EXPECT_EQ(*Utf16LeToUtf8(u16), text);
  EXPECT_EQ(*Utf16LeToUtf8({}), "");
}

TEST(Utf16Test, RejectsUnpairedSurrogatesAndOddLength) {
  const std::vector<std::vector<uint8_t>> bad = {
      {0x00, 0xD8},              // lone high at end
      {0x00, 0xDC, 0x41, 0x00},  // lone low
      {0x00, 0xD8, 0x41, 0x00},  // high followed by non-low
      {0x41, 0x00, 0x42},        // odd length
  };
  for (const auto& b : bad) {
    Result<std::string> r = Utf16LeToUtf8(b);
    EXPECT_FALSE(r.ok());
    EXPECT_NE(Utf16LeToUtf8Lossy(b).find("\xEF\xBF\xBD"), std::string::npos);
  }
}

TEST(Utf16Test, InvalidUtf8BecomesReplacement) {
  EXPECT_EQ(Utf8ToUtf16Le("\xFF"), (std::vector<uint8_t>{0xFD, 0xFF}));
  EXPECT_EQ(Utf8ToUtf16Le("\xC0\xAF"), (std::vector<uint8_t>{0xFD, 0xFF}));  // overlong
  EXPECT_EQ(Utf8ToUtf16Le("\xED\xA0\x80"), (std::vector<uint8_t>{0xFD, 0xFF}));          // surrogate
  EXPECT_EQ(Utf8ToUtf16Le("\xE2\x82"), (std::vector<uint8_t>{0xFD, 0xFF, 0xFD, 0xFF}));   // truncated
}

}  // namespace
}  // namespace vhdx::format
