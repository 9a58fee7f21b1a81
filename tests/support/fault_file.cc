#include "support/fault_file.h"

#include <algorithm>

namespace vhdx::test {

const char* FaultFile::OpName(Op op) {
  switch (op) {
    case Op::kRead: return "read";
    case Op::kWrite: return "write";
    case Op::kFlush: return "flush";
    case Op::kSize: return "size";
    case Op::kTruncate: return "truncate";
    case Op::kZeroRange: return "zero-range";
    case Op::kPunchHole: return "punch-hole";
    case Op::kAllocate: return "allocate";
  }
  return "?";
}

void FaultFile::FailNth(uint64_t n, Status error) {
  std::lock_guard lock(mu_);
  error_ = std::move(error);
  calls_ = 0;
  fired_ = false;
  target_n_ = n;
}

FaultFile::Op FaultFile::fired_op() const {
  std::lock_guard lock(mu_);
  return fired_op_;
}

Status FaultFile::Hit(Op op) {
  const uint64_t n = ++calls_;
  if (target_n_.load() == 0 || n != target_n_.load()) return Status::OK();
  std::lock_guard lock(mu_);
  fired_ = true;
  fired_op_ = op;
  return error_.WithContext(std::string("injected failure of ") + OpName(op) + " #" + std::to_string(n));
}

Status FaultFile::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = Hit(Op::kRead); !s.ok()) return s;
  return FileWrapper::ReadAt(offset, out);
}

Status FaultFile::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (Status s = Hit(Op::kWrite); !s.ok()) {
    // A short write: the first half of the sectors made it.
    const uint64_t sectors = (data.size() + 511) / 512;
    const uint64_t n = std::min<uint64_t>(data.size(), sectors / 2 * 512);
    if (n > 0) FileWrapper::WriteAt(offset, data.first(n)).PermitUncheckedError();
    return s;
  }
  return FileWrapper::WriteAt(offset, data);
}

Status FaultFile::Flush() {
  if (Status s = Hit(Op::kFlush); !s.ok()) return s;
  return FileWrapper::Flush();
}

Result<uint64_t> FaultFile::Size() {
  if (Status s = Hit(Op::kSize); !s.ok()) return s;
  return FileWrapper::Size();
}

Status FaultFile::Truncate(uint64_t size) {
  if (Status s = Hit(Op::kTruncate); !s.ok()) return s;
  return FileWrapper::Truncate(size);
}

Status FaultFile::ZeroRange(uint64_t offset, uint64_t length) {
  if (Status s = Hit(Op::kZeroRange); !s.ok()) return s;
  return FileWrapper::ZeroRange(offset, length);
}

Status FaultFile::PunchHole(uint64_t offset, uint64_t length) {
  if (Status s = Hit(Op::kPunchHole); !s.ok()) return s;
  return FileWrapper::PunchHole(offset, length);
}

Status FaultFile::Allocate(uint64_t offset, uint64_t length) {
  if (Status s = Hit(Op::kAllocate); !s.ok()) return s;
  return FileWrapper::Allocate(offset, length);
}

}  // namespace vhdx::test
