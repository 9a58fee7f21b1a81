// Hostile and broken images: every one is refused (or opened) with a clean
// Status, never a crash, and without allocating or writing amounts that an
// untrusted field asks for. Each image starts as a valid one built in memory
// and is then corrupted through the codec, so the checksums stay valid and
// the corruption reaches the validation it targets. Inputs that crashed a
// fuzzer live in tests/data/regressions/ and are replayed at the end (see
// docs/fuzzing.md) and each has a test case of its own at the end.
#include <sys/resource.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "format/bat.h"
#include "format/constants.h"
#include "format/header.h"
#include "format/log_format.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "support/test_util.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::TempDir;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

std::vector<uint8_t> ReadAllBytes(File& f) {
  std::vector<uint8_t> out(f.Size().value());
  EXPECT_TRUE(f.ReadAt(0, out).ok());
  return out;
}

// A valid 8 MiB dynamic image (1 MiB blocks) with data in blocks 0 and 3.
// With `dirty`, the bytes are taken after a flush and before the clean
// close: the header names a live log holding entries.
std::vector<uint8_t> ValidImage(bool dirty = false, uint32_t log_size = 1 << 20) {
  auto mem = NewMemoryFile();
  CreateOptions opts;
  opts.virtual_size = 8 << 20;
  opts.log_size = log_size;
  opts.block_size = 1 << 20;
  auto image = Image::Create(BorrowFile(mem.get()), opts);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  std::vector<uint8_t> data(64 << 10, 0x5A);
  EXPECT_TRUE((*image)->Write(0, data).ok());
  EXPECT_TRUE((*image)->Write(3 << 20, data).ok());
  EXPECT_TRUE((*image)->Flush().ok());
  std::vector<uint8_t> bytes;
  if (dirty) bytes = ReadAllBytes(*mem);
  EXPECT_TRUE((*image)->Close().ok());
  if (!dirty) bytes = ReadAllBytes(*mem);
  return bytes;
}

Status OpenStatus(std::vector<uint8_t> bytes, bool read_only = true) {
  OpenOptions opts;
  opts.read_only = read_only;
  opts.open_parents = false;
  auto image = Image::Open(NewMemoryFile(std::move(bytes)), opts);
  if (!image.ok()) return image.status();
  // Opened: reading everything must work or fail cleanly.
  std::vector<uint8_t> buf((*image)->block_size());
  for (uint64_t off = 0; off < (*image)->virtual_size(); off += buf.size()) {
    uint64_t n = std::min<uint64_t>(buf.size(), (*image)->virtual_size() - off);
    Status s = (*image)->Read(off, std::span<uint8_t>(buf.data(), n));
    if (!s.ok()) return s;
  }
  return (*image)->Close();
}

// ---- structure editing through the codec ------------------------------------------

struct Layout {
  format::Header header;
  uint64_t header_offset = 0;
  format::RegionTable regions;
  uint64_t bat_offset = 0, metadata_offset = 0;
  uint32_t bat_length = 0, metadata_length = 0;
  format::MetadataTable metadata;
};

Layout Parse(const std::vector<uint8_t>& b) {
  Layout l;
  uint64_t best = 0;
  for (uint64_t off : {format::kHeader1Offset, format::kHeader2Offset}) {
    auto h = format::Header::Decode({b.data() + off, format::kHeaderSize}, off);
    if (h.ok() && h->sequence_number >= best) {
      best = h->sequence_number;
      l.header = *h;
      l.header_offset = off;
    }
  }
  auto rt = format::RegionTable::Decode({b.data() + format::kRegionTable1Offset, format::kRegionTableSize},
                                        format::kRegionTable1Offset);
  EXPECT_TRUE(rt.ok());
  l.regions = *rt;
  for (const auto& e : l.regions.entries) {
    if (e.guid == format::BatRegionGuid()) {
      l.bat_offset = e.file_offset;
      l.bat_length = e.length;
    } else if (e.guid == format::MetadataRegionGuid()) {
      l.metadata_offset = e.file_offset;
      l.metadata_length = e.length;
    }
  }
  auto mt = format::MetadataTable::Decode({b.data() + l.metadata_offset, format::kMetadataTableSize},
                                          l.metadata_length, l.metadata_offset);
  EXPECT_TRUE(mt.ok());
  l.metadata = *mt;
  return l;
}

