// The read path and the allocation map. See docs/design.md ("Read path").
#include <algorithm>
#include <cstring>
#include <mutex>

#include "format/constants.h"
#include "image/image_impl.h"
#include "util/coding.h"

namespace vhdx {

Status Image::Impl::CheckAlive() const {
  if (failed.load(std::memory_order_acquire)) {
    std::lock_guard lock(const_cast<std::mutex&>(meta_mu_));
    return failed_status;
  }
  return Status::OK();
}

Status Image::Impl::ReadSectorBitmapBytes(uint64_t chunk, uint64_t first_byte, uint64_t last_byte,
                                          uint8_t* out) {
  format::BatEntry sb = LoadEntry(geo.BatIndexOfSectorBitmap(chunk));
  if (sb.state != format::kSbPresent) {
    std::memset(out, 0, last_byte - first_byte);
    return Status::OK();
  }
  // Pages we changed live in sb_pages (under meta_mu_); the rest is on disk.
  const uint64_t base = sb.file_offset;
  std::unique_lock lock(meta_mu_);
  for (uint64_t pos = first_byte; pos < last_byte;) {
    const uint64_t page_off = base + pos / 4096 * 4096;
    const uint64_t in_page = pos % 4096;
    const uint64_t n = std::min<uint64_t>(4096 - in_page, last_byte - pos);
    uint8_t* dst = out + (pos - first_byte);
    auto it = sb_pages.find(page_off);
    if (it == sb_pages.end()) {
      lock.unlock();
      if (Status s = file->ReadAt(page_off + in_page, std::span<uint8_t>(dst, n)); !s.ok()) return s;
      lock.lock();
      // A writer may have cached (and changed) the page meanwhile.
      it = sb_pages.find(page_off);
    }
    if (it != sb_pages.end()) std::memcpy(dst, it->second.data() + in_page, n);
    pos += n;
  }
  return Status::OK();
}

Status Image::Impl::ReadParent(uint64_t voff, std::span<uint8_t> out) {
  if (!parent) return Status::NotSupported("data lives in a parent image that was not opened");
  // A smaller parent reads as zeros beyond its end.
  uint64_t psize = parent->virtual_size();
  uint64_t n = voff >= psize ? 0 : std::min<uint64_t>(out.size(), psize - voff);
  if (n < out.size()) std::memset(out.data() + n, 0, out.size() - n);
  if (n == 0) return Status::OK();
  return parent->Read(voff, out.first(n));
}

Status Image::Impl::ReadBlockRange(uint64_t block, uint64_t in_block, std::span<uint8_t> out) {
  std::shared_lock stripe(StripeFor(block));
  format::BatEntry e = LoadEntry(geo.BatIndexOfBlock(block));
  const uint64_t voff = block * geo.block_size + in_block;
  switch (e.state) {
    case format::kPayloadFullyPresent:
      return file->ReadAt(e.file_offset + in_block, out);
    case format::kPayloadPartiallyPresent: {
      const uint64_t lss = geo.logical_sector_size;
      const uint64_t sector = voff / lss;
      const uint64_t chunk = sector / format::kSectorsPerChunk;
      const uint64_t first_bit = sector % format::kSectorsPerChunk;
      // One read per run of present (this file) or absent (parent) sectors.
      return ForEachSectorRun(chunk, first_bit, out.size() / lss, [&](bool present, uint64_t i, uint64_t n) {
        std::span<uint8_t> piece = out.subspan(i * lss, n * lss);
        return present ? file->ReadAt(e.file_offset + in_block + i * lss, piece) : ReadParent(voff + i * lss, piece);
      });
    }
    case format::kPayloadNotPresent:
      if (is_differencing()) return ReadParent(voff, out);
      [[fallthrough]];
    default:
      // ZERO, UNDEFINED, UNMAPPED and NOT_PRESENT in a base image read as
      // zeros: never stale file contents.
      std::memset(out.data(), 0, out.size());
      return Status::OK();
  }
}

}  // namespace vhdx
