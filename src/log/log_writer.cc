#include "log/log_writer.h"

#include <algorithm>

#include "format/log_format.h"

namespace vhdx {

LogWriter::LogWriter(File* file, uint64_t log_offset, uint32_t log_length, Guid log_guid)
    : file_(file), log_offset_(log_offset), log_length_(log_length), log_guid_(log_guid) {}

uint64_t LogWriter::MaxEntrySectors() const {
  // Invariant: two consecutive entries fit in the ring together with a free
  // sector, so an entry never overwrites the one before it. The previous
  // entry is the only valid one once its predecessors have been overwritten;
  // were the new entry to tear over it, the header would name a log with no
  // valid entry and the image could not be opened.
  return (log_length_ / 4096 - 1) / 2;
}

size_t LogWriter::MaxPagesPerEntry() const {
  const uint64_t max_sectors = MaxEntrySectors();
  if (max_sectors < 2) return 0;
  // Largest n with descriptor sectors + n data sectors <= max_sectors.
  size_t n = static_cast<size_t>(max_sectors - 1);
  while (n > 0 && format::LogEntryLength(0, n) / 4096 > max_sectors) --n;
  return n;
}

Status LogWriter::Append(std::span<const Page> pages, uint64_t flushed_file_offset, uint64_t last_file_offset) {
  format::LogEntryToWrite entry;
  entry.sequence_number = sequence_;
  entry.tail = head_;
  entry.log_guid = log_guid_;
  entry.flushed_file_offset = flushed_file_offset;
  entry.last_file_offset = last_file_offset;
  for (const Page& p : pages) entry.pages.emplace_back(p.file_offset, p.data);
  std::vector<uint8_t> bytes = format::EncodeLogEntry(entry);
  // Invariant: an entry never exceeds MaxEntrySectors (MaxPagesPerEntry).
  if (bytes.size() > MaxEntrySectors() * 4096) return Status::InvalidArgument("log entry larger than half the log");
  const uint32_t len = static_cast<uint32_t>(bytes.size());
  const uint32_t first = std::min(len, log_length_ - head_);
  if (Status s = file_->WriteAt(log_offset_ + head_, std::span<const uint8_t>(bytes.data(), first)); !s.ok()) {
    return s;
  }
  if (first < len) {
    if (Status s = file_->WriteAt(log_offset_, std::span<const uint8_t>(bytes.data() + first, len - first)); !s.ok()) {
      return s;
    }
  }
  head_ = (head_ + len) % log_length_;
  ++sequence_;
  return Status::OK();
}

}  // namespace vhdx
