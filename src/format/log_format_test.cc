#include "format/log_format.h"

#include <gtest/gtest.h>

#include <array>
#include <random>
#include <cstring>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace vhdx::format {
namespace {

Guid G(const char* text) { return *Guid::Parse(text); }

const Guid kLogGuid = G("C82755BC-427F-1245-B72C-DA70AAABE031");
constexpr uint64_t kLogOffset = 1 * kMiB;
constexpr uint64_t kLogLength = 1 * kMiB;
const LogTargetBounds kBounds{kLogOffset, kLogLength, kMaxFileSize};

std::array<uint8_t, 4096> Pattern(uint8_t seed) {
  std::array<uint8_t, 4096> page;
  for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<uint8_t>(seed * 31 + i * 7 + (i >> 8));
  return page;
}

void FixCrc(std::vector<uint8_t>& b) {
  StoreLE32(b.data() + 4, crc32c::ValueWithZeroedField(b.data(), b.size(), 4));
}

struct Built {
  std::vector<std::array<uint8_t, 4096>> pages;
  LogEntryToWrite entry;
};

// Two zero ranges and three pages; sequence number with both halves non-zero.
Built Sample(uint64_t seq = 0x1122334455667788ull) {
  Built b;
  b.pages = {Pattern(1), Pattern(2), Pattern(3)};
  b.entry.sequence_number = seq;
  b.entry.tail = 0x3000;
  b.entry.log_guid = kLogGuid;
  b.entry.flushed_file_offset = 30 * kMiB;
  b.entry.last_file_offset = 31 * kMiB;
  b.entry.zeros = {{4 * kMiB, 1 * kMiB}, {192 * kKiB, 64 * kKiB}};
  b.entry.pages = {{2 * kMiB, b.pages[0].data()}, {3 * kMiB + 4096, b.pages[1].data()},
                   {10 * kGiB, b.pages[2].data()}};
  return b;
}

Status DecodeStatus(const std::vector<uint8_t>& raw, const LogTargetBounds& bounds = kBounds,
                    const Guid& guid = kLogGuid) {
  Result<LogEntry> r = DecodeLogEntry(raw, guid, bounds);
  return r.ok() ? Status::OK() : r.status();
}

void ExpectCorrupt(const std::vector<uint8_t>& raw, const std::string& field,
                   const LogTargetBounds& bounds = kBounds) {
  Status s = DecodeStatus(raw, bounds);
  ASSERT_FALSE(s.ok()) << "expected failure on " << field;
  EXPECT_EQ(s.code(), ErrorCode::kCorruption);
  EXPECT_NE(s.message().find(field), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("log entry"), std::string::npos) << s.ToString();
}

TEST(LogEntryTest, RoundTrip) {
  Built b = Sample();
  std::vector<uint8_t> raw = EncodeLogEntry(b.entry);
  EXPECT_EQ(raw.size(), 4u * 4096);  // 1 descriptor sector + 3 data sectors
  EXPECT_EQ(raw.size(), LogEntryLength(2, 3));
  EXPECT_EQ(std::memcmp(raw.data(), "loge", 4), 0);
  EXPECT_EQ(std::memcmp(raw.data() + 64, "zero", 4), 0);
  EXPECT_EQ(std::memcmp(raw.data() + 128, "desc", 4), 0);
  EXPECT_EQ(std::memcmp(raw.data() + 4096, "data", 4), 0);
  EXPECT_EQ(LoadLE32(raw.data() + 4096 + 4), 0x11223344u);     // SequenceHigh
  EXPECT_EQ(LoadLE32(raw.data() + 4096 + 4092), 0x55667788u);  // SequenceLow

  Result<LogEntry> e = DecodeLogEntry(raw, kLogGuid, kBounds);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const LogEntryHeader& h = e->header;
  EXPECT_EQ(h.entry_length, raw.size());
  EXPECT_EQ(h.tail, 0x3000u);
  EXPECT_EQ(h.sequence_number, 0x1122334455667788ull);
  EXPECT_EQ(h.descriptor_count, 5u);
  EXPECT_EQ(h.log_guid, kLogGuid);
  EXPECT_EQ(h.flushed_file_offset, 30 * kMiB);
  EXPECT_EQ(h.last_file_offset, 31 * kMiB);
  EXPECT_EQ(h.checksum, LoadLE32(raw.data() + 4));

  ASSERT_EQ(e->zeros.size(), 2u);
  EXPECT_EQ(e->zeros[0].file_offset, 4 * kMiB);
  EXPECT_EQ(e->zeros[0].length, 1 * kMiB);
  EXPECT_EQ(e->zeros[1].file_offset, 192 * kKiB);
  ASSERT_EQ(e->pages.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(e->pages[i].file_offset, b.entry.pages[i].first);
    EXPECT_EQ(e->pages[i].data, b.pages[i]) << i;  // leading/trailing bytes restored
  }
  ASSERT_EQ(e->order.size(), 5u);
  EXPECT_TRUE(e->order[0].is_zero);
  EXPECT_EQ(e->order[1].index, 1u);
  EXPECT_FALSE(e->order[2].is_zero);
  EXPECT_EQ(e->order[4].index, 2u);
}

TEST(LogEntryTest, EmptyEntry) {
  LogEntryToWrite w;
  w.sequence_number = 4371089312299158167ull;
  w.log_guid = kLogGuid;
  w.flushed_file_offset = 4 * kMiB;
  w.last_file_offset = 4 * kMiB;
  std::vector<uint8_t> raw = EncodeLogEntry(w);
  EXPECT_EQ(raw.size(), 4096u);
  EXPECT_EQ(LogEntryLength(0, 0), 4096u);
  Result<LogEntry> e = DecodeLogEntry(raw, kLogGuid, kBounds);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->header.descriptor_count, 0u);
  EXPECT_TRUE(e->order.empty());
}

