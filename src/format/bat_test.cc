#include "format/bat.h"

#include <gtest/gtest.h>

#include "format/constants.h"
#include "util/coding.h"

namespace vhdx::format {
namespace {

struct GeometryRow {
  uint64_t size;
  uint32_t block;
  uint32_t lss;
  uint64_t chunk_ratio;
  uint64_t payload_blocks;
  uint64_t sb_blocks;
  uint64_t entries_dynamic;
  uint64_t entries_diff;
};

// docs/format.md "Counts" (the worked checks of the reference sheet).
const GeometryRow kRows[] = {
    {1 * kGiB, 32 << 20, 512, 128, 32, 1, 32, 129},
    {10 * kGiB, 1 << 20, 512, 4096, 10240, 3, 10242, 12291},
    {256 * kMiB, 2 << 20, 512, 2048, 128, 1, 128, 2049},
    {100 * kMiB, 32 << 20, 512, 128, 4, 1, 4, 129},
    {64 * kTiB, 1 << 20, 512, 4096, 67108864, 16384, 67125247, 67125248},
    {64 * kTiB, 1 << 20, 4096, 32768, 67108864, 2048, 67110911, 67110912},
};

TEST(GeometryTest, WorkedChecks) {
  for (const GeometryRow& row : kRows) {
    for (bool diff : {false, true}) {
      Result<Geometry> g = Geometry::Compute(row.size, row.block, row.lss, diff);
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      EXPECT_EQ(g->virtual_size, row.size);
      EXPECT_EQ(g->block_size, row.block);
      EXPECT_EQ(g->logical_sector_size, row.lss);
      EXPECT_EQ(g->has_parent, diff);
      EXPECT_EQ(g->chunk_ratio, row.chunk_ratio) << row.size;
      EXPECT_EQ(g->payload_blocks, row.payload_blocks) << row.size;
      EXPECT_EQ(g->sector_bitmap_blocks, row.sb_blocks) << row.size;
      EXPECT_EQ(g->bat_entries, diff ? row.entries_diff : row.entries_dynamic) << row.size;
    }
  }
}

TEST(GeometryTest, ChunkRatioTable) {
  uint64_t expect512 = 4096;
  for (uint32_t bs = kMinBlockSize; bs <= kMaxBlockSize; bs <<= 1, expect512 /= 2) {
    EXPECT_EQ(Geometry::Compute(kGiB, bs, 512, false)->chunk_ratio, expect512);
    EXPECT_EQ(Geometry::Compute(kGiB, bs, 4096, false)->chunk_ratio, expect512 * 8);
  }
}

TEST(GeometryTest, BatRegionSize) {
  // 64 TiB with 1 MiB blocks: 512.1 MiB of entries -> 513 MiB region.
  EXPECT_EQ(Geometry::Compute(64 * kTiB, 1 << 20, 512, false)->BatRegionSize(), 513 * kMiB);
  EXPECT_EQ(Geometry::Compute(kGiB, 32 << 20, 512, false)->BatRegionSize(), 1 * kMiB);
  // 131041 blocks of 1 MiB need 131041 + 31 SB entries = exactly 1 MiB.
  Result<Geometry> g = Geometry::Compute(131041 * kMiB, 1 << 20, 512, false);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->bat_entries, 131072u);
  EXPECT_EQ(g->BatRegionSize(), 1 * kMiB);
  EXPECT_EQ(Geometry::Compute(131042 * kMiB, 1 << 20, 512, false)->BatRegionSize(), 2 * kMiB);
}

TEST(GeometryTest, ZeroVirtualSize) {
  for (bool diff : {false, true}) {
    Result<Geometry> g = Geometry::Compute(0, 8 << 20, 512, diff);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->payload_blocks, 0u);
    EXPECT_EQ(g->sector_bitmap_blocks, 0u);
    EXPECT_EQ(g->bat_entries, 0u);
    EXPECT_EQ(g->BatRegionSize(), 1 * kMiB);  // a region is never empty
  }
}

