// Log entries: entry header, zero and data descriptors, data sectors.
// See docs/format.md ("The log").
#ifndef VHDX_SRC_FORMAT_LOG_FORMAT_H_
#define VHDX_SRC_FORMAT_LOG_FORMAT_H_

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx::format {

constexpr uint32_t kLogEntryHeaderSize = 64;
constexpr uint32_t kLogDescriptorSize = 32;

struct LogEntryHeader {
  uint32_t checksum = 0;
  uint32_t entry_length = 0;
  uint32_t tail = 0;
  uint64_t sequence_number = 0;
  uint32_t descriptor_count = 0;
  Guid log_guid;
  uint64_t flushed_file_offset = 0;
  uint64_t last_file_offset = 0;

  // Decodes the first 64 bytes and checks what can be checked without the
  // rest of the entry: signature "loge", reserved zero, SequenceNumber != 0,
  // EntryLength a non-zero multiple of 4 KiB and < log_length, Tail a
  // multiple of 4 KiB and < log_length, DescriptorCount fits EntryLength,
  // EntryLength == 4096 * (descriptor sectors + data sectors) cannot be
  // checked here (needs the descriptors). Flushed/LastFileOffset
  // <= kMaxFileSize; they are NOT required to be 1 MiB multiples (writers
  // record the host file length, which is not always aligned; docs/format.md
  // "Tolerances"). Offsets in messages are relative to the entry start.
  static Result<LogEntryHeader> Decode(std::span<const uint8_t> raw, uint32_t log_length);
};

struct LogDescriptor {
  enum class Kind : uint8_t { kZero, kData };
  Kind kind = Kind::kData;
  uint64_t file_offset = 0;     // 4 KiB aligned target
  uint64_t zero_length = 0;     // kZero: bytes, multiple of 4 KiB
  uint32_t trailing_bytes = 0;  // kData: bytes 4092..4095 of the page
  uint64_t leading_bytes = 0;   // kData: bytes 0..7 of the page
  uint64_t sequence_number = 0;
};

// A fully validated entry with its updates rebuilt.
struct LogEntry {
  LogEntryHeader header;
  struct ZeroRange {
    uint64_t file_offset;
    uint64_t length;
  };
  struct Page {
    uint64_t file_offset;
    std::array<uint8_t, 4096> data;
  };
  // Updates in descriptor order: each element is either a zero range or a
  // page (index into zeros or pages), so replay can keep the order.
  struct Update {
    bool is_zero;
    uint32_t index;
  };
  std::vector<ZeroRange> zeros;
  std::vector<Page> pages;
  std::vector<Update> order;
};

// Limits on what a replayed entry may touch (docs/format.md "Replay bounds").
struct LogTargetBounds {
  uint64_t log_offset = 0;
  uint64_t log_length = 0;
  uint64_t max_file_size = 0;  // targets must end at or below this
};

// Decodes and validates a whole entry of `raw.size()` == EntryLength bytes,
// already unwrapped from the ring: the header (against `expected_log_guid`),
// CRC-32C over all bytes, every descriptor (signature, sequence number,
// alignment, target >= 192 KiB, not overlapping the log, below the bound),
// EntryLength == 4096 * (descriptor sectors + data descriptors), every data
// sector (signature, split sequence number), LastFileOffset <=
// bounds.max_file_size. Zero descriptors of length 0 are accepted (no-op).
// Bounds with log_length 0 or >= 4 GiB are InvalidArgument.
Result<LogEntry> DecodeLogEntry(std::span<const uint8_t> raw, const Guid& expected_log_guid,
                                const LogTargetBounds& bounds);

// Builds a complete entry (header, descriptors, data sectors) with its
// checksum. Zero ranges come first, then pages, in the given order.
struct LogEntryToWrite {
  uint64_t sequence_number = 0;
  uint32_t tail = 0;
  Guid log_guid;
  uint64_t flushed_file_offset = 0;
  uint64_t last_file_offset = 0;
  std::vector<LogEntry::ZeroRange> zeros;
  // Each page: target file offset (4 KiB aligned) and 4096 bytes.
  std::vector<std::pair<uint64_t, const uint8_t*>> pages;
};
// Number of bytes EncodeLogEntry produces for these counts.
uint64_t LogEntryLength(uint64_t zero_count, uint64_t page_count);
std::vector<uint8_t> EncodeLogEntry(const LogEntryToWrite& entry);

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_LOG_FORMAT_H_