TEST(LogEntryTest, ManyDescriptorsSpanSeveralSectors) {
  // 126 descriptors fit in sector 0; 127..254 need a second one.
  EXPECT_EQ(LogEntryLength(126, 0), 4096u);
  EXPECT_EQ(LogEntryLength(127, 0), 8192u);
  EXPECT_EQ(LogEntryLength(0, 254), 4096u * (2 + 254));
  EXPECT_EQ(LogEntryLength(0, 255), 4096u * (3 + 255));

  std::vector<std::array<uint8_t, 4096>> pages;
  LogEntryToWrite w;
  w.sequence_number = 7;
  w.log_guid = kLogGuid;
  for (int i = 0; i < 200; ++i) pages.push_back(Pattern(static_cast<uint8_t>(i)));
  for (int i = 0; i < 200; ++i) w.pages.push_back({8 * kMiB + i * 4096ull, pages[i].data()});
  for (int i = 0; i < 20; ++i) w.zeros.push_back({20 * kMiB + i * kMiB, kMiB});
  std::vector<uint8_t> raw = EncodeLogEntry(w);
  EXPECT_EQ(raw.size(), 4096u * (2 + 200));
  Result<LogEntry> e = DecodeLogEntry(raw, kLogGuid, LogTargetBounds{kLogOffset, 4 * kMiB, kMaxFileSize});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ASSERT_EQ(e->pages.size(), 200u);
  for (size_t i = 0; i < 200; ++i) ASSERT_EQ(e->pages[i].data, pages[i]) << i;
  EXPECT_EQ(e->zeros.size(), 20u);
}

TEST(LogEntryTest, EveryByteRegionIsProtected) {
  std::vector<uint8_t> good = EncodeLogEntry(Sample().entry);
  ASSERT_TRUE(DecodeStatus(good).ok());
  std::vector<size_t> positions;
  for (size_t i = 0; i < 64 + 5 * 32; ++i) positions.push_back(i);  // header, CRC, descriptors
  for (size_t i = 64 + 5 * 32; i < 4096; i += 97) positions.push_back(i);  // unused descriptor space
  for (size_t s = 1; s < 4; ++s) {
    for (size_t i = 0; i < 8; ++i) positions.push_back(s * 4096 + i);          // signature, SequenceHigh
    for (size_t i = 4092; i < 4096; ++i) positions.push_back(s * 4096 + i);    // SequenceLow
    for (size_t i = 8; i < 4092; i += 61) positions.push_back(s * 4096 + i);   // payload
  }
  for (size_t pos : positions) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      std::vector<uint8_t> bad = good;
      bad[pos] ^= mask;
      Status s = DecodeStatus(bad);
      ASSERT_FALSE(s.ok()) << "byte " << pos;
      EXPECT_EQ(s.code(), ErrorCode::kCorruption);
    }
  }
}

