// The write path: in-place writes, block allocation, sector bitmaps,
// write-zeroes and trim. See docs/design.md ("Write path").
#include <algorithm>
#include <cstring>
#include <mutex>

#include "format/constants.h"
#include "image/image_impl.h"
#include "util/coding.h"

namespace vhdx {

namespace {
constexpr uint64_t kPage = 4096;
}  // namespace

Result<FreeSpace::Extent> Image::Impl::AllocateSpace(uint64_t length, bool* never_used) {
  std::lock_guard lock(alloc_mu_);
  auto handed_out = [&](const FreeSpace::Extent& e) {
    if (never_used) *never_used = e.offset >= never_used_from;
    never_used_from = std::max(never_used_from, e.offset + e.length);
    return e;
  };
  if (auto e = free_space.Take(length)) return handed_out(*e);
  // Grow in large steps (1/8 of the file, 16 MiB to 1 GiB) so that a stream
  // of allocations does not change the file size every time; the trailing
  // free space is given back on close.
  uint64_t step = std::clamp<uint64_t>(file_end / 8, 16 * kMiB, 1 * kGiB);
  step = std::max(AlignUp(step, kMiB), length);
  // A host file system that is nearly full may still take the block alone.
  for (uint64_t grow : {step, length}) {
    uint64_t new_end;
    if (!CheckedAdd(file_end, grow, &new_end) || new_end > format::kMaxFileSize) {
      return Status::NoSpace("image file would exceed the maximum size");
    }
    Status s = file->Truncate(new_end);
    if (s.ok()) {
      free_space.Add(file_end, grow, true);
      file_end = new_end;
      return handed_out(*free_space.Take(length));
    }
    // Only a full file system is worth a smaller try; any other error is
    // reported as it is.
    if (grow == length || s.code() != ErrorCode::kNoSpace) return s;
  }
  return Status::NoSpace("cannot grow the image file");
}

void Image::Impl::ReturnSpace(const FreeSpace::Extent& extent) {
  std::lock_guard lock(alloc_mu_);
  free_space.Add(extent.offset, extent.length, false);
}

// meta_mu_ held.
Status Image::Impl::LoadSbPageLocked(uint64_t page_off) {
  if (sb_pages.count(page_off)) return Status::OK();
  std::vector<uint8_t> page(kPage);
  if (Status s = file->ReadAt(page_off, page); !s.ok()) return s;
  sb_pages.emplace(page_off, std::move(page));
  return Status::OK();
}

// Returns the file offset of the chunk's sector bitmap block, allocating a
// zeroed one when needed. Called with the block's stripe lock held
// exclusively; SB allocation is serialised by sb_alloc_mu_ via meta_mu_.
Result<uint64_t> Image::Impl::EnsureSectorBitmap(uint64_t chunk) {
  const uint64_t sb_index = geo.BatIndexOfSectorBitmap(chunk);
  std::lock_guard guard(sb_alloc_mu_);
  format::BatEntry sb = LoadEntry(sb_index);
  if (sb.state == format::kSbPresent) return sb.file_offset;
  auto space = AllocateSpace(format::kSectorBitmapBlockSize);
  if (!space.ok()) return space.status();
  // Invariant 2: a reused SB block is zeroed before its entry can be logged;
  // the commit's leading flush makes the zeros durable first.
  if (!space->known_zero) {
    if (Status s = file->ZeroRange(space->offset, space->length); !s.ok()) {
      ReturnSpace(*space);
      return s;
    }
  }
  {
    std::lock_guard lock(meta_mu_);
    // Pages of a fresh bitmap are all zero; drop anything stale cached.
    for (uint64_t off = space->offset; off < space->offset + space->length; off += kPage) sb_pages.erase(off);
  }
  SetBatEntry(sb_index, {format::kSbPresent, space->offset});
  return space->offset;
}

Status Image::Impl::SetSectorBits(uint64_t chunk, uint64_t first_bit, uint64_t count, bool value) {
  format::BatEntry sb = LoadEntry(geo.BatIndexOfSectorBitmap(chunk));
  if (sb.state != format::kSbPresent) return Status::Corruption("sector bitmap block missing");
  std::lock_guard lock(meta_mu_);
  uint64_t bit = first_bit, end = first_bit + count;
  while (bit < end) {
    uint64_t byte = bit / 8;
    uint64_t page_off = sb.file_offset + byte / kPage * kPage;
    if (Status s = LoadSbPageLocked(page_off); !s.ok()) return s;
    std::vector<uint8_t>& page = sb_pages[page_off];
    // Bits of this page: up to the page end.
    uint64_t page_end_bit = (byte / kPage + 1) * kPage * 8;
    uint64_t stop = std::min(end, page_end_bit);
    for (; bit < stop; ++bit) {
      uint8_t& b = page[(bit / 8) % kPage];
      uint8_t mask = static_cast<uint8_t>(1u << (bit % 8));
      b = value ? static_cast<uint8_t>(b | mask) : static_cast<uint8_t>(b & ~mask);
    }
    if (dirty_sb_pages.insert(page_off).second) dirty_count.fetch_add(1);
  }
  return Status::OK();
}

Status Image::Impl::WriteBlockRange(uint64_t block, uint64_t in_block, std::span<const uint8_t> data) {
  const uint64_t idx = geo.BatIndexOfBlock(block);
  const uint64_t lss = geo.logical_sector_size;
  const uint64_t voff = block * geo.block_size + in_block;
  const uint64_t chunk = voff / lss / format::kSectorsPerChunk;
  const uint64_t first_bit = voff / lss % format::kSectorsPerChunk;
  // The block's part inside the virtual disk (the last block may be short).
  const uint64_t block_start = block * uint64_t{geo.block_size};
  const uint64_t block_used = std::min<uint64_t>(geo.block_size, geo.virtual_size - block_start);
  const bool full = in_block == 0 && data.size() >= block_used;
  {
    std::shared_lock stripe(StripeFor(block));
    format::BatEntry e = LoadEntry(idx);
    if (e.state == format::kPayloadFullyPresent) return file->WriteAt(e.file_offset + in_block, data);
    if (e.state == format::kPayloadPartiallyPresent && !full) {
      if (Status s = file->WriteAt(e.file_offset + in_block, data); !s.ok()) return s;
      // The bits are published after the data they describe is written.
      return SetSectorBits(chunk, first_bit, data.size() / lss, true);
    }
  }
  std::unique_lock stripe(StripeFor(block));
  format::BatEntry e = LoadEntry(idx);  // another writer may have won the race
  if (e.state == format::kPayloadFullyPresent) return file->WriteAt(e.file_offset + in_block, data);
  if (e.state == format::kPayloadPartiallyPresent) {
    if (Status s = file->WriteAt(e.file_offset + in_block, data); !s.ok()) return s;
    if (full) {
      // Every sector is now in this file: FULLY_PRESENT in place, and the
      // sector bitmap is no longer consulted for the block.
      SetBatEntry(idx, {format::kPayloadFullyPresent, e.file_offset});
      return Status::OK();
    }
    return SetSectorBits(chunk, first_bit, data.size() / lss, true);
  }

  if (is_differencing() && e.state == format::kPayloadNotPresent && !full) {
    // Partial write over the parent: PARTIALLY_PRESENT with the written
    // sectors' bits set; unwritten sectors keep reading from the parent.
    auto sb = EnsureSectorBitmap(chunk);
    if (!sb.ok()) return sb.status();
    auto space = AllocateSpace(geo.block_size);
    if (!space.ok()) return space.status();
    if (Status s = file->WriteAt(space->offset + in_block, data); !s.ok()) {
      ReturnSpace(*space);
      return s;
    }
    // Bits of a block being allocated may be stale from an earlier life of
    // this block (trimmed to NOT_PRESENT): clear the whole block first.
    const uint64_t block_first_bit = block_start / lss % format::kSectorsPerChunk;
    if (Status s = SetSectorBits(chunk, block_first_bit, block_used / lss, false); !s.ok()) return s;
    if (Status s = SetSectorBits(chunk, first_bit, data.size() / lss, true); !s.ok()) return s;
    SetBatEntry(idx, {format::kPayloadPartiallyPresent, space->offset});
    return Status::OK();
  }

  // Allocate a whole block; parts the write does not cover must read as
  // zeros (base image semantics of NOT_PRESENT/ZERO/UNMAPPED/UNDEFINED).
  FreeSpace::Extent space;
  const bool anchored = (e.state == format::kPayloadUndefined || e.state == format::kPayloadUnmapped) &&
                        e.file_offset != 0;
  bool never_used = false;
  if (anchored) {
    space = {e.file_offset, geo.block_size, false};  // soft anchor: the block's own space
  } else {
    auto s = AllocateSpace(geo.block_size, &never_used);
    if (!s.ok()) return s.status();
    space = *s;
  }
  auto give_back = [&] {
    if (!anchored) ReturnSpace(space);
  };
  if (!full && !space.known_zero) {
    // Invariant 2: zero fill of reused space is written before the entry is
    // published, and the commit's leading flush makes it durable first.
    if (in_block > 0) {
      if (Status s = file->ZeroRange(space.offset, in_block); !s.ok()) {
        give_back();
        return s;
      }
    }
    uint64_t tail = in_block + data.size();
    if (tail < geo.block_size) {
      if (Status s = file->ZeroRange(space.offset + tail, geo.block_size - tail); !s.ok()) {
        give_back();
        return s;
      }
    }
  }
  if (Status s = file->WriteAt(space.offset + in_block, data); !s.ok()) {
    give_back();
    return s;
  }
  // The block read as zeros before (a differencing block read its parent),
  // and never-used space reads as zeros after a crash: the entry may reach
  // the log together with its data rather than after it.
  SetBatEntry(idx, {format::kPayloadFullyPresent, space.offset}, {0, 0, false}, !never_used || is_differencing());
  return Status::OK();
}

Status Image::Impl::ZeroBlockRange(uint64_t block, uint64_t in_block, uint64_t length) {
  const uint64_t idx = geo.BatIndexOfBlock(block);
  const uint64_t block_start = block * uint64_t{geo.block_size};
  const uint64_t block_used = std::min<uint64_t>(geo.block_size, geo.virtual_size - block_start);
  const bool whole = in_block == 0 && length >= block_used;
  std::unique_lock stripe(StripeFor(block));
  format::BatEntry e = LoadEntry(idx);
  if (whole && !is_fixed()) {
    // The block becomes ZERO without writing data; its space is freed once
    // the change is durable.
    FreeSpace::Extent freed{0, 0, false};
    if ((e.state == format::kPayloadFullyPresent || e.state == format::kPayloadPartiallyPresent ||
         e.state == format::kPayloadUndefined || e.state == format::kPayloadUnmapped) &&
        e.file_offset != 0) {
      freed = {e.file_offset, geo.block_size, false};
    }
    if (e.state == format::kPayloadZero) return Status::OK();
    // No reader is inside this block (exclusive stripe lock) and the block
    // reads as zeros from now on, so its old data can go at once; a punched
    // hole is known-zero space when it becomes reusable.
    if (freed.length) freed.known_zero = file->PunchHole(freed.offset, freed.length).ok();
    SetBatEntry(idx, {format::kPayloadZero, 0}, freed);
    return Status::OK();
  }
  switch (e.state) {
    case format::kPayloadFullyPresent:
      return file->ZeroRange(e.file_offset + in_block, length);
    case format::kPayloadNotPresent:
      if (!is_differencing()) return Status::OK();
      break;
    case format::kPayloadPartiallyPresent:
      break;
    default:
      return Status::OK();  // ZERO, UNDEFINED, UNMAPPED already read as zeros
  }
  // Differencing: zeros must hide the parent; write them like data.
  stripe.unlock();
  static const std::vector<uint8_t> zeros(1 * kMiB, 0);
  for (uint64_t pos = 0; pos < length;) {
    uint64_t n = std::min<uint64_t>(zeros.size(), length - pos);
    if (Status s = WriteBlockRange(block, in_block + pos, std::span<const uint8_t>(zeros.data(), n)); !s.ok()) {
      return s;
    }
    pos += n;
  }
  return Status::OK();
}

Status Image::Impl::TrimBlockRange(uint64_t block, uint64_t in_block, uint64_t length, TrimMode mode) {
  const uint64_t idx = geo.BatIndexOfBlock(block);
  const uint64_t lss = geo.logical_sector_size;
  const uint64_t block_start = block * uint64_t{geo.block_size};
  const uint64_t block_used = std::min<uint64_t>(geo.block_size, geo.virtual_size - block_start);
  const bool whole = in_block == 0 && length >= block_used;
  if (!is_differencing() || mode == TrimMode::kZero) {
    if (mode == TrimMode::kUnmapKeepSpace && whole && !is_fixed()) {
      std::unique_lock stripe(StripeFor(block));
      format::BatEntry e = LoadEntry(idx);
      if (e.state == format::kPayloadFullyPresent) {
        // Soft anchor: the block keeps its space, reads return zeros.
        SetBatEntry(idx, {format::kPayloadUnmapped, e.file_offset});
        return Status::OK();
      }
    }
    // Base images: discarded sectors read back as zero.
    return ZeroBlockRange(block, in_block, length);
  }
  // Differencing: the parent shows through again.
  std::unique_lock stripe(StripeFor(block));
  format::BatEntry e = LoadEntry(idx);
  if (whole) {
    if (e.state == format::kPayloadNotPresent) return Status::OK();
    FreeSpace::Extent freed{0, 0, false};
    if (e.file_offset != 0 && e.state != format::kPayloadZero && e.state != format::kPayloadNotPresent) {
      freed = {e.file_offset, geo.block_size, false};
    }
    // No hole is punched here: until the NOT_PRESENT entry is durable, a
    // crash leaves the old entry, and it must still find the old data (a
    // hole would read as zeros, neither the old data nor the parent's).
    // The space is reused (zero-filled as needed) once the change is durable.
    SetBatEntry(idx, {format::kPayloadNotPresent, 0}, freed);
    return Status::OK();
  }
  const uint64_t voff = block_start + in_block;
  const uint64_t chunk = voff / lss / format::kSectorsPerChunk;
  const uint64_t first_bit = voff / lss % format::kSectorsPerChunk;
  switch (e.state) {
    case format::kPayloadNotPresent:
      return Status::OK();
    case format::kPayloadPartiallyPresent:
      return SetSectorBits(chunk, first_bit, length / lss, false);
    case format::kPayloadFullyPresent: {
      // Becomes PARTIALLY_PRESENT: every sector present except the range.
      auto sb = EnsureSectorBitmap(chunk);
      if (!sb.ok()) return sb.status();
      const uint64_t block_first_bit = block_start / lss % format::kSectorsPerChunk;
      if (Status s = SetSectorBits(chunk, block_first_bit, block_used / lss, true); !s.ok()) return s;
      if (Status s = SetSectorBits(chunk, first_bit, length / lss, false); !s.ok()) return s;
      SetBatEntry(idx, {format::kPayloadPartiallyPresent, e.file_offset});
      return Status::OK();
    }
    default: {
      // ZERO/UNDEFINED/UNMAPPED partial: keep reading zeros (the caller
      // asked for the parent, but the rest of the block is defined as zero
      // and cannot be split without allocating; zeros are the safe answer).
      return Status::OK();
    }
  }
}

}  // namespace vhdx
