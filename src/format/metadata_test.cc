#include "format/metadata.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
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

Guid G(const char* text) { return *Guid::Parse(text); }

constexpr uint64_t kRegionOffset = 2 * kMiB;
constexpr uint64_t kRegionLength = 1 * kMiB;

// The Windows layout: FileParameters, Size, LSS, PSS, DiskId from 0x10000.
MetadataTable WindowsTable() {
  MetadataTable t;
  t.entries.push_back({FileParametersGuid(), 0x10000, 8, false, false, true});
  t.entries.push_back({VirtualDiskSizeGuid(), 0x10008, 8, false, true, true});
  t.entries.push_back({LogicalSectorSizeGuid(), 0x10010, 4, false, true, true});
  t.entries.push_back({PhysicalSectorSizeGuid(), 0x10014, 4, false, true, true});
  t.entries.push_back({VirtualDiskIdGuid(), 0x10018, 16, false, true, true});
  return t;
}

std::vector<uint8_t> Encode(const MetadataTable& t) {
  std::vector<uint8_t> b(kMetadataTableSize, 0xEE);
  t.EncodeTo(b);
  return b;
}

Status DecodeStatus(const std::vector<uint8_t>& b, uint64_t region_length = kRegionLength) {
  Result<MetadataTable> r = MetadataTable::Decode(b, region_length, kRegionOffset);
  return r.ok() ? Status::OK() : r.status();
}

void ExpectCorrupt(const std::vector<uint8_t>& b, const std::string& field, uint64_t region_length = kRegionLength) {
  Status s = DecodeStatus(b, region_length);
  ASSERT_FALSE(s.ok()) << "expected failure on " << field;
  EXPECT_EQ(s.code(), ErrorCode::kCorruption);
  EXPECT_NE(s.message().find(field), std::string::npos) << s.ToString();
}

bool SameEntries(const MetadataTable& a, const MetadataTable& b) { return a.entries == b.entries; }

TEST(MetadataTableTest, SampleFixturesDecode) {
  std::vector<uint8_t> header = ReadFixture("metadata_table_header.1");
  std::vector<uint8_t> entry = ReadFixture("metadata_table_entry.1");
  ASSERT_EQ(header.size(), 32u);
  ASSERT_EQ(entry.size(), 32u);
  EXPECT_EQ(LoadLE16(header.data() + 10), 5);

  // The fixture header + fixture entry, completed with the other four
  // Windows items, form a valid table.
  std::vector<uint8_t> table = Encode(WindowsTable());
  EXPECT_TRUE(std::equal(header.begin(), header.end(), table.begin()));
  EXPECT_TRUE(std::equal(entry.begin(), entry.end(), table.begin() + 32));
  std::copy(header.begin(), header.end(), table.begin());
  std::copy(entry.begin(), entry.end(), table.begin() + 32);
  Result<MetadataTable> t = MetadataTable::Decode(table, kRegionLength, kRegionOffset);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_EQ(t->entries.size(), 5u);
  const MetadataTableEntry& fp = t->entries[0];
  EXPECT_EQ(fp.item_id, FileParametersGuid());
  EXPECT_EQ(fp.offset, 0x10000u);
  EXPECT_EQ(fp.length, 8u);
  EXPECT_FALSE(fp.is_user);
  EXPECT_FALSE(fp.is_virtual_disk);
  EXPECT_TRUE(fp.is_required);
}

TEST(MetadataTableTest, RoundTripAndFind) {
  MetadataTable t = WindowsTable();
  t.entries.push_back({G("01234567-89AB-CDEF-0123-456789ABCDEF"), 0x20000, 100, true, false, false});
  t.entries.push_back({FileParametersGuid(), 0x30000, 8, true, false, false});  // same id, user: allowed
  t.entries.push_back({G("11111111-89AB-CDEF-0123-456789ABCDEF"), 0, 0, false, false, false});  // empty item
  std::vector<uint8_t> b = Encode(t);
  for (size_t i = 32 + t.entries.size() * 32; i < b.size(); ++i) ASSERT_EQ(b[i], 0) << i;
  Result<MetadataTable> d = MetadataTable::Decode(b, kRegionLength, kRegionOffset);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(SameEntries(*d, t));
  ASSERT_NE(d->FindSystem(FileParametersGuid()), nullptr);
  EXPECT_EQ(d->FindSystem(FileParametersGuid())->offset, 0x10000u);
  EXPECT_EQ(d->FindSystem(ParentLocatorGuid()), nullptr);
  EXPECT_EQ(d->FindSystem(G("01234567-89AB-CDEF-0123-456789ABCDEF")), nullptr);  // user only
}

