// Appends entries to the VHDX log ring. See docs/design.md ("Log pipeline").
// Not thread-safe: used under the image's commit lock.
#ifndef VHDX_SRC_LOG_LOG_WRITER_H_
#define VHDX_SRC_LOG_LOG_WRITER_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx {

class LogWriter {
 public:
  struct Page {
    uint64_t file_offset;
    const uint8_t* data;  // 4096 bytes
  };

  LogWriter(File* file, uint64_t log_offset, uint32_t log_length, Guid log_guid);

  // The most pages one entry can carry: an entry takes at most
  // MaxEntrySectors(), so that an entry and the one before it always fit in
  // the ring with a free sector to spare ([MS-VHDX] writers never fill the
  // ring completely) and a new entry never overwrites its predecessor.
  size_t MaxPagesPerEntry() const;
  uint64_t MaxEntrySectors() const;

  // Writes one entry at the head of the ring, wrapping around its end. The
  // entry's Tail is itself: the caller guarantees that every earlier entry
  // is durable at its final location (invariant 3). Does not flush.
  Status Append(std::span<const Page> pages, uint64_t flushed_file_offset, uint64_t last_file_offset);

  const Guid& log_guid() const { return log_guid_; }
  uint64_t next_sequence_number() const { return sequence_; }

 private:
  File* file_;
  uint64_t log_offset_;
  uint32_t log_length_;
  Guid log_guid_;
  uint32_t head_ = 0;      // ring offset of the next entry
  uint64_t sequence_ = 1;  // sequence number of the next entry
};

}  // namespace vhdx

#endif  // VHDX_SRC_LOG_LOG_WRITER_H_
