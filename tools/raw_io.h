// Plain POSIX file helpers for raw images (convert's raw source and output,
// read's stdout and write's stdin). VHDX files go through vhdx::Image.
#ifndef VHDX_TOOLS_RAW_IO_H_
#define VHDX_TOOLS_RAW_IO_H_

#include <sys/stat.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/status.h"

namespace vhdx::tool {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  // Closes the descriptor, reporting a deferred write error.
  Status Close(const std::string& name);

 private:
  int fd_ = -1;
};

Result<Fd> OpenFd(const std::string& path, int flags, mode_t mode = 0666);

// Reads out.size() bytes at `offset`; bytes past the end of file read as zero.
Status PreadFull(int fd, uint64_t offset, std::span<uint8_t> out, const std::string& name);
// Writes all of `data` at `offset`.
Status PwriteFull(int fd, uint64_t offset, std::span<const uint8_t> data, const std::string& name);
// Reads from a stream until `out` is full or end of input; returns the bytes read.
Result<size_t> ReadStream(int fd, std::span<uint8_t> out, const std::string& name);
// Writes all of `data` to a stream.
Status WriteStream(int fd, std::span<const uint8_t> data, const std::string& name);

// The ranges [offset, offset+length) of a file of `size` bytes that may hold
// data, found with SEEK_DATA/SEEK_HOLE. Without hole support: the whole file.
Result<std::vector<std::pair<uint64_t, uint64_t>>> DataSegments(int fd, uint64_t size, const std::string& name);

// stat(2) of `path`; kNotFound when it does not exist.
Result<struct stat> StatPath(const std::string& path);

}  // namespace vhdx::tool

#endif  // VHDX_TOOLS_RAW_IO_H_
