// Trim, write-zeroes, resize and compaction on real (temp) files, checked
// against a flat model of the disk and against the file's allocation.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <random>

#include "support/test_util.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::Pattern;
using test::TempDir;

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

std::unique_ptr<Image> MakeImage(const std::string& path, uint64_t size, uint32_t block, uint32_t lss = 512,
                                 DiskType type = DiskType::kDynamic) {
  CreateOptions o;
  o.virtual_size = size;
  o.block_size = block;
  o.logical_sector_size = lss;
  o.type = type;
  auto img = Image::Create(path, o);
  EXPECT_TRUE(img.ok()) << img.status().ToString();
  return img.ok() ? std::move(*img) : nullptr;
}

std::unique_ptr<Image> Reopen(const std::string& path) {
  OpenOptions o;
  o.read_only = false;
  auto img = Image::Open(path, o);
  EXPECT_TRUE(img.ok()) << img.status().ToString();
  return img.ok() ? std::move(*img) : nullptr;
}

void ExpectContent(Image& img, const std::vector<uint8_t>& model) {
  std::vector<uint8_t> buf(model.size());
  ASSERT_TRUE(img.Read(0, buf).ok());
  for (size_t i = 0; i < model.size(); i += 512) {
    ASSERT_EQ(0, memcmp(buf.data() + i, model.data() + i, 512)) << "sector at byte " << i;
  }
}

TEST(TrimTest, WholeAndPartialBlocksReadZeroAndFreeSpace) {
  TempDir dir;
  const std::string path = dir.Join("t.vhdx");
  const uint64_t size = 64 << 20;
  auto img = MakeImage(path, size, 1 << 20);
  std::vector<uint8_t> model = Pattern(1, size);
  ASSERT_TRUE(img->Write(0, model).ok());
  ASSERT_TRUE(img->Flush().ok());
  const uint64_t before = AllocatedBytes(path);
  // Whole blocks 8..23, a partial range inside block 30, a range spanning 40/41.
  ASSERT_TRUE(img->Trim(8 << 20, 16 << 20).ok());
  ASSERT_TRUE(img->Trim((30 << 20) + 4096, 8192).ok());
  ASSERT_TRUE(img->Trim((41 << 20) - 1024, 2048).ok());
  std::fill(model.begin() + (8 << 20), model.begin() + (24 << 20), 0);
  std::fill(model.begin() + (30 << 20) + 4096, model.begin() + (30 << 20) + 12288, 0);
  std::fill(model.begin() + (41 << 20) - 1024, model.begin() + (41 << 20) + 1024, 0);
  ExpectContent(*img, model);
  // Whole trimmed blocks are released to the host file system at once.
  EXPECT_LE(AllocatedBytes(path), before - (15 << 20));
  ImageInfo info = img->Info();
  EXPECT_EQ(info.blocks.zero, 16u);
  ASSERT_TRUE(img->Close().ok());
  auto again = Reopen(path);
  ExpectContent(*again, model);
  ASSERT_TRUE(again->Close().ok());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST(TrimTest, FreedSpaceIsReusedAfterCommit) {
  TempDir dir;
  const std::string path = dir.Join("t.vhdx");
  auto img = MakeImage(path, 64 << 20, 1 << 20);
  std::vector<uint8_t> data = Pattern(2, 8 << 20);
  ASSERT_TRUE(img->Write(0, data).ok());
  ASSERT_TRUE(img->Trim(0, 8 << 20).ok());
  ASSERT_TRUE(img->Flush().ok());  // the frees become reusable
  ASSERT_TRUE(img->Write(32 << 20, data).ok());
  ASSERT_TRUE(img->Close().ok());
  // Eight blocks' worth of data; the file must not have grown by sixteen.
  EXPECT_LE(FileSize(path), uint64_t{(4 + 1 + 1) << 20} + (8 << 20) + (1 << 20));
}

TEST(WriteZeroesTest, WholeBlocksBecomeZeroPartialAreZeroFilled) {
  TempDir dir;
  const std::string path = dir.Join("z.vhdx");
  const uint64_t size = 16 << 20;
  auto img = MakeImage(path, size, 2 << 20, 4096);
  std::vector<uint8_t> model = Pattern(3, size);
  ASSERT_TRUE(img->Write(0, model).ok());
  ASSERT_TRUE(img->WriteZeroes(2 << 20, 4 << 20).ok());
  ASSERT_TRUE(img->WriteZeroes((9 << 20) + 4096, 4096).ok());
  std::fill(model.begin() + (2 << 20), model.begin() + (6 << 20), 0);
  std::fill(model.begin() + (9 << 20) + 4096, model.begin() + (9 << 20) + 8192, 0);
  ExpectContent(*img, model);
  EXPECT_EQ(img->Info().blocks.zero, 2u);
  ASSERT_TRUE(img->Close().ok());
}

TEST(ResizeTest, GrowInPlaceAndWithBatRelocation) {
  TempDir dir;
  const std::string path = dir.Join("r.vhdx");
  auto img = MakeImage(path, 64 << 20, 1 << 20);
  std::vector<uint8_t> data = Pattern(4, 4 << 20);
  ASSERT_TRUE(img->Write(60 << 20, data).ok());
  ASSERT_TRUE(img->Close().ok());
  img = Reopen(path);
  const ImageInfo before = img->Info();
  const Guid dwg_before = before.headers[before.headers[0].current ? 0 : 1].data_write_guid;
  // 64 MiB -> 1 GiB fits the 1 MiB BAT region; -> 256 GiB needs a 2 MiB one.
  ASSERT_TRUE(img->Resize(1ull << 30).ok());
  ASSERT_TRUE(img->Resize(256ull << 30).ok());
  EXPECT_EQ(img->virtual_size(), 256ull << 30);
  std::vector<uint8_t> buf(4 << 20);
  ASSERT_TRUE(img->Read(60 << 20, buf).ok());
  EXPECT_EQ(buf, data);
  ASSERT_TRUE(img->Write((200ull << 30), std::span<const uint8_t>(data.data(), 1 << 20)).ok());
  ASSERT_TRUE(img->Close().ok());
  auto again = Reopen(path);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->virtual_size(), 256ull << 30);
  ASSERT_TRUE(again->Read(60 << 20, buf).ok());
  EXPECT_EQ(buf, data);
  std::vector<uint8_t> one(1 << 20);
  ASSERT_TRUE(again->Read(200ull << 30, one).ok());
  EXPECT_EQ(0, memcmp(one.data(), data.data(), one.size()));
  const ImageInfo info = again->Info();
  EXPECT_NE(info.headers[info.headers[0].current ? 0 : 1].data_write_guid, dwg_before);
  bool bat_found = false;
  for (const auto& r : info.regions) {
    if (r.name == "BAT") {
      EXPECT_GE(r.length, 2u << 20);
      bat_found = true;
    }
  }
  EXPECT_TRUE(bat_found);
  ASSERT_TRUE(again->Close().ok());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
  if (test::HaveCommand("qemu-img")) {
    EXPECT_EQ(test::Run("qemu-img check -q '" + path + "'"), 0);
  }
}