// Writes `h` into both header slots (same sequence number: header 1 wins).
void PutHeaders(std::vector<uint8_t>& b, const format::Header& h) {
  for (uint64_t off : {format::kHeader1Offset, format::kHeader2Offset}) {
    h.EncodeTo({b.data() + off, format::kHeaderSize});
  }
}

// Writes the raw 64 KiB region table into both copies with a valid CRC,
// bypassing RegionTable's own rules.
void PutRawRegionTables(std::vector<uint8_t>& b, std::vector<uint8_t> raw) {
  StoreLE32(raw.data() + 4, crc32c::ValueWithZeroedField(raw.data(), raw.size(), 4));
  for (uint64_t off : {format::kRegionTable1Offset, format::kRegionTable2Offset}) {
    std::memcpy(b.data() + off, raw.data(), raw.size());
  }
}

std::vector<uint8_t> RegionTableBytes(const std::vector<uint8_t>& b) {
  return {b.begin() + format::kRegionTable1Offset,
          b.begin() + format::kRegionTable1Offset + format::kRegionTableSize};
}

uint64_t BatEntryOffset(const Layout& l, uint64_t block) {
  // 1 MiB blocks, 512-byte sectors: chunk ratio 2048, so block < 2048 is at index block.
  return l.bat_offset + block * 8;
}

const format::MetadataTableEntry* Item(const Layout& l, const Guid& id) { return l.metadata.FindSystem(id); }

// Metadata table entry i's raw bytes (offset 32 + 32 i of the region).
uint8_t* MetaEntry(std::vector<uint8_t>& b, const Layout& l, size_t i) {
  return b.data() + l.metadata_offset + 32 + 32 * i;
}
size_t MetaIndex(const Layout& l, const Guid& id) {
  for (size_t i = 0; i < l.metadata.entries.size(); ++i) {
    if (l.metadata.entries[i].item_id == id && !l.metadata.entries[i].is_user) return i;
  }
  ADD_FAILURE() << "item not found";
  return 0;
}

// A dirty image whose log holds exactly one entry, built by hand.
std::vector<uint8_t> WithLogEntry(std::vector<uint8_t> b, const format::LogEntryToWrite& e_in) {
  Layout l = Parse(b);
  format::LogEntryToWrite e = e_in;
  e.log_guid = Guid::Parse("11111111-2222-3333-4444-555555555555").value();
  if (e.sequence_number == 0) e.sequence_number = 7;
  std::vector<uint8_t> entry = format::EncodeLogEntry(e);
  EXPECT_LE(entry.size(), l.header.log_length);
  std::fill(b.begin() + l.header.log_offset, b.begin() + l.header.log_offset + l.header.log_length, 0);
  std::memcpy(b.data() + l.header.log_offset, entry.data(), entry.size());
  format::Header h = l.header;
  h.log_guid = e.log_guid;
  PutHeaders(b, h);
  return b;
}

// Peak resident set size (bytes) of this process so far.
uint64_t MaxRss() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

// Runs `fn` and checks that the process's peak memory did not grow by more
// than 256 MiB (meaningless under sanitizers, whose allocators hold memory).
template <typename Fn>
void ExpectBoundedMemory(Fn&& fn) {
  const uint64_t before = MaxRss();
  fn();
  if (!kSanitized) {
    EXPECT_LT(MaxRss() - before, uint64_t{256} << 20) << "peak memory grew by more than 256 MiB";
  }
}

void ExpectRefused(const Status& s, ErrorCode code) {
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_FALSE(s.message().empty());
}

// ---- the cases ------------------------------------------------------------------------

TEST(HostileTest, EmptyFile) { ExpectRefused(OpenStatus({}), ErrorCode::kCorruption); }

