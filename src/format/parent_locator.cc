// Parent locator item and UTF-16LE conversion (docs/format.md "Parent
// locator").
#include "format/parent_locator.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"

namespace vhdx::format {
namespace {

constexpr size_t kLocatorHeaderSize = 20;
constexpr size_t kTypeOffset = 0;
constexpr size_t kReservedOffset = 16;
constexpr size_t kCountOffset = 18;
constexpr size_t kEntrySize = 12;
constexpr size_t kEntryKeyOffset = 0;
constexpr size_t kEntryValueOffset = 4;
constexpr size_t kEntryKeyLength = 8;
constexpr size_t kEntryValueLength = 10;

constexpr const char* kStruct = "parent locator";
constexpr char32_t kReplacement = 0xFFFD;

void AppendUtf8(std::string* out, char32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void AppendUtf16(std::vector<uint8_t>* out, uint16_t unit) {
  out->push_back(static_cast<uint8_t>(unit));
  out->push_back(static_cast<uint8_t>(unit >> 8));
}

// Decodes UTF-16LE. With `lossy`, bad input becomes U+FFFD; without, the
// first bad unit makes it return false (`*bad_at` = its byte index).
bool DecodeUtf16(std::span<const uint8_t> raw, bool lossy, std::string* out, size_t* bad_at) {
  out->clear();
  out->reserve(raw.size() + raw.size() / 2);
  const size_t units = raw.size() / 2;
  size_t i = 0;
  while (i < units) {
    const uint16_t u = LoadLE16(raw.data() + 2 * i);
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (i + 1 < units) {
        const uint16_t low = LoadLE16(raw.data() + 2 * (i + 1));
        if (low >= 0xDC00 && low <= 0xDFFF) {
          AppendUtf8(out, 0x10000 + ((char32_t{u} - 0xD800) << 10) + (char32_t{low} - 0xDC00));
          i += 2;
          continue;
        }
      }
    } else if (u < 0xDC00 || u > 0xDFFF) {
      AppendUtf8(out, u);
      ++i;
      continue;
    }
    // Unpaired surrogate.
    if (!lossy) {
      *bad_at = 2 * i;
      return false;
    }
    AppendUtf8(out, kReplacement);
    ++i;
  }
  if (raw.size() % 2 != 0) {
    if (!lossy) {
      *bad_at = raw.size() - 1;
      return false;
    }
    AppendUtf8(out, kReplacement);
  }
  return true;
}

bool IsBracedGuid(const std::string& s) {
  return s.size() == 38 && s.front() == '{' && s.back() == '}' && Guid::Parse(s).ok();
}

}  // namespace

Result<std::string> Utf16LeToUtf8(std::span<const uint8_t> raw) {
  std::string out;
  size_t bad_at = 0;
  if (!DecodeUtf16(raw, /*lossy=*/false, &out, &bad_at)) {
    return Status::Corruption("invalid UTF-16LE at byte " + std::to_string(bad_at) +
                              (bad_at + 1 == raw.size() && raw.size() % 2 != 0 ? ": odd byte length"
                                                                               : ": unpaired surrogate"));
  }
  return out;
}

std::string Utf16LeToUtf8Lossy(std::span<const uint8_t> raw) {
  std::string out;
  size_t bad_at = 0;
  DecodeUtf16(raw, /*lossy=*/true, &out, &bad_at);
  return out;
}

std::vector<uint8_t> Utf8ToUtf16Le(std::string_view text) {
  std::vector<uint8_t> out;
  out.reserve(text.size() * 2);
  size_t i = 0;
  const size_t n = text.size();
  auto cont = [&](size_t k) { return k < n && (static_cast<uint8_t>(text[k]) & 0xC0) == 0x80; };
  while (i < n) {
    const uint8_t b = static_cast<uint8_t>(text[i]);
    char32_t cp = kReplacement;
    size_t len = 1;
    if (b < 0x80) {
      cp = b;
    } else if ((b & 0xE0) == 0xC0 && cont(i + 1)) {
      cp = (char32_t{b & 0x1Fu} << 6) | (static_cast<uint8_t>(text[i + 1]) & 0x3Fu);
      len = 2;
      if (cp < 0x80) cp = kReplacement;  // overlong
    } else if ((b & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      cp = (char32_t{b & 0x0Fu} << 12) | ((static_cast<uint8_t>(text[i + 1]) & 0x3Fu) << 6) |
           (static_cast<uint8_t>(text[i + 2]) & 0x3Fu);
      len = 3;
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
    } else if ((b & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      cp = (char32_t{b & 0x07u} << 18) | ((static_cast<uint8_t>(text[i + 1]) & 0x3Fu) << 12) |
           ((static_cast<uint8_t>(text[i + 2]) & 0x3Fu) << 6) | (static_cast<uint8_t>(text[i + 3]) & 0x3Fu);
      len = 4;
      if (cp < 0x10000 || cp > 0x10FFFF) cp = kReplacement;
    }
    i += len;
    if (cp < 0x10000) {
      AppendUtf16(&out, static_cast<uint16_t>(cp));
    } else {
      const char32_t v = cp - 0x10000;
      AppendUtf16(&out, static_cast<uint16_t>(0xD800 + (v >> 10)));
      AppendUtf16(&out, static_cast<uint16_t>(0xDC00 + (v & 0x3FF)));
    }
  }
  return out;
}

Result<ParentLocator> ParentLocator::Decode(std::span<const uint8_t> raw, uint64_t file_offset) {
  if (raw.size() < kLocatorHeaderSize) {
    return Status::Corruption(kStruct, "size", file_offset,
                              "item is " + std::to_string(raw.size()) + " bytes, need at least 20");
  }
  const uint8_t* p = raw.data();
  ParentLocator loc;
  loc.locator_type = Guid::FromBytes(std::span<const uint8_t, 16>(p + kTypeOffset, 16));
  if (loc.locator_type != VhdxParentLocatorTypeGuid()) {
    return Status::NotSupported("parent locator at file offset " + std::to_string(file_offset) +
                                ": LocatorType " + loc.locator_type.ToString() +
                                " is not the VHDX parent locator type");
  }
  if (LoadLE16(p + kReservedOffset) != 0) {
    return Status::Corruption(kStruct, "Reserved", file_offset + kReservedOffset, "not zero");
  }
  const uint16_t count = LoadLE16(p + kCountOffset);
  if (count > kMaxParentLocatorEntries) {
    return Status::Corruption(kStruct, "KeyValueCount", file_offset + kCountOffset,
                              std::to_string(count) + " exceeds our limit of 256");
  }
  if (kLocatorHeaderSize + size_t{count} * kEntrySize > raw.size()) {
    return Status::Corruption(kStruct, "KeyValueCount", file_offset + kCountOffset,
                              std::to_string(count) + " entries do not fit in the " +
                                  std::to_string(raw.size()) + "-byte item");
  }

  loc.entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const size_t at = kLocatorHeaderSize + i * kEntrySize;
    const uint8_t* e = p + at;
    const uint64_t eo = file_offset + at;
    const std::string prefix = "entry " + std::to_string(i) + " ";
    struct Str {
      const char* name;
      uint32_t offset;
      uint16_t length;
      size_t field_at;
    };
    const Str strs[2] = {
        {"Key", LoadLE32(e + kEntryKeyOffset), LoadLE16(e + kEntryKeyLength), kEntryKeyOffset},
        {"Value", LoadLE32(e + kEntryValueOffset), LoadLE16(e + kEntryValueLength), kEntryValueOffset},
    };
    std::string text[2];
    for (int s = 0; s < 2; ++s) {
      const Str& str = strs[s];
      if (str.offset == 0) {
        return Status::Corruption(kStruct, prefix + str.name + "Offset", eo + str.field_at, "zero");
      }
      if (str.length == 0 || str.length % 2 != 0) {
        return Status::Corruption(kStruct, prefix + str.name + "Length", eo + str.field_at + 8,
                                  std::to_string(str.length) + " is not a non-zero even number");
      }
      // u32 + u16 cannot overflow u64.
      if (uint64_t{str.offset} + str.length > raw.size()) {
        return Status::Corruption(kStruct, prefix + str.name + "Offset", eo + str.field_at,
                                  "string [" + std::to_string(str.offset) + ", +" + std::to_string(str.length) +
                                      ") ends beyond the " + std::to_string(raw.size()) + "-byte item");
      }
      std::span<const uint8_t> bytes = raw.subspan(str.offset, str.length);
      Result<std::string> utf8 = Utf16LeToUtf8(bytes);
      if (!utf8.ok()) {
        return Status::Corruption(kStruct, prefix + str.name, file_offset + str.offset,
                                  utf8.status().message());
      }
      if (utf8->find('\0') != std::string::npos) {
        return Status::Corruption(kStruct, prefix + str.name, file_offset + str.offset, "contains a NUL character");
      }
      text[s] = std::move(*utf8);
    }
    for (size_t j = 0; j < loc.entries.size(); ++j) {
      if (loc.entries[j].first == text[0]) {
        return Status::Corruption(kStruct, prefix + "Key", file_offset + strs[0].offset,
                                  "key \"" + text[0] + "\" repeats entry " + std::to_string(j));
      }
    }
    loc.entries.emplace_back(std::move(text[0]), std::move(text[1]));
  }

  for (const char* key : {"parent_linkage", "parent_linkage2"}) {
    std::optional<std::string> v = loc.Get(key);
    if (!v) {
      if (std::strcmp(key, "parent_linkage") == 0) {
        return Status::Corruption(kStruct, "parent_linkage", file_offset, "required key missing");
      }
      continue;
    }
    if (!IsBracedGuid(*v)) {
      return Status::Corruption(kStruct, key, file_offset, "value \"" + *v + "\" is not a braced GUID");
    }
  }
  if (!loc.Get("relative_path") && !loc.Get("volume_path") && !loc.Get("absolute_win32_path")) {
    return Status::Corruption(kStruct, "relative_path", file_offset,
                              "none of relative_path, volume_path, absolute_win32_path is present");
  }
  return loc;
}

std::vector<uint8_t> ParentLocator::Encode() const {
  const size_t count = entries.size();
  std::vector<uint8_t> out(kLocatorHeaderSize + count * kEntrySize, 0);
  locator_type.ToBytes(std::span<uint8_t, 16>(out.data() + kTypeOffset, 16));
  StoreLE16(out.data() + kCountOffset, static_cast<uint16_t>(count));
  for (size_t i = 0; i < count; ++i) {
    std::vector<uint8_t> key = Utf8ToUtf16Le(entries[i].first);
    std::vector<uint8_t> value = Utf8ToUtf16Le(entries[i].second);
    const size_t at = kLocatorHeaderSize + i * kEntrySize;
    StoreLE32(out.data() + at + kEntryKeyOffset, static_cast<uint32_t>(out.size()));
    StoreLE16(out.data() + at + kEntryKeyLength, static_cast<uint16_t>(key.size()));
    out.insert(out.end(), key.begin(), key.end());
    StoreLE32(out.data() + at + kEntryValueOffset, static_cast<uint32_t>(out.size()));
    StoreLE16(out.data() + at + kEntryValueLength, static_cast<uint16_t>(value.size()));
    out.insert(out.end(), value.begin(), value.end());
  }
  return out;
}

std::optional<std::string> ParentLocator::Get(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void ParentLocator::Set(std::string_view key, std::string value) {
  for (auto& [k, v] : entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::string(key), std::move(value));
}

void ParentLocator::Erase(std::string_view key) {
  for (auto it = entries.begin(); it != entries.end(); ++it) {
    if (it->first == key) {
      entries.erase(it);
      return;
    }
  }
}

}  // namespace vhdx::format
