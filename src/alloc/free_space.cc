#include "alloc/free_space.h"

#include <algorithm>
#include <iterator>

namespace vhdx {

void FreeSpace::Add(uint64_t offset, uint64_t length, bool known_zero) {
  if (length == 0) return;
  uint64_t start = offset, end = offset + length;
  bool zero = known_zero;
  auto it = extents_.lower_bound(start);
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.end >= start) it = prev;
  }
  uint64_t overlap = 0;
  while (it != extents_.end() && it->first <= end) {
    uint64_t lo = std::max(start, it->first), hi = std::min(end, it->second.end);
    if (hi > lo) overlap += hi - lo;
    start = std::min(start, it->first);
    end = std::max(end, it->second.end);
    zero = zero && it->second.known_zero;
    free_bytes_ -= it->second.end - it->first;
    it = extents_.erase(it);
  }
  (void)overlap;
  extents_.emplace(start, Value{end, zero});
  free_bytes_ += end - start;
}

std::optional<FreeSpace::Extent> FreeSpace::Take(uint64_t length) {
  for (auto it = extents_.begin(); it != extents_.end(); ++it) {
    uint64_t start = it->first;
    Value v = it->second;
    if (v.end - start < length) continue;
    extents_.erase(it);
    if (v.end - start > length) extents_.emplace(start + length, Value{v.end, v.known_zero});
    free_bytes_ -= length;
    return Extent{start, length, v.known_zero};
  }
  return std::nullopt;
}

void FreeSpace::Remove(uint64_t offset, uint64_t length) {
  uint64_t end = offset + length;
  auto it = extents_.upper_bound(offset);
  if (it != extents_.begin()) --it;
  while (it != extents_.end() && it->first < end) {
    uint64_t s = it->first;
    Value v = it->second;
    if (v.end <= offset) {
      ++it;
      continue;
    }
    it = extents_.erase(it);
    free_bytes_ -= v.end - s;
    if (s < offset) {
      extents_.emplace(s, Value{offset, v.known_zero});
      free_bytes_ += offset - s;
    }
    if (v.end > end) {
      extents_.emplace(end, Value{v.end, v.known_zero});
      free_bytes_ += v.end - end;
    }
  }
}

uint64_t FreeSpace::TrailingFreeStart(uint64_t end) const {
  auto it = extents_.lower_bound(end);
  if (it == extents_.begin()) return end;
  --it;
  return it->second.end >= end && it->first < end ? it->first : end;
}

bool FreeSpace::IsFree(uint64_t offset, uint64_t length) const {
  auto it = extents_.upper_bound(offset);
  if (it == extents_.begin()) return false;
  --it;
  return it->first <= offset && it->second.end >= offset + length;
}

}  // namespace vhdx