TEST(GeometryTest, PartialLastBlockAndChunk) {
  Result<Geometry> g = Geometry::Compute(4 * kGiB + 512, 1 << 20, 512, false);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->payload_blocks, 4097u);
  EXPECT_EQ(g->sector_bitmap_blocks, 2u);
  EXPECT_EQ(g->bat_entries, 4097u + 1);  // one SB entry between the chunks
  Result<Geometry> d = Geometry::Compute(4 * kGiB + 512, 1 << 20, 512, true);
  EXPECT_EQ(d->bat_entries, 2u * 4097);
}

TEST(GeometryTest, RejectsInvalidCombinations) {
  EXPECT_FALSE(Geometry::Compute(kGiB, 0, 512, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB, 512 << 10, 512, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB, 3 << 20, 512, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB, 512u << 20, 512, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB, 1 << 20, 1024, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB, 1 << 20, 0, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB + 512, 1 << 20, 4096, false).ok());
  EXPECT_FALSE(Geometry::Compute(kGiB + 1, 1 << 20, 512, false).ok());
  EXPECT_FALSE(Geometry::Compute(64 * kTiB + 512, 1 << 20, 512, false).ok());
  EXPECT_FALSE(Geometry::Compute(~uint64_t{0} - 511, 1 << 20, 512, false).ok());
  Result<Geometry> g = Geometry::Compute(kGiB + 1, 1 << 20, 512, false);
  EXPECT_EQ(g.status().code(), ErrorCode::kCorruption);
}

TEST(GeometryTest, BatIndexes) {
  Geometry g = *Geometry::Compute(10 * kGiB, 1 << 20, 512, false);
  EXPECT_EQ(g.BatIndexOfBlock(0), 0u);
  EXPECT_EQ(g.BatIndexOfBlock(4095), 4095u);
  EXPECT_EQ(g.BatIndexOfSectorBitmap(0), 4096u);
  EXPECT_EQ(g.BatIndexOfBlock(4096), 4097u);
  EXPECT_EQ(g.BatIndexOfSectorBitmap(1), 8193u);
  EXPECT_EQ(g.BatIndexOfBlock(8192), 8194u);
  EXPECT_EQ(g.BatIndexOfBlock(10239), 10241u);  // the last dynamic entry
  EXPECT_TRUE(g.IsSectorBitmapIndex(4096));
  EXPECT_TRUE(g.IsSectorBitmapIndex(8193));
  EXPECT_FALSE(g.IsSectorBitmapIndex(4095));
  EXPECT_FALSE(g.IsSectorBitmapIndex(4097));
  EXPECT_EQ(g.SectorsPerBlock(), 2048u);
  // Every block maps to a distinct non-SB index below bat_entries.
  for (uint64_t b = 0; b < g.payload_blocks; ++b) {
    uint64_t i = g.BatIndexOfBlock(b);
    ASSERT_LT(i, g.bat_entries);
    ASSERT_FALSE(g.IsSectorBitmapIndex(i));
  }
}

TEST(BatEntryTest, EncodeDecode) {
  BatEntry e = BatEntry::Decode(0x0000000002400006ull);
  EXPECT_EQ(e.state, kPayloadFullyPresent);
  EXPECT_EQ(e.file_offset, 0x2400000u);
  EXPECT_EQ(e.Encode(), 0x0000000002400006ull);
  EXPECT_EQ(BatEntry::Decode(0x2).state, kPayloadZero);
  EXPECT_EQ(BatEntry::Decode(0x2).file_offset, 0u);
  EXPECT_EQ((BatEntry{kPayloadPartiallyPresent, 0xFFFFFFFFFFF00000ull}).Encode(), 0xFFFFFFFFFFF00007ull);
  EXPECT_TRUE(BatEntry::ReservedBitsClear(0x1D00006));
  EXPECT_FALSE(BatEntry::ReservedBitsClear(0x1D00006 | (1 << 3)));
  EXPECT_FALSE(BatEntry::ReservedBitsClear(0x1D00006 | (1 << 19)));
  EXPECT_TRUE(BatEntry::ReservedBitsClear(0x1D00006 | (1 << 20)));
  // States 4 and 5 decode as numbers; the image layer decides what they mean.
  EXPECT_EQ(BatEntry::Decode(0x5).state, 5);
}

}  // namespace
}  // namespace vhdx::format
