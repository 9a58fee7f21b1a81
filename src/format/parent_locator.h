// Parent locator metadata item. See docs/format.md ("Parent locator").
#ifndef VHDX_SRC_FORMAT_PARENT_LOCATOR_H_
#define VHDX_SRC_FORMAT_PARENT_LOCATOR_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/guid.h"
#include "vhdx/status.h"

namespace vhdx::format {

struct ParentLocator {
  Guid locator_type;
  // Keys and values converted from UTF-16LE to UTF-8, in file order.
  std::vector<std::pair<std::string, std::string>> entries;

  // Validates: item at least 20 bytes, LocatorType is the VHDX parent type,
  // reserved zero, KeyValueCount <= 256 and the table inside the item, every
  // key/value offset > 0 and range inside the item with non-zero even
  // length, valid UTF-16 without NUL, keys unique, parent_linkage present
  // and a braced GUID (any letter case), parent_linkage2 a braced GUID when
  // present, at least one of the three path keys. An unknown LocatorType is
  // NotSupported; everything else is Corruption.
  static Result<ParentLocator> Decode(std::span<const uint8_t> raw, uint64_t file_offset);
  // Encodes: header, entry table, then the strings packed after it (key,
  // value, key, value... in entry order). Strings must be < 32768 units.
  std::vector<uint8_t> Encode() const;

  std::optional<std::string> Get(std::string_view key) const;
  void Set(std::string_view key, std::string value);  // replace or append
  void Erase(std::string_view key);
};

// UTF-16LE <-> UTF-8 (no BOM). Decoding fails on unpaired surrogates.
Result<std::string> Utf16LeToUtf8(std::span<const uint8_t> raw);
std::vector<uint8_t> Utf8ToUtf16Le(std::string_view text);
// Like Utf16LeToUtf8, but never fails: unpaired surrogates and a trailing odd
// byte become U+FFFD. For diagnostic text (the creator string).
std::string Utf16LeToUtf8Lossy(std::span<const uint8_t> raw);

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_PARENT_LOCATOR_H_
