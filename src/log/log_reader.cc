#include "log/log_reader.h"

#include <algorithm>
#include <cstring>
#include <deque>
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

// Cheap structural test of the entry whose header is at ring offset `off`,
// run before the checksum: every sector of the entry after the first must
// begin with a descriptor ("desc"/"zero", descriptor sectors) or "data"
// (data sectors), and EntryLength must match the counts. Because no sector
// inside an entry that passes can begin with "loge", the walks from all
// candidate starts together touch each sector about once, so a hostile log
// full of long, checksum-failing entries costs linear, not quadratic, work.
bool PlausibleEntry(const Ring& ring, uint32_t off, const format::LogEntryHeader& h) {
  auto sig_at = [&](uint64_t rel, const char* sig) {
    uint8_t b[4];
    ring.Copy(static_cast<uint32_t>((off + rel) % ring.size()), 4, b);
    return std::memcmp(b, sig, 4) == 0;
  };
  uint64_t data_count = 0;
  for (uint64_t i = 0; i < h.descriptor_count; ++i) {
    const uint64_t rel = format::kLogEntryHeaderSize + i * format::kLogDescriptorSize;
    if (sig_at(rel, "desc")) {
      ++data_count;
    } else if (!sig_at(rel, "zero")) {
      return false;
    }
  }
  const uint64_t desc_sectors =
      DivCeil(format::kLogEntryHeaderSize + uint64_t{h.descriptor_count} * format::kLogDescriptorSize, kSector);
  if (h.entry_length != kSector * (desc_sectors + data_count)) return false;
  for (uint64_t j = 0; j < data_count; ++j) {
    if (!sig_at((desc_sectors + j) * kSector, "data")) return false;
  }
  return true;
}

// Reads and validates entries, remembering the outcome per ring offset so
// that the scan, which may revisit an offset many times, decodes and
// checksums each at most once.
class EntryCache {
 public:
  EntryCache(const Ring& ring, const Guid& guid, const format::LogTargetBounds& bounds)
      : ring_(ring), guid_(guid), bounds_(bounds), slot_(ring.size() / kSector, kUnknown) {}

  // The fully validated entry at ring offset `off` (a multiple of 4 KiB),
  // or null.
  const format::LogEntry* Get(uint32_t off) {
    int32_t& slot = slot_[off / kSector];
    if (slot == kUnknown) slot = Decode(off);
    return slot >= 0 ? &entries_[static_cast<size_t>(slot)] : nullptr;
  }

 private:
  static constexpr int32_t kUnknown = -1;
  static constexpr int32_t kInvalid = -2;

  int32_t Decode(uint32_t off) {
    auto header = format::LogEntryHeader::Decode({ring_.at(off), format::kLogEntryHeaderSize}, ring_.size());
    if (!header.ok() || header->log_guid != guid_ || !PlausibleEntry(ring_, off, *header)) return kInvalid;
    // Invariant: Decode bounded entry_length below the ring size. Only an
    // entry that wraps around the end of the ring is copied.
    Result<format::LogEntry> entry = Status::Corruption("log entry not decoded");
    if (header->entry_length <= ring_.size() - off) {
      entry = format::DecodeLogEntry({ring_.at(off), header->entry_length}, guid_, bounds_);
    } else {
      std::vector<uint8_t> raw(header->entry_length);
      ring_.Copy(off, header->entry_length, raw.data());
      entry = format::DecodeLogEntry(raw, guid_, bounds_);
    }
    if (!entry.ok()) return kInvalid;
    entries_.push_back(std::move(*entry));
    return static_cast<int32_t>(entries_.size() - 1);
  }

