// Error type of the libvhdx API. See docs/design.md ("Errors").
//
// No exception escapes the library: every fallible call returns a Status or
// a Result<T>. A Status is cheap when OK (no allocation) and carries a code
// that tells corruption, I/O error, unsupported feature and invalid argument
// apart, plus a message that names the structure, field and file offset.
#ifndef VHDX_STATUS_H_
#define VHDX_STATUS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "vhdx/export.h"

namespace vhdx {

enum class ErrorCode : uint8_t {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something impossible
  kCorruption,       // the file's bytes violate the format
  kIOError,          // the host file failed (errno in sys_errno())
  kNotSupported,     // valid format, feature we do not implement
  kNoSpace,          // host file system full (ENOSPC) or a size limit hit
  kReadOnly,         // a write to an image or file opened read-only
  kNotFound,         // a file or parent could not be found
  kAlreadyExists,    // refusing to overwrite an existing file
};

VHDX_EXPORT std::string_view ErrorCodeName(ErrorCode code);

class [[nodiscard]] VHDX_EXPORT Status {
 public:
  Status() noexcept = default;

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {ErrorCode::kInvalidArgument, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {ErrorCode::kCorruption, std::move(msg)}; }
  // Corruption in a named structure: "<structure> at file offset 0x..: <field>: <detail>".
  static Status Corruption(std::string_view structure, std::string_view field, uint64_t file_offset,
                           std::string_view detail);
  static Status IOError(std::string msg, int sys_errno = 0) {
    return {ErrorCode::kIOError, std::move(msg), sys_errno};
  }
  // Maps ENOSPC/EDQUOT/EFBIG to kNoSpace, EROFS/EBADF on write to kReadOnly,
  // ENOENT to kNotFound, EEXIST to kAlreadyExists, the rest to kIOError.
  static Status FromErrno(int sys_errno, std::string_view what);
  static Status NotSupported(std::string msg) { return {ErrorCode::kNotSupported, std::move(msg)}; }
  static Status NoSpace(std::string msg) { return {ErrorCode::kNoSpace, std::move(msg)}; }
  static Status ReadOnly(std::string msg) { return {ErrorCode::kReadOnly, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {ErrorCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {ErrorCode::kAlreadyExists, std::move(msg)}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  // The errno behind an I/O error, or 0.
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  // "Corruption: <message>" or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

  // Marks a deliberately ignored error, so that dropping one is visible in code.
  void PermitUncheckedError() const {}

  bool operator==(const Status& o) const { return code_ == o.code_ && message_ == o.message_; }

 private:
  Status(ErrorCode code, std::string msg, int sys_errno = 0)
      : code_(code), errno_(sys_errno), message_(std::move(msg)) {}

  ErrorCode code_ = ErrorCode::kOk;
  int errno_ = 0;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (status_.ok()) status_ = Status::InvalidArgument("internal: Result built from an OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace vhdx

#endif  // VHDX_STATUS_H_
