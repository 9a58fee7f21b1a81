// What must survive a crash or a failed I/O: an oracle of the values every
// 512-byte unit of a virtual disk may hold, and an internal consistency
// check that works on in-memory bytes. Used by crash_test.cc and
// fault_test.cc; see docs/design.md ("How the invariants are tested").
//
// Every write fills each 512-byte unit with a pattern derived from the
// write's id and the unit's index, so a unit read back names the write that
// produced it (or reads as zeros, value 0). Write-zeroes and trim have value
// 0; in a differencing image a trim (BeginReveal) has the initial value,
// which is 0 or, over a parent full of data, kParentId. A unit is written
// by one thread only (the workloads partition the disk), so the writes to a
// unit are totally ordered.
//
// Rules, for a cut (power failure or failed I/O) at clock T:
//  * D = the latest start of an Image::Flush that completed before T.
//  * the unit's durable write = the last write to it that completed before
//    D, or a FUA write that completed before T (none: the initial value).
//  * the unit must read as the durable write's value or as the value of a
//    later write to it that started before T; nothing else.
#ifndef VHDX_TESTS_SUPPORT_CRASH_ORACLE_H_
#define VHDX_TESTS_SUPPORT_CRASH_ORACLE_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "support/crash_file.h"
#include "vhdx/image.h"

namespace vhdx::test {

class Oracle {
 public:
  static constexpr uint64_t kUnit = 512;
  static constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

  // The value of a unit before any write: 0 (zeros), or kParentId for a
  // differencing image whose parent holds Fill(kParentId, unit) everywhere.
  static constexpr uint64_t kParentId = uint64_t{1} << 40;

  Oracle(uint64_t virtual_size, uint32_t block_size, uint64_t initial_value = 0)
      : virtual_size_(virtual_size), block_size_(block_size), initial_(initial_value) {}

  // A strictly increasing timestamp.
  uint64_t Tick() { return clock_.fetch_add(1) + 1; }

  // Records the start of a write of [offset, offset+length) (`zero` for
  // write-zeroes and trim); returns its id. `buf` (data writes) is filled
  // with the write's pattern.
  uint64_t BeginWrite(uint64_t offset, uint64_t length, bool zero, bool fua, std::span<uint8_t> buf = {});
  // A trim of a differencing image: the range shows the parent again, so
  // its value becomes the initial value. End it with EndWrite.
  uint64_t BeginReveal(uint64_t offset, uint64_t length);
  // `ok` false: the write failed and is never required to be durable.
  void EndWrite(uint64_t id, bool ok);
  // A virtual size change; end it with EndWrite. Shrinking acts as a
  // write of zeros over everything past the new end (a later grow shows
  // zeros there), and the image may hold the size of any resize the rules
  // above allow.
  uint64_t BeginResize(uint64_t new_size);
  // Image::Flush (or Close) brackets; only successful ones count.
  uint64_t BeginFlush() { return Tick(); }
  void EndFlush(uint64_t begin, bool ok);

  // Compares the image's content with what a cut at `cut_clock` allows.
  // Returns an empty string when it matches, else a description. Call only
  // while no write is being recorded (it may run on several threads).
  // `whole_blocks`: read every written block whole, so that the units never
  // written in it are checked too (zero fill); else only written units.
  std::string Verify(Image& image, uint64_t cut_clock, bool whole_blocks = true) const;

  uint64_t write_count() const;

  static void Fill(uint64_t id, uint64_t unit, uint8_t* out);
  // The id whose pattern `unit_bytes` holds, 0 for zeros, or kNever.
  static uint64_t Decode(uint64_t unit, const uint8_t* unit_bytes);

 private:
  struct Op {
    uint64_t start = 0;
    uint64_t end = kNever;
    bool zero = false;
    bool reveal = false;  // value: the initial value (parent shows through)
    bool fua = false;
  };

  uint64_t virtual_size_;
  uint32_t block_size_;
  uint64_t initial_;
  std::atomic<uint64_t> clock_{0};
  mutable std::mutex mu_;
  std::vector<Op> ops_;  // index = id - 1
  std::unordered_map<uint64_t, std::vector<uint32_t>> history_;  // unit -> op indexes, in order
  std::set<uint64_t> blocks_;                                     // blocks with a written unit
  std::vector<std::pair<uint32_t, uint64_t>> resizes_;            // (op index, new size), in order
  std::vector<std::pair<uint64_t, uint64_t>> flushes_;         // (start, end) of successful flushes
};

// The consistency check `vhdx check` runs (collect-all load, in-memory log
// replay), on in-memory bytes. Returns the problems found: errors, and
// warnings too when `include_warnings`.
// The bytes are only read.
std::vector<std::string> CheckBytes(std::shared_ptr<SparseBytes> bytes, bool include_warnings,
                                    bool* log_dirty = nullptr);

}  // namespace vhdx::test

#endif  // VHDX_TESTS_SUPPORT_CRASH_ORACLE_H_
