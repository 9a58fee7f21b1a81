// Changing the virtual size. See docs/design.md ("Resize").
//
// Invariant R1: on disk, BAT entries past the current entry count are zero,
// so a later grow never resurrects stale entries even if its log entries
// are split by a crash. Shrinking therefore logs zeros over the dropped
// entries, and growing logs the pages of the new entries.
// Invariant R2: a relocated BAT is written in full to space no valid
// structure references, and made durable (the commit's leading flush)
// before the region table that points at it is logged.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "format/constants.h"
#include "image/image_impl.h"
#include "util/coding.h"

namespace vhdx {

namespace {
constexpr uint64_t kEntriesPerPage = 4096 / 8;

bool HoldsSpace(const format::BatEntry& e) {
  switch (e.state) {
    case format::kPayloadFullyPresent:
    case format::kPayloadPartiallyPresent:
      return true;
    case format::kPayloadUndefined:
    case format::kPayloadUnmapped:
      return e.file_offset != 0;
    default:
      return false;
  }
}
}  // namespace

std::vector<std::unique_lock<std::shared_mutex>> Image::Impl::LockAllStripes() {
  std::vector<std::unique_lock<std::shared_mutex>> locks;
  locks.reserve(kStripes);
  for (size_t i = 0; i < kStripes; ++i) locks.emplace_back(stripes[i]);
  return locks;
}

Status Image::Resize(uint64_t new_size, const ResizeOptions& options) {
  Impl& im = *impl_;
  if (im.closed) return Status::InvalidArgument("resize: image is closed");
  if (im.read_only) return Status::ReadOnly("resize: image is open read-only");
  if (Status s = im.CheckAlive(); !s.ok()) return s;
  if (new_size == 0 || new_size % im.geo.logical_sector_size != 0) {
    return Status::InvalidArgument("resize: size must be a non-zero multiple of the logical sector size (" +
                                   std::to_string(im.geo.logical_sector_size) + ")");
  }
  if (new_size > format::kMaxVirtualDiskSize) return Status::InvalidArgument("resize: the maximum size is 64 TiB");
  if (new_size == im.geo.virtual_size) return Status::OK();
  if (Status s = im.BeginWrite(true); !s.ok()) return s;  // a size change is user-visible
  auto locks = im.LockAllStripes();
  Status s = im.ResizeLocked(new_size, options);
  if (!s.ok() && s.code() != ErrorCode::kInvalidArgument) im.Fail(s);
  return s;
}

Status Image::Impl::ResizeLocked(uint64_t new_size, const ResizeOptions& options) {
  auto ng_or = format::Geometry::Compute(new_size, geo.block_size, geo.logical_sector_size, params.has_parent);
  if (!ng_or.ok()) return ng_or.status();
  const format::Geometry ng = *ng_or;
  const format::Geometry og = geo;
  if (Status s = CommitMetadata(); !s.ok()) return s;

  const uint64_t lss = og.logical_sector_size;
  auto cut_block_tail = [&](uint64_t block, uint64_t from_in_block) -> Status {
    // Makes [from_in_block, block end) of `block` hold nothing stale.
    format::BatEntry e = LoadEntry(og.BatIndexOfBlock(block));
    if (from_in_block >= og.block_size) return Status::OK();
    if (e.state == format::kPayloadFullyPresent) {
      return file->ZeroRange(e.file_offset + from_in_block, og.block_size - from_in_block);
    }
    if (e.state == format::kPayloadPartiallyPresent) {
      uint64_t first_sector = (block * uint64_t{og.block_size} + from_in_block) / lss;
      return SetSectorBits(first_sector / format::kSectorsPerChunk, first_sector % format::kSectorsPerChunk,
                           (og.block_size - from_in_block) / lss, false);
    }
    return Status::OK();
  };

  std::vector<FreeSpace::Extent> freed;
  if (ng.virtual_size < og.virtual_size) {
    // Refuse to cut off data unless asked: the smallest size keeping every
    // block that holds data (what `vhdx info` reports as the minimum size).
    uint64_t min_size = 0;
    for (uint64_t k = og.payload_blocks; k-- > 0;) {
      uint8_t st = LoadEntry(og.BatIndexOfBlock(k)).state;
      if (st == format::kPayloadFullyPresent || st == format::kPayloadPartiallyPresent) {
        min_size = std::min(og.virtual_size, (k + 1) * uint64_t{og.block_size});
        break;
      }
    }
    if (ng.virtual_size < min_size && !options.allow_data_loss) {
      return Status::InvalidArgument("shrinking to " + std::to_string(ng.virtual_size) +
                                     " bytes would discard allocated data; the minimum size is " +
                                     std::to_string(min_size) + " bytes (allow data loss to force it)");
    }
    for (uint64_t b = ng.payload_blocks; b < og.payload_blocks; ++b) {
      format::BatEntry e = LoadEntry(og.BatIndexOfBlock(b));
      if (HoldsSpace(e)) freed.push_back({e.file_offset, og.block_size, false});
    }
    if (params.has_parent) {
      for (uint64_t c = ng.sector_bitmap_blocks; c < og.sector_bitmap_blocks; ++c) {
        format::BatEntry e = LoadEntry(og.BatIndexOfSectorBitmap(c));
        if (e.state == format::kSbPresent) freed.push_back({e.file_offset, format::kSectorBitmapBlockSize, false});
      }
    }
    if (ng.virtual_size % og.block_size != 0) {
      uint64_t last = ng.payload_blocks - 1;
      if (Status s = cut_block_tail(last, ng.virtual_size - last * uint64_t{og.block_size}); !s.ok()) return s;
    }
  } else if (og.virtual_size % og.block_size != 0 && og.payload_blocks > 0) {
    // Growing past a partial last block: its bytes beyond the old end were
    // never part of the disk and may hold anything.
    uint64_t last = og.payload_blocks - 1;
    if (Status s = cut_block_tail(last, og.virtual_size - last * uint64_t{og.block_size}); !s.ok()) return s;
  }

  // The new in-memory BAT: same chunk ratio, so indexes keep their meaning.
  auto nb = std::make_unique<std::atomic<uint64_t>[]>(ng.bat_entries);
  const uint64_t keep = std::min(og.bat_entries, ng.bat_entries);
  for (uint64_t i = 0; i < keep; ++i) nb[i].store(bat[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
  for (uint64_t b = ng.payload_blocks; b < og.payload_blocks; ++b) {
    uint64_t idx = ng.BatIndexOfBlock(b);
    if (idx < ng.bat_entries) nb[idx].store(0, std::memory_order_relaxed);
  }
  for (uint64_t c = ng.sector_bitmap_blocks; params.has_parent && c < og.sector_bitmap_blocks; ++c) {
    uint64_t idx = ng.BatIndexOfSectorBitmap(c);
    if (idx < ng.bat_entries) nb[idx].store(0, std::memory_order_relaxed);
  }

  // Fixed images stay fully allocated.
  if (is_fixed()) {
    for (uint64_t b = og.payload_blocks; b < ng.payload_blocks; ++b) {
      auto space = AllocateSpace(ng.block_size);
      if (!space.ok()) return space.status();
      Status s = space->known_zero ? Status::OK() : file->ZeroRange(space->offset, space->length);
      if (s.ok()) s = file->Allocate(space->offset, space->length);  // fixed images are never sparse
      if (!s.ok()) return s;
      nb[ng.BatIndexOfBlock(b)].store(format::BatEntry{format::kPayloadFullyPresent, space->offset}.Encode(),
                                      std::memory_order_relaxed);
    }
  }

  uint64_t new_bat_offset = bat_offset, new_bat_length = bat_length;
  if (ng.bat_entries * 8 > bat_length) {
    // Invariant R2: the whole new BAT goes to unreferenced space first.
    const uint64_t len = std::max<uint64_t>(ng.BatRegionSize(), kMiB);
    if (len > UINT32_MAX) return Status::NotSupported("BAT region would exceed 4 GiB");
    auto space = AllocateSpace(len);
    if (!space.ok()) return space.status();
    std::vector<uint8_t> chunk(4 * kMiB);
    for (uint64_t pos = 0; pos < len; pos += chunk.size()) {
      uint64_t n = std::min<uint64_t>(chunk.size(), len - pos);
      std::fill(chunk.begin(), chunk.end(), 0);
      for (uint64_t i = pos / 8; i < (pos + n) / 8 && i < ng.bat_entries; ++i) {
        StoreLE64(chunk.data() + (i * 8 - pos), nb[i].load(std::memory_order_relaxed));
      }
      if (Status s = file->WriteAt(space->offset + pos, std::span<const uint8_t>(chunk.data(), n)); !s.ok()) {
        ReturnSpace(*space);
        return s;
      }
    }
    new_bat_offset = space->offset;
    new_bat_length = len;
    format::RegionTable table = regions;
    for (auto& r : table.entries) {
      if (r.guid == format::BatRegionGuid()) {
        r.file_offset = new_bat_offset;
        r.length = static_cast<uint32_t>(new_bat_length);
      }
    }
    std::lock_guard lock(meta_mu_);
    LogRegionTablesLocked(table);
    pending_free.push_back({bat_offset, bat_length, false});
    regions = table;
  }

  // The size item, through the log.
  uint8_t size_bytes[8];
  StoreLE64(size_bytes, ng.virtual_size);
  if (Status s = UpdateMetadataItem(format::VirtualDiskSizeGuid(), size_bytes, true, true); !s.ok()) return s;

  {
    std::lock_guard lock(meta_mu_);
    bat = std::move(nb);
    geo = ng;
    const bool relocated = new_bat_offset != bat_offset;
    bat_offset = new_bat_offset;
    bat_length = new_bat_length;
    // Invariant R1: log the pages that gained or lost entries (a relocated
    // BAT was written whole, and its old copy is simply abandoned).
    if (!relocated) {
      uint64_t lo = std::min(og.bat_entries, ng.bat_entries), hi = std::max(og.bat_entries, ng.bat_entries);
      for (uint64_t b = ng.payload_blocks; b < og.payload_blocks; ++b) lo = std::min(lo, ng.BatIndexOfBlock(b));
      for (uint64_t p = lo / kEntriesPerPage; p * kEntriesPerPage < hi; ++p) {
        if (dirty_bat_pages.insert(p).second) dirty_count.fetch_add(1);
      }
    }
    for (const auto& f : freed) pending_free.push_back(f);
  }
  for (const auto& f : freed) file->PunchHole(f.offset, f.length).PermitUncheckedError();
  return CommitMetadata();
}

}  // namespace vhdx
