// Finding the active log sequence and replaying it ([MS-VHDX] 2.3.2-2.3.3).
// See docs/format.md ("The log") and docs/design.md ("Replay").
#ifndef VHDX_SRC_LOG_LOG_READER_H_
#define VHDX_SRC_LOG_LOG_READER_H_

#include <cstdint>
#include <vector>

#include "format/log_format.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx::log {

struct ActiveSequence {
  // Entries from the tail to the head, in replay order.
  std::vector<format::LogEntry> entries;
  uint64_t head_sequence_number = 0;
  // Byte offset (within the log) just after the head entry.
  uint32_t end_offset = 0;
  uint64_t flushed_file_offset = 0;  // from the head entry
  uint64_t last_file_offset = 0;     // from the head entry
};

// Scans the log region [log_offset, log_offset + log_length) of `file` for
// the active sequence of entries carrying `log_guid`. The region must lie
// inside the file (the caller checks, so memory stays bounded by the file).
// Fails with kCorruption when there is no valid sequence or the file is
// shorter than the head's FlushedFileOffset.
Result<ActiveSequence> FindActiveSequence(File* file, uint64_t file_size, uint64_t log_offset,
                                          uint32_t log_length, const Guid& log_guid);

// Applies every update of `seq` to `target` in order, then extends it to the
// head's LastFileOffset. Does not flush.
Status Replay(const ActiveSequence& seq, File* target);

}  // namespace vhdx::log

#endif  // VHDX_SRC_LOG_LOG_READER_H_