TEST(ResizeTest, ShrinkRefusesToCutDataUnlessAllowed) {
  TempDir dir;
  const std::string path = dir.Join("s.vhdx");
  auto img = MakeImage(path, 64 << 20, 1 << 20);
  std::vector<uint8_t> data = Pattern(5, 1 << 20);
  ASSERT_TRUE(img->Write(40 << 20, data).ok());
  EXPECT_EQ(img->Info().minimum_size, 41u << 20);
  Status s = img->Resize(32 << 20);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.ToString();
  ASSERT_TRUE(img->Resize(41 << 20).ok());  // keeps the data
  ResizeOptions force;
  force.allow_data_loss = true;
  ASSERT_TRUE(img->Resize((40 << 20) + 4096, force).ok());
  // Growing again must not bring the cut data back.
  ASSERT_TRUE(img->Resize(64 << 20).ok());
  std::vector<uint8_t> buf(1 << 20);
  ASSERT_TRUE(img->Read(40 << 20, buf).ok());
  EXPECT_EQ(0, memcmp(buf.data(), data.data(), 4096));
  for (size_t i = 4096; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0) << i;
  ASSERT_TRUE(img->Close().ok());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
}

TEST(ResizeTest, FixedImageStaysFullyAllocated) {
  TempDir dir;
  const std::string path = dir.Join("f.vhdx");
  auto img = MakeImage(path, 8 << 20, 1 << 20, 512, DiskType::kFixed);
  ASSERT_TRUE(img->Resize(16 << 20).ok());
  EXPECT_EQ(img->Info().blocks.fully_present, 16u);
  ASSERT_TRUE(img->Close().ok());
  EXPECT_GE(AllocatedBytes(path), 16u << 20);
}

TEST(CompactTest, ScatteredGarbageThenDiscardedShrinksToLiveData) {
  TempDir dir;
  const std::string path = dir.Join("c.vhdx");
  const uint32_t block = 1 << 20;
  auto img = MakeImage(path, 256 << 20, block);
  std::mt19937_64 rng(6);
  // Fill 128 blocks, keep every fourth, discard the rest, zero-write a few.
  std::vector<uint8_t> data = Pattern(7, block);
  std::vector<uint8_t> model(256 << 20, 0);
  for (uint64_t b = 0; b < 128; ++b) {
    uint64_t vb = (b * 37) % 256;
    ASSERT_TRUE(img->Write(vb * block, data).ok());
    std::copy(data.begin(), data.end(), model.begin() + vb * block);
  }
  ASSERT_TRUE(img->Flush().ok());
  std::vector<uint8_t> zeros(block, 0);
  uint64_t live = 0;
  for (uint64_t b = 0; b < 128; ++b) {
    uint64_t vb = (b * 37) % 256;
    if (b % 4 == 0) {
      ++live;
      continue;
    }
    if (b % 4 == 1) {
      ASSERT_TRUE(img->Write(vb * block, zeros).ok());  // garbage became zeros: compact detects it
    } else {
      ASSERT_TRUE(img->Trim(vb * block, block).ok());
    }
    std::fill(model.begin() + vb * block, model.begin() + (vb + 1) * block, 0);
  }
  auto result = img->Compact();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->blocks_zeroed, 32u);
  ExpectContent(*img, model);
  ASSERT_TRUE(img->Close().ok());
  // Header section, log, metadata, BAT, then only the live blocks.
  const uint64_t overhead = 4 << 20;
  EXPECT_LE(FileSize(path), overhead + live * block + block);
  EXPECT_LE(AllocatedBytes(path), overhead + live * block + block);
  auto again = Reopen(path);
  ExpectContent(*again, model);
  ASSERT_TRUE(again->Close().ok());
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean());
  if (test::HaveCommand("qemu-img")) {
    EXPECT_EQ(test::Run("qemu-img check -q '" + path + "'"), 0);
  }
}

}  // namespace
}  // namespace vhdx
