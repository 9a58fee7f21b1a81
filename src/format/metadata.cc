// Metadata table and the known metadata items (docs/format.md "Metadata
// region").
#include "format/metadata.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"

namespace vhdx::format {
namespace {

constexpr uint8_t kSignature[8] = {'m', 'e', 't', 'a', 'd', 'a', 't', 'a'};
constexpr size_t kReservedOffset = 8;     // u16
constexpr size_t kEntryCountOffset = 10;  // u16
constexpr size_t kReserved2Offset = 12;   // 20 bytes
constexpr size_t kReserved2Size = 20;
constexpr size_t kTableHeaderSize = 32;
constexpr size_t kEntrySize = 32;
// Entry field offsets.
constexpr size_t kEntryItemId = 0;
constexpr size_t kEntryOffset = 16;
constexpr size_t kEntryLength = 20;
constexpr size_t kEntryFlags = 24;
constexpr size_t kEntryReserved = 28;

constexpr uint32_t kFlagIsUser = 1u << 0;
constexpr uint32_t kFlagIsVirtualDisk = 1u << 1;
constexpr uint32_t kFlagIsRequired = 1u << 2;
constexpr uint32_t kFlagsKnown = kFlagIsUser | kFlagIsVirtualDisk | kFlagIsRequired;

// File Parameters flags.
constexpr uint32_t kLeaveBlockAllocated = 1u << 0;
constexpr uint32_t kHasParent = 1u << 1;

constexpr const char* kStruct = "metadata table";

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

std::string EntryField(size_t i, const char* field) { return "entry " + std::to_string(i) + " " + field; }

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

Status Truncated(const char* item, uint64_t file_offset, size_t have, size_t need) {
  return Status::Corruption(item, "Length", file_offset,
                            "item is " + std::to_string(have) + " bytes, need " + std::to_string(need));
}

}  // namespace

Result<MetadataTable> MetadataTable::Decode(std::span<const uint8_t> raw64k, uint64_t region_length,
                                            uint64_t file_offset) {
  if (raw64k.size() < kMetadataTableSize) {
    return Status::Corruption(kStruct, "size", file_offset,
                              "truncated: " + std::to_string(raw64k.size()) + " bytes, need 65536");
  }
  if (region_length < kMetadataTableSize || region_length > kMaxMetadataRegionLength) {
    return Status::Corruption("metadata region", "Length", file_offset,
                              Hex(region_length) + " is outside [64 KiB, 128 MiB]");
  }
  const uint8_t* p = raw64k.data();
  if (std::memcmp(p, kSignature, sizeof kSignature) != 0) {
    return Status::Corruption(kStruct, "Signature", file_offset, "not \"metadata\"");
  }
  if (LoadLE16(p + kReservedOffset) != 0) {
    return Status::Corruption(kStruct, "Reserved", file_offset + kReservedOffset, "not zero");
  }
  const uint16_t count = LoadLE16(p + kEntryCountOffset);
  if (count > kMaxMetadataEntries) {
    return Status::Corruption(kStruct, "EntryCount", file_offset + kEntryCountOffset,
                              std::to_string(count) + " exceeds the maximum of 2047");
  }
  if (!AllZero(p + kReserved2Offset, kReserved2Size)) {
    return Status::Corruption(kStruct, "Reserved2", file_offset + kReserved2Offset, "not zero");
  }

  MetadataTable table;
  table.entries.reserve(count);
  uint32_t user_items = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t at = kTableHeaderSize + i * kEntrySize;
    const uint8_t* e = p + at;
    const uint64_t eo = file_offset + at;
    MetadataTableEntry entry;
    entry.item_id = Guid::FromBytes(std::span<const uint8_t, 16>(e + kEntryItemId, 16));
    entry.offset = LoadLE32(e + kEntryOffset);
    entry.length = LoadLE32(e + kEntryLength);
    const uint32_t flags = LoadLE32(e + kEntryFlags);
    if (entry.item_id.IsZero()) {
      return Status::Corruption(kStruct, EntryField(i, "ItemId"), eo + kEntryItemId, "zero GUID");
    }
    if ((flags & ~kFlagsKnown) != 0) {
      return Status::Corruption(kStruct, EntryField(i, "flags"), eo + kEntryFlags,
                                Hex(flags) + " has reserved bits set");
    }
    if (LoadLE32(e + kEntryReserved) != 0) {
      return Status::Corruption(kStruct, EntryField(i, "Reserved2"), eo + kEntryReserved, "not zero");
    }
    entry.is_user = (flags & kFlagIsUser) != 0;
    entry.is_virtual_disk = (flags & kFlagIsVirtualDisk) != 0;
    entry.is_required = (flags & kFlagIsRequired) != 0;
    if (entry.is_user && entry.is_required) {
      return Status::Corruption(kStruct, EntryField(i, "flags"), eo + kEntryFlags,
                                "user item " + entry.item_id.ToString() + " is marked IsRequired");
    }
    if (entry.is_user && ++user_items > kMaxUserMetadataEntries) {
      return Status::Corruption(kStruct, EntryField(i, "flags"), eo + kEntryFlags,
                                "more than 1024 user items");
    }
    if (entry.length == 0) {
      if (entry.offset != 0) {
        return Status::Corruption(kStruct, EntryField(i, "Offset"), eo + kEntryOffset,
                                  Hex(entry.offset) + " with Length 0 (must be 0)");
      }
    } else {
      if (entry.offset < kMetadataTableSize) {
        return Status::Corruption(kStruct, EntryField(i, "Offset"), eo + kEntryOffset,
                                  Hex(entry.offset) + " lies inside the 64 KiB table");
      }
      if (entry.length > kMaxMetadataItemSize) {
        return Status::Corruption(kStruct, EntryField(i, "Length"), eo + kEntryLength,
                                  Hex(entry.length) + " exceeds 1 MiB");
      }
      // Both are u32, so the sum cannot overflow u64.
      if (uint64_t{entry.offset} + entry.length > region_length) {
        return Status::Corruption(kStruct, EntryField(i, "Length"), eo + kEntryLength,
                                  "item [" + Hex(entry.offset) + ", +" + Hex(entry.length) +
                                      ") ends beyond the region length " + Hex(region_length));
      }
    }
    for (size_t j = 0; j < table.entries.size(); ++j) {
      if (table.entries[j].item_id == entry.item_id && table.entries[j].is_user == entry.is_user) {
        return Status::Corruption(kStruct, EntryField(i, "ItemId"), eo + kEntryItemId,
                                  entry.item_id.ToString() + " repeats entry " + std::to_string(j));
      }
    }
    table.entries.push_back(entry);
  }

