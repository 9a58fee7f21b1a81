#include "format/region_table.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace vhdx::format {
namespace {

std::vector<uint8_t> ReadFixture(const std::string& name) {
  std::ifstream in(std::string(VHDX_SAMPLES_DIR) + "/structs/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Guid G(const char* text) { return *Guid::Parse(text); }

void FixCrc(std::vector<uint8_t>& b) { StoreLE32(b.data() + 4, crc32c::ValueWithZeroedField(b.data(), 65536, 4)); }

RegionTable WindowsTable() {
  RegionTable t;
  t.entries.push_back({BatRegionGuid(), 3 * kMiB, 1 << 20, true});
  t.entries.push_back({MetadataRegionGuid(), 2 * kMiB, 1 << 20, true});
  return t;
}

std::vector<uint8_t> Encode(const RegionTable& t) {
  std::vector<uint8_t> buf(kRegionTableSize, 0xEE);
  t.EncodeTo(buf);
  return buf;
}

Status DecodeStatus(const std::vector<uint8_t>& b) {
  Result<RegionTable> r = RegionTable::Decode(b, kRegionTable1Offset);
  return r.ok() ? Status::OK() : r.status();
}

// Decoding must fail with a corruption naming `field`.
void ExpectCorrupt(const std::vector<uint8_t>& b, const std::string& field) {
  Status s = DecodeStatus(b);
  ASSERT_FALSE(s.ok()) << "expected failure on " << field;
  EXPECT_EQ(s.code(), ErrorCode::kCorruption);
  EXPECT_NE(s.message().find(field), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("region table"), std::string::npos) << s.ToString();
}

TEST(RegionTableTest, SampleFixtureDecodes) {
  std::vector<uint8_t> raw = ReadFixture("region_table.1");
  ASSERT_EQ(raw.size(), 80u);
  EXPECT_EQ(LoadLE32(raw.data() + 4), 0xC66B8CAEu);
  raw.resize(kRegionTableSize, 0);
  EXPECT_EQ(crc32c::ValueWithZeroedField(raw.data(), raw.size(), 4), 0xC66B8CAEu);
  Result<RegionTable> t = RegionTable::Decode(raw, kRegionTable1Offset);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->entries.size(), 2u);
  EXPECT_EQ(t->entries[0], (RegionTableEntry{BatRegionGuid(), 0x300000, 0x100000, true}));
  EXPECT_EQ(t->entries[1], (RegionTableEntry{MetadataRegionGuid(), 0x200000, 0x100000, true}));
  EXPECT_EQ(Encode(*t), raw);
  EXPECT_EQ(Encode(WindowsTable()), raw);

  // The single-header and single-entry fixtures are slices of the same table.
  std::vector<uint8_t> header = ReadFixture("region_table_header.1");
  std::vector<uint8_t> entry = ReadFixture("region_table_entry.1");
  ASSERT_EQ(header.size(), 16u);
  ASSERT_EQ(entry.size(), 32u);
  EXPECT_TRUE(std::equal(header.begin(), header.end(), raw.begin()));
  EXPECT_TRUE(std::equal(entry.begin(), entry.end(), raw.begin() + 16));
  EXPECT_EQ(Guid::FromBytes(std::span<const uint8_t, 16>(entry.data(), 16)), BatRegionGuid());
}

TEST(RegionTableTest, KnownGuidsHaveTheirOnDiskBytes) {
  const uint8_t bat[16] = {0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                           0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08};
  const uint8_t meta[16] = {0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
                            0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e};
  EXPECT_EQ(std::memcmp(BatRegionGuid().bytes.data(), bat, 16), 0);
  EXPECT_EQ(std::memcmp(MetadataRegionGuid().bytes.data(), meta, 16), 0);
}

TEST(RegionTableTest, RoundTripAndFind) {
  RegionTable t = WindowsTable();
  t.entries.push_back({G("01234567-89AB-CDEF-0123-456789ABCDEF"), 100 * kMiB, 5 << 20, false});
  std::vector<uint8_t> buf = Encode(t);
  for (size_t i = 16 + 3 * 32; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0) << i;
  Result<RegionTable> d = RegionTable::Decode(buf, kRegionTable2Offset);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, t);
  ASSERT_NE(d->Find(MetadataRegionGuid()), nullptr);
  EXPECT_EQ(d->Find(MetadataRegionGuid())->file_offset, 2 * kMiB);
  EXPECT_EQ(d->Find(G("FFFFFFFF-89AB-CDEF-0123-456789ABCDEF")), nullptr);
}

TEST(RegionTableTest, EmptyAndFullTablesAreValid) {
  RegionTable empty;
  EXPECT_TRUE(RegionTable::Decode(Encode(empty), 0).ok());

  RegionTable full;
  for (uint32_t i = 0; i < kMaxRegionEntries; ++i) {
    Guid g;
    StoreLE32(g.bytes.data(), i + 1);
    full.entries.push_back({g, (i + 1) * kMiB, 1 << 20, false});
  }
  Result<RegionTable> d = RegionTable::Decode(Encode(full), 0);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->entries.size(), kMaxRegionEntries);
}

