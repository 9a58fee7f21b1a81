// Metadata region: the table and every known item. See docs/format.md
// ("Metadata region").
#ifndef VHDX_SRC_FORMAT_METADATA_H_
#define VHDX_SRC_FORMAT_METADATA_H_

#include <cstdint>
#include <span>
#include <vector>

#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx::format {

struct MetadataTableEntry {
  Guid item_id;
  uint32_t offset = 0;  // from the start of the metadata region
  uint32_t length = 0;
  bool is_user = false;
  bool is_virtual_disk = false;
  bool is_required = false;
  bool operator==(const MetadataTableEntry&) const = default;
};

struct MetadataTable {
  std::vector<MetadataTableEntry> entries;

  // `raw64k` is the first 64 KiB of the metadata region, whose total length
  // is `region_length`; `file_offset` is the region's offset (messages).
  // Validates region_length in [64 KiB, kMaxMetadataRegionLength],
  // signature "metadata", reserved fields, EntryCount <= 2047,
  // at most 1024 user items, (ItemId, IsUser) unique, ItemId non-zero, flag
  // reserved bits zero, user items not required, every item of non-zero
  // length at offset >= 64 KiB, at most 1 MiB long and inside the region,
  // Length 0 only with Offset 0, and no two items overlapping.
  static Result<MetadataTable> Decode(std::span<const uint8_t> raw64k, uint64_t region_length,
                                      uint64_t file_offset);
  void EncodeTo(std::span<uint8_t> out64k) const;

  // The system (IsUser = 0) item with this id, or null.
  const MetadataTableEntry* FindSystem(const Guid& id) const;
};

struct FileParameters {
  uint32_t block_size = 0;
  bool leave_block_allocated = false;
  bool has_parent = false;

  // 8 bytes. BlockSize a power of two in [1 MiB, 256 MiB]; reserved flag
  // bits zero.
  static Result<FileParameters> Decode(std::span<const uint8_t> raw, uint64_t file_offset);
  void EncodeTo(std::span<uint8_t> out8) const;
};

// Item decoders take the item bytes (at least the size named; extra bytes
// are ignored) and return Corruption naming the item.
// 8 bytes; non-zero multiple of `logical_sector_size` is checked by the
// caller once the sector size is known; here: <= 64 TiB.
Result<uint64_t> DecodeVirtualDiskSize(std::span<const uint8_t> raw, uint64_t file_offset);
// 4 bytes; 512 or 4096 (used for both logical and physical sector size).
Result<uint32_t> DecodeSectorSize(std::span<const uint8_t> raw, uint64_t file_offset, const char* item_name);
// 16 bytes.
Result<Guid> DecodeVirtualDiskId(std::span<const uint8_t> raw, uint64_t file_offset);

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_METADATA_H_
