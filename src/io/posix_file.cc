// File on a POSIX file descriptor (include/vhdx/file.h, OpenPosixFile).
//
// Every operation is positional (pread/pwrite/fallocate on a descriptor that
// never changes after open), so the object has no mutable state and needs no
// lock: calls from several threads are as safe as the kernel calls are.
//
// Exclusion between processes: a writable open takes flock(LOCK_EX), a
// read-only open flock(LOCK_SH), both non-blocking and held until the
// descriptor is closed. A second writer, or a reader while a writer holds the
// image (and the reverse), fails with kIOError, errno EWOULDBLOCK and the
// message "... image is in use by another process". flock locks belong to the
// open file description, so two opens inside one process exclude each other
// too. Advisory only: other programs that do not flock are not stopped.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include "vhdx/file.h"

namespace vhdx {
namespace {

constexpr uint64_t kMaxOffset = static_cast<uint64_t>(std::numeric_limits<off_t>::max());

// True when fallocate failed because the file system or file type cannot do
// the requested mode, so a slower fallback is worth trying.
bool Unsupported(int err) { return err == EOPNOTSUPP || err == ENOSYS || err == ENODEV; }

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path, bool writable) : fd_(fd), path_(std::move(path)), writable_(writable) {}
  ~PosixFile() override {
    // Close errors are not reportable here; durability is Flush's job.
    ::close(fd_);
  }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    Status s = CheckRange("read", offset, out.size());
    if (!s.ok()) return s;
    uint8_t* p = out.data();
    size_t left = out.size();
    while (left > 0) {
      const ssize_t n = ::pread(fd_, p, left, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error("read", offset, left);
      }
      if (n == 0) {
        // End of file: the rest reads as zero (file.h rule).
        std::memset(p, 0, left);
        break;
      }
      p += n;
      left -= static_cast<size_t>(n);
      offset += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    Status s = CheckWritable("write");
    if (!s.ok()) return s;
    s = CheckRange("write", offset, data.size());
    if (!s.ok()) return s;
    const uint8_t* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error("write", offset, left);
      }
      if (n == 0) {
        // Not expected for a regular file; avoid spinning forever.
        return Status::IOError(path_ + ": write at offset " + std::to_string(offset) + " made no progress", EIO);
      }
      p += n;
      left -= static_cast<size_t>(n);
      offset += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  Status Flush() override {
    while (::fdatasync(fd_) != 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, path_ + ": fdatasync");
    }
    return Status::OK();
  }

  Result<uint64_t> Size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Status::FromErrno(errno, path_ + ": fstat");
    return static_cast<uint64_t>(st.st_size);
  }

  Status Truncate(uint64_t size) override {
    Status s = CheckWritable("truncate");
    if (!s.ok()) return s;
    if (size > kMaxOffset) return TooLarge("truncate", size, 0);
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, path_ + ": truncate to " + std::to_string(size) + " bytes");
    }
    return Status::OK();
  }

  // ZERO_RANGE, else PUNCH_HOLE|KEEP_SIZE plus an extension, else zero writes.
  // The file grows to offset+length if it was shorter.
  Status ZeroRange(uint64_t offset, uint64_t length) override {
    Status s = CheckWritable("zero range");
    if (!s.ok()) return s;
    s = CheckRange("zero range", offset, length);
    if (!s.ok()) return s;
    if (length == 0) return Status::OK();
    int err = Fallocate(FALLOC_FL_ZERO_RANGE, offset, length);
    if (err == 0) return Status::OK();
    if (!Unsupported(err)) return Status::FromErrno(err, RangeWhat("zero range", offset, length));

    err = Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    if (err == 0) return ExtendTo(offset + length);
    if (!Unsupported(err)) return Status::FromErrno(err, RangeWhat("punch hole", offset, length));

    return File::ZeroRange(offset, length);
  }

  // Deallocates the part of the range inside the file; never changes the size.
  Status PunchHole(uint64_t offset, uint64_t length) override {
    Status s = CheckWritable("punch hole");
    if (!s.ok()) return s;
    s = CheckRange("punch hole", offset, length);
    if (!s.ok()) return s;
    Result<uint64_t> size = Size();
    if (!size.ok()) return size.status();
    if (offset >= *size) return Status::OK();
    length = std::min(length, *size - offset);
    if (length == 0) return Status::OK();
    const int err = Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
    if (err == 0) return Status::OK();
    if (!Unsupported(err)) return Status::FromErrno(err, RangeWhat("punch hole", offset, length));
    return File::ZeroRange(offset, length);
  }

  // Real allocation (fixed images must not be sparse); existing data is kept.
  Status Allocate(uint64_t offset, uint64_t length) override {
    Status s = CheckWritable("allocate");
    if (!s.ok()) return s;
    s = CheckRange("allocate", offset, length);
    if (!s.ok()) return s;
    if (length == 0) return Status::OK();
    int err;
    do {
      err = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(length));
    } while (err == EINTR);
    if (err == 0) return Status::OK();
    if (!Unsupported(err) && err != EINVAL) return Status::FromErrno(err, RangeWhat("allocate", offset, length));
    return AllocateByWriting(offset, length);
  }

  std::string Name() const override { return path_; }
  bool IsWritable() const override { return writable_; }

 private:
  int Fallocate(int mode, uint64_t offset, uint64_t length) {
    while (::fallocate(fd_, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
      if (errno != EINTR) return errno;
    }
    return 0;
  }

  // Grows the file to at least `end` without ever shrinking it: writing one
  // zero byte at end-1 (inside the range being zeroed) is safe against a
  // concurrent writer extending the file, where ftruncate would not be.
  Status ExtendTo(uint64_t end) {
    Result<uint64_t> size = Size();
    if (!size.ok()) return size.status();
    if (*size >= end) return Status::OK();
    static constexpr uint8_t kZero[1] = {0};
    return WriteAt(end - 1, kZero);
  }

  // Fallback for Allocate: writes zeros into the holes inside the file
  // (found with SEEK_HOLE/SEEK_DATA) and over the part beyond its end.
  Status AllocateByWriting(uint64_t offset, uint64_t length) {
    Result<uint64_t> size = Size();
    if (!size.ok()) return size.status();
    const uint64_t end = offset + length;
    const uint64_t inside_end = std::min(end, *size);
    uint64_t pos = offset;
    while (pos < inside_end) {
      const off_t hole = ::lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
      if (hole < 0) break;  // no hole support: treat the inside as allocated
      const uint64_t hole_start = static_cast<uint64_t>(hole);
      if (hole_start >= inside_end) break;
      off_t data = ::lseek(fd_, hole, SEEK_DATA);
      const uint64_t hole_end =
          data < 0 ? inside_end : std::min(inside_end, static_cast<uint64_t>(data));  // ENXIO: hole to EOF
      Status s = File::ZeroRange(hole_start, hole_end - hole_start);
      if (!s.ok()) return s;
      pos = hole_end;
    }
    if (end > *size) {
      const uint64_t start = std::max(offset, *size);
      return File::ZeroRange(start, end - start);
    }
    return Status::OK();
  }

  Status CheckWritable(const char* op) const {
    if (writable_) return Status::OK();
    return Status::ReadOnly(path_ + ": " + op + ": file is open read-only");
  }

  Status CheckRange(const char* op, uint64_t offset, uint64_t length) const {
    if (offset > kMaxOffset || length > kMaxOffset - offset) return TooLarge(op, offset, length);
    return Status::OK();
  }

  Status TooLarge(const char* op, uint64_t offset, uint64_t length) const {
    return Status::InvalidArgument(RangeWhat(op, offset, length) + ": beyond the largest file offset");
  }

  std::string RangeWhat(const char* op, uint64_t offset, uint64_t length) const {
    return path_ + ": " + op + " of " + std::to_string(length) + " bytes at offset " + std::to_string(offset);
  }

  Status Error(const char* op, uint64_t offset, uint64_t length) const {
    return Status::FromErrno(errno, RangeWhat(op, offset, length));
  }

  const int fd_;
  const std::string path_;
  const bool writable_;
};

}  // namespace