TEST(HostileTest, TruncatedAtManyLengths) {
  const std::vector<uint8_t> full = ValidImage();
  std::vector<uint64_t> lengths = {1, 8, 511, 4096, 64 << 10, (64 << 10) + 4096, 128 << 10, 192 << 10,
                                   (256 << 10) + 1, 320 << 10, 1 << 20};
  for (uint64_t len = 1 << 20; len < full.size(); len += 256 << 10) lengths.push_back(len);
  lengths.push_back(full.size() - 4096);
  lengths.push_back(full.size() - 1);
  for (uint64_t len : lengths) {
    SCOPED_TRACE("length " + std::to_string(len));
    Status s = OpenStatus({full.begin(), full.begin() + static_cast<ptrdiff_t>(len)});
    if (len < (1 << 20)) {
      ExpectRefused(s, ErrorCode::kCorruption);
    } else if (!s.ok()) {
      EXPECT_EQ(s.code(), ErrorCode::kCorruption) << s.ToString();
    }
  }
}

TEST(HostileTest, RandomBytes) {
  std::mt19937_64 rng(20240611);
  for (int i = 0; i < 40; ++i) {
    std::vector<uint8_t> b(4096 + rng() % (3 << 20));
    for (auto& c : b) c = static_cast<uint8_t>(rng());
    if (i % 2 == 0) std::memcpy(b.data(), "vhdxfile", 8);  // get past the identifier
    ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
  }
}

TEST(HostileTest, RandomCorruptionOfAValidImageNeverCrashes) {
  const std::vector<uint8_t> full = ValidImage(/*dirty=*/true);
  const Layout l = Parse(full);
  // Bytes of every structure: header section, log, metadata table, BAT.
  const std::pair<uint64_t, uint64_t> areas[] = {{0, 320 << 10},
                                                 {l.header.log_offset, 64 << 10},
                                                 {l.metadata_offset, 64 << 10},
                                                 {l.bat_offset, 4096}};
  std::mt19937_64 rng(77);
  for (int i = 0; i < 200; ++i) {
    std::vector<uint8_t> b = full;
    auto [base, len] = areas[i % 4];
    for (int k = 0; k < 4; ++k) b[base + rng() % len] ^= static_cast<uint8_t>(1 + rng() % 255);
    // Keep the checksums valid half of the time so the fields are reached.
    if (i % 2 == 0) {
      for (uint64_t off : {format::kHeader1Offset, format::kHeader2Offset}) {
        StoreLE32(b.data() + off + 4, crc32c::ValueWithZeroedField(b.data() + off, format::kHeaderSize, 4));
      }
      PutRawRegionTables(b, RegionTableBytes(b));
    }
    Status s = OpenStatus(b);
    if (!s.ok()) {
      EXPECT_NE(s.code(), ErrorCode::kInvalidArgument) << s.ToString();
    }
  }
}

TEST(HostileTest, HugeLogLengthAndOffset) {
  const std::vector<uint8_t> valid = ValidImage();
  const Layout l = Parse(valid);
  for (auto [length, offset] : std::vector<std::pair<uint32_t, uint64_t>>{
           {0xFFF00000u, l.header.log_offset},              // 4 GiB - 1 MiB: over the 1 GiB limit
           {1u << 30, l.header.log_offset},                  // 1 GiB, far beyond the file
           {1u << 20, 0xFFFFFFFFFFF00000ull},                // offset + length overflows
           {1u << 20, format::kMaxFileSize},                 // beyond any plausible file
           {1u << 20, 0},                                    // inside the header section
           {12345, l.header.log_offset}}) {                  // not a multiple of 1 MiB
    SCOPED_TRACE(std::to_string(length) + " @ " + std::to_string(offset));
    std::vector<uint8_t> b = valid;
    format::Header h = l.header;
    h.log_length = length;
    h.log_offset = offset;
    h.log_guid = Guid::Random();  // a log to replay
    PutHeaders(b, h);
    ExpectBoundedMemory([&] { ExpectRefused(OpenStatus(b), ErrorCode::kCorruption); });
  }
}

TEST(HostileTest, LogNamedButEmpty) {
  std::vector<uint8_t> b = ValidImage();
  Layout l = Parse(b);
  format::Header h = l.header;
  h.log_guid = Guid::Random();
  PutHeaders(b, h);
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
}

