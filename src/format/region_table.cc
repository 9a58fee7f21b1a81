// Region table (docs/format.md "Region table").
#include "format/region_table.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace vhdx::format {
namespace {

constexpr uint8_t kSignature[4] = {'r', 'e', 'g', 'i'};
constexpr size_t kChecksumOffset = 4;
constexpr size_t kEntryCountOffset = 8;
constexpr size_t kReservedOffset = 12;
constexpr size_t kTableHeaderSize = 16;
constexpr size_t kEntrySize = 32;
// Entry field offsets.
constexpr size_t kEntryGuid = 0;
constexpr size_t kEntryFileOffset = 16;
constexpr size_t kEntryLength = 24;
constexpr size_t kEntryRequired = 28;

constexpr const char* kStruct = "region table";

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

std::string EntryField(size_t i, const char* field) { return "entry " + std::to_string(i) + " " + field; }

}  // namespace

Result<RegionTable> RegionTable::Decode(std::span<const uint8_t> raw64k, uint64_t file_offset) {
  if (raw64k.size() < kRegionTableSize) {
    return Status::Corruption(kStruct, "size", file_offset,
                              "truncated: " + std::to_string(raw64k.size()) + " bytes, need 65536");
  }
  const uint8_t* p = raw64k.data();
  if (std::memcmp(p, kSignature, sizeof kSignature) != 0) {
    return Status::Corruption(kStruct, "Signature", file_offset, "not \"regi\"");
  }
  const uint32_t stored = LoadLE32(p + kChecksumOffset);
  const uint32_t computed = crc32c::ValueWithZeroedField(p, kRegionTableSize, kChecksumOffset);
  if (stored != computed) {
    return Status::Corruption(kStruct, "Checksum", file_offset + kChecksumOffset,
                              "stored " + Hex(stored) + ", computed " + Hex(computed));
  }
  const uint32_t count = LoadLE32(p + kEntryCountOffset);
  if (count > kMaxRegionEntries) {
    return Status::Corruption(kStruct, "EntryCount", file_offset + kEntryCountOffset,
                              std::to_string(count) + " exceeds the maximum of 2047");
  }
  if (LoadLE32(p + kReservedOffset) != 0) {
    return Status::Corruption(kStruct, "Reserved", file_offset + kReservedOffset, "not zero");
  }

  RegionTable table;
  table.entries.reserve(count);  // bounded by 2047 above
  for (size_t i = 0; i < count; ++i) {
    const size_t at = kTableHeaderSize + i * kEntrySize;
    const uint8_t* e = p + at;
    const uint64_t entry_offset = file_offset + at;
    RegionTableEntry entry;
    entry.guid = Guid::FromBytes(std::span<const uint8_t, 16>(e + kEntryGuid, 16));
    entry.file_offset = LoadLE64(e + kEntryFileOffset);
    entry.length = LoadLE32(e + kEntryLength);
    const uint32_t required = LoadLE32(e + kEntryRequired);
    if (entry.file_offset % kObjectAlignment != 0 || entry.file_offset < kHeaderSectionSize) {
      return Status::Corruption(kStruct, EntryField(i, "FileOffset"), entry_offset + kEntryFileOffset,
                                Hex(entry.file_offset) + " is not a multiple of 1 MiB at or after 1 MiB");
    }
    if (entry.length == 0 || entry.length % kObjectAlignment != 0) {
      return Status::Corruption(kStruct, EntryField(i, "Length"), entry_offset + kEntryLength,
                                Hex(entry.length) + " is not a non-zero multiple of 1 MiB");
    }
    uint64_t end;
    if (!CheckedAdd(entry.file_offset, entry.length, &end)) {
      return Status::Corruption(kStruct, EntryField(i, "Length"), entry_offset + kEntryLength,
                                "FileOffset + Length overflows");
    }
    if ((required & ~uint32_t{1}) != 0) {
      return Status::Corruption(kStruct, EntryField(i, "Required"), entry_offset + kEntryRequired,
                                Hex(required) + " has bits other than bit 0 set");
    }
    entry.required = required != 0;
    for (size_t j = 0; j < table.entries.size(); ++j) {
      if (table.entries[j].guid == entry.guid) {
        return Status::Corruption(kStruct, EntryField(i, "Guid"), entry_offset + kEntryGuid,
                                  entry.guid.ToString() + " repeats entry " + std::to_string(j));
      }
    }
    table.entries.push_back(entry);
  }

  // No two regions may overlap: sort by offset and compare neighbours.
  std::vector<size_t> order(table.entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return table.entries[a].file_offset < table.entries[b].file_offset;
  });
  for (size_t k = 1; k < order.size(); ++k) {
    const RegionTableEntry& prev = table.entries[order[k - 1]];
    const RegionTableEntry& cur = table.entries[order[k]];
    if (prev.file_offset + prev.length > cur.file_offset) {  // no overflow: checked above
      const size_t i = std::max(order[k - 1], order[k]);
      return Status::Corruption(kStruct, EntryField(i, "FileOffset"),
                                file_offset + kTableHeaderSize + i * kEntrySize + kEntryFileOffset,
                                "region at " + Hex(cur.file_offset) + " overlaps region at " +
                                    Hex(prev.file_offset) + " (entry " +
                                    std::to_string(std::min(order[k - 1], order[k])) + ")");
    }
  }
  return table;
}

void RegionTable::EncodeTo(std::span<uint8_t> out64k) const {
  uint8_t* p = out64k.data();
  std::memset(p, 0, kRegionTableSize);
  std::memcpy(p, kSignature, sizeof kSignature);
  // Invariant: a table we write fits (the caller never builds > 2047 entries).
  const size_t count = std::min<size_t>(entries.size(), kMaxRegionEntries);
  StoreLE32(p + kEntryCountOffset, static_cast<uint32_t>(count));
  for (size_t i = 0; i < count; ++i) {
    uint8_t* e = p + kTableHeaderSize + i * kEntrySize;
    entries[i].guid.ToBytes(std::span<uint8_t, 16>(e + kEntryGuid, 16));
    StoreLE64(e + kEntryFileOffset, entries[i].file_offset);
    StoreLE32(e + kEntryLength, entries[i].length);
    StoreLE32(e + kEntryRequired, entries[i].required ? 1u : 0u);
  }
  StoreLE32(p + kChecksumOffset, crc32c::ValueWithZeroedField(p, kRegionTableSize, kChecksumOffset));
}

const RegionTableEntry* RegionTable::Find(const Guid& guid) const {
  for (const RegionTableEntry& e : entries) {
    if (e.guid == guid) return &e;
  }
  return nullptr;
}

}  // namespace vhdx::format