Result<std::unique_ptr<File>> OpenPosixFile(const std::string& path, FileMode mode) {
  int flags = O_CLOEXEC;
  bool writable = true;
  switch (mode) {
    case FileMode::kReadOnly:
      flags |= O_RDONLY;
      writable = false;
      break;
    case FileMode::kReadWrite:
      flags |= O_RDWR;
      break;
    case FileMode::kCreateExclusive:
      flags |= O_RDWR | O_CREAT | O_EXCL;
      break;
    case FileMode::kCreateTruncate:
      // Not O_TRUNC: the file is truncated only after the lock is held, so an
      // image another process has open is never clobbered.
      flags |= O_RDWR | O_CREAT;
      break;
  }
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::FromErrno(errno, path + ": open");

  while (::flock(fd, (writable ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    // File systems without flock support (some network mounts) are used
    // unlocked rather than refused.
    if (err == ENOLCK || err == EOPNOTSUPP) break;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status::IOError(path + ": image is in use by another process (" +
                                 (writable ? "cannot take the exclusive lock" : "it is open for writing") + ")",
                             err);
    }
    return Status::FromErrno(err, path + ": flock");
  }

  if (mode == FileMode::kCreateTruncate) {
    while (::ftruncate(fd, 0) != 0) {
      if (errno == EINTR) continue;
      Status s = Status::FromErrno(errno, path + ": truncate");
      ::close(fd);
      return s;
    }
  }
  return std::unique_ptr<File>(new PosixFile(fd, path, writable));
}

}  // namespace vhdx
