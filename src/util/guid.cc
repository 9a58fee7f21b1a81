// GUIDs in Microsoft binary order. See include/vhdx/guid.h.
//
// Text "AABBCCDD-EEFF-GGHH-IIJJ-KKLLMMNNOOPP" is stored as
//   DD CC BB AA  FF EE  HH GG  II JJ KK LL MM NN OO PP
// i.e. Data1 (u32), Data2 (u16) and Data3 (u16) little-endian, then the
// eight Data4 bytes in text order.
#include "vhdx/guid.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

namespace vhdx {
namespace {

// For each of the 16 text byte positions (in reading order), the index of
// the stored byte it corresponds to.
constexpr int kTextToStored[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
// Offsets in the 36-character form at which a hyphen stands.
constexpr size_t kHyphens[4] = {8, 13, 18, 23};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsHyphenPosition(size_t i) { return std::find(std::begin(kHyphens), std::end(kHyphens), i) != std::end(kHyphens); }

}  // namespace

Guid Guid::FromBytes(std::span<const uint8_t, 16> raw) {
  Guid g;
  std::copy(raw.begin(), raw.end(), g.bytes.begin());
  return g;
}

void Guid::ToBytes(std::span<uint8_t, 16> out) const { std::copy(bytes.begin(), bytes.end(), out.begin()); }

Result<Guid> Guid::Parse(std::string_view text) {
  std::string_view body = text;
  if (!body.empty() && body.front() == '{') {
    if (body.size() != 38 || body.back() != '}') {
      return Status::InvalidArgument("malformed GUID (unbalanced braces): '" + std::string(text) + "'");
    }
    body = body.substr(1, 36);
  }
  if (body.size() != 36) {
    return Status::InvalidArgument("malformed GUID (expected 36 characters): '" + std::string(text) + "'");
  }
  Guid g;
  int nibble_index = 0;  // 0..31 over the hex digits in reading order
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (IsHyphenPosition(i)) {
      if (c != '-') return Status::InvalidArgument("malformed GUID (hyphen expected): '" + std::string(text) + "'");
      continue;
    }
    const int v = HexValue(c);
    if (v < 0) return Status::InvalidArgument("malformed GUID (non-hex character): '" + std::string(text) + "'");
    uint8_t& b = g.bytes[kTextToStored[nibble_index / 2]];
    b = static_cast<uint8_t>(nibble_index % 2 == 0 ? (v << 4) : (b | v));
    ++nibble_index;
  }
  return g;
}

std::string Guid::ToString(bool braces, bool lowercase) const {
  const char* digits = lowercase ? "0123456789abcdef" : "0123456789ABCDEF";
  std::string out;
  out.reserve(38);
  if (braces) out.push_back('{');
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    const uint8_t b = bytes[kTextToStored[i]];
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xF]);
  }
  if (braces) out.push_back('}');
  return out;
}

bool Guid::IsZero() const {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

Guid Guid::Random() {
  Guid g;
  size_t filled = 0;
  while (filled < g.bytes.size()) {
    const ssize_t n = getrandom(g.bytes.data() + filled, g.bytes.size() - filled, 0);
    if (n > 0) {
      filled += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      // No kernel entropy interface (very old kernel or seccomp): fall back to
      // std::random_device, which still draws from the OS where it can.
      std::random_device rd;
      for (size_t i = filled; i < g.bytes.size(); ++i) g.bytes[i] = static_cast<uint8_t>(rd());
      filled = g.bytes.size();
    }
  }
  // Version 4 lives in the high nibble of Data3, which is little-endian at
  // bytes[6..8], so its high byte is bytes[7]. The RFC 4122 variant (10xx)
  // is the top of Data4[0] = bytes[8].
  g.bytes[7] = static_cast<uint8_t>((g.bytes[7] & 0x0F) | 0x40);
  g.bytes[8] = static_cast<uint8_t>((g.bytes[8] & 0x3F) | 0x80);
  return g;
}

}  // namespace vhdx
