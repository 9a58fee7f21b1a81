// Log entries (docs/format.md "The log", "Replay bounds").
#include "format/log_format.h"

#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace vhdx::format {
namespace {

constexpr uint8_t kEntrySignature[4] = {'l', 'o', 'g', 'e'};
constexpr uint8_t kZeroSignature[4] = {'z', 'e', 'r', 'o'};
constexpr uint8_t kDescSignature[4] = {'d', 'e', 's', 'c'};
constexpr uint8_t kDataSignature[4] = {'d', 'a', 't', 'a'};

// Entry header field offsets.
constexpr size_t kHdrChecksum = 4;
constexpr size_t kHdrEntryLength = 8;
constexpr size_t kHdrTail = 12;
constexpr size_t kHdrSequence = 16;
constexpr size_t kHdrDescriptorCount = 24;
constexpr size_t kHdrReserved = 28;
constexpr size_t kHdrLogGuid = 32;
constexpr size_t kHdrFlushedFileOffset = 48;
constexpr size_t kHdrLastFileOffset = 56;

// Descriptor field offsets (zero and data descriptors share the layout of
// FileOffset and SequenceNumber).
constexpr size_t kDescTrailingOrReserved = 4;  // u32
constexpr size_t kDescLeadingOrLength = 8;     // u64
constexpr size_t kDescFileOffset = 16;
constexpr size_t kDescSequence = 24;

// Data sector field offsets.
constexpr size_t kDataSequenceHigh = 4;
constexpr size_t kDataPayload = 8;
constexpr size_t kDataSequenceLow = 4092;

constexpr size_t kSector = kLogSectorSize;
constexpr const char* kStruct = "log entry";

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

// Number of 4 KiB sectors holding the entry header and `count` descriptors.
uint64_t DescriptorSectors(uint64_t count) { return DivCeil(kLogEntryHeaderSize + count * kLogDescriptorSize, kSector); }

// The codec does not know where the entry lies in the file (it may wrap
// around the ring), so messages give offsets relative to the entry start;
// the log reader adds the entry's location with Status::WithContext.
Status EntryCorruption(std::string_view field, uint64_t entry_offset, std::string_view detail) {
  return Status::Corruption(std::string(kStruct) + " at entry offset " + Hex(entry_offset) + ": " +
                            std::string(field) + ": " + std::string(detail));
}

std::string DescField(size_t i, const char* field) { return "descriptor " + std::to_string(i) + " " + field; }

}  // namespace

Result<LogEntryHeader> LogEntryHeader::Decode(std::span<const uint8_t> raw, uint32_t log_length) {
  if (raw.size() < kLogEntryHeaderSize) {
    return EntryCorruption("size", 0,
                              "truncated: " + std::to_string(raw.size()) + " bytes, need 64");
  }
  const uint8_t* p = raw.data();
  if (std::memcmp(p, kEntrySignature, sizeof kEntrySignature) != 0) {
    return EntryCorruption("Signature", 0, "not \"loge\"");
  }
  LogEntryHeader h;
  h.checksum = LoadLE32(p + kHdrChecksum);
  h.entry_length = LoadLE32(p + kHdrEntryLength);
  h.tail = LoadLE32(p + kHdrTail);
  h.sequence_number = LoadLE64(p + kHdrSequence);
  h.descriptor_count = LoadLE32(p + kHdrDescriptorCount);
  h.log_guid = Guid::FromBytes(std::span<const uint8_t, 16>(p + kHdrLogGuid, 16));
  h.flushed_file_offset = LoadLE64(p + kHdrFlushedFileOffset);
  h.last_file_offset = LoadLE64(p + kHdrLastFileOffset);

  if (LoadLE32(p + kHdrReserved) != 0) {
    return EntryCorruption("Reserved", kHdrReserved, "not zero");
  }
  if (h.sequence_number == 0) {
    return EntryCorruption("SequenceNumber", kHdrSequence, "zero");
  }
  if (h.entry_length == 0 || h.entry_length % kSector != 0 || h.entry_length >= log_length) {
    return EntryCorruption("EntryLength", kHdrEntryLength,
                              Hex(h.entry_length) + " is not a non-zero multiple of 4 KiB below the log length " +
                                  Hex(log_length));
  }
  if (h.tail % kSector != 0 || h.tail >= log_length) {
    return EntryCorruption("Tail", kHdrTail,
                              Hex(h.tail) + " is not a multiple of 4 KiB below the log length " + Hex(log_length));
  }
  if (h.descriptor_count > (h.entry_length - kLogEntryHeaderSize) / kLogDescriptorSize) {
    return EntryCorruption("DescriptorCount", kHdrDescriptorCount,
                              std::to_string(h.descriptor_count) + " descriptors do not fit in EntryLength " +
                                  Hex(h.entry_length));
  }
  if (h.flushed_file_offset > kMaxFileSize) {
    return EntryCorruption("FlushedFileOffset", kHdrFlushedFileOffset,
                              Hex(h.flushed_file_offset) + " exceeds the maximum file size");
  }
  if (h.last_file_offset > kMaxFileSize) {
    return EntryCorruption("LastFileOffset", kHdrLastFileOffset,
                              Hex(h.last_file_offset) + " exceeds the maximum file size");
  }
  return h;
}

