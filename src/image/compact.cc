// Compaction (Optimize-VHD Full). See docs/design.md ("Compaction").
//
// Moving a block: copy its bytes to a lower free hole, then publish the BAT
// entry with the new offset and the old space as a pending free. The
// commit's leading flush makes the copy durable before the entry is logged
// (invariant 1), and the old space is reused only after the entry is
// durable (invariant 4), so a crash leaves either the old or the new
// location referenced, both holding the block's data.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "format/constants.h"
#include "image/image_impl.h"

namespace vhdx {

Result<CompactResult> Image::Compact() {
  Impl& im = *impl_;
  if (im.closed) return Status::InvalidArgument("compact: image is closed");
  if (im.read_only) return Status::ReadOnly("compact: image is open read-only");
  if (Status s = im.CheckAlive(); !s.ok()) return s;
  // Neither zero detection nor moving changes what a read returns.
  if (Status s = im.BeginWrite(false); !s.ok()) return s;
  auto locks = im.LockAllStripes();
  auto r = im.CompactLocked();
  if (!r.ok()) im.Fail(r.status());
  return r;
}

Result<CompactResult> Image::Impl::CompactLocked() {
  CompactResult result;
  if (Status s = CommitMetadata(); !s.ok()) return s;
  auto size = file->Size();
  if (!size.ok()) return size.status();
  result.file_size_before = *size;

  // 1. All-zero payload blocks become ZERO blocks (not in fixed images,
  //    which keep every block allocated).
  std::vector<uint8_t> buf(std::min<uint64_t>(geo.block_size, 4 * kMiB));
  if (!is_fixed()) {
    for (uint64_t b = 0; b < geo.payload_blocks; ++b) {
      const uint64_t idx = geo.BatIndexOfBlock(b);
      format::BatEntry e = LoadEntry(idx);
      if (e.state != format::kPayloadFullyPresent) continue;
      bool zero = true;
      for (uint64_t pos = 0; pos < geo.block_size && zero; pos += buf.size()) {
        if (Status s = file->ReadAt(e.file_offset + pos, buf); !s.ok()) return s;
        zero = std::all_of(buf.begin(), buf.end(), [](uint8_t v) { return v == 0; });
      }
      if (!zero) continue;
      FreeSpace::Extent freed{e.file_offset, geo.block_size, false};
      freed.known_zero = file->PunchHole(freed.offset, freed.length).ok();
      SetBatEntry(idx, {format::kPayloadZero, 0}, freed);
      ++result.blocks_zeroed;
    }
    // Soft anchors are given up: the blocks keep reading as zeros.
    for (uint64_t b = 0; b < geo.payload_blocks; ++b) {
      const uint64_t idx = geo.BatIndexOfBlock(b);
      format::BatEntry e = LoadEntry(idx);
      if ((e.state == format::kPayloadUndefined || e.state == format::kPayloadUnmapped) && e.file_offset != 0) {
        FreeSpace::Extent freed{e.file_offset, geo.block_size, false};
        freed.known_zero = file->PunchHole(freed.offset, freed.length).ok();
        SetBatEntry(idx, {e.state, 0}, freed);
      }
    }
    if (Status s = CommitMetadata(); !s.ok()) return s;
  }

  // 2. Move the objects nearest the end of the file into the lowest holes.
  struct Movable {
    uint64_t bat_index;
    uint64_t offset;
    uint64_t length;
  };
  std::vector<Movable> objects;
  for (uint64_t idx = 0; idx < geo.bat_entries; ++idx) {
    format::BatEntry e = LoadEntry(idx);
    if (geo.IsSectorBitmapIndex(idx)) {
      if (is_differencing() && e.state == format::kSbPresent) {
        objects.push_back({idx, e.file_offset, format::kSectorBitmapBlockSize});
      }
    } else if (e.state == format::kPayloadFullyPresent || e.state == format::kPayloadPartiallyPresent) {
      objects.push_back({idx, e.file_offset, geo.block_size});
    }
  }
  std::sort(objects.begin(), objects.end(), [](const Movable& a, const Movable& b) { return a.offset > b.offset; });
  {
    // Every page is applied; cached bitmap pages are re-read from their
    // (possibly new) location.
    std::lock_guard lock(meta_mu_);
    sb_pages.clear();
  }
  size_t since_commit = 0;
  for (const Movable& m : objects) {
    std::optional<FreeSpace::Extent> hole;
    {
      std::lock_guard lock(alloc_mu_);
      hole = free_space.Take(m.length);
      if (hole && hole->offset >= m.offset) {
        free_space.Add(hole->offset, hole->length, hole->known_zero);
        hole.reset();
      }
    }
    if (!hole) continue;  // nothing lower has room for this one
    for (uint64_t pos = 0; pos < m.length; pos += buf.size()) {
      uint64_t n = std::min<uint64_t>(buf.size(), m.length - pos);
      std::span<uint8_t> piece(buf.data(), n);
      Status s = file->ReadAt(m.offset + pos, piece);
      if (s.ok()) s = file->WriteAt(hole->offset + pos, piece);
      if (!s.ok()) {
        ReturnSpace(*hole);
        return s;
      }
    }
    format::BatEntry e = LoadEntry(m.bat_index);
    FreeSpace::Extent freed{m.offset, m.length, false};
    SetBatEntry(m.bat_index, {e.state, hole->offset}, freed);
    ++result.blocks_moved;
    if (++since_commit >= 64) {
      if (Status s = CommitMetadata(); !s.ok()) return s;
      since_commit = 0;
    }
  }
  if (Status s = CommitMetadata(); !s.ok()) return s;
  // Space given up at the end is released by Close (after the log is
  // retired, so a replay never sees a file shorter than it recorded).
  {
    std::lock_guard lock(alloc_mu_);
    uint64_t end = free_space.TrailingFreeStart(file_end);
    result.file_size_after = std::min(end, *size);
  }
  return result;
}

}  // namespace vhdx
