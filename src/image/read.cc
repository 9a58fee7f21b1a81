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

// Reads `count` bits of the sector bitmap of `chunk` starting at bit
// `first_sector` into `bits` (one byte per sector, 0 or 1).
Status Image::Impl::ReadSectorBitmap(uint64_t chunk, uint64_t first_sector, uint64_t count,
                                     std::vector<uint8_t>* bits) {
  format::BatEntry sb = LoadEntry(geo.BatIndexOfSectorBitmap(chunk));
  bits->assign(count, 0);
  if (sb.state != format::kSbPresent) return Status::OK();
  uint64_t first_byte = first_sector / 8;
  uint64_t last_byte = (first_sector + count + 7) / 8;
  std::vector<uint8_t> raw(last_byte - first_byte);
  // Pages we changed live in sb_pages (under meta_mu_); the rest is on disk.
  uint64_t base = sb.file_offset;
  {
    std::unique_lock lock(meta_mu_);
    uint64_t pos = first_byte;
    while (pos < last_byte) {
      uint64_t page_off = base + pos / 4096 * 4096;
      uint64_t in_page = pos % 4096;
      uint64_t n = std::min<uint64_t>(4096 - in_page, last_byte - pos);
      auto it = sb_pages.find(page_off);
      if (it != sb_pages.end()) {
        std::memcpy(raw.data() + (pos - first_byte), it->second.data() + in_page, n);
      } else {
        lock.unlock();
        if (Status s = file->ReadAt(page_off + in_page, std::span<uint8_t>(raw.data() + (pos - first_byte), n));
            !s.ok()) {
          return s;
        }
        lock.lock();
        // A writer may have cached (and changed) the page meanwhile.
        auto again = sb_pages.find(page_off);
        if (again != sb_pages.end()) {
          std::memcpy(raw.data() + (pos - first_byte), again->second.data() + in_page, n);
        }
      }
      pos += n;
    }
  }
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t bit = first_sector + i;
    (*bits)[i] = (raw[bit / 8 - first_byte] >> (bit % 8)) & 1;
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
      const uint64_t count = out.size() / lss;
      std::vector<uint8_t> bits;
      if (Status s = ReadSectorBitmap(chunk, first_bit, count, &bits); !s.ok()) return s;
      // Coalesce runs of equal bits into single reads.
      uint64_t i = 0;
      while (i < count) {
        uint64_t j = i + 1;
        while (j < count && bits[j] == bits[i]) ++j;
        std::span<uint8_t> piece = out.subspan(i * lss, (j - i) * lss);
        Status s = bits[i] ? file->ReadAt(e.file_offset + in_block + i * lss, piece)
                           : ReadParent(voff + i * lss, piece);
        if (!s.ok()) return s;
        i = j;
      }
      return Status::OK();
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
