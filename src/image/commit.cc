// Header updates, metadata commits through the log, flush and clean close.
// The barrier order and numbered invariants are in docs/design.md.
#include <algorithm>
#include <array>
#include <cstring>
#include <set>

#include "format/constants.h"
#include "image/image_impl.h"
#include "log/log_writer.h"
#include "util/coding.h"

namespace vhdx {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kEntriesPerPage = kPage / 8;
// Dirty pages that trigger a commit without a flush, so the in-memory
// backlog and the log entry size stay bounded.
constexpr size_t kCommitThreshold = 128;
}  // namespace

void Image::Impl::Fail(const Status& s) {
  std::lock_guard lock(meta_mu_);
  if (!failed.load()) {
    failed_status = s.WithContext("image failed during an update; reopen to recover");
    failed.store(true, std::memory_order_release);
  }
}

Status Image::Impl::WriteHeaderLocked(const format::Header& requested) {
  // Two copies, each written to the non-current slot and flushed, so that a
  // torn header write always leaves the other copy valid.
  if (header.sequence_number >= UINT64_MAX - 2) {
    return Status::NotSupported("header sequence number is exhausted");
  }
  format::Header next = requested;
  std::vector<uint8_t> raw(format::kHeaderSize);
  for (int copy = 0; copy < 2; ++copy) {
    next.sequence_number = header.sequence_number + 1;
    next.EncodeTo(raw);
    int slot = 1 - current_slot;
    uint64_t off = slot == 0 ? format::kHeader1Offset : format::kHeader2Offset;
    if (Status s = file->WriteAt(off, raw); !s.ok()) return s;
    if (Status s = file->Flush(); !s.ok()) return s;
    header = next;
    header_copies[slot] = next;
    current_slot = slot;
  }
  return Status::OK();
}

Status Image::Impl::BeginWrite(bool user_visible) {
  if (user_visible ? data_guid_updated.load(std::memory_order_acquire)
                   : file_guid_updated.load(std::memory_order_acquire)) {
    return Status::OK();
  }
  std::lock_guard lock(meta_mu_);
  bool need_file = !file_guid_updated.load();
  bool need_data = user_visible && !data_guid_updated.load();
  if (!need_file && !need_data) return Status::OK();
  format::Header next = header;
  if (need_file) next.file_write_guid = Guid::Random();
  // Invariant 6: the same new DataWriteGuid goes into both header copies,
  // before the first user-visible change of the session.
  if (need_data) next.data_write_guid = next_data_write_guid.value_or(Guid::Random());
  Status s = WriteHeaderLocked(next);
  if (!s.ok()) {
    failed_status = s.WithContext("updating the image headers");
    failed.store(true, std::memory_order_release);
    return s;
  }
  file_guid_updated.store(true, std::memory_order_release);
  if (need_data) data_guid_updated.store(true, std::memory_order_release);
  return Status::OK();
}

void Image::Impl::SetBatEntry(uint64_t bat_index, format::BatEntry entry, FreeSpace::Extent freed,
                              bool needs_barrier) {
  // Stored under meta_mu_ so that a commit's snapshot sees the entry and
  // its barrier flag together or neither.
  std::lock_guard lock(meta_mu_);
  bat[bat_index].store(entry.Encode(), std::memory_order_release);
  if (needs_barrier) data_barrier_needed = true;
  if (dirty_bat_pages.insert(bat_index / kEntriesPerPage).second) dirty_count.fetch_add(1);
  if (freed.length != 0) pending_free.push_back(freed);
}

Status Image::Impl::MaybeCommit() {
  if (dirty_count.load(std::memory_order_relaxed) < kCommitThreshold) return Status::OK();
  return CommitMetadata();
}

