// Internal state of an open image. See docs/design.md for the invariants and
// the lock order.
//
// Lock order (acquire in this order, never the reverse):
//   1. flush_mu_   (flush group leader election; held only briefly and
//      released before the leader commits)
//   2. block stripe locks (per payload block; shared for data I/O,
//      exclusive for state changes; Resize and Compact take all of them,
//      in index order, and then commit)
//   3. sb_alloc_mu_ (sector bitmap block allocation, under a stripe lock)
//   4. commit_mu_  (one metadata commit at a time; held across the log I/O;
//      nothing holding it takes a stripe lock)
//   5. alloc_mu_   (free space and pending frees; short)
//   6. meta_mu_    (dirty metadata pages, header state, sticky error; short)
#ifndef VHDX_SRC_IMAGE_IMAGE_IMPL_H_
#define VHDX_SRC_IMAGE_IMAGE_IMPL_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "alloc/free_space.h"
#include "format/bat.h"
#include "format/header.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "log/log_writer.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {


// Collects problems found while loading. In strict mode (Open) the first
// error aborts; in check mode everything is collected.
class Diagnostics {
 public:
  explicit Diagnostics(bool collect_all) : collect_all_(collect_all) {}
  // Records an error. Returns the status to propagate: `s` in strict mode,
  // OK in collect mode (the caller continues where it safely can).
  Status Error(const Status& s, std::string structure, uint64_t offset);
  void Warning(std::string structure, uint64_t offset, std::string message);
  bool collect_all() const { return collect_all_; }
  std::vector<CheckProblem>& problems() { return problems_; }

 private:
  bool collect_all_;
  std::vector<CheckProblem> problems_;
};

struct LoadState;  // open.cc

struct Image::Impl {
  // ---- set at open, then immutable -----------------------------------------
  std::unique_ptr<File> file;
  std::string path;  // as given; empty for images opened from a File
  bool read_only = true;
  format::Geometry geo;
  uint32_t physical_sector_size = 0;
  format::FileParameters params;
  Guid disk_id;
  format::FileIdentifier identifier;
  std::array<std::optional<format::Header>, 2> header_copies;
  format::RegionTable regions;
  format::MetadataTable metadata_table;
  std::optional<format::ParentLocator> parent_locator;
  uint64_t bat_offset = 0;
  uint64_t bat_length = 0;
  uint64_t metadata_offset = 0;
  uint64_t metadata_length = 0;
  LogState log_state = LogState::kClean;
  uint32_t log_entries_replayed = 0;
  uint64_t opened_file_size = 0;
  // The parent chain (differencing images), opened read-only.
  std::unique_ptr<Image> parent;
  std::vector<ChainLinkInfo> chain;
  ParentMatch parent_match = ParentMatch::kNone;  // set by OpenParent

  // ---- BAT ------------------------------------------------------------------
  // Entries are read without a lock (acquire) and published with release
  // after the data they point at is written. Writers change an entry only
  // while holding the block's stripe lock exclusively (or meta_mu_ for SB
  // entries).
  std::unique_ptr<std::atomic<uint64_t>[]> bat;

  // ---- block stripe locks ---------------------------------------------------
  static constexpr size_t kStripes = 1024;
  std::unique_ptr<std::shared_mutex[]> stripes;
  std::shared_mutex& StripeFor(uint64_t block) { return stripes[block % kStripes]; }

  // ---- header state (guarded by meta_mu_) ----------------------------------
  std::mutex meta_mu_;
  format::Header header;       // the current header as last written
  int current_slot = 0;        // 0 or 1: slot holding `header`
  std::atomic<bool> file_guid_updated{false};
  std::atomic<bool> data_guid_updated{false};
  bool log_guid_active = false;  // header LogGuid == session LogGuid, durable
  Guid session_log_guid;
  // Sticky error: set by a failed metadata update; every later call fails.
  std::atomic<bool> failed{false};
  Status failed_status;  // guarded by meta_mu_
  // Dirty metadata pages, keyed by file offset (4 KiB aligned). BAT pages are
  // re-encoded from `bat` at commit time, so only their offsets are kept;
  // other pages (sector bitmaps, metadata) carry their bytes.
  std::set<uint64_t> dirty_bat_pages;
  // Dirty sector-bitmap pages; their bytes are in sb_pages.
  std::set<uint64_t> dirty_sb_pages;
  // Other dirty metadata pages (metadata region, region tables) with bytes.
  std::map<uint64_t, std::vector<uint8_t>> dirty_pages;
  // Space freed by BAT changes that are not durable yet. Guarded by meta_mu_
  // so a commit snapshots frees together with the pages that free them;
  // released to free_space once the commit is durable (invariant 4).
  std::vector<FreeSpace::Extent> pending_free;
  // Some entry published since the last snapshot must not be logged before
  // the data it points at is durable (invariant 1): the commit then needs
  // its leading flush. Set together with the entry, under meta_mu_.
  bool data_barrier_needed = false;
  // Cached sector-bitmap pages (file offset -> 4 KiB) for differencing
  // images: the authoritative copy of every page we modified.
  std::map<uint64_t, std::vector<uint8_t>> sb_pages;
  // Serialises sector-bitmap block allocation (taken with a stripe lock
  // held, before alloc_mu_ and meta_mu_).
  std::mutex sb_alloc_mu_;