TEST(MetadataTableTest, QemuLayoutAndItemAtRegionEnd) {
  MetadataTable t;
  t.entries.push_back({FileParametersGuid(), 0x10000, 8, false, false, true});
  t.entries.push_back({VirtualDiskSizeGuid(), 0x10008, 8, false, true, true});
  t.entries.push_back({VirtualDiskIdGuid(), 0x10010, 16, false, true, true});
  t.entries.push_back({LogicalSectorSizeGuid(), 0x10020, 4, false, true, true});
  t.entries.push_back({PhysicalSectorSizeGuid(), 0x10024, 4, false, true, true});
  t.entries.push_back({ParentLocatorGuid(), static_cast<uint32_t>(kRegionLength - 1000), 1000, false, false, true});
  EXPECT_TRUE(DecodeStatus(Encode(t)).ok());
}

TEST(MetadataTableTest, RejectsHeaderDamage) {
  const std::vector<uint8_t> good = Encode(WindowsTable());
  std::vector<uint8_t> b = good;
  b[7] = 'A';
  ExpectCorrupt(b, "Signature");
  b = good;
  StoreLE16(b.data() + 8, 1);
  ExpectCorrupt(b, "Reserved");
  b = good;
  b[31] = 1;
  ExpectCorrupt(b, "Reserved2");
  b = good;
  StoreLE16(b.data() + 10, 2048);
  ExpectCorrupt(b, "EntryCount");
  b = good;
  StoreLE16(b.data() + 10, 0xFFFF);
  ExpectCorrupt(b, "EntryCount");
  b = good;
  StoreLE16(b.data() + 10, 6);  // sixth entry is all zero: ItemId zero
  ExpectCorrupt(b, "entry 5 ItemId");
}

TEST(MetadataTableTest, RejectsBadEntries) {
  auto check = [](auto fn, const std::string& field, uint64_t region_length = kRegionLength) {
    MetadataTable t = WindowsTable();
    fn(t);
    ExpectCorrupt(Encode(t), field, region_length);
  };
  check([](MetadataTable& t) { t.entries[1].item_id = Guid(); }, "entry 1 ItemId");
  check([](MetadataTable& t) { t.entries[4].item_id = t.entries[0].item_id; }, "entry 4 ItemId");  // duplicate
  check([](MetadataTable& t) { t.entries[2].offset = 0x8000; }, "entry 2 Offset");  // inside the table
  check([](MetadataTable& t) { t.entries[2].offset = 0; }, "entry 2 Offset");
  check([](MetadataTable& t) { t.entries[0].length = (1 << 20) + 1; }, "entry 0 Length");
  check([](MetadataTable& t) { t.entries[4].offset = static_cast<uint32_t>(kRegionLength - 8); }, "entry 4 Length");
  check([](MetadataTable& t) { t.entries[4].offset = 0xFFFFFFF0u; }, "entry 4 Length");
  check([](MetadataTable& t) { t.entries[3].length = 0; }, "entry 3 Offset");  // Length 0 with an offset
  check([](MetadataTable& t) { t.entries[1].offset = 0x10004; }, "overlaps");
  check([](MetadataTable& t) { t.entries[0].length = 9; }, "overlaps");
  check([](MetadataTable& t) {
    t.entries.push_back({G("01234567-89AB-CDEF-0123-456789ABCDEF"), 0x20000, 8, true, false, true});
  }, "IsRequired");
  // Region lengths: the table must fit; our limit is 128 MiB.
  check([](MetadataTable&) {}, "Length", 4096);
  check([](MetadataTable&) {}, "Length", kMaxMetadataRegionLength + kMiB);
}

TEST(MetadataTableTest, RejectsReservedFlagAndEntryBits) {
  std::vector<uint8_t> b = Encode(WindowsTable());
  StoreLE32(b.data() + 32 + 24, 0x4 | 0x8);
  ExpectCorrupt(b, "entry 0 flags");
  b = Encode(WindowsTable());
  StoreLE32(b.data() + 64 + 28, 1);
  ExpectCorrupt(b, "entry 1 Reserved2");
}

TEST(MetadataTableTest, UserItemLimit) {
  MetadataTable t;
  for (uint32_t i = 0; i < kMaxUserMetadataEntries; ++i) {
    Guid g;
    StoreLE32(g.bytes.data(), i + 1);
    t.entries.push_back({g, 0, 0, true, false, false});
  }
  EXPECT_TRUE(DecodeStatus(Encode(t)).ok());
  Guid g;
  StoreLE32(g.bytes.data(), 99999);
  t.entries.push_back({g, 0, 0, true, false, false});
  ExpectCorrupt(Encode(t), "more than 1024 user items");
}

TEST(MetadataTableTest, RejectsTruncatedAndAllZero) {
  std::vector<uint8_t> b = Encode(WindowsTable());
  EXPECT_FALSE(MetadataTable::Decode(std::span<const uint8_t>(b.data(), 65535), kRegionLength, 0).ok());
  std::vector<uint8_t> zeros(kMetadataTableSize, 0);
  ExpectCorrupt(zeros, "Signature");
}

