// I/O fault injection for tests/unit/fault_test.cc, after SQLite's
// do_ioerr_test: fail the Nth I/O call (any kind) with a chosen error, for
// N = 1, 2, ... until a workload completes without reaching it.
#ifndef VHDX_TESTS_SUPPORT_FAULT_FILE_H_
#define VHDX_TESTS_SUPPORT_FAULT_FILE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "vhdx/file.h"

namespace vhdx::test {

class FaultFile final : public FileWrapper {
 public:
  enum class Op : uint8_t { kRead, kWrite, kFlush, kSize, kTruncate, kZeroRange, kPunchHole, kAllocate };
  static const char* OpName(Op op);

  explicit FaultFile(std::unique_ptr<File> target) : FileWrapper(std::move(target)) {}

  // Fails the Nth call from now (1-based) with `error`; later calls succeed
  // again (the image must not rely on that: it has to stay failed). A
  // failing WriteAt first writes the first half of its 512-byte sectors
  // (a short write). n = 0 disarms.
  void FailNth(uint64_t n, Status error);
  uint64_t calls() const { return calls_.load(); }
  bool fired() const { return fired_.load(); }
  Op fired_op() const;

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Flush() override;
  Result<uint64_t> Size() override;
  Status Truncate(uint64_t size) override;
  Status ZeroRange(uint64_t offset, uint64_t length) override;
  Status PunchHole(uint64_t offset, uint64_t length) override;
  Status Allocate(uint64_t offset, uint64_t length) override;

 private:
  // Counts the call; returns the injected error when it is the Nth.
  Status Hit(Op op);

  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> target_n_{0};
  std::atomic<bool> fired_{false};
  mutable std::mutex mu_;
  Status error_;  // guarded by mu_
  Op fired_op_ = Op::kRead;  // guarded by mu_
};

}  // namespace vhdx::test

#endif  // VHDX_TESTS_SUPPORT_FAULT_FILE_H_
