// An in-memory File (include/vhdx/file.h, NewMemoryFile), for tests and for
// building images in memory.
//
// Locking: mu_ guards data_ (its bytes and its size). Reads and Size take it
// shared; everything that writes bytes or changes the size takes it
// exclusively. No other lock is taken while mu_ is held.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <stdexcept>
#include <string>

#include "vhdx/file.h"

namespace vhdx {
namespace {

class MemoryFile final : public File {
 public:
  explicit MemoryFile(std::vector<uint8_t> contents) : data_(std::move(contents)) {}

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    if (out.empty()) return Status::OK();
    std::shared_lock lock(mu_);
    size_t copied = 0;
    if (offset < data_.size()) {
      copied = static_cast<size_t>(std::min<uint64_t>(out.size(), data_.size() - offset));
      std::memcpy(out.data(), data_.data() + offset, copied);
    }
    // Beyond the end reads as zero (file.h rule).
    std::memset(out.data() + copied, 0, out.size() - copied);
    return Status::OK();
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    std::unique_lock lock(mu_);
    uint64_t end;
    if (__builtin_add_overflow(offset, data.size(), &end)) return TooLarge(offset, data.size());
    Status s = GrowLocked(end);
    if (!s.ok()) return s;
    if (!data.empty()) std::memcpy(data_.data() + offset, data.data(), data.size());
    return Status::OK();
  }

  Status Flush() override { return Status::OK(); }

  Result<uint64_t> Size() override {
    std::shared_lock lock(mu_);
    return static_cast<uint64_t>(data_.size());
  }

  Status Truncate(uint64_t size) override {
    std::unique_lock lock(mu_);
    if (size < data_.size()) {
      data_.resize(static_cast<size_t>(size));
      return Status::OK();
    }
    return GrowLocked(size);
  }

  // Zeros the range, growing the file to its end if needed.
  Status ZeroRange(uint64_t offset, uint64_t length) override {
    std::unique_lock lock(mu_);
    uint64_t end;
    if (__builtin_add_overflow(offset, length, &end)) return TooLarge(offset, length);
    Status s = GrowLocked(end);
    if (!s.ok()) return s;
    std::fill_n(data_.begin() + static_cast<std::ptrdiff_t>(offset), static_cast<size_t>(length), uint8_t{0});
    return Status::OK();
  }

  // Zeros the part of the range inside the file; never changes the size.
  Status PunchHole(uint64_t offset, uint64_t length) override {
    std::unique_lock lock(mu_);
    if (offset >= data_.size()) return Status::OK();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, data_.size() - offset));
    std::fill_n(data_.begin() + static_cast<std::ptrdiff_t>(offset), n, uint8_t{0});
    return Status::OK();
  }

  // Grows the file to cover the range; existing bytes are kept.
  Status Allocate(uint64_t offset, uint64_t length) override {
    std::unique_lock lock(mu_);
    uint64_t end;
    if (__builtin_add_overflow(offset, length, &end)) return TooLarge(offset, length);
    return GrowLocked(end);
  }

  std::string Name() const override { return "<memory>"; }
  bool IsWritable() const override { return true; }

 private:
  // Requires mu_ held exclusively. New bytes are zero.
  Status GrowLocked(uint64_t size) {
    if (size <= data_.size()) return Status::OK();
    if (size > data_.max_size()) return TooLarge(size, 0);
    try {
      data_.resize(static_cast<size_t>(size));
    } catch (const std::bad_alloc&) {
      return Status::NoSpace("<memory>: cannot grow to " + std::to_string(size) + " bytes: out of memory");
    } catch (const std::length_error&) {
      return TooLarge(size, 0);
    }
    return Status::OK();
  }

  static Status TooLarge(uint64_t offset, uint64_t length) {
    return Status::NoSpace("<memory>: range of " + std::to_string(length) + " bytes at offset " +
                           std::to_string(offset) + " exceeds the largest in-memory file");
  }

  mutable std::shared_mutex mu_;
  std::vector<uint8_t> data_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<File> NewMemoryFile(std::vector<uint8_t> contents) {
  return std::make_unique<MemoryFile>(std::move(contents));
}

}  // namespace vhdx
