#include "raw_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vhdx::tool {

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

Status Fd::Close(const std::string& name) {
  int fd = std::exchange(fd_, -1);
  if (fd < 0) return Status::OK();
  if (::close(fd) != 0) return Status::FromErrno(errno, "close " + name);
  return Status::OK();
}

Result<Fd> OpenFd(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  return Fd(fd);
}

Status PreadFull(int fd, uint64_t offset, std::span<uint8_t> out, const std::string& name) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + name);
    }
    if (n == 0) {  // end of file: the rest reads as zero
      std::memset(out.data() + done, 0, out.size() - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status PwriteFull(int fd, uint64_t offset, std::span<const uint8_t> data, const std::string& name) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write " + name);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Result<size_t> ReadStream(int fd, std::span<uint8_t> out, const std::string& name) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + name);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status WriteStream(int fd, std::span<const uint8_t> data, const std::string& name) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write " + name);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> DataSegments(int fd, uint64_t size, const std::string& name) {
  std::vector<std::pair<uint64_t, uint64_t>> segments;
  uint64_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole up to the end of file
      if (errno == EINVAL || errno == ENOTSUP || errno == EOPNOTSUPP) {
        // No hole support here: treat everything after pos as data.
        segments.emplace_back(pos, size - pos);
        break;
      }
      return Status::FromErrno(errno, "lseek SEEK_DATA " + name);
    }
    auto start = static_cast<uint64_t>(data);
    if (start >= size) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno(errno, "lseek SEEK_HOLE " + name);
    uint64_t end = static_cast<uint64_t>(hole) < size ? static_cast<uint64_t>(hole) : size;
    if (end <= start) break;
    segments.emplace_back(start, end - start);
    pos = end;
  }
  return segments;
}

Result<struct stat> StatPath(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  return st;
}

}  // namespace vhdx::tool