Result<LogEntry> DecodeLogEntry(std::span<const uint8_t> raw, const Guid& expected_log_guid,
                                const LogTargetBounds& bounds) {
  if (bounds.log_length == 0 || bounds.log_length > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument("log entry: log length " + Hex(bounds.log_length) + " out of range");
  }
  uint64_t log_end;
  if (!CheckedAdd(bounds.log_offset, bounds.log_length, &log_end)) {
    return Status::InvalidArgument("log entry: log offset + length overflows");
  }
  Result<LogEntryHeader> hr = LogEntryHeader::Decode(raw, static_cast<uint32_t>(bounds.log_length));
  if (!hr.ok()) return hr.status();
  LogEntry entry;
  entry.header = *hr;
  const LogEntryHeader& h = entry.header;
  const uint8_t* p = raw.data();

  if (raw.size() != h.entry_length) {
    return EntryCorruption("EntryLength", kHdrEntryLength,
                              Hex(h.entry_length) + " but " + Hex(raw.size()) + " bytes were supplied");
  }
  if (h.log_guid != expected_log_guid) {
    return EntryCorruption("LogGuid", kHdrLogGuid,
                              h.log_guid.ToString() + " is not the header's " + expected_log_guid.ToString());
  }
  const uint32_t computed = crc32c::ValueWithZeroedField(p, raw.size(), kHdrChecksum);
  if (computed != h.checksum) {
    return EntryCorruption("Checksum", kHdrChecksum,
                              "stored " + Hex(h.checksum) + ", computed " + Hex(computed));
  }
  if (h.last_file_offset > bounds.max_file_size) {
    return EntryCorruption("LastFileOffset", kHdrLastFileOffset,
                              Hex(h.last_file_offset) + " exceeds the bound " + Hex(bounds.max_file_size));
  }

  // Descriptors are contiguous from byte 64: descriptor i is at 64 + 32 i
  // (126 fill sector 0, 128 each further descriptor sector). The count was
  // checked against EntryLength, so they all lie inside `raw`.
  const uint64_t desc_sectors = DescriptorSectors(h.descriptor_count);
  uint64_t data_count = 0;
  for (size_t i = 0; i < h.descriptor_count; ++i) {
    const size_t at = kLogEntryHeaderSize + i * kLogDescriptorSize;
    if (std::memcmp(p + at, kDescSignature, 4) == 0) ++data_count;
  }
  if (h.entry_length != kSector * (desc_sectors + data_count)) {
    return EntryCorruption("EntryLength", kHdrEntryLength,
                              Hex(h.entry_length) + " does not match " + std::to_string(desc_sectors) +
                                  " descriptor sectors + " + std::to_string(data_count) + " data sectors");
  }
  entry.pages.reserve(data_count);  // bounded by raw.size() / 4096
  entry.order.reserve(h.descriptor_count);

  uint64_t data_index = 0;
  for (size_t i = 0; i < h.descriptor_count; ++i) {
    const size_t at = kLogEntryHeaderSize + i * kLogDescriptorSize;
    const uint8_t* d = p + at;
    const bool is_data = std::memcmp(d, kDescSignature, 4) == 0;
    if (!is_data && std::memcmp(d, kZeroSignature, 4) != 0) {
      return EntryCorruption(DescField(i, "Signature"), at, "not \"desc\" or \"zero\"");
    }
    const uint64_t seq = LoadLE64(d + kDescSequence);
    if (seq != h.sequence_number) {
      return EntryCorruption(DescField(i, "SequenceNumber"), at + kDescSequence,
                                std::to_string(seq) + " is not the entry's " + std::to_string(h.sequence_number));
    }
    const uint64_t target = LoadLE64(d + kDescFileOffset);
    if (target % kSector != 0) {
      return EntryCorruption(DescField(i, "FileOffset"), at + kDescFileOffset,
                                Hex(target) + " is not a multiple of 4 KiB");
    }
    uint64_t length = kSector;
    if (!is_data) {
      if (LoadLE32(d + kDescTrailingOrReserved) != 0) {
        return EntryCorruption(DescField(i, "Reserved"), at + kDescTrailingOrReserved, "not zero");
      }
      length = LoadLE64(d + kDescLeadingOrLength);
      if (length % kSector != 0) {
        return EntryCorruption(DescField(i, "ZeroLength"), at + kDescLeadingOrLength,
                                  Hex(length) + " is not a multiple of 4 KiB");
      }
    }
    // Replay bounds: never below the region tables (the identifier and the
    // headers are never logged), never into the log, never beyond the bound.
    if (target < kRegionTable1Offset) {
      return EntryCorruption(DescField(i, "FileOffset"), at + kDescFileOffset,
                                Hex(target) + " targets the first 192 KiB (identifier or headers)");
    }
    uint64_t end;
    if (!CheckedAdd(target, length, &end) || end > bounds.max_file_size) {
      return EntryCorruption(DescField(i, is_data ? "FileOffset" : "ZeroLength"),
                                at + (is_data ? kDescFileOffset : kDescLeadingOrLength),
                                "target [" + Hex(target) + ", +" + Hex(length) + ") ends beyond the bound " +
                                    Hex(bounds.max_file_size));
    }
    if (length != 0 && target < log_end && bounds.log_offset < end) {
      return EntryCorruption(DescField(i, "FileOffset"), at + kDescFileOffset,
                                "target [" + Hex(target) + ", +" + Hex(length) + ") overlaps the log [" +
                                    Hex(bounds.log_offset) + ", +" + Hex(bounds.log_length) + ")");
    }

    if (!is_data) {
      entry.order.push_back({true, static_cast<uint32_t>(entry.zeros.size())});
      entry.zeros.push_back({target, length});
      continue;
    }
    const size_t sector_at = (desc_sectors + data_index) * kSector;
    const uint8_t* s = p + sector_at;
    if (std::memcmp(s, kDataSignature, 4) != 0) {
      return EntryCorruption("data sector " + std::to_string(data_index) + " Signature", sector_at,
                                "not \"data\"");
    }
    const uint32_t high = LoadLE32(s + kDataSequenceHigh);
    const uint32_t low = LoadLE32(s + kDataSequenceLow);
    if (high != static_cast<uint32_t>(h.sequence_number >> 32) ||
        low != static_cast<uint32_t>(h.sequence_number & 0xFFFFFFFFu)) {
      return EntryCorruption("data sector " + std::to_string(data_index) + " SequenceNumber",
                                sector_at + kDataSequenceHigh,
                                "split sequence " + Hex((uint64_t{high} << 32) | low) + " is not the entry's " +
                                    Hex(h.sequence_number));
    }
    LogEntry::Page page;
    page.file_offset = target;
    StoreLE64(page.data.data(), LoadLE64(d + kDescLeadingOrLength));
    std::memcpy(page.data.data() + kDataPayload, s + kDataPayload, kDataSequenceLow - kDataPayload);
    StoreLE32(page.data.data() + kDataSequenceLow, LoadLE32(d + kDescTrailingOrReserved));
    entry.order.push_back({false, static_cast<uint32_t>(entry.pages.size())});
    entry.pages.push_back(page);
    ++data_index;
  }
  return entry;
}

