// Default implementations of the optional File operations (include/vhdx/file.h).
//
// Implementations that have a faster way (fallocate) override these and call
// back into File::ZeroRange when the host file system cannot help.
#include <algorithm>
#include <memory>
#include <string>

#include "vhdx/file.h"

namespace vhdx {
namespace {

// Largest single write the zero-fill default issues.
constexpr size_t kZeroChunk = size_t{1} << 20;

// Zero-initialized static storage, never written. Not const on purpose: a
// const all-zero array would be stored in the library's read-only data (1 MiB
// on disk), whereas this one lives in .bss.
alignas(4096) uint8_t zero_buffer[kZeroChunk];

}  // namespace

File::~File() = default;

namespace {

class BorrowedFile final : public FileWrapper {
 public:
  explicit BorrowedFile(File* target) : FileWrapper(target) {}
};

}  // namespace

std::unique_ptr<File> BorrowFile(File* file) { return std::make_unique<BorrowedFile>(file); }

// Writes zeros in chunks of at most 1 MiB; extends the file when the range
// reaches past its end.
Status File::ZeroRange(uint64_t offset, uint64_t length) {
  uint64_t end;
  if (__builtin_add_overflow(offset, length, &end)) {
    return Status::InvalidArgument(Name() + ": zero range overflows: offset " + std::to_string(offset) +
                                   " length " + std::to_string(length));
  }
  while (offset < end) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(end - offset, kZeroChunk));
    Status s = WriteAt(offset, std::span<const uint8_t>(zero_buffer, n));
    if (!s.ok()) return s;
    offset += n;
  }
  return Status::OK();
}

Status File::PunchHole(uint64_t offset, uint64_t length) { return ZeroRange(offset, length); }

// The default cannot reserve storage; it only makes the range exist in the
// file by zero-filling the part beyond the current end. Bytes already inside
// the file are left untouched: Allocate never destroys data.
Status File::Allocate(uint64_t offset, uint64_t length) {
  uint64_t end;
  if (__builtin_add_overflow(offset, length, &end)) {
    return Status::InvalidArgument(Name() + ": allocate range overflows: offset " + std::to_string(offset) +
                                   " length " + std::to_string(length));
  }
  Result<uint64_t> size = Size();
  if (!size.ok()) return size.status();
  if (end <= *size) return Status::OK();
  const uint64_t start = std::max(offset, *size);
  return ZeroRange(start, end - start);
}

}  // namespace vhdx
