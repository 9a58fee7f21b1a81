// File type identifier and the two image headers. See docs/format.md
// ("File type identifier", "Headers").
#ifndef VHDX_SRC_FORMAT_HEADER_H_
#define VHDX_SRC_FORMAT_HEADER_H_

#include <cstdint>
#include <span>
#include <string>

#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx::format {

struct FileIdentifier {
  std::string creator;  // UTF-8, converted from UTF-16LE, NULs trimmed

  // `raw` is at least the first 520 bytes of the file. Checks the signature
  // "vhdxfile"; a creator that is not valid UTF-16 is replaced, not refused
  // (it is diagnostic only).
  static Result<FileIdentifier> Decode(std::span<const uint8_t> raw);
  // Writes the 64 KiB identifier (creator truncated to 256 UTF-16 units).
  void EncodeTo(std::span<uint8_t> out64k) const;
};

struct Header {
  uint64_t sequence_number = 0;
  Guid file_write_guid;
  Guid data_write_guid;
  Guid log_guid;
  uint16_t log_version = 0;
  uint16_t version = 1;
  uint32_t log_length = 0;
  uint64_t log_offset = 0;

  // Validates signature "head" and the CRC-32C over the 4 KiB (the caller
  // passes exactly 4096 bytes). Field values (Version, LogVersion, log
  // placement) are checked by the opener, which knows the context;
  // `file_offset` is only used in messages.
  static Result<Header> Decode(std::span<const uint8_t> raw4k, uint64_t file_offset);
  // Writes the 4 KiB header with its checksum; reserved bytes are zero.
  void EncodeTo(std::span<uint8_t> out4k) const;
};

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_HEADER_H_
