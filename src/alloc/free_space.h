// Free space of the host file, in 1 MiB units (every object after the header
// section is 1 MiB aligned). Not thread-safe: the image guards it with its
// allocation lock (docs/design.md "Locks").
#ifndef VHDX_SRC_ALLOC_FREE_SPACE_H_
#define VHDX_SRC_ALLOC_FREE_SPACE_H_

#include <cstdint>
#include <map>
#include <optional>

namespace vhdx {

class FreeSpace {
 public:
  struct Extent {
    uint64_t offset;
    uint64_t length;
    // Every byte is known to read as zero (fresh file extension or a hole we
    // punched), so a partial block write needs no zero fill.
    bool known_zero;
  };

  // Adds [offset, offset+length) (both 1 MiB multiples), merging neighbours.
  // A merged extent is known-zero only if all its parts are.
  void Add(uint64_t offset, uint64_t length, bool known_zero);
  // Takes `length` bytes from the lowest free extent that has room (first
  // fit keeps data near the start so the file can shrink on close).
  std::optional<Extent> Take(uint64_t length);
  // Removes [offset, offset+length) from the free space if it is free.
  void Remove(uint64_t offset, uint64_t length);
  // The start of the free extent that ends exactly at `end`, or `end`.
  uint64_t TrailingFreeStart(uint64_t end) const;
  uint64_t free_bytes() const { return free_bytes_; }
  size_t extent_count() const { return extents_.size(); }
  bool IsFree(uint64_t offset, uint64_t length) const;

 private:
  struct Value {
    uint64_t end;
    bool known_zero;
  };
  std::map<uint64_t, Value> extents_;  // start -> (end, known_zero), disjoint
  uint64_t free_bytes_ = 0;
};

}  // namespace vhdx

#endif  // VHDX_SRC_ALLOC_FREE_SPACE_H_