TEST(RegionTableTest, RequiredZeroIsAccepted) {
  RegionTable t = WindowsTable();  // QEMU writes Required = 0
  t.entries[0].required = false;
  t.entries[1].required = false;
  Result<RegionTable> d = RegionTable::Decode(Encode(t), 0);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->entries[0].required);
}

TEST(RegionTableTest, AdjacentRegionsDoNotOverlap) {
  RegionTable t;
  t.entries.push_back({BatRegionGuid(), 2 * kMiB, 1 << 20, true});
  t.entries.push_back({MetadataRegionGuid(), 1 * kMiB, 1 << 20, true});
  EXPECT_TRUE(RegionTable::Decode(Encode(t), 0).ok());
}

TEST(RegionTableTest, RejectsBadSignatureAndChecksum) {
  std::vector<uint8_t> b = Encode(WindowsTable());
  b[0] = 'R';
  FixCrc(b);
  ExpectCorrupt(b, "Signature");

  b = Encode(WindowsTable());
  b[40000] ^= 0x10;  // in the reserved tail: still covered by the CRC
  ExpectCorrupt(b, "Checksum");
  b = Encode(WindowsTable());
  b[5] ^= 0x01;
  ExpectCorrupt(b, "Checksum");
}

TEST(RegionTableTest, EveryFlippedByteIsRejected) {
  std::vector<uint8_t> good = Encode(WindowsTable());
  for (size_t i = 0; i < 16 + 2 * 32; ++i) {
    std::vector<uint8_t> b = good;
    b[i] ^= 0x40;
    EXPECT_FALSE(DecodeStatus(b).ok()) << i;
  }
}

TEST(RegionTableTest, RejectsOutOfRangeFields) {
  const std::vector<uint8_t> good = Encode(WindowsTable());
  auto mutate = [&](auto fn, const std::string& field) {
    std::vector<uint8_t> b = good;
    fn(b.data());
    FixCrc(b);
    ExpectCorrupt(b, field);
  };
  mutate([](uint8_t* p) { StoreLE32(p + 8, 2048); }, "EntryCount");
  mutate([](uint8_t* p) { StoreLE32(p + 8, 0xFFFFFFFF); }, "EntryCount");
  mutate([](uint8_t* p) { StoreLE32(p + 12, 1); }, "Reserved");
  // Entry 0 at 16: FileOffset @ +16, Length @ +24, Required @ +28.
  mutate([](uint8_t* p) { StoreLE64(p + 32, 3 * kMiB + 4096); }, "entry 0 FileOffset");
  mutate([](uint8_t* p) { StoreLE64(p + 32, 0); }, "entry 0 FileOffset");
  mutate([](uint8_t* p) { StoreLE64(p + 32, 64 * kKiB); }, "entry 0 FileOffset");
  mutate([](uint8_t* p) { StoreLE32(p + 40, 0); }, "entry 0 Length");
  mutate([](uint8_t* p) { StoreLE32(p + 40, (1 << 20) + 512); }, "entry 0 Length");
  mutate([](uint8_t* p) { StoreLE64(p + 32, 0xFFFFFFFFFFF00000ull); }, "entry 0 Length");  // overflow
  mutate([](uint8_t* p) { StoreLE32(p + 44, 2); }, "entry 0 Required");
  mutate([](uint8_t* p) { StoreLE32(p + 44, 0x80000001u); }, "entry 0 Required");
  // Entry 1 at 48.
  mutate([](uint8_t* p) { std::memcpy(p + 48, p + 16, 16); }, "entry 1 Guid");
  mutate([](uint8_t* p) { StoreLE64(p + 64, 3 * kMiB); }, "FileOffset");  // same place as BAT
  mutate([](uint8_t* p) { StoreLE32(p + 72, 2 << 20); }, "overlaps");     // metadata 2..4 MiB over BAT
}

TEST(RegionTableTest, RejectsTruncatedAndAllZero) {
  std::vector<uint8_t> b = Encode(WindowsTable());
  EXPECT_FALSE(RegionTable::Decode(std::span<const uint8_t>(b.data(), 65535), 0).ok());
  EXPECT_FALSE(RegionTable::Decode(std::span<const uint8_t>(b.data(), 80), 0).ok());
  std::vector<uint8_t> zeros(kRegionTableSize, 0);
  ExpectCorrupt(zeros, "Signature");
  std::memcpy(zeros.data(), "regi", 4);
  ExpectCorrupt(zeros, "Checksum");
}

}  // namespace
}  // namespace vhdx::format