  // ---- allocation (guarded by alloc_mu_) -------------------------------------
  std::mutex alloc_mu_;
  FreeSpace free_space;
  // File size as far as allocation is concerned (objects + free space).
  uint64_t file_end = 0;
  // Everything from here up has never been handed out in this session and
  // lies past the file's size at open: it reads as zero after any crash.
  uint64_t never_used_from = 0;

  // ---- commit and flush ------------------------------------------------------
  std::mutex commit_mu_;
  std::unique_ptr<LogWriter> log_writer;  // guarded by commit_mu_
  // Pages the last commit applied that no flush has covered since, with the
  // bytes applied (guarded by commit_mu_). A commit that skips its leading
  // flush carries them in its entry (invariant 3).
  std::vector<std::pair<uint64_t, std::array<uint8_t, 4096>>> unflushed_applies;
  // File size sampled before the last successful flush of a commit: a size
  // that is durable from then on, since the file only grows while open
  // (guarded by commit_mu_; invariant 11).
  uint64_t durable_file_size = 0;
  // Commits that took the single-flush path (guarded by commit_mu_; tests).
  uint64_t single_flush_commits = 0;
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  uint64_t flush_requested = 0;  // guarded by flush_mu_
  uint64_t flush_completed = 0;  // guarded by flush_mu_
  bool flush_running = false;    // guarded by flush_mu_
  std::atomic<size_t> dirty_count{0};  // approximate, to trigger commits

  bool closed = false;

  // ---- helpers (open.cc, read.cc, write.cc, commit.cc) ------------------------
  bool is_differencing() const { return params.has_parent; }
  bool is_fixed() const { return params.leave_block_allocated && !params.has_parent; }
  format::BatEntry LoadEntry(uint64_t bat_index) const {
    return format::BatEntry::Decode(bat[bat_index].load(std::memory_order_acquire));
  }

  // Validates and loads every structure (open.cc), one step per structure.
  Status Load(Diagnostics& diag, const OpenOptions& options);
  Status LoadFileIdentifier(Diagnostics& diag);
  Status LoadHeaders(Diagnostics& diag, LoadState& st);
  Status ReplayLogOnOpen(Diagnostics& diag, LoadState& st);
  Status LoadRegionTables(Diagnostics& diag, LoadState& st);
  Status LoadMetadata(Diagnostics& diag);
  Status LoadBat(Diagnostics& diag, LoadState& st);
  void BuildFreeSpace(LoadState& st);
  Status OpenParent(const OpenOptions& options);
  Status CheckAlive() const;

  Status ReadParent(uint64_t voff, std::span<uint8_t> out);
  Status ReadBlockRange(uint64_t block, uint64_t in_block, std::span<uint8_t> out);
  // Copies bytes [first_byte, last_byte) of `chunk`'s sector bitmap into
  // `out` (zeros when the chunk has no bitmap block).
  Status ReadSectorBitmapBytes(uint64_t chunk, uint64_t first_byte, uint64_t last_byte, uint8_t* out);
  // Calls fn(present, index, n) -> Status for each run of equal bits among
  // the `count` bits of `chunk`'s sector bitmap from bit `first_sector`
  // (index counts from first_sector), in order, stopping at an error.
  template <typename Fn>
  Status ForEachSectorRun(uint64_t chunk, uint64_t first_sector, uint64_t count, Fn&& fn);
  Status WriteBlockRange(uint64_t block, uint64_t in_block, std::span<const uint8_t> data);
  Status ZeroBlockRange(uint64_t block, uint64_t in_block, uint64_t length);
  Status TrimBlockRange(uint64_t block, uint64_t in_block, uint64_t length, TrimMode mode);