Status Image::Impl::CommitMetadata() {
  std::lock_guard commit(commit_mu_);
  if (Status s = CheckAlive(); !s.ok()) return s;

  // 1. Snapshot dirty pages and the frees they cause. Every BAT entry in the
  //    snapshot was published after the data it points at was written
  //    (invariant 1), so the flush below makes that data durable first.
  std::vector<std::array<uint8_t, kPage>> buffers;
  std::vector<uint64_t> targets;
  std::vector<FreeSpace::Extent> frees;
  bool barrier;
  size_t dirty_bat_count;
  {
    std::lock_guard lock(meta_mu_);
    barrier = data_barrier_needed;
    data_barrier_needed = false;
    dirty_bat_count = dirty_bat_pages.size();
    buffers.reserve(dirty_bat_pages.size() + dirty_sb_pages.size() + dirty_pages.size());
    for (uint64_t page : dirty_bat_pages) {
      std::array<uint8_t, kPage> buf{};
      uint64_t first = page * kEntriesPerPage;
      uint64_t last = std::min(geo.bat_entries, first + kEntriesPerPage);
      for (uint64_t i = first; i < last; ++i) {
        StoreLE64(buf.data() + (i - first) * 8, bat[i].load(std::memory_order_acquire));
      }
      buffers.push_back(buf);
      targets.push_back(bat_offset + page * kPage);
    }
    for (uint64_t off : dirty_sb_pages) {
      std::array<uint8_t, kPage> buf{};
      std::memcpy(buf.data(), sb_pages.at(off).data(), kPage);
      buffers.push_back(buf);
      targets.push_back(off);
    }
    for (const auto& [off, bytes] : dirty_pages) {
      std::array<uint8_t, kPage> buf{};
      std::memcpy(buf.data(), bytes.data(), kPage);
      buffers.push_back(buf);
      targets.push_back(off);
    }
    dirty_bat_pages.clear();
    dirty_sb_pages.clear();
    dirty_pages.clear();
    dirty_count.store(0);
    frees.swap(pending_free);
  }

  auto fail = [&](const Status& s) {
    Fail(s);
    return s;
  };
  // LastFileOffset: covers the file and every structure allocated in it.
  auto last_file_offset = [&](uint64_t file_size) {
    std::lock_guard lock(alloc_mu_);
    return std::max(AlignUp(file_size, kMiB), file_end);
  };

  // The fast path writes the entry without a leading flush; its one flush
  // makes the data, the entry and the previous commit's applies durable
  // together. Allowed only when nothing in the snapshot depends on earlier
  // data being durable first: BAT pages alone (no sector bitmap or other
  // metadata pages), none of whose new entries asked for a barrier, and
  // room in one entry for the previous commit's applies, which it carries
  // because no flush covered them yet (invariant 3). A session's first
  // commit always takes the slow path, which also establishes a durable
  // file size for FlushedFileOffset (invariant 11).
  if (!barrier && durable_file_size != 0 && log_writer && buffers.size() == dirty_bat_count) {
    std::vector<LogWriter::Page> pages;
    // A page this commit logs again needs no older copy.
    const std::set<uint64_t> relogged(targets.begin(), targets.end());
    for (const auto& [target, bytes] : unflushed_applies) {
      if (!relogged.count(target)) pages.push_back({target, bytes.data()});
    }
    const size_t carried = pages.size();
    for (size_t i = 0; i < buffers.size(); ++i) pages.push_back({targets[i], buffers[i].data()});
    if (!buffers.empty() && pages.size() <= log_writer->MaxPagesPerEntry()) {
      auto size = file->Size();
      if (!size.ok()) return fail(size.status());
      const uint64_t flushed_size = durable_file_size / kMiB * kMiB;
      if (Status s = log_writer->Append(pages, flushed_size, last_file_offset(*size)); !s.ok()) return fail(s);
      if (Status s = file->Flush(); !s.ok()) return fail(s);
      durable_file_size = *size;
      // Carried pages are durable now; this commit's are applied next.
      std::vector<std::pair<uint64_t, std::array<uint8_t, kPage>>> applied;
      for (size_t i = carried; i < pages.size(); ++i) {
        if (Status s = file->WriteAt(pages[i].file_offset, std::span<const uint8_t>(pages[i].data, kPage)); !s.ok()) {
          return fail(s);
        }
        applied.emplace_back(targets[i - carried], buffers[i - carried]);
      }
      unflushed_applies = std::move(applied);
      single_flush_commits++;
      return ReleaseFrees(frees);
    }
  }

  // 2. Data (and every earlier apply) durable before the log entry. The
  //    size is read before the flush: a concurrent allocation may grow the
  //    file after it, and FlushedFileOffset must never exceed a size that
  //    is durable when the entry is (else replay refuses the file as
  //    truncated).
  auto size = file->Size();
  if (!size.ok()) return fail(size.status());
  if (Status s = file->Flush(); !s.ok()) return fail(s);
  durable_file_size = *size;
  unflushed_applies.clear();
  if (!buffers.empty()) {
    const uint64_t flushed_size = *size / kMiB * kMiB;
    const uint64_t last_size = last_file_offset(*size);
    if (!log_writer) {
      log_writer = std::make_unique<LogWriter>(file.get(), header.log_offset, header.log_length, Guid::Random());
      if (log_writer->MaxPagesPerEntry() == 0) return fail(Status::NotSupported("log too small to write entries"));
    }
    const size_t per_entry = log_writer->MaxPagesPerEntry();
    for (size_t start = 0; start < buffers.size(); start += per_entry) {
      size_t end = std::min(buffers.size(), start + per_entry);
      std::vector<LogWriter::Page> pages;
      for (size_t i = start; i < end; ++i) pages.push_back({targets[i], buffers[i].data()});
      if (start > 0) {
        // The previous batch's applies must be durable before an entry
        // whose Tail no longer covers them (invariant 3).
        if (Status s = file->Flush(); !s.ok()) return fail(s);
      }
      // 3. The log entry, then make it durable (invariant 5). The first
      //    entry of the session also publishes the session's LogGuid in the
      //    headers; the entry is durable before the header is written, so a
      //    header naming the GUID never points at a log without a valid
      //    entry for it (a cut between the two would otherwise leave an
      //    image that must not be opened).
      if (Status s = log_writer->Append(pages, flushed_size, last_size); !s.ok()) return fail(s);
      if (Status s = file->Flush(); !s.ok()) return fail(s);
      {
        std::lock_guard lock(meta_mu_);
        if (!log_guid_active) {
          format::Header next = header;
          next.log_guid = log_writer->log_guid();
          if (Status s = WriteHeaderLocked(next); !s.ok()) {
            failed_status = s;
            failed.store(true);
            return s;
          }
          log_guid_active = true;
        }
      }
      // 4. Apply to the final locations (made durable by the next flush).
      unflushed_applies.clear();
      for (size_t i = start; i < end; ++i) {
        if (Status s = file->WriteAt(targets[i], buffers[i]); !s.ok()) return fail(s);
        unflushed_applies.emplace_back(targets[i], buffers[i]);
      }
    }
  }
  return ReleaseFrees(frees);
}