// ---- Items ---------------------------------------------------------------

TEST(FileParametersTest, RoundTripAndLimits) {
  for (uint32_t bs = kMinBlockSize; bs <= kMaxBlockSize; bs <<= 1) {
    for (int flags = 0; flags < 4; ++flags) {
      FileParameters fp{bs, (flags & 1) != 0, (flags & 2) != 0};
      uint8_t raw[8];
      fp.EncodeTo(raw);
      Result<FileParameters> d = FileParameters::Decode(raw, 0x210000);
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(d->block_size, bs);
      EXPECT_EQ(d->leave_block_allocated, fp.leave_block_allocated);
      EXPECT_EQ(d->has_parent, fp.has_parent);
    }
  }
  const uint8_t windows[8] = {0, 0, 0, 2, 0, 0, 0, 0};  // 32 MiB, dynamic
  EXPECT_EQ(FileParameters::Decode(windows, 0)->block_size, 32u << 20);

  for (uint32_t bad : {0u, 512u * 1024, 3u << 20, 512u << 20, 0xFFFFFFFFu}) {
    uint8_t raw[8] = {};
    StoreLE32(raw, bad);
    Result<FileParameters> d = FileParameters::Decode(raw, 0x210000);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.status().message().find("BlockSize"), std::string::npos);
  }
  uint8_t raw[8];
  FileParameters{1 << 20, false, false}.EncodeTo(raw);
  StoreLE32(raw + 4, 4);
  EXPECT_FALSE(FileParameters::Decode(raw, 0).ok());
  EXPECT_FALSE(FileParameters::Decode(std::span<const uint8_t>(raw, 7), 0).ok());
}

TEST(MetadataItemsTest, VirtualDiskSize) {
  uint8_t raw[8];
  StoreLE64(raw, 10 * kGiB);
  EXPECT_EQ(*DecodeVirtualDiskSize(raw, 0), 10 * kGiB);
  StoreLE64(raw, 0);
  EXPECT_EQ(*DecodeVirtualDiskSize(raw, 0), 0u);
  StoreLE64(raw, kMaxVirtualDiskSize);
  EXPECT_TRUE(DecodeVirtualDiskSize(raw, 0).ok());
  StoreLE64(raw, kMaxVirtualDiskSize + 512);
  EXPECT_FALSE(DecodeVirtualDiskSize(raw, 0).ok());
  StoreLE64(raw, ~uint64_t{0});
  EXPECT_FALSE(DecodeVirtualDiskSize(raw, 0).ok());
  EXPECT_FALSE(DecodeVirtualDiskSize(std::span<const uint8_t>(raw, 4), 0).ok());
}

TEST(MetadataItemsTest, SectorSizes) {
  uint8_t raw[4];
  for (uint32_t ok : {512u, 4096u}) {
    StoreLE32(raw, ok);
    EXPECT_EQ(*DecodeSectorSize(raw, 0, "Logical Sector Size"), ok);
  }
  for (uint32_t bad : {0u, 1u, 1024u, 2048u, 8192u, 0xFFFFFFFFu}) {
    StoreLE32(raw, bad);
    Result<uint32_t> r = DecodeSectorSize(raw, 0x210010, "Physical Sector Size");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("Physical Sector Size"), std::string::npos);
  }
  EXPECT_FALSE(DecodeSectorSize(std::span<const uint8_t>(raw, 3), 0, "x").ok());
}

TEST(MetadataItemsTest, VirtualDiskId) {
  Guid id = G("D247CBB2-15B6-404B-9133-790733D694C0");
  uint8_t raw[16];
  id.ToBytes(raw);
  EXPECT_EQ(*DecodeVirtualDiskId(raw, 0), id);
  EXPECT_FALSE(DecodeVirtualDiskId(std::span<const uint8_t>(raw, 15), 0).ok());
}

TEST(MetadataItemsTest, KnownItemGuidBytes) {
  const uint8_t fp[16] = {0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
                          0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b};
  const uint8_t pl[16] = {0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
                          0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c};
  EXPECT_EQ(std::memcmp(FileParametersGuid().bytes.data(), fp, 16), 0);
  EXPECT_EQ(std::memcmp(ParentLocatorGuid().bytes.data(), pl, 16), 0);
  EXPECT_EQ(VirtualDiskSizeGuid().ToString(), "2FA54224-CD1B-4876-B211-5DBED83BF4B8");
  EXPECT_EQ(IncompleteFileGuid().ToString(), "71CC85F0-1B69-4E28-9558-C3BF83AE75D3");
}

}  // namespace
}  // namespace vhdx::format