  // Space management (write.cc).
  // `never_used` (optional) tells whether the space lies wholly at or above
  // never_used_from, i.e. reads as zero after a crash whatever is logged.
  Result<FreeSpace::Extent> AllocateSpace(uint64_t length, bool* never_used = nullptr);
  // Returns never-referenced space straight to the free pool.
  void ReturnSpace(const FreeSpace::Extent& extent);
  // Sector bitmap helpers for differencing images (write.cc).
  Result<uint64_t> EnsureSectorBitmap(uint64_t chunk);
  Status SetSectorBits(uint64_t chunk, uint64_t first_bit, uint64_t count, bool value);
  Status LoadSbPageLocked(uint64_t page_off);  // meta_mu_ held

  // Header updates (commit.cc).
  Status BeginWrite(bool user_visible);
  Status WriteHeaderLocked(const format::Header& next);  // meta_mu_ held
  // Publishes a BAT entry and marks its page dirty; `freed` (length 0 for
  // none) becomes reusable once the change is durable. `needs_barrier`
  // false only for an entry whose data may become durable together with
  // its log entry (never-used space in a base image, whose old content is
  // zeros): the commit may then skip its leading flush.
  void SetBatEntry(uint64_t bat_index, format::BatEntry entry, FreeSpace::Extent freed = {0, 0, false},
                   bool needs_barrier = true);
  Status CommitMetadata();     // commit_mu_ not held by caller
  // Makes space freed by a durable commit reusable (commit_mu_ held).
  Status ReleaseFrees(std::vector<FreeSpace::Extent>& frees);
  Status FlushAll();
  Status MaybeCommit();
  Status CloseClean();
  void Fail(const Status& s);

  // Queues both region table copies, encoded from `table`, as dirty pages
  // for the next commit. meta_mu_ held.
  void LogRegionTablesLocked(const format::RegionTable& table);
  // Replaces (or adds) a system metadata item, re-packing the items of the
  // metadata region; the changed pages go through the log (metadata.cc).
  Status UpdateMetadataItem(const Guid& id, std::span<const uint8_t> value, bool is_virtual_disk,
                            bool is_required);
  std::optional<Guid> next_data_write_guid;

  // Resize and compaction (resize.cc, compact.cc); callers hold every
  // stripe lock exclusively.
  Status ResizeLocked(uint64_t new_size, const ResizeOptions& options);
  Result<CompactResult> CompactLocked();
  // Writes `data` over the BAT region at its new home and switches to it.
  Status RelocateBat(uint64_t new_length);
  // Locks every stripe exclusively (blocks all data I/O).
  std::vector<std::unique_lock<std::shared_mutex>> LockAllStripes();

  // Found by Load in collect-all mode, fixed by Repair (check.cc).
  std::vector<uint64_t> invalid_bat_entries;
  bool region_tables_need_rewrite = false;
  bool headers_need_rewrite = false;
  Status Repair(CheckReport* report);
};

template <typename Fn>
Status Image::Impl::ForEachSectorRun(uint64_t chunk, uint64_t first_sector, uint64_t count, Fn&& fn) {
  const uint64_t first_byte = first_sector / 8;
  const uint64_t last_byte = (first_sector + count + 7) / 8;
  // Requests up to 1 MiB (512-byte sectors) scan a buffer on the stack; a
  // whole large block needs up to 64 KiB.
  std::array<uint8_t, 256> small;
  std::vector<uint8_t> large;
  uint8_t* raw = small.data();
  if (last_byte - first_byte > small.size()) {
    large.resize(last_byte - first_byte);
    raw = large.data();
  }
  if (Status s = ReadSectorBitmapBytes(chunk, first_byte, last_byte, raw); !s.ok()) return s;
  auto bit = [&](uint64_t i) {
    const uint64_t b = first_sector + i;
    return ((raw[b / 8 - first_byte] >> (b % 8)) & 1) != 0;
  };
  for (uint64_t i = 0; i < count;) {
    const bool present = bit(i);
    const uint8_t same = present ? 0xff : 0x00;
    uint64_t j = i + 1;
    while (j < count) {
      const uint64_t b = first_sector + j;
      if (b % 8 == 0 && j + 8 <= count && raw[b / 8 - first_byte] == same) {
        j += 8;  // a whole byte of the same bit
      } else if (bit(j) == present) {
        ++j;
      } else {
        break;
      }
    }
    if (Status s = fn(present, i, j - i); !s.ok()) return s;
    i = j;
  }
  return Status::OK();
}

// Access to an Image's internals for library code outside src/image.
struct ImageAccess {
  static Image::Impl& Get(Image& image) { return *image.impl_; }
};

}  // namespace vhdx

#endif  // VHDX_SRC_IMAGE_IMAGE_IMPL_H_
