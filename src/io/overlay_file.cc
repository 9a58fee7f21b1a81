#include "io/overlay_file.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace vhdx {

OverlayFile::OverlayFile(std::unique_ptr<File> base) : base_(std::move(base)) {
  auto size = base_->Size();
  base_size_ = size.ok() ? *size : 0;
  size_ = base_size_;
}

size_t OverlayFile::page_count() const {
  std::shared_lock lock(mu_);
  return pages_.size();
}

Result<uint64_t> OverlayFile::Size() {
  std::shared_lock lock(mu_);
  return size_;
}

Status OverlayFile::Truncate(uint64_t size) {
  std::unique_lock lock(mu_);
  if (size < size_) {
    // Bytes cut off must read as zero if the file grows again.
    pages_.erase(pages_.lower_bound(size / kPage + 1), pages_.end());
    if (size % kPage != 0) {
      auto it = pages_.find(size / kPage);
      if (it != pages_.end()) std::fill(it->second.begin() + static_cast<ptrdiff_t>(size % kPage), it->second.end(), 0);
    }
    base_size_ = std::min(base_size_, size);
  }
  size_ = size;
  return Status::OK();
}

Status OverlayFile::Allocate(uint64_t offset, uint64_t length) {
  std::unique_lock lock(mu_);
  size_ = std::max(size_, offset + length);
  return Status::OK();
}

namespace {
bool InZeroRange(const std::map<uint64_t, uint64_t>& ranges, uint64_t offset) {
  auto it = ranges.upper_bound(offset);
  if (it == ranges.begin()) return false;
  --it;
  return offset < it->second;
}
}  // namespace

// Called with mu_ held (exclusively).
Status OverlayFile::LoadPage(uint64_t page_index, std::vector<uint8_t>* page) {
  page->assign(kPage, 0);
  uint64_t off = page_index * kPage;
  if (InZeroRange(zero_ranges_, off) || off >= base_size_) return Status::OK();
  uint64_t n = std::min<uint64_t>(kPage, base_size_ - off);
  return base_->ReadAt(off, std::span<uint8_t>(page->data(), n));
}

Status OverlayFile::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  std::unique_lock lock(mu_);
  uint64_t pos = 0;
  while (pos < data.size()) {
    uint64_t off = offset + pos;
    uint64_t index = off / kPage;
    uint64_t in_page = off % kPage;
    uint64_t n = std::min<uint64_t>(kPage - in_page, data.size() - pos);
    auto it = pages_.find(index);
    if (it == pages_.end()) {
      std::vector<uint8_t> page;
      if (Status s = LoadPage(index, &page); !s.ok()) return s;
      it = pages_.emplace(index, std::move(page)).first;
    }
    std::memcpy(it->second.data() + in_page, data.data() + pos, n);
    pos += n;
  }
  size_ = std::max(size_, offset + data.size());
  return Status::OK();
}

Status OverlayFile::ZeroRange(uint64_t offset, uint64_t length) {
  if (length == 0) return Status::OK();
  uint64_t end = offset + length;
  uint64_t first_full = (offset + kPage - 1) / kPage * kPage;
  uint64_t last_full = end / kPage * kPage;
  if (first_full >= last_full) {
    std::vector<uint8_t> zeros(length, 0);
    return WriteAt(offset, zeros);
  }
  if (offset < first_full) {
    std::vector<uint8_t> zeros(first_full - offset, 0);
    if (Status s = WriteAt(offset, zeros); !s.ok()) return s;
  }
  if (last_full < end) {
    std::vector<uint8_t> zeros(end - last_full, 0);
    if (Status s = WriteAt(last_full, zeros); !s.ok()) return s;
  }
  std::unique_lock lock(mu_);
  pages_.erase(pages_.lower_bound(first_full / kPage), pages_.lower_bound(last_full / kPage));
  // Insert [first_full, last_full) keeping the ranges disjoint.
  uint64_t start = first_full, stop = last_full;
  auto it = zero_ranges_.upper_bound(start);
  if (it != zero_ranges_.begin() && std::prev(it)->second >= start) --it;
  while (it != zero_ranges_.end() && it->first <= stop) {
    start = std::min(start, it->first);
    stop = std::max(stop, it->second);
    it = zero_ranges_.erase(it);
  }
  zero_ranges_.emplace(start, stop);
  size_ = std::max(size_, end);
  return Status::OK();
}

Status OverlayFile::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  std::shared_lock lock(mu_);
  if (pages_.empty() && zero_ranges_.empty()) {
    uint64_t limit = std::min(size_, base_size_);
    if (offset >= limit) {
      std::memset(out.data(), 0, out.size());
      return Status::OK();
    }
    uint64_t n = std::min<uint64_t>(out.size(), limit - offset);
    if (n < out.size()) std::memset(out.data() + n, 0, out.size() - n);
    return base_->ReadAt(offset, out.first(n));
  }
  uint64_t pos = 0;
  while (pos < out.size()) {
    uint64_t off = offset + pos;
    uint64_t index = off / kPage;
    uint64_t in_page = off % kPage;
    uint64_t n = std::min<uint64_t>(kPage - in_page, out.size() - pos);
    uint8_t* dst = out.data() + pos;
    auto it = pages_.find(index);
    if (it != pages_.end()) {
      std::memcpy(dst, it->second.data() + in_page, n);
    } else if (off >= size_ || off >= base_size_ || InZeroRange(zero_ranges_, index * kPage)) {
      std::memset(dst, 0, n);
    } else {
      uint64_t m = std::min<uint64_t>(n, base_size_ - off);
      if (m < n) std::memset(dst + m, 0, n - m);
      if (Status s = base_->ReadAt(off, std::span<uint8_t>(dst, m)); !s.ok()) return s;
    }
    pos += n;
  }
  return Status::OK();
}

}  // namespace vhdx