TEST(LogEntryTest, ChecksumIsReported) {
  std::vector<uint8_t> raw = EncodeLogEntry(Sample().entry);
  raw[2 * 4096 + 100] ^= 0xFF;
  ExpectCorrupt(raw, "Checksum");
  raw = EncodeLogEntry(Sample().entry);
  raw[4] ^= 1;
  ExpectCorrupt(raw, "Checksum");
}

TEST(LogEntryTest, RejectsHeaderFields) {
  const std::vector<uint8_t> good = EncodeLogEntry(Sample().entry);
  auto mutate = [&](auto fn, const std::string& field) {
    std::vector<uint8_t> b = good;
    fn(b.data());
    FixCrc(b);
    ExpectCorrupt(b, field);
  };
  mutate([](uint8_t* p) { p[0] = 'L'; }, "Signature");
  mutate([](uint8_t* p) { StoreLE32(p + 28, 1); }, "Reserved");
  mutate([](uint8_t* p) { StoreLE64(p + 16, 0); }, "SequenceNumber");
  mutate([](uint8_t* p) { StoreLE32(p + 8, 0); }, "EntryLength");
  mutate([](uint8_t* p) { StoreLE32(p + 8, 4 * 4096 + 512); }, "EntryLength");
  mutate([](uint8_t* p) { StoreLE32(p + 8, 1 << 20); }, "EntryLength");  // = log length
  mutate([](uint8_t* p) { StoreLE32(p + 8, 8 * 4096); }, "EntryLength");  // != supplied bytes
  mutate([](uint8_t* p) { StoreLE32(p + 12, 0x3001); }, "Tail");
  mutate([](uint8_t* p) { StoreLE32(p + 12, 1 << 20); }, "Tail");
  mutate([](uint8_t* p) { StoreLE32(p + 24, 0xFFFFFFFFu); }, "DescriptorCount");
  mutate([](uint8_t* p) { StoreLE32(p + 24, (4 * 4096 - 64) / 32 + 1); }, "DescriptorCount");
  mutate([](uint8_t* p) { StoreLE64(p + 48, kMaxFileSize + kMiB); }, "FlushedFileOffset");
  mutate([](uint8_t* p) { StoreLE64(p + 56, ~uint64_t{0}); }, "LastFileOffset");
  mutate([](uint8_t* p) { p[40] ^= 1; }, "LogGuid");
}

