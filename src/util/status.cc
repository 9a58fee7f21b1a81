// Status helpers that are not inline in include/vhdx/status.h.
#include "vhdx/status.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace vhdx {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "OK";
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kCorruption: return "Corruption";
    case ErrorCode::kIOError: return "IOError";
    case ErrorCode::kNotSupported: return "NotSupported";
    case ErrorCode::kNoSpace: return "NoSpace";
    case ErrorCode::kReadOnly: return "ReadOnly";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kAlreadyExists: return "AlreadyExists";
  }
  return "Unknown";
}

Status Status::Corruption(std::string_view structure, std::string_view field, uint64_t file_offset,
                          std::string_view detail) {
  char offset[32];
  std::snprintf(offset, sizeof offset, "0x%" PRIx64, file_offset);
  std::string msg;
  msg.reserve(structure.size() + field.size() + detail.size() + 40);
  msg.append(structure).append(" at file offset ").append(offset);
  msg.append(": ").append(field).append(": ").append(detail);
  return {ErrorCode::kCorruption, std::move(msg)};
}

Status Status::FromErrno(int sys_errno, std::string_view what) {
  ErrorCode code;
  switch (sys_errno) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      code = ErrorCode::kNoSpace;
      break;
    case EROFS:
      code = ErrorCode::kReadOnly;
      break;
    case ENOENT:
      code = ErrorCode::kNotFound;
      break;
    case EEXIST:
      code = ErrorCode::kAlreadyExists;
      break;
    default:
      code = ErrorCode::kIOError;
      break;
  }
  // strerror_r is the GNU variant under glibc with _GNU_SOURCE (g++ default).
  char buf[128];
  const char* text = strerror_r(sys_errno, buf, sizeof buf);
  std::string msg(what);
  msg.append(": ").append(text);
  return {code, std::move(msg), sys_errno};
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(ErrorCodeName(code_));
  out.append(": ").append(message_);
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg.append(": ").append(message_);
  return {code_, std::move(msg), errno_};
}

}  // namespace vhdx