TEST(HostileTest, ZeroDescriptorOf64TiBIsBoundedInMemory) {
  format::LogEntryToWrite e;
  e.zeros.push_back({8 << 20, format::kMaxVirtualDiskSize});
  std::vector<uint8_t> b = WithLogEntry(ValidImage(), e);
  // Read-only: replayed into the overlay, which records the range.
  ExpectBoundedMemory([&] {
    OpenOptions ro;
    auto image = Image::Open(NewMemoryFile(b), ro);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    std::vector<uint8_t> buf(4096);
    EXPECT_TRUE((*image)->Read(0, buf).ok());
    EXPECT_EQ(buf[0], 0x5A);
    EXPECT_TRUE((*image)->Close().ok());
  });
}

TEST(HostileTest, ZeroDescriptorOf64TiBWritesNothingToAFile) {
  TempDir dir;
  format::LogEntryToWrite e;
  e.zeros.push_back({16 << 20, format::kMaxVirtualDiskSize});
  std::vector<uint8_t> b = WithLogEntry(ValidImage(), e);
  const std::string path = dir.Join("hostile.vhdx");
  {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
  }
  OpenOptions rw;
  rw.read_only = false;
  auto image = Image::Open(path, rw);
  // ext4 refuses a 64 TiB file (kNoSpace); file systems that allow it get a
  // sparse file. Either way nothing is written beyond the original bytes.
  if (image.ok()) {
    EXPECT_TRUE((*image)->Close().ok());
  } else {
    EXPECT_TRUE(image.status().code() == ErrorCode::kNoSpace || image.status().code() == ErrorCode::kIOError ||
                image.status().code() == ErrorCode::kInvalidArgument)
        << image.status().ToString();
  }
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{64} << 20) << "replay allocated disk space";
}

TEST(HostileTest, LastFileOffsetHuge) {
  std::vector<uint8_t> page(4096, 0);
  Layout l = Parse(ValidImage());
  format::LogEntryToWrite e;
  e.last_file_offset = format::kMaxFileSize + 4096;  // beyond the bound: the entry is invalid
  e.pages.push_back({l.bat_offset, page.data()});
  ExpectRefused(OpenStatus(WithLogEntry(ValidImage(), e)), ErrorCode::kCorruption);
  e.last_file_offset = format::kMaxFileSize;  // at the bound: read-only replay only pretends to extend
  ExpectBoundedMemory([&] {
    OpenOptions ro;
    auto image = Image::Open(NewMemoryFile(WithLogEntry(ValidImage(), e)), ro);
    // The BAT page of zeros leaves every block NOT_PRESENT.
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ((*image)->Info().blocks.fully_present, 0u);
  });
}

TEST(HostileTest, DescriptorTargetingTheHeaderArea) {
  std::vector<uint8_t> page(4096, 0xEE);
  for (uint64_t target : {uint64_t{0}, uint64_t{64 << 10}, uint64_t{128 << 10}, uint64_t{188 << 10}}) {
    SCOPED_TRACE(target);
    format::LogEntryToWrite e;
    e.pages.push_back({target, page.data()});
    ExpectRefused(OpenStatus(WithLogEntry(ValidImage(), e)), ErrorCode::kCorruption);
    format::LogEntryToWrite z;
    z.zeros.push_back({target, 4096});
    ExpectRefused(OpenStatus(WithLogEntry(ValidImage(), z)), ErrorCode::kCorruption);
  }
}

TEST(HostileTest, DescriptorTargetingTheLog) {
  std::vector<uint8_t> valid = ValidImage();
  Layout l = Parse(valid);
  std::vector<uint8_t> page(4096, 0xEE);
  format::LogEntryToWrite e;
  e.pages.push_back({l.header.log_offset + 8192, page.data()});
  ExpectRefused(OpenStatus(WithLogEntry(valid, e)), ErrorCode::kCorruption);
}