TEST(LogEntryTest, WrongLogGuidIsRejected) {
  std::vector<uint8_t> raw = EncodeLogEntry(Sample().entry);
  Status s = DecodeStatus(raw, kBounds, G("9D7D148B-93B0-40D1-AD8F-BB82255541D8"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("LogGuid"), std::string::npos);
  EXPECT_FALSE(DecodeStatus(raw, kBounds, Guid()).ok());
}

TEST(LogEntryTest, FileOffsetsToleratedAsWrittenInPractice) {
  Built b = Sample();
  b.entry.flushed_file_offset = 0;  // Windows 8 wrote this
  EXPECT_TRUE(DecodeStatus(EncodeLogEntry(b.entry)).ok());
  b.entry.flushed_file_offset = 0x10400200;  // file tail not 1 MiB aligned
  b.entry.last_file_offset = 0x10400200;
  EXPECT_TRUE(DecodeStatus(EncodeLogEntry(b.entry)).ok());
  b.entry.last_file_offset = kMaxFileSize;
  EXPECT_TRUE(DecodeStatus(EncodeLogEntry(b.entry)).ok());
  // LastFileOffset beyond the caller's bound.
  LogTargetBounds tight{kLogOffset, kLogLength, 16 * kGiB};
  b.entry.last_file_offset = 17 * kGiB;
  ExpectCorrupt(EncodeLogEntry(b.entry), "LastFileOffset", tight);
}

TEST(LogEntryTest, RejectsUnsafeTargets) {
  auto with_page = [](uint64_t target) {
    Built b = Sample();
    b.entry.pages[1].first = target;
    return EncodeLogEntry(b.entry);
  };
  auto with_zero = [](uint64_t target, uint64_t length) {
    Built b = Sample();
    b.entry.zeros[0] = {target, length};
    return EncodeLogEntry(b.entry);
  };
  // Below 192 KiB: the identifier and the headers are never logged.
  ExpectCorrupt(with_page(0), "192 KiB");
  ExpectCorrupt(with_page(64 * kKiB), "192 KiB");
  ExpectCorrupt(with_page(188 * kKiB), "192 KiB");
  ExpectCorrupt(with_zero(128 * kKiB, 64 * kKiB), "192 KiB");
  EXPECT_TRUE(DecodeStatus(with_page(192 * kKiB)).ok());
  // Inside the log, or a zero range reaching into it.
  ExpectCorrupt(with_page(kLogOffset), "overlaps the log");
  ExpectCorrupt(with_page(kLogOffset + kLogLength - 4096), "overlaps the log");
  ExpectCorrupt(with_zero(kLogOffset - 4096, 8192), "overlaps the log");
  ExpectCorrupt(with_zero(0x40000, 2 * kMiB), "overlaps the log");
  EXPECT_TRUE(DecodeStatus(with_page(kLogOffset + kLogLength)).ok());
  EXPECT_TRUE(DecodeStatus(with_zero(kLogOffset - 4096, 4096)).ok());
  // Beyond the maximum file size.
  ExpectCorrupt(with_page(kMaxFileSize), "beyond the bound");
  EXPECT_TRUE(DecodeStatus(with_page(kMaxFileSize - 4096)).ok());
  ExpectCorrupt(with_zero(4 * kMiB, kMaxFileSize), "beyond the bound");
  ExpectCorrupt(with_zero(0xFFFFFFFFFFFFF000ull, 0x2000), "beyond the bound");  // overflow
  ExpectCorrupt(with_zero(4 * kMiB, 0xFFFFFFFFFFFFF000ull), "beyond the bound");
  LogTargetBounds tight{kLogOffset, kLogLength, 16 * kGiB};
  ExpectCorrupt(with_zero(16 * kGiB - kMiB, 2 * kMiB), "beyond the bound", tight);
  EXPECT_TRUE(DecodeStatus(with_zero(16 * kGiB - kMiB, kMiB), tight).ok());
  // Alignment.
  ExpectCorrupt(with_page(2 * kMiB + 512), "multiple of 4 KiB");
  ExpectCorrupt(with_zero(4 * kMiB + 8, 4096), "multiple of 4 KiB");
  ExpectCorrupt(with_zero(4 * kMiB, 4097), "ZeroLength");
}

TEST(LogEntryTest, RejectsDescriptorDamage) {
  const std::vector<uint8_t> good = EncodeLogEntry(Sample().entry);
  auto mutate = [&](auto fn, const std::string& field) {
    std::vector<uint8_t> b = good;
    fn(b.data());
    FixCrc(b);
    ExpectCorrupt(b, field);
  };
  // Descriptor 0 (zero) at 64, descriptor 2 (first data) at 128.
  mutate([](uint8_t* p) { std::memcpy(p + 64, "ZERO", 4); }, "descriptor 0 Signature");
  mutate([](uint8_t* p) { StoreLE32(p + 64 + 4, 1); }, "descriptor 0 Reserved");
  mutate([](uint8_t* p) { StoreLE64(p + 64 + 24, 1); }, "descriptor 0 SequenceNumber");
  mutate([](uint8_t* p) { StoreLE64(p + 128 + 24, 0x1122334455667789ull); }, "descriptor 2 SequenceNumber");
  // A data descriptor turned into a zero descriptor: one data sector too many.
  mutate([](uint8_t* p) { std::memcpy(p + 128, "zero", 4); }, "EntryLength");
  // A zero descriptor turned into a data descriptor: one data sector short.
  mutate([](uint8_t* p) { std::memcpy(p + 64, "desc", 4); }, "EntryLength");
}

TEST(LogEntryTest, RejectsDataSectorDamage) {
  const std::vector<uint8_t> good = EncodeLogEntry(Sample().entry);
  auto mutate = [&](auto fn, const std::string& field) {
    std::vector<uint8_t> b = good;
    fn(b.data());
    FixCrc(b);
    ExpectCorrupt(b, field);
  };
  mutate([](uint8_t* p) { std::memcpy(p + 4096, "DATA", 4); }, "data sector 0 Signature");
  mutate([](uint8_t* p) { StoreLE32(p + 2 * 4096 + 4, 0x11223345); }, "data sector 1 SequenceNumber");
  mutate([](uint8_t* p) { StoreLE32(p + 3 * 4096 + 4092, 0x55667789); }, "data sector 2 SequenceNumber");
  // High and low halves swapped: still a mismatch.
  mutate([](uint8_t* p) {
    StoreLE32(p + 4096 + 4, 0x55667788);
    StoreLE32(p + 4096 + 4092, 0x11223344);
  }, "split sequence");
}

TEST(LogEntryTest, RejectsExtraOrMissingSectors) {
  std::vector<uint8_t> raw = EncodeLogEntry(Sample().entry);
  // An extra trailing sector declared in EntryLength.
  std::vector<uint8_t> longer = raw;
  longer.resize(raw.size() + 4096, 0);
  StoreLE32(longer.data() + 8, static_cast<uint32_t>(longer.size()));
  FixCrc(longer);
  ExpectCorrupt(longer, "does not match");
  // Supplied bytes shorter than EntryLength (truncated read).
  std::vector<uint8_t> shorter(raw.begin(), raw.end() - 4096);
  ExpectCorrupt(shorter, "EntryLength");
  ExpectCorrupt(std::vector<uint8_t>(raw.begin(), raw.begin() + 63), "truncated");
  ExpectCorrupt({}, "truncated");
}

TEST(LogEntryTest, AllZeroNeverValidates) {
  for (size_t n : {64u, 4096u, 8192u}) ExpectCorrupt(std::vector<uint8_t>(n, 0), "Signature");
  std::vector<uint8_t> b(4096, 0);
  std::memcpy(b.data(), "loge", 4);
  EXPECT_FALSE(DecodeStatus(b).ok());
  EXPECT_FALSE(DecodeStatus(b, kBounds, Guid()).ok());
}

TEST(LogEntryTest, HeaderDecodeAlone) {
  std::vector<uint8_t> raw = EncodeLogEntry(Sample().entry);
  Result<LogEntryHeader> h = LogEntryHeader::Decode(std::span<const uint8_t>(raw.data(), 64), 1 << 20);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->entry_length, 4u * 4096);
  EXPECT_EQ(h->descriptor_count, 5u);
  // The same entry in a log too small for it.
  EXPECT_FALSE(LogEntryHeader::Decode(raw, 4 * 4096).ok());
  EXPECT_TRUE(LogEntryHeader::Decode(raw, 5 * 4096).ok());
}