  // Items of non-zero length must not overlap.
  std::vector<size_t> order;
  order.reserve(table.entries.size());
  for (size_t i = 0; i < table.entries.size(); ++i) {
    if (table.entries[i].length != 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return table.entries[a].offset < table.entries[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const MetadataTableEntry& prev = table.entries[order[k - 1]];
    const MetadataTableEntry& cur = table.entries[order[k]];
    if (uint64_t{prev.offset} + prev.length > cur.offset) {
      const size_t i = std::max(order[k - 1], order[k]);
      return Status::Corruption(kStruct, EntryField(i, "Offset"),
                                file_offset + kTableHeaderSize + i * kEntrySize + kEntryOffset,
                                "item at " + Hex(cur.offset) + " overlaps item at " + Hex(prev.offset));
    }
  }
  return table;
}

void MetadataTable::EncodeTo(std::span<uint8_t> out64k) const {
  uint8_t* p = out64k.data();
  std::memset(p, 0, kMetadataTableSize);
  std::memcpy(p, kSignature, sizeof kSignature);
  const size_t count = std::min<size_t>(entries.size(), kMaxMetadataEntries);
  StoreLE16(p + kEntryCountOffset, static_cast<uint16_t>(count));
  for (size_t i = 0; i < count; ++i) {
    uint8_t* e = p + kTableHeaderSize + i * kEntrySize;
    const MetadataTableEntry& entry = entries[i];
    entry.item_id.ToBytes(std::span<uint8_t, 16>(e + kEntryItemId, 16));
    StoreLE32(e + kEntryOffset, entry.offset);
    StoreLE32(e + kEntryLength, entry.length);
    uint32_t flags = 0;
    if (entry.is_user) flags |= kFlagIsUser;
    if (entry.is_virtual_disk) flags |= kFlagIsVirtualDisk;
    if (entry.is_required) flags |= kFlagIsRequired;
    StoreLE32(e + kEntryFlags, flags);
  }
}

const MetadataTableEntry* MetadataTable::FindSystem(const Guid& id) const {
  for (const MetadataTableEntry& e : entries) {
    if (!e.is_user && e.item_id == id) return &e;
  }
  return nullptr;
}

Result<FileParameters> FileParameters::Decode(std::span<const uint8_t> raw, uint64_t file_offset) {
  constexpr const char* kItem = "File Parameters";
  if (raw.size() < 8) return Truncated(kItem, file_offset, raw.size(), 8);
  FileParameters fp;
  fp.block_size = LoadLE32(raw.data());
  const uint32_t flags = LoadLE32(raw.data() + 4);
  if (!IsPowerOfTwo(fp.block_size) || fp.block_size < kMinBlockSize || fp.block_size > kMaxBlockSize) {
    return Status::Corruption(kItem, "BlockSize", file_offset,
                              Hex(fp.block_size) + " is not a power of two in [1 MiB, 256 MiB]");
  }
  if ((flags & ~(kLeaveBlockAllocated | kHasParent)) != 0) {
    return Status::Corruption(kItem, "flags", file_offset + 4, Hex(flags) + " has reserved bits set");
  }
  fp.leave_block_allocated = (flags & kLeaveBlockAllocated) != 0;
  fp.has_parent = (flags & kHasParent) != 0;
  return fp;
}

void FileParameters::EncodeTo(std::span<uint8_t> out8) const {
  uint32_t flags = 0;
  if (leave_block_allocated) flags |= kLeaveBlockAllocated;
  if (has_parent) flags |= kHasParent;
  StoreLE32(out8.data(), block_size);
  StoreLE32(out8.data() + 4, flags);
}

Result<uint64_t> DecodeVirtualDiskSize(std::span<const uint8_t> raw, uint64_t file_offset) {
  constexpr const char* kItem = "Virtual Disk Size";
  if (raw.size() < 8) return Truncated(kItem, file_offset, raw.size(), 8);
  const uint64_t size = LoadLE64(raw.data());
  if (size > kMaxVirtualDiskSize) {
    return Status::Corruption(kItem, "VirtualDiskSize", file_offset, Hex(size) + " exceeds 64 TiB");
  }
  return size;
}

Result<uint32_t> DecodeSectorSize(std::span<const uint8_t> raw, uint64_t file_offset, const char* item_name) {
  if (raw.size() < 4) return Truncated(item_name, file_offset, raw.size(), 4);
  const uint32_t size = LoadLE32(raw.data());
  if (size != 512 && size != 4096) {
    return Status::Corruption(item_name, "SectorSize", file_offset, std::to_string(size) + " is not 512 or 4096");
  }
  return size;
}

Result<Guid> DecodeVirtualDiskId(std::span<const uint8_t> raw, uint64_t file_offset) {
  if (raw.size() < 16) return Truncated("Virtual Disk ID", file_offset, raw.size(), 16);
  return Guid::FromBytes(std::span<const uint8_t, 16>(raw.data(), 16));
}

}  // namespace vhdx::format