TEST(HostileTest, OverlappingLogEntriesAreScannedInBoundedTime) {
  // Every sector of a 64 MiB log starts a 60 MiB entry with our LogGuid
  // whose checksum fails: the scan must not checksum O(sectors x length)
  // bytes (16384 x 60 MiB).
  std::vector<uint8_t> b = ValidImage(false, 64 << 20);
  Layout l = Parse(b);
  std::vector<uint8_t> page(4096, 1);
  format::LogEntryToWrite e;
  for (int i = 0; i < 15000; ++i) e.pages.push_back({l.bat_offset, page.data()});
  b = WithLogEntry(b, e);
  std::vector<uint8_t> entry(b.begin() + l.header.log_offset, b.begin() + l.header.log_offset + 4096);
  entry[5] ^= 1;  // break the checksum
  for (uint64_t s = 0; s < l.header.log_length / 4096; ++s) {
    std::memcpy(b.data() + l.header.log_offset + s * 4096, entry.data(), 4096);
  }
  auto start = std::chrono::steady_clock::now();
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(kSanitized ? 30 : 5));
}

class BatEntryTest : public ::testing::TestWithParam<std::pair<const char*, uint64_t>> {};

TEST_P(BatEntryTest, Refused) {
  std::vector<uint8_t> b = ValidImage();
  Layout l = Parse(b);
  uint64_t raw = GetParam().second;
  if (raw == 1) raw = LoadLE64(b.data() + BatEntryOffset(l, 0));  // duplicate block 0's offset
  StoreLE64(b.data() + BatEntryOffset(l, 5), raw);
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
  // The check reports it instead of stopping.
  TempDir dir;
  std::string path = dir.Join("bad.vhdx");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->errors(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, BatEntryTest,
    ::testing::Values(std::pair{"past_eof", (uint64_t{1} << 40) | format::kPayloadFullyPresent},
                      std::pair{"far_past_eof", format::kBatOffsetMask | format::kPayloadFullyPresent},
                      std::pair{"overlapping", uint64_t{1}},
                      std::pair{"at_offset_0", uint64_t{format::kPayloadFullyPresent}},
                      std::pair{"reserved_bits", (uint64_t{0x1000}) | format::kPayloadNotPresent},
                      std::pair{"state_4", uint64_t{4}}, std::pair{"state_5", uint64_t{5}},
                      std::pair{"state_7_non_diff", (uint64_t{4} << 20) | 7}),
    [](const auto& param_info) { return std::string(param_info.param.first); });

TEST(HostileTest, BatEntryOverlappingMetadataRegion) {
  std::vector<uint8_t> b = ValidImage();
  Layout l = Parse(b);
  StoreLE64(b.data() + BatEntryOffset(l, 6), l.metadata_offset | format::kPayloadFullyPresent);
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
}

TEST(HostileTest, RegionTablesOverlapping) {
  std::vector<uint8_t> b = ValidImage();
  Layout l = Parse(b);
  std::vector<uint8_t> raw = RegionTableBytes(b);
  // Entries start at 16; each is GUID(16) FileOffset(8) Length(4) Required(4).
  for (int i = 0; i < 2; ++i) {
    uint8_t* e = raw.data() + 16 + 32 * i;
    Guid g = Guid::FromBytes(std::span<const uint8_t, 16>(e, 16));
    if (g == format::BatRegionGuid()) StoreLE64(e + 16, l.metadata_offset);
  }
  PutRawRegionTables(b, raw);
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
}

TEST(HostileTest, RegionTableHugeCountAndOffsets) {
  const std::vector<uint8_t> valid = ValidImage();
  {
    std::vector<uint8_t> b = valid;
    std::vector<uint8_t> raw = RegionTableBytes(b);
    StoreLE32(raw.data() + 8, 0xFFFFFFFFu);  // EntryCount
    PutRawRegionTables(b, raw);
    ExpectBoundedMemory([&] { ExpectRefused(OpenStatus(b), ErrorCode::kCorruption); });
  }
  for (uint64_t off : {uint64_t{0}, uint64_t{0xFFFFFFFFFFF00000ull}, uint64_t{1} << 50}) {
    std::vector<uint8_t> b = valid;
    std::vector<uint8_t> raw = RegionTableBytes(b);
    StoreLE64(raw.data() + 16 + 16, off);
    StoreLE32(raw.data() + 16 + 24, 0xFFF00000u);
    PutRawRegionTables(b, raw);
    ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
  }
}

TEST(HostileTest, MetadataItemsOverlappingOrOutside) {
  const std::vector<uint8_t> valid = ValidImage();
  const Layout l = Parse(valid);
  const size_t vds = MetaIndex(l, format::VirtualDiskSizeGuid());
  const size_t lss = MetaIndex(l, format::LogicalSectorSizeGuid());
  const uint32_t vds_off = l.metadata.entries[vds].offset;
  struct Case {
    const char* name;
    uint32_t offset, length;
  };
  for (const Case& c : {Case{"overlapping", vds_off, 8}, Case{"outside_region", l.metadata_length, 8},
                        Case{"straddling_end", l.metadata_length - 4, 8}, Case{"huge_length", 64 << 10, 0xFFFFFFF0u},
                        Case{"wrapping", 0xFFFFFFF8u, 16}, Case{"in_table", 32, 4}}) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> b = valid;
    uint8_t* e = MetaEntry(b, l, lss);
    StoreLE32(e + 16, c.offset);
    StoreLE32(e + 20, c.length);
    ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
  }
  {
    std::vector<uint8_t> b = valid;
    StoreLE16(b.data() + l.metadata_offset + 10, 0xFFFF);  // EntryCount
    ExpectBoundedMemory([&] { ExpectRefused(OpenStatus(b), ErrorCode::kCorruption); });
  }
}

