// Region table. See docs/format.md ("Region table").
#ifndef VHDX_SRC_FORMAT_REGION_TABLE_H_
#define VHDX_SRC_FORMAT_REGION_TABLE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx::format {

struct RegionTableEntry {
  Guid guid;
  uint64_t file_offset = 0;
  uint32_t length = 0;
  bool required = false;
  bool operator==(const RegionTableEntry&) const = default;
};

struct RegionTable {
  std::vector<RegionTableEntry> entries;

  // Validates signature "regi", CRC-32C over the 64 KiB, EntryCount <= 2047,
  // reserved fields zero, each entry (FileOffset a multiple of 1 MiB and
  // >= 1 MiB, Length a non-zero multiple of 1 MiB, offset+length without
  // overflow, Required only bit 0), GUIDs unique and no two regions
  // overlapping. `raw64k` is exactly 64 KiB.
  static Result<RegionTable> Decode(std::span<const uint8_t> raw64k, uint64_t file_offset);
  // Writes the 64 KiB table with its checksum.
  void EncodeTo(std::span<uint8_t> out64k) const;

  const RegionTableEntry* Find(const Guid& guid) const;
  bool operator==(const RegionTable&) const = default;
};

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_REGION_TABLE_H_
