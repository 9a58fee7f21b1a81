// The four real images in shared/samples read back exactly as their README
// says, including the dirty-log sample opened read-only (replayed in memory,
// file untouched) and read-write (replayed on disk).
#include <gtest/gtest.h>

#include "support/test_util.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::DecompressSample;
using test::Sha256OfFile;
using test::Sha256OfImage;
using test::TempDir;

struct SampleCase {
  const char* name;
  uint64_t virtual_size;
  uint32_t block_size;
  uint32_t lss, pss;
  const char* content_sha256;
};

class SampleTest : public ::testing::TestWithParam<SampleCase> {};

TEST_P(SampleTest, ContentDigestMatches) {
  if (!test::SamplesAvailable()) GTEST_SKIP() << "shared/samples not found";
  const SampleCase& c = GetParam();
  TempDir dir;
  std::string path = DecompressSample(c.name, dir.path());
  std::string before = Sha256OfFile(path);
  auto image = Image::Open(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ((*image)->virtual_size(), c.virtual_size);
  EXPECT_EQ((*image)->block_size(), c.block_size);
  EXPECT_EQ((*image)->logical_sector_size(), c.lss);
  EXPECT_EQ((*image)->physical_sector_size(), c.pss);
  EXPECT_EQ(Sha256OfImage(**image), c.content_sha256);
  ASSERT_TRUE((*image)->Close().ok());
  // A read-only open never changes the file.
  EXPECT_EQ(Sha256OfFile(path), before);
}

INSTANTIATE_TEST_SUITE_P(
    Samples, SampleTest,
    ::testing::Values(
        SampleCase{"iotest-dirtylog-10G-4M.vhdx", 10ull << 30, 1 << 20, 512, 512,
                   "179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f"},
        SampleCase{"iotest-dynamic-1G.vhdx", 1ull << 30, 32 << 20, 512, 4096,
                   "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478"},
        SampleCase{"test-disk2vhd.vhdx", 256ull << 20, 2 << 20, 512, 512,
                   "96d964042be9b58dda1725567abfb0cf9fd8380e2118754afa979c2ad445938a"},
        SampleCase{"coreos-hyperv-config2_base.vhdx", 100ull << 20, 32 << 20, 512, 4096,
                   "afce9cca367ebfa91a673d612bcb6fc32b12a80211207f7a7b1cd3aed3cac19d"}),
    [](const auto& param_info) {
      std::string n = param_info.param.name;
      for (char& ch : n) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

TEST(DirtyLogSample, ReadOnlyOpenReplaysInMemory) {
  if (!test::SamplesAvailable()) GTEST_SKIP();
  TempDir dir;
  std::string path = DecompressSample("iotest-dirtylog-10G-4M.vhdx", dir.path());
  auto image = Image::Open(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ImageInfo info = (*image)->Info();
  EXPECT_EQ(info.log_state, LogState::kReplayedInMemory);
  EXPECT_EQ(info.log_entries_replayed, 1u);
  // Block 17 (17-18 MiB) holds 0xa5 only after replay.
  std::vector<uint8_t> buf(1 << 20);
  ASSERT_TRUE((*image)->Read(17 << 20, buf).ok());
  for (uint8_t b : buf) ASSERT_EQ(b, 0xa5);
  ASSERT_TRUE((*image)->Read(18 << 20, buf).ok());
  for (uint8_t b : buf) ASSERT_EQ(b, 0);
  ASSERT_TRUE((*image)->Close().ok());
  EXPECT_EQ(Sha256OfFile(path), "511daba998dba208ffc57a7814194d5dd3afb7c314731b904ff1682e3fb4951a");
}

TEST(DirtyLogSample, ReadWriteOpenReplaysOnDisk) {
  if (!test::SamplesAvailable()) GTEST_SKIP();
  TempDir dir;
  std::string path = DecompressSample("iotest-dirtylog-10G-4M.vhdx", dir.path());
  {
    OpenOptions rw;
    rw.read_only = false;
    auto image = Image::Open(path, rw);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    EXPECT_EQ((*image)->Info().log_state, LogState::kReplayed);
    ASSERT_TRUE((*image)->Close().ok());
  }
  auto image = Image::Open(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ImageInfo info = (*image)->Info();
  EXPECT_EQ(info.log_state, LogState::kClean);
  for (const auto& h : info.headers) EXPECT_TRUE(h.log_guid.IsZero());
  EXPECT_EQ(info.blocks.fully_present, 18u);
  EXPECT_EQ(Sha256OfImage(**image), "179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f");
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST(Disk2VhdSample, EqualHeaderSequenceNumbersAccepted) {
  if (!test::SamplesAvailable()) GTEST_SKIP();
  TempDir dir;
  std::string path = DecompressSample("test-disk2vhd.vhdx", dir.path());
  auto image = Image::Open(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ImageInfo info = (*image)->Info();
  EXPECT_EQ(info.headers[0].sequence_number, info.headers[1].sequence_number);
  EXPECT_TRUE(info.headers[0].current);
  EXPECT_EQ(info.creator, "d2v");
  EXPECT_EQ(info.blocks.fully_present, 128u);
}

TEST(CoreosSample, MixedBlockStates) {
  if (!test::SamplesAvailable()) GTEST_SKIP();
  TempDir dir;
  std::string path = DecompressSample("coreos-hyperv-config2_base.vhdx", dir.path());
  auto image = Image::Open(path);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  ImageInfo info = (*image)->Info();
  EXPECT_EQ(info.blocks.fully_present, 1u);
  EXPECT_EQ(info.blocks.not_present, 1u);
  EXPECT_EQ(info.blocks.zero, 2u);
  auto map = (*image)->Map(0, (*image)->virtual_size());
  ASSERT_TRUE(map.ok());
  ASSERT_GE(map->size(), 2u);
  EXPECT_EQ((*map)[0].kind, Extent::Kind::kData);
  EXPECT_EQ((*map)[0].length, 32u << 20);
}

}  // namespace
}  // namespace vhdx