TEST(HostileTest, VirtualSize64TiBWithTinyBatRegion) {
  std::vector<uint8_t> b = ValidImage();
  Layout l = Parse(b);
  const auto* item = Item(l, format::VirtualDiskSizeGuid());
  ASSERT_NE(item, nullptr);
  StoreLE64(b.data() + l.metadata_offset + item->offset, format::kMaxVirtualDiskSize);
  ExpectBoundedMemory([&] { ExpectRefused(OpenStatus(b), ErrorCode::kCorruption); });
  StoreLE64(b.data() + l.metadata_offset + item->offset, format::kMaxVirtualDiskSize + 512);
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
  StoreLE64(b.data() + l.metadata_offset + item->offset, ~uint64_t{0} - 511);
  ExpectRefused(OpenStatus(b), ErrorCode::kCorruption);
}

TEST(HostileTest, ParentLocatorHugeCountsAndOffsets) {
  format::ParentLocator loc;
  loc.locator_type = format::VhdxParentLocatorTypeGuid();
  loc.Set("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}");
  loc.Set("relative_path", "p.vhdx");
  const std::vector<uint8_t> good = loc.Encode();
  ASSERT_TRUE(format::ParentLocator::Decode(good, 0).ok());
  auto refused = [](const std::vector<uint8_t>& raw) {
    auto r = format::ParentLocator::Decode(raw, 0x300000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kCorruption) << r.status().ToString();
  };
  {
    std::vector<uint8_t> raw = good;
    StoreLE16(raw.data() + 18, 0xFFFF);  // KeyValueCount
    ExpectBoundedMemory([&] { refused(raw); });
  }
  for (size_t field : {0u, 4u}) {        // KeyOffset, ValueOffset of entry 0
    for (uint32_t v : {0xFFFFFFFFu, 0xFFFFFFF0u, 0u, static_cast<uint32_t>(good.size())}) {
      std::vector<uint8_t> raw = good;
      StoreLE32(raw.data() + 20 + field, v);
      refused(raw);
    }
  }
  for (size_t field : {8u, 10u}) {  // KeyLength, ValueLength
    std::vector<uint8_t> raw = good;
    StoreLE16(raw.data() + 20 + field, 0xFFFF);
    refused(raw);
  }
  refused(std::vector<uint8_t>(good.begin(), good.begin() + 19));
}

// ---- chains -------------------------------------------------------------------------------