// 5. The changes are durable in the log: space they freed may be reused,
//    and what was not punched yet (space that had to keep its data until
//    now, e.g. a differencing block trimmed back to its parent) is given
//    back to the host file system, so it also comes back known-zero.
Status Image::Impl::ReleaseFrees(std::vector<FreeSpace::Extent>& frees) {
  for (auto& f : frees) {
    if (!f.known_zero) f.known_zero = file->PunchHole(f.offset, f.length).ok();
  }
  if (!frees.empty()) {
    std::lock_guard lock(alloc_mu_);
    for (const auto& f : frees) free_space.Add(f.offset, f.length, f.known_zero);
  }
  return Status::OK();
}

Status Image::Impl::FlushAll() {
  // Group flush: a caller is covered by a commit that started after it
  // arrived; concurrent callers share one leader's commit.
  std::unique_lock lock(flush_mu_);
  const uint64_t ticket = ++flush_requested;
  while (flush_completed < ticket) {
    if (!flush_running) {
      flush_running = true;
      const uint64_t covers = flush_requested;
      lock.unlock();
      Status s = CommitMetadata();
      lock.lock();
      flush_running = false;
      if (s.ok()) flush_completed = std::max(flush_completed, covers);
      flush_cv_.notify_all();
      if (!s.ok()) return s;
    } else {
      flush_cv_.wait(lock);
      if (Status s = CheckAlive(); !s.ok()) return s;
    }
  }
  return Status::OK();
}

Status Image::Impl::CloseClean() {
  if (Status s = CheckAlive(); !s.ok()) return s;
  if (!file_guid_updated.load()) return Status::OK();  // never modified
  if (Status s = CommitMetadata(); !s.ok()) return s;
  std::lock_guard commit(commit_mu_);
  {
    std::lock_guard lock(meta_mu_);
    if (log_guid_active) {
      // Invariant 8: the last commit's applies are durable before the
      // header stops naming the log that can redo them.
      if (Status s = file->Flush(); !s.ok()) return s;
      // Everything is applied and flushed: the log is no longer needed.
      format::Header next = header;
      next.log_guid = Guid();
      if (Status s = WriteHeaderLocked(next); !s.ok()) return s;
      log_guid_active = false;
    }
  }
  // Only now give back trailing free space.
  uint64_t new_end;
  {
    std::lock_guard lock(alloc_mu_);
    new_end = free_space.TrailingFreeStart(file_end);
  }
  auto size = file->Size();
  if (!size.ok()) return size.status();
  if (new_end < *size && new_end >= format::kHeaderSectionSize) {
    if (Status s = file->Truncate(new_end); !s.ok()) return s;
    if (Status s = file->Flush(); !s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace vhdx