TEST(LogEntryTest, BadBoundsAreInvalidArgument) {
  std::vector<uint8_t> raw = EncodeLogEntry(Sample().entry);
  EXPECT_EQ(DecodeStatus(raw, LogTargetBounds{kLogOffset, 0, kMaxFileSize}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeStatus(raw, LogTargetBounds{kLogOffset, uint64_t{1} << 32, kMaxFileSize}).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(DecodeStatus(raw, LogTargetBounds{~uint64_t{0}, kLogLength, kMaxFileSize}).code(),
            ErrorCode::kInvalidArgument);
}

TEST(LogEntryTest, RandomMutationsWithValidCrcNeverCrash) {
  // Deterministic: mutate a valid entry, re-seal the CRC so the deeper checks
  // run, and require that decoding either fails cleanly or yields pages
  // within the bounds.
  const std::vector<uint8_t> good = EncodeLogEntry(Sample().entry);
  std::mt19937_64 rng(12345);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Bias towards the header and descriptors, where the structure is.
      const size_t pos = (rng() % 2 == 0) ? rng() % (64 + 5 * 32) : rng() % b.size();
      b[pos] = static_cast<uint8_t>(rng());
    }
    FixCrc(b);
    Result<LogEntry> e = DecodeLogEntry(b, kLogGuid, kBounds);
    if (!e.ok()) continue;
    ++accepted;
    for (const auto& z : e->zeros) {
      EXPECT_GE(z.file_offset, 192 * kKiB);
      EXPECT_LE(z.file_offset + z.length, kMaxFileSize);
    }
    for (const auto& p : e->pages) EXPECT_GE(p.file_offset, 192 * kKiB);
  }
  EXPECT_GT(accepted, 0);  // some mutations only touch payload bytes
}

}  // namespace
}  // namespace vhdx::format