// Overwrites the parent locator item of the image at `path` with `loc`
// (padded to the item's length, which must be large enough).
void RewriteLocator(const std::string& path, const std::function<void(format::ParentLocator&)>& edit) {
  std::vector<uint8_t> b;
  {
    std::ifstream in(path, std::ios::binary);
    b.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  Layout l = Parse(b);
  const auto* item = Item(l, format::ParentLocatorGuid());
  ASSERT_NE(item, nullptr);
  uint8_t* p = b.data() + l.metadata_offset + item->offset;
  auto loc = format::ParentLocator::Decode({p, item->length}, 0);
  ASSERT_TRUE(loc.ok()) << loc.status().ToString();
  edit(*loc);
  std::vector<uint8_t> enc = loc->Encode();
  ASSERT_LE(enc.size(), item->length);
  std::memset(p, 0, item->length);
  std::memcpy(p, enc.data(), enc.size());
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(b.data()), b.size());
}

void MakeChild(const std::string& parent, const std::string& child) {
  CreateOptions c;
  c.type = DiskType::kDifferencing;
  c.parent_path = parent;
  auto img = Image::Create(child, c);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ASSERT_TRUE((*img)->Close().ok());
}

TEST(HostileTest, ChainWhoseParentIsItself) {
  TempDir dir;
  CreateOptions p;
  p.virtual_size = 8 << 20;
  p.block_size = 1 << 20;
  auto base = Image::Create(dir.Join("p.vhdx"), p);
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE((*base)->Close().ok());
  MakeChild(dir.Join("p.vhdx"), dir.Join("c.vhdx"));
  RewriteLocator(dir.Join("c.vhdx"), [](format::ParentLocator& loc) {
    loc.Set("relative_path", "c.vhdx");
    loc.Erase("absolute_win32_path");
    loc.Erase("volume_path");
  });
  for (bool ignore : {false, true}) {
    OpenOptions o;
    o.ignore_parent_linkage = ignore;
    auto img = Image::Open(dir.Join("c.vhdx"), o);
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.status().code(), ErrorCode::kCorruption) << img.status().ToString();
    EXPECT_NE(img.status().message().find("cycle"), std::string::npos) << img.status().ToString();
  }
}

TEST(HostileTest, ChainWithCycleAtoBtoA) {
  TempDir dir;
  CreateOptions p;
  p.virtual_size = 8 << 20;
  p.block_size = 1 << 20;
  auto base = Image::Create(dir.Join("p.vhdx"), p);
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE((*base)->Close().ok());
  MakeChild(dir.Join("p.vhdx"), dir.Join("a.vhdx"));
  MakeChild(dir.Join("a.vhdx"), dir.Join("b.vhdx"));
  // a's parent becomes b: b -> a -> b.
  RewriteLocator(dir.Join("a.vhdx"), [](format::ParentLocator& loc) {
    loc.Set("relative_path", "b.vhdx");
    loc.Erase("absolute_win32_path");
    loc.Erase("volume_path");
  });
  for (bool ignore : {false, true}) {
    OpenOptions o;
    o.ignore_parent_linkage = ignore;
    auto img = Image::Open(dir.Join("b.vhdx"), o);
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.status().code(), ErrorCode::kCorruption) << img.status().ToString();
    EXPECT_NE(img.status().message().find("cycle"), std::string::npos) << img.status().ToString();
  }
}

