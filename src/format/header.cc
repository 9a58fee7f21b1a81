// File type identifier and image headers (docs/format.md "File type
// identifier", "Headers").
#include "format/header.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "format/constants.h"
#include "format/parent_locator.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace vhdx::format {
namespace {

constexpr uint8_t kFileSignature[8] = {'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e'};
constexpr uint8_t kHeaderSignature[4] = {'h', 'e', 'a', 'd'};

// Layout of the file type identifier.
constexpr size_t kCreatorOffset = 8;
constexpr size_t kCreatorBytes = 512;  // 256 UTF-16 code units
constexpr size_t kFileIdentifierUsed = kCreatorOffset + kCreatorBytes;

// Layout of a header (offsets inside the 4 KiB structure).
constexpr size_t kHdrChecksum = 4;
constexpr size_t kHdrSequence = 8;
constexpr size_t kHdrFileWriteGuid = 16;
constexpr size_t kHdrDataWriteGuid = 32;
constexpr size_t kHdrLogGuid = 48;
constexpr size_t kHdrLogVersion = 64;
constexpr size_t kHdrVersion = 66;
constexpr size_t kHdrLogLength = 68;
constexpr size_t kHdrLogOffset = 72;

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llX", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

Result<FileIdentifier> FileIdentifier::Decode(std::span<const uint8_t> raw) {
  if (raw.size() < kFileIdentifierUsed) {
    return Status::Corruption("file identifier", "size", kFileIdentifierOffset,
                              "truncated: " + std::to_string(raw.size()) + " bytes, need " +
                                  std::to_string(kFileIdentifierUsed));
  }
  if (std::memcmp(raw.data(), kFileSignature, sizeof kFileSignature) != 0) {
    return Status::Corruption("file identifier", "Signature", kFileIdentifierOffset,
                              "not \"vhdxfile\"; this is not a VHDX file");
  }
  // The creator is optional and NUL-terminated or NUL-padded; keep the code
  // units before the first NUL unit.
  std::span<const uint8_t> creator = raw.subspan(kCreatorOffset, kCreatorBytes);
  size_t units = 0;
  while (units < kCreatorBytes / 2 && (creator[2 * units] | creator[2 * units + 1]) != 0) ++units;
  FileIdentifier id;
  id.creator = Utf16LeToUtf8Lossy(creator.first(2 * units));
  return id;
}

void FileIdentifier::EncodeTo(std::span<uint8_t> out64k) const {
  std::fill(out64k.begin(), out64k.end(), uint8_t{0});
  std::memcpy(out64k.data(), kFileSignature, sizeof kFileSignature);
  std::vector<uint8_t> text = Utf8ToUtf16Le(creator);
  size_t n = std::min(text.size(), kCreatorBytes);
  // Do not cut a surrogate pair in half: drop a trailing high surrogate.
  if (n >= 2 && n == kCreatorBytes && n < text.size()) {
    uint16_t last = LoadLE16(&text[n - 2]);
    if (last >= 0xD800 && last <= 0xDBFF) n -= 2;
  }
  if (n > 0) std::memcpy(out64k.data() + kCreatorOffset, text.data(), n);
}

Result<Header> Header::Decode(std::span<const uint8_t> raw4k, uint64_t file_offset) {
  if (raw4k.size() < kHeaderSize) {
    return Status::Corruption("header", "size", file_offset,
                              "truncated: " + std::to_string(raw4k.size()) + " bytes, need 4096");
  }
  const uint8_t* p = raw4k.data();
  if (std::memcmp(p, kHeaderSignature, sizeof kHeaderSignature) != 0) {
    return Status::Corruption("header", "Signature", file_offset, "not \"head\"");
  }
  const uint32_t stored = LoadLE32(p + kHdrChecksum);
  const uint32_t computed = crc32c::ValueWithZeroedField(p, kHeaderSize, kHdrChecksum);
  if (stored != computed) {
    return Status::Corruption("header", "Checksum", file_offset + kHdrChecksum,
                              "stored " + Hex(stored) + ", computed " + Hex(computed));
  }
  Header h;
  h.sequence_number = LoadLE64(p + kHdrSequence);
  h.file_write_guid = Guid::FromBytes(std::span<const uint8_t, 16>(p + kHdrFileWriteGuid, 16));
  h.data_write_guid = Guid::FromBytes(std::span<const uint8_t, 16>(p + kHdrDataWriteGuid, 16));
  h.log_guid = Guid::FromBytes(std::span<const uint8_t, 16>(p + kHdrLogGuid, 16));
  h.log_version = LoadLE16(p + kHdrLogVersion);
  h.version = LoadLE16(p + kHdrVersion);
  h.log_length = LoadLE32(p + kHdrLogLength);
  h.log_offset = LoadLE64(p + kHdrLogOffset);
  return h;
}

void Header::EncodeTo(std::span<uint8_t> out4k) const {
  uint8_t* p = out4k.data();
  std::memset(p, 0, kHeaderSize);
  std::memcpy(p, kHeaderSignature, sizeof kHeaderSignature);
  StoreLE64(p + kHdrSequence, sequence_number);
  file_write_guid.ToBytes(std::span<uint8_t, 16>(p + kHdrFileWriteGuid, 16));
  data_write_guid.ToBytes(std::span<uint8_t, 16>(p + kHdrDataWriteGuid, 16));
  log_guid.ToBytes(std::span<uint8_t, 16>(p + kHdrLogGuid, 16));
  StoreLE16(p + kHdrLogVersion, log_version);
  StoreLE16(p + kHdrVersion, version);
  StoreLE32(p + kHdrLogLength, log_length);
  StoreLE64(p + kHdrLogOffset, log_offset);
  StoreLE32(p + kHdrChecksum, crc32c::ValueWithZeroedField(p, kHeaderSize, kHdrChecksum));
}

}  // namespace vhdx::format
