// Power-cut simulation for the crash tests (tests/unit/crash_test.cc), in
// the spirit of SQLite's src/test6.c: a File that keeps the durable bytes
// and every operation issued since the last Flush, and that can produce the
// byte image a power cut at any Flush could leave behind.
//
// Model (deliberately harsher than real disks):
//  * Reads see the current view: the durable bytes with every pending
//    operation applied in order.
//  * Flush applies the pending operations to the durable bytes.
//  * A power cut keeps the durable bytes and applies a random subset of the
//    pending operations, in a random order. Each applied write may be torn:
//    only some of the 512-byte sectors it covers reach the disk. Pending size
//    changes (truncate, extension by a write or a zero range) may be lost.
//    Zero ranges and punched holes are writes of zeros.
//
// Sizes: the images the tests use are a few hundred MiB of mostly
// unallocated space, so bytes are kept sparse in 4 KiB pages shared
// copy-on-write between the current view, the durable state and every
// recorded crash point.
#ifndef VHDX_TESTS_SUPPORT_CRASH_FILE_H_
#define VHDX_TESTS_SUPPORT_CRASH_FILE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "vhdx/file.h"

namespace vhdx::test {

// A sparse byte array with a size; absent pages read as zero. Copies are
// cheap (pages are shared and copied on write). Not thread-safe.
class SparseBytes {
 public:
  static constexpr uint64_t kPage = 4096;

  uint64_t size() const { return size_; }
  // Bytes at or beyond size() read as zero.
  void Read(uint64_t offset, std::span<uint8_t> out) const;
  // Extends the size to cover the range.
  void Write(uint64_t offset, std::span<const uint8_t> data);
  // Zeros the range; extends the size when `extend`, else clips to it.
  void Zero(uint64_t offset, uint64_t length, bool extend);
  // Shrinking drops the bytes beyond `size` (a later extension reads zeros).
  void Resize(uint64_t size);
  // The whole contents as one buffer (for writing a real file).
  std::vector<uint8_t> Flatten() const;
  bool operator==(const SparseBytes& other) const;

 private:
  using Page = std::array<uint8_t, kPage>;
  // Two levels, both copy-on-write, so that a copy costs one pointer per
  // MiB of file rather than one per page.
  static constexpr uint64_t kPagesPerChunk = 256;
  struct Chunk {
    std::array<std::shared_ptr<Page>, kPagesPerChunk> pages;
  };
  const Page* Find(uint64_t index) const;
  // The chunk for writing, copied first when shared; created when absent.
  Chunk& MutableChunk(uint64_t chunk);
  // The page for writing, copied first when shared; created when absent.
  Page& Mutable(uint64_t index);
  void Erase(uint64_t index);

  std::vector<std::shared_ptr<Chunk>> chunks_;  // null: all zero
  uint64_t size_ = 0;
};

// One operation issued since the last Flush.
struct PendingOp {
  enum class Kind : uint8_t {
    kWrite,   // `data` at `offset`
    kZero,    // `length` zero bytes at `offset` (ZeroRange, PunchHole)
    kResize,  // the file size becomes `offset` (Truncate, Allocate)
  };
  Kind kind = Kind::kWrite;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool extend = true;  // kZero: may grow the file (ZeroRange) or not (PunchHole)
  std::vector<uint8_t> data;
};

// The state a power cut can start from: what the last Flush made durable,
// plus the operations issued since, in issue order.
struct CrashPoint {
  uint64_t flush_number = 0;  // 1-based number of the Flush about to apply `pending`
  uint64_t clock = 0;         // caller's timestamp (see CrashFile::SetClock)
  SparseBytes durable;
  std::vector<std::shared_ptr<const PendingOp>> pending;
};

struct CutOptions {
  // How the pending operations are chosen; kMixed picks one of the others
  // per cut.
  enum class Mode : uint8_t {
    kMixed,
    kNone,         // only the durable bytes survive
    kAll,          // every pending operation, in a random order, maybe torn
    kPrefix,       // the first k operations in issue order, untorn
    kRandom,       // a random subset in a random order, maybe torn
  };
  Mode mode = Mode::kMixed;
  // Probability that an applied write is torn.
  double tear_probability = 0.3;
  // Probability that a pending size change (or a write's extension of the
  // file) is lost.
  double lose_resize_probability = 0.5;
};

// The bytes left by one power cut at `point`.
SparseBytes PowerCut(const CrashPoint& point, std::mt19937_64& rng, const CutOptions& options = {});

// A File over SparseBytes with no crash modelling (Flush is a no-op): what
// a cut image is reopened through. The bytes are shared with the caller,
// who can look at them after the image closed the file.
std::unique_ptr<File> NewSparseFile(std::shared_ptr<SparseBytes> bytes);

class CrashFile final : public File {
 public:
  explicit CrashFile(SparseBytes initial = {});

  // Called inside every Flush, before it applies the pending operations,
  // with the crash point of that moment. A non-OK return fails the Flush
  // without applying anything (a workload can abort at the Nth flush).
  using FlushHook = std::function<Status(const CrashPoint&)>;
  void SetFlushHook(FlushHook hook);
  // A timestamp stored in each crash point (for the test's oracle).
  void SetClock(std::function<uint64_t()> clock);
  // Convenience hook: records the crash point of Flush number `n` into
  // `*out`, then lets the flush proceed (or fails it when `abort`).
  void StopAtFlush(uint64_t n, CrashPoint* out, bool abort);
  // When false, PunchHole fails with kNotSupported (a host file system
  // without hole punching), so freed space is not known to read as zero.
  void SetPunchHoleSupported(bool supported);

  uint64_t flush_count() const;
  SparseBytes Current() const;
  SparseBytes Durable() const;
  // The crash point if the power failed now.
  CrashPoint Snapshot() const;

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Flush() override;
  Result<uint64_t> Size() override;
  Status Truncate(uint64_t size) override;
  Status ZeroRange(uint64_t offset, uint64_t length) override;
  Status PunchHole(uint64_t offset, uint64_t length) override;
  Status Allocate(uint64_t offset, uint64_t length) override;
  std::string Name() const override { return "<memory>"; }
  bool IsWritable() const override { return true; }

 private:
  CrashPoint SnapshotLocked() const;
  void Push(PendingOp op);

  mutable std::mutex mu_;
  SparseBytes durable_;  // guarded by mu_
  SparseBytes current_;  // guarded by mu_
  std::vector<std::shared_ptr<const PendingOp>> pending_;  // guarded by mu_
  uint64_t flushes_ = 0;                                   // guarded by mu_
  FlushHook hook_;
  std::function<uint64_t()> clock_;
  bool punch_hole_ = true;
};

}  // namespace vhdx::test

#endif  // VHDX_TESTS_SUPPORT_CRASH_FILE_H_
