#include "log/log_reader.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "format/constants.h"
#include "util/coding.h"

namespace vhdx::log {
namespace {

constexpr uint32_t kSector = static_cast<uint32_t>(format::kLogSectorSize);

// The whole log region in memory, read once; entries may wrap around its end.
class Ring {
 public:
  explicit Ring(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  uint32_t size() const { return static_cast<uint32_t>(bytes_.size()); }
  // Copies `n` bytes starting at ring offset `off`, wrapping.
  void Copy(uint32_t off, uint32_t n, uint8_t* out) const {
    uint32_t first = std::min(n, size() - off);
    std::memcpy(out, bytes_.data() + off, first);
    if (first < n) std::memcpy(out + first, bytes_.data(), n - first);
  }
  const uint8_t* at(uint32_t off) const { return bytes_.data() + off; }

 private:
  std::vector<uint8_t> bytes_;
};

struct Candidate {
  bool present = false;
  format::LogEntry entry;
  uint32_t offset = 0;
};

// Reads and fully validates the entry at ring offset `off`.
std::optional<format::LogEntry> ReadEntry(const Ring& ring, uint32_t off, const Guid& guid,
                                          const format::LogTargetBounds& bounds) {
  auto header = format::LogEntryHeader::Decode({ring.at(off), format::kLogEntryHeaderSize}, ring.size());
  if (!header.ok() || header->log_guid != guid) return std::nullopt;
  // Invariant: Decode bounded entry_length below the ring size.
  std::vector<uint8_t> raw(header->entry_length);
  ring.Copy(off, header->entry_length, raw.data());
  auto entry = format::DecodeLogEntry(raw, guid, bounds);
  if (!entry.ok()) return std::nullopt;
  return std::move(*entry);
}

}  // namespace

Result<ActiveSequence> FindActiveSequence(File* file, uint64_t file_size, uint64_t log_offset,
                                          uint32_t log_length, const Guid& log_guid) {
  if (log_length == 0 || log_length % kSector != 0) {
    return Status::Corruption("log", "LogLength", log_offset, "must be a non-zero multiple of 4 KiB");
  }
  uint64_t log_end;
  if (!CheckedAdd(log_offset, log_length, &log_end) || log_end > file_size) {
    return Status::Corruption("log", "LogOffset", log_offset, "log region extends beyond the end of file");
  }
  std::vector<uint8_t> bytes(log_length);
  if (Status s = file->ReadAt(log_offset, bytes); !s.ok()) return s;
  Ring ring(std::move(bytes));
  format::LogTargetBounds bounds{log_offset, log_length, format::kMaxFileSize};

  // Spec algorithm: walk every possible starting sector, grow a run of
  // consecutive entries, keep the valid run whose head has the highest
  // sequence number. Each step either advances by at least one sector or by
  // a whole run, and the scan stops once it wraps, so it is linear in the
  // ring size times the run length.
  std::vector<format::LogEntry> best;
  std::vector<uint32_t> best_offsets;
  uint64_t best_seq = 0;
  uint32_t best_end = 0;

  uint32_t current_tail = 0;
  uint32_t old_tail = 0;
  const uint32_t sectors = log_length / kSector;
  // A hostile log can make runs overlap so that the scan revisits entries;
  // bound the total work instead of trusting the layout.
  uint64_t budget = uint64_t{4} * sectors + 64;
  for (uint32_t iterations = 0; iterations <= sectors; ++iterations) {
    std::vector<format::LogEntry> run;
    std::vector<uint32_t> offsets;
    uint32_t head = current_tail;
    uint64_t used = 0;  // bytes of the ring covered by the run
    while (true) {
      if (budget-- == 0) {
        return Status::Corruption("log", "entries", log_offset, "log entries overlap too often to scan");
      }
      auto entry = ReadEntry(ring, head, log_guid, bounds);
      if (!entry) break;
      if (!run.empty() && entry->header.sequence_number != run.back().header.sequence_number + 1) break;
      // A run can never cover the whole ring: the writer keeps a free sector.
      if (used + entry->header.entry_length >= log_length) break;
      used += entry->header.entry_length;
      offsets.push_back(head);
      head = static_cast<uint32_t>((head + entry->header.entry_length) % log_length);
      run.push_back(std::move(*entry));
    }
    bool valid = false;
    size_t tail_index = 0;
    if (!run.empty()) {
      // The head's Tail must point at one of the run's entries.
      uint32_t tail = run.back().header.tail;
      for (size_t i = 0; i < offsets.size(); ++i) {
        if (offsets[i] == tail) {
          valid = true;
          tail_index = i;
          break;
        }
      }
    }
    if (valid && run.back().header.sequence_number > best_seq) {
      best_seq = run.back().header.sequence_number;
      best.assign(std::make_move_iterator(run.begin() + static_cast<ptrdiff_t>(tail_index)),
                  std::make_move_iterator(run.end()));
      best_end = head;
    }
    if (run.empty() || !valid) {
      current_tail = (current_tail + kSector) % log_length;
    } else {
      current_tail = head;
    }
    if (current_tail < old_tail) break;  // wrapped: the whole ring is scanned
    old_tail = current_tail;
  }

  if (best.empty()) {
    return Status::Corruption("log", "LogGuid", log_offset,
                              "the header names a log (LogGuid " + log_guid.ToString() +
                                  ") but the log holds no valid entry sequence for it");
  }
  ActiveSequence seq;
  seq.head_sequence_number = best_seq;
  seq.end_offset = best_end;
  seq.flushed_file_offset = best.back().header.flushed_file_offset;
  seq.last_file_offset = best.back().header.last_file_offset;
  seq.entries = std::move(best);
  if (file_size < seq.flushed_file_offset) {
    return Status::Corruption("log", "FlushedFileOffset", log_offset,
                              "file is shorter than the log says it was (truncated file)");
  }
  return seq;
}

Status Replay(const ActiveSequence& seq, File* target) {
  for (const format::LogEntry& entry : seq.entries) {
    for (const auto& update : entry.order) {
      Status s;
      if (update.is_zero) {
        const auto& z = entry.zeros[update.index];
        s = target->ZeroRange(z.file_offset, z.length);
      } else {
        const auto& p = entry.pages[update.index];
        s = target->WriteAt(p.file_offset, p.data);
      }
      if (!s.ok()) return s.WithContext("log replay");
    }
  }
  auto size = target->Size();
  if (!size.ok()) return size.status();
  if (*size < seq.last_file_offset) {
    if (Status s = target->Truncate(seq.last_file_offset); !s.ok()) return s.WithContext("log replay");
  }
  return Status::OK();
}

}  // namespace vhdx::log