uint64_t LogEntryLength(uint64_t zero_count, uint64_t page_count) {
  return kSector * (DescriptorSectors(zero_count + page_count) + page_count);
}

std::vector<uint8_t> EncodeLogEntry(const LogEntryToWrite& in) {
  const uint64_t count = in.zeros.size() + in.pages.size();
  const uint64_t desc_sectors = DescriptorSectors(count);
  const uint64_t length = LogEntryLength(in.zeros.size(), in.pages.size());
  std::vector<uint8_t> out(length, 0);
  uint8_t* p = out.data();
  std::memcpy(p, kEntrySignature, 4);
  StoreLE32(p + kHdrEntryLength, static_cast<uint32_t>(length));
  StoreLE32(p + kHdrTail, in.tail);
  StoreLE64(p + kHdrSequence, in.sequence_number);
  StoreLE32(p + kHdrDescriptorCount, static_cast<uint32_t>(count));
  in.log_guid.ToBytes(std::span<uint8_t, 16>(p + kHdrLogGuid, 16));
  StoreLE64(p + kHdrFlushedFileOffset, in.flushed_file_offset);
  StoreLE64(p + kHdrLastFileOffset, in.last_file_offset);

  size_t desc = 0;
  for (const LogEntry::ZeroRange& z : in.zeros) {
    uint8_t* d = p + kLogEntryHeaderSize + desc++ * kLogDescriptorSize;
    std::memcpy(d, kZeroSignature, 4);
    StoreLE64(d + kDescLeadingOrLength, z.length);
    StoreLE64(d + kDescFileOffset, z.file_offset);
    StoreLE64(d + kDescSequence, in.sequence_number);
  }
  for (size_t j = 0; j < in.pages.size(); ++j) {
    const uint64_t target = in.pages[j].first;
    const uint8_t* page = in.pages[j].second;
    uint8_t* d = p + kLogEntryHeaderSize + desc++ * kLogDescriptorSize;
    std::memcpy(d, kDescSignature, 4);
    StoreLE32(d + kDescTrailingOrReserved, LoadLE32(page + kDataSequenceLow));
    StoreLE64(d + kDescLeadingOrLength, LoadLE64(page));
    StoreLE64(d + kDescFileOffset, target);
    StoreLE64(d + kDescSequence, in.sequence_number);
    uint8_t* s = p + (desc_sectors + j) * kSector;
    std::memcpy(s, kDataSignature, 4);
    StoreLE32(s + kDataSequenceHigh, static_cast<uint32_t>(in.sequence_number >> 32));
    std::memcpy(s + kDataPayload, page + kDataPayload, kDataSequenceLow - kDataPayload);
    StoreLE32(s + kDataSequenceLow, static_cast<uint32_t>(in.sequence_number & 0xFFFFFFFFu));
  }
  StoreLE32(p + kHdrChecksum, crc32c::ValueWithZeroedField(p, out.size(), kHdrChecksum));
  return out;
}

}  // namespace vhdx::format