  const Ring& ring_;
  const Guid& guid_;
  const format::LogTargetBounds& bounds_;
  std::vector<int32_t> slot_;  // per sector: kUnknown, kInvalid or an index
  // A deque: the scan holds pointers to entries while more are added.
  std::deque<format::LogEntry> entries_;
};

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
  EntryCache cache(ring, log_guid, bounds);
  std::vector<const format::LogEntry*> best;
  uint64_t best_seq = 0;
  uint32_t best_end = 0;

  uint32_t current_tail = 0;
  uint32_t old_tail = 0;
  const uint32_t sectors = log_length / kSector;
  // A hostile log can make runs overlap so that the scan revisits entries;
  // bound the total work instead of trusting the layout. Revisits are cheap
  // (the cache decodes each offset once); the bound leaves room for a valid
  // run that wraps around the ring end (rescanned from each of its entries).
  uint64_t budget = uint64_t{64} * sectors + 65536;
  for (uint32_t iterations = 0; iterations <= sectors; ++iterations) {
    std::vector<const format::LogEntry*> run;
    std::vector<uint32_t> offsets;
    uint32_t head = current_tail;
    uint64_t used = 0;  // bytes of the ring covered by the run
    while (true) {
      if (budget-- == 0) {
        return Status::Corruption("log", "entries", log_offset, "log entries overlap too often to scan");
      }
      const format::LogEntry* entry = cache.Get(head);
      if (!entry) break;
      if (!run.empty() && entry->header.sequence_number != run.back()->header.sequence_number + 1) break;
      // A run can never cover the whole ring: the writer keeps a free sector.
      if (used + entry->header.entry_length >= log_length) break;
      used += entry->header.entry_length;
      offsets.push_back(head);
      head = static_cast<uint32_t>((head + entry->header.entry_length) % log_length);
      run.push_back(entry);
    }
    bool valid = false;
    size_t tail_index = 0;
    if (!run.empty()) {
      // The head's Tail must point at one of the run's entries.
      uint32_t tail = run.back()->header.tail;
      for (size_t i = 0; i < offsets.size(); ++i) {
        if (offsets[i] == tail) {
          valid = true;
          tail_index = i;
          break;
        }
      }
    }
    if (valid && run.back()->header.sequence_number > best_seq) {
      best_seq = run.back()->header.sequence_number;
      best.assign(run.begin() + static_cast<ptrdiff_t>(tail_index), run.end());
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
  seq.flushed_file_offset = best.back()->header.flushed_file_offset;
  seq.last_file_offset = best.back()->header.last_file_offset;
  seq.entries.reserve(best.size());
  for (const format::LogEntry* e : best) seq.entries.push_back(*e);
  if (file_size < seq.flushed_file_offset) {
    return Status::Corruption("log", "FlushedFileOffset", log_offset,
                              "file is shorter than the log says it was (truncated file)");
  }
  return seq;
}

Status Replay(const ActiveSequence& seq, File* target) {
  auto size = target->Size();
  if (!size.ok()) return size.status();
  // Invariant: every byte at or beyond `written_end` reads as zero: it lies
  // beyond the end of file as replay found it, or in an extension made here.
  // Zero descriptors therefore do I/O only below written_end and merely
  // extend the file (sparsely) above it, so a hostile zero length of
  // terabytes costs neither writes nor disk space.
  uint64_t written_end = *size;
  uint64_t file_end = *size;
  for (const format::LogEntry& entry : seq.entries) {
    for (const auto& update : entry.order) {
      Status s;
      if (update.is_zero) {
        const auto& z = entry.zeros[update.index];
        if (z.length == 0) continue;
        const uint64_t end = z.file_offset + z.length;  // DecodeLogEntry bounded it by kMaxFileSize
        if (z.file_offset < written_end) s = target->ZeroRange(z.file_offset, std::min(end, written_end) - z.file_offset);
        if (s.ok() && end > file_end) {
          s = target->Truncate(end);
          file_end = end;
        }
      } else {
        const auto& p = entry.pages[update.index];
        s = target->WriteAt(p.file_offset, p.data);
        written_end = std::max(written_end, p.file_offset + p.data.size());
        file_end = std::max(file_end, written_end);
      }
      if (!s.ok()) return s.WithContext("log replay");
    }
  }
  auto final_size = target->Size();
  if (!final_size.ok()) return final_size.status();
  if (*final_size < seq.last_file_offset) {
    if (Status s = target->Truncate(seq.last_file_offset); !s.ok()) return s.WithContext("log replay");
  }
  return Status::OK();
}

}  // namespace vhdx::log
