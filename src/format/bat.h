// BAT entries and the geometry derived from the metadata. See
// docs/format.md ("BAT", "Blocks, chunks and sector bitmaps").
#ifndef VHDX_SRC_FORMAT_BAT_H_
#define VHDX_SRC_FORMAT_BAT_H_

#include <cstdint>

#include "vhdx/status.h"

namespace vhdx::format {

// Payload block states (bits 0-2 of a BAT entry).
enum PayloadState : uint8_t {
  kPayloadNotPresent = 0,
  kPayloadUndefined = 1,
  kPayloadZero = 2,
  kPayloadUnmapped = 3,
  kPayloadFullyPresent = 6,
  kPayloadPartiallyPresent = 7,
};
// Sector-bitmap entry states.
enum SectorBitmapState : uint8_t {
  kSbNotPresent = 0,
  kSbPresent = 6,
};

constexpr uint64_t kBatStateMask = 0x7;
constexpr uint64_t kBatReservedMask = 0xFFFF8;  // bits 3-19
constexpr uint64_t kBatOffsetMask = 0xFFFFFFFFFFF00000ULL;

struct BatEntry {
  uint8_t state = 0;
  uint64_t file_offset = 0;  // bytes (FileOffsetMB << 20)

  static BatEntry Decode(uint64_t raw) {
    return BatEntry{static_cast<uint8_t>(raw & kBatStateMask), raw & kBatOffsetMask};
  }
  static bool ReservedBitsClear(uint64_t raw) { return (raw & kBatReservedMask) == 0; }
  // file_offset must be a multiple of 1 MiB.
  uint64_t Encode() const { return (file_offset & kBatOffsetMask) | state; }
};

// Everything derived from FileParameters, VirtualDiskSize and the sector
// size (docs/format.md "Counts").
struct Geometry {
  uint64_t virtual_size = 0;
  uint32_t block_size = 0;
  uint32_t logical_sector_size = 0;
  bool has_parent = false;
  uint64_t chunk_ratio = 0;          // payload blocks per sector bitmap block
  uint64_t payload_blocks = 0;
  uint64_t sector_bitmap_blocks = 0;
  uint64_t bat_entries = 0;          // TotalBATEntries

  // Validates the combination (block size power of two in range, sector
  // size 512/4096, size a multiple of the sector size and <= 64 TiB);
  // failures are Corruption (the values come from the metadata region).
  static Result<Geometry> Compute(uint64_t virtual_size, uint32_t block_size, uint32_t logical_sector_size,
                                  bool has_parent);

  uint64_t BatIndexOfBlock(uint64_t block) const { return block + block / chunk_ratio; }
  uint64_t BatIndexOfSectorBitmap(uint64_t chunk) const { return chunk * (chunk_ratio + 1) + chunk_ratio; }
  bool IsSectorBitmapIndex(uint64_t bat_index) const { return bat_index % (chunk_ratio + 1) == chunk_ratio; }
  uint64_t SectorsPerBlock() const { return block_size / logical_sector_size; }
  // BAT bytes rounded up to 1 MiB: the BAT region size a writer allocates
  // (at least 1 MiB, also for a zero-size disk: a region is never empty).
  uint64_t BatRegionSize() const;
};

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_BAT_H_
