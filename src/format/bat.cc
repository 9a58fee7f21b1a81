// Geometry derived from the metadata (docs/format.md "Blocks, chunks and
// sector bitmaps", "Counts").
#include "format/bat.h"

#include <algorithm>
#include <string>

#include "format/constants.h"
#include "util/coding.h"

namespace vhdx::format {

Result<Geometry> Geometry::Compute(uint64_t virtual_size, uint32_t block_size, uint32_t logical_sector_size,
                                   bool has_parent) {
  if (!IsPowerOfTwo(block_size) || block_size < kMinBlockSize || block_size > kMaxBlockSize) {
    return Status::Corruption("geometry: block size " + std::to_string(block_size) +
                              " is not a power of two in [1 MiB, 256 MiB]");
  }
  if (logical_sector_size != 512 && logical_sector_size != 4096) {
    return Status::Corruption("geometry: logical sector size " + std::to_string(logical_sector_size) +
                              " is not 512 or 4096");
  }
  if (virtual_size > kMaxVirtualDiskSize) {
    return Status::Corruption("geometry: virtual disk size " + std::to_string(virtual_size) + " exceeds 64 TiB");
  }
  if (virtual_size % logical_sector_size != 0) {
    return Status::Corruption("geometry: virtual disk size " + std::to_string(virtual_size) +
                              " is not a multiple of the logical sector size " +
                              std::to_string(logical_sector_size));
  }
  Geometry g;
  g.virtual_size = virtual_size;
  g.block_size = block_size;
  g.logical_sector_size = logical_sector_size;
  g.has_parent = has_parent;
  // 2^23 * 4096 = 2^35 and block_size >= 2^20: the ratio is in [16, 32768].
  g.chunk_ratio = (kSectorsPerChunk * logical_sector_size) / block_size;
  g.payload_blocks = DivCeil(virtual_size, block_size);
  g.sector_bitmap_blocks = DivCeil(g.payload_blocks, g.chunk_ratio);
  if (has_parent) {
    g.bat_entries = g.sector_bitmap_blocks * (g.chunk_ratio + 1);
  } else if (g.payload_blocks == 0) {
    g.bat_entries = 0;  // the spec formula would give -1
  } else {
    g.bat_entries = g.payload_blocks + (g.payload_blocks - 1) / g.chunk_ratio;
  }
  return g;
}

uint64_t Geometry::BatRegionSize() const {
  // A region must have a non-zero length, so even an empty BAT gets 1 MiB.
  // bat_entries <= 2^27 for any valid geometry: no overflow.
  return std::max<uint64_t>(AlignUp(bat_entries * 8, kObjectAlignment), kObjectAlignment);
}

}  // namespace vhdx::format