TEST(HostileTest, ChainDeeperThanTheLimit) {
  // Creating a child opens its parent's chain, so the limit (64) also stops
  // creation: build two chains of 36 and splice them together by rewriting
  // one locator (the linkage then mismatches, hence ignore_parent_linkage).
  TempDir dir;
  CreateOptions p;
  p.virtual_size = 1 << 20;
  p.block_size = 1 << 20;
  const int kHalf = 35;
  for (const char* name : {"d", "e"}) {
    auto base = Image::Create(dir.Join(std::string(name) + "0.vhdx"), p);
    ASSERT_TRUE(base.ok()) << base.status().ToString();
    ASSERT_TRUE((*base)->Close().ok());
    for (int i = 1; i <= kHalf; ++i) {
      MakeChild(dir.Join(name + std::to_string(i - 1) + ".vhdx"), dir.Join(name + std::to_string(i) + ".vhdx"));
    }
  }
  RewriteLocator(dir.Join("e1.vhdx"), [&](format::ParentLocator& loc) {
    loc.Set("relative_path", "d" + std::to_string(kHalf) + ".vhdx");
    loc.Erase("absolute_win32_path");
    loc.Erase("volume_path");
  });
  OpenOptions o;
  o.ignore_parent_linkage = true;
  auto img = Image::Open(dir.Join("e" + std::to_string(kHalf) + ".vhdx"), o);  // 71 deep
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.status().code(), ErrorCode::kNotSupported) << img.status().ToString().substr(0, 300);
  // A chain within the limit opens.
  auto ok = Image::Open(dir.Join("d" + std::to_string(kHalf) + ".vhdx"));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(HostileTest, ChainWithMissingOrHostileParent) {
  TempDir dir;
  CreateOptions p;
  p.virtual_size = 8 << 20;
  p.block_size = 1 << 20;
  auto base = Image::Create(dir.Join("p.vhdx"), p);
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE((*base)->Close().ok());
  MakeChild(dir.Join("p.vhdx"), dir.Join("c.vhdx"));
  // Parent replaced by garbage.
  std::vector<uint8_t> junk(3 << 20, 0xCC);
  std::memcpy(junk.data(), "vhdxfile", 8);
  std::ofstream(dir.Join("p.vhdx"), std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(junk.data()), junk.size());
  auto img = Image::Open(dir.Join("c.vhdx"));
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.status().code(), ErrorCode::kCorruption) << img.status().ToString();
  // Parent gone.
  std::filesystem::remove(dir.Join("p.vhdx"));
  img = Image::Open(dir.Join("c.vhdx"));
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.status().code(), ErrorCode::kNotFound) << img.status().ToString();
  // A locator path that is absurdly long or points at a directory.
  RewriteLocator(dir.Join("c.vhdx"), [&](format::ParentLocator& loc) { loc.Set("relative_path", "."); });
  img = Image::Open(dir.Join("c.vhdx"));
  ASSERT_FALSE(img.ok());
}

// ---- inputs that crashed a fuzzer --------------------------------------------------------
//
// The raw inputs are kept in tests/data/regressions/<target>/ and replayed by
// scripts/fuzz.sh; each also has a test here that rebuilds it through the
// codec (docs/fuzzing.md "Turning a crash into a regression test").

// fuzz_log_replay/entry-cache-use-after-free: a log whose active sequence
// has several entries. The scan holds the entries of a run while it decodes
// the next one; the cache must keep their addresses stable.
TEST(HostileTest, LogScanWithManyCandidateEntries) {
  std::vector<uint8_t> b = ValidImage();
  Layout l = Parse(b);
  const uint64_t block0 = LoadLE64(b.data() + BatEntryOffset(l, 0)) & format::kBatOffsetMask;
  ASSERT_NE(block0, 0u);
  const Guid guid = Guid::Random();
  std::vector<std::vector<uint8_t>> pages;
  uint32_t at = 0;
  std::fill(b.begin() + l.header.log_offset, b.begin() + l.header.log_offset + l.header.log_length, 0);
  for (int i = 0; i < 5; ++i) {
    pages.emplace_back(4096, static_cast<uint8_t>(0xA0 + i));
    format::LogEntryToWrite e;
    e.sequence_number = 100 + i;
    e.tail = 0;  // the run starts at the first entry
    e.log_guid = guid;
    e.pages.push_back({block0 + 4096 * i, pages.back().data()});
    std::vector<uint8_t> entry = format::EncodeLogEntry(e);
    std::memcpy(b.data() + l.header.log_offset + at, entry.data(), entry.size());
    at += static_cast<uint32_t>(entry.size());
  }
  format::Header h = l.header;
  h.log_guid = guid;
  PutHeaders(b, h);
  for (bool read_only : {true, false}) {
    OpenOptions o;
    o.read_only = read_only;
    auto image = Image::Open(NewMemoryFile(b), o);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ((*image)->Info().log_entries_replayed, 5u);
    std::vector<uint8_t> got(5 * 4096);
    ASSERT_TRUE((*image)->Read(0, got).ok());
    for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i * 4096 + 7], 0xA0 + i) << i;
  }
}

}  // namespace
}  // namespace vhdx
