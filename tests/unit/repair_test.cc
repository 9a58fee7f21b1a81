// `check --repair`: damaged copies are rewritten from the good ones, bad BAT
// entries are dropped with the lost guest ranges reported, a dirty log is
// replayed, and what cannot be fixed is reported as such.
#include <gtest/gtest.h>

#include <fstream>

#include "format/bat.h"
#include "format/constants.h"
#include "support/test_util.h"
#include "util/coding.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::TempDir;

// Creates a 64 MiB dynamic image with 1 MiB blocks and data in blocks 0..3.
std::string MakeImage(const TempDir& dir) {
  std::string path = dir.Join("r.vhdx");
  CreateOptions o;
  o.virtual_size = 64 << 20;
  o.block_size = 1 << 20;
  auto img = Image::Create(path, o);
  EXPECT_TRUE(img.ok());
  std::vector<uint8_t> data = test::Pattern(11, 4 << 20);
  EXPECT_TRUE((*img)->Write(0, data).ok());
  EXPECT_TRUE((*img)->Close().ok());
  return path;
}

void Poke(const std::string& path, uint64_t offset, const std::vector<uint8_t>& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> Peek(const std::string& path, uint64_t offset, size_t n) {
  std::ifstream f(path, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  std::vector<uint8_t> out(n);
  f.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n));
  return out;
}

uint64_t BatOffset(const std::string& path) {
  auto img = Image::Open(path);
  for (const auto& r : (*img)->Info().regions) {
    if (r.name == "BAT") return r.file_offset;
  }
  return 0;
}

TEST(RepairTest, CleanImageNeedsNothing) {
  TempDir dir;
  std::string path = MakeImage(dir);
  CheckOptions repair;
  repair.repair = true;
  auto report = CheckImage(path, repair);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->problems.empty());
}

TEST(RepairTest, DamagedHeaderAndRegionTableCopiesAreRewritten) {
  TempDir dir;
  std::string path = MakeImage(dir);
  Poke(path, format::kHeader1Offset + 100, {0xde, 0xad});
  Poke(path, format::kRegionTable2Offset + 8, {0x55});
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->problems.empty());
  CheckOptions repair;
  repair.repair = true;
  auto fixed = CheckImage(path, repair);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->errors(), 0u);
  for (const auto& p : fixed->problems) EXPECT_TRUE(p.repaired) << p.structure << ": " << p.message;
  auto after = CheckImage(path);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->problems.empty()) << after->problems.size();
  EXPECT_EQ(Peek(path, format::kRegionTable1Offset, 65536), Peek(path, format::kRegionTable2Offset, 65536));
}

TEST(RepairTest, BatEntryPastEndOfFileBecomesZeroAndIsReported) {
  TempDir dir;
  std::string path = MakeImage(dir);
  const uint64_t bat = BatOffset(path);
  ASSERT_NE(bat, 0u);
  // Block 2 now points 1 TiB into a file of a few MiB.
  std::vector<uint8_t> raw(8);
  StoreLE64(raw.data(), format::BatEntry{format::kPayloadFullyPresent, 1ull << 40}.Encode());
  Poke(path, bat + 2 * 8, raw);
  EXPECT_FALSE(Image::Open(path).ok());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_GT(report->errors(), 0u);
  CheckOptions repair;
  repair.repair = true;
  auto fixed = CheckImage(path, repair);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->errors(), 0u);
  ASSERT_EQ(fixed->lost_ranges.size(), 1u);
  EXPECT_EQ(fixed->lost_ranges[0].first, 2u << 20);
  EXPECT_EQ(fixed->lost_ranges[0].second, 1u << 20);
  auto img = Image::Open(path);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  std::vector<uint8_t> buf(1 << 20);
  ASSERT_TRUE((*img)->Read(2 << 20, buf).ok());
  for (uint8_t b : buf) ASSERT_EQ(b, 0);
  std::vector<uint8_t> data = test::Pattern(11, 4 << 20);
  ASSERT_TRUE((*img)->Read(3 << 20, buf).ok());
  EXPECT_EQ(0, memcmp(buf.data(), data.data() + (3 << 20), buf.size()));
}

TEST(RepairTest, DirtyLogIsReplayed) {
  if (!test::SamplesAvailable()) GTEST_SKIP();
  TempDir dir;
  std::string path = test::DecompressSample("iotest-dirtylog-10G-4M.vhdx", dir.path());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->log_was_dirty);
  EXPECT_FALSE(report->clean());
  CheckOptions repair;
  repair.repair = true;
  auto fixed = CheckImage(path, repair);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(fixed->clean());
  auto after = CheckImage(path);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->log_was_dirty);
  EXPECT_TRUE(after->problems.empty());
}

TEST(RepairTest, UnfixableDamageIsReported) {
  TempDir dir;
  std::string path = MakeImage(dir);
  // Both headers destroyed: nothing to rebuild them from.
  Poke(path, format::kHeader1Offset, {0, 0, 0, 0});
  Poke(path, format::kHeader2Offset, {0, 0, 0, 0});
  CheckOptions repair;
  repair.repair = true;
  auto fixed = CheckImage(path, repair);
  ASSERT_TRUE(fixed.ok());
  EXPECT_GT(fixed->errors(), 0u);
}

}  // namespace
}  // namespace vhdx
