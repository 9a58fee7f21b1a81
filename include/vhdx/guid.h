// GUIDs in Microsoft binary order (Data1 u32 LE, Data2 u16 LE, Data3 u16 LE,
// Data4 8 bytes as written). See docs/format.md ("GUIDs").
#ifndef VHDX_GUID_H_
#define VHDX_GUID_H_

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "vhdx/export.h"
#include "vhdx/status.h"

namespace vhdx {

struct VHDX_EXPORT Guid {
  // The 16 bytes exactly as stored on disk.
  std::array<uint8_t, 16> bytes{};

  static Guid FromBytes(std::span<const uint8_t, 16> raw);
  void ToBytes(std::span<uint8_t, 16> out) const;

  // Accepts "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", optionally in braces,
  // in any letter case.
  static Result<Guid> Parse(std::string_view text);
  // Canonical text form; uppercase without braces by default. Parent
  // locators use lowercase with braces (ToString(true, true)).
  std::string ToString(bool braces = false, bool lowercase = false) const;

  bool IsZero() const;
  // A random version-4 GUID from the system's entropy source.
  static Guid Random();

  auto operator<=>(const Guid&) const = default;
};

}  // namespace vhdx

#endif  // VHDX_GUID_H_
