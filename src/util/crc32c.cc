// CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected form 0x82F63B78),
// initial value ~0 and final inversion, as VHDX uses it.
//
// Two implementations:
//  * Portable slicing-by-8: eight 256-entry tables let the loop consume eight
//    bytes per step with independent table lookups.
//  * x86-64 SSE4.2: the crc32 instruction has a latency of about three cycles
//    and a throughput of one per cycle, so one dependent chain uses a third of
//    the unit. Large buffers are therefore cut into three adjacent lanes whose
//    CRCs are computed in parallel and then joined: for lanes A, B, C
//        crc(s, A B C) = shift(shift(crc(s, A), |B|) ^ crc(0, B), |C|) ^ crc(0, C)
//    where shift(c, L) is the CRC register after feeding L zero bytes to c,
//    a linear map applied here through four 256-entry tables.
// The library is built without -msse4.2: the hardware path carries a target
// attribute and is chosen once at run time.
#include "util/crc32c.h"

#include <array>
#include <cassert>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define VHDX_CRC32C_X86 1
#endif

namespace vhdx::crc32c {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

using SliceTables = std::array<std::array<uint32_t, 256>, 8>;

constexpr SliceTables MakeSliceTables() {
  SliceTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (size_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  }
  return t;
}

constexpr SliceTables kTables = MakeSliceTables();

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slicing-by-8 below assumes little-endian loads");
  return v;
}

// Raw register update (no pre/post inversion).
uint32_t UpdatePortable(uint32_t c, const uint8_t* p, size_t n) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = kTables[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    --n;
  }
  while (n >= 8) {
    const uint32_t lo = Load32(p) ^ c;
    const uint32_t hi = Load32(p + 4);
    c = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
        kTables[4][lo >> 24] ^ kTables[3][hi & 0xFF] ^ kTables[2][(hi >> 8) & 0xFF] ^
        kTables[1][(hi >> 16) & 0xFF] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = kTables[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    --n;
  }
  return c;
}

#if defined(VHDX_CRC32C_X86)

// Lane sizes for the three-way split; multiples of 8.
constexpr size_t kLongLane = 8192;
constexpr size_t kShortLane = 256;

// shift(c, L) as four byte-indexed tables: shift(c) = T0[b0]^T1[b1]^T2[b2]^T3[b3].
struct ShiftTables {
  std::array<std::array<uint32_t, 256>, 4> t;

  explicit ShiftTables(size_t zero_bytes) {
    // Image of each of the 32 basis vectors, by feeding zero bytes.
    uint32_t basis[32];
    for (int bit = 0; bit < 32; ++bit) {
      uint32_t c = 1u << bit;
      for (size_t i = 0; i < zero_bytes; ++i) c = kTables[0][c & 0xFF] ^ (c >> 8);
      basis[bit] = c;
    }
    for (int k = 0; k < 4; ++k) {
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t v = 0;
        for (int bit = 0; bit < 8; ++bit) {
          if (b & (1u << bit)) v ^= basis[8 * k + bit];
        }
        t[k][b] = v;
      }
    }
  }

  uint32_t Apply(uint32_t c) const { return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24]; }
};

const ShiftTables& LongShift() {
  static const ShiftTables tables(kLongLane);
  return tables;
}
const ShiftTables& ShortShift() {
  static const ShiftTables tables(kShortLane);
  return tables;
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Three interleaved crc32 chains over adjacent lanes of `lane` bytes each.
__attribute__((target("sse4.2"))) inline uint32_t ThreeLanes(uint32_t crc, const uint8_t* p, size_t lane,
                                                              const ShiftTables& shift) {
  uint64_t c0 = crc;
  uint64_t c1 = 0;
  uint64_t c2 = 0;
  const uint8_t* p1 = p + lane;
  const uint8_t* p2 = p + 2 * lane;
  for (size_t i = 0; i < lane; i += 8) {
    c0 = _mm_crc32_u64(c0, Load64(p + i));
    c1 = _mm_crc32_u64(c1, Load64(p1 + i));
    c2 = _mm_crc32_u64(c2, Load64(p2 + i));
  }
  uint32_t c = shift.Apply(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
  return shift.Apply(c) ^ static_cast<uint32_t>(c2);
}

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(c, *p++);
    --n;
  }
  if (n >= 3 * kLongLane) {
    const ShiftTables& shift = LongShift();
    do {
      c = ThreeLanes(c, p, kLongLane, shift);
      p += 3 * kLongLane;
      n -= 3 * kLongLane;
    } while (n >= 3 * kLongLane);
  }
  if (n >= 3 * kShortLane) {
    const ShiftTables& shift = ShortShift();
    do {
      c = ThreeLanes(c, p, kShortLane, shift);
      p += 3 * kShortLane;
      n -= 3 * kShortLane;
    } while (n >= 3 * kShortLane);
  }
  uint64_t c64 = c;
  while (n >= 8) {
    c64 = _mm_crc32_u64(c64, Load64(p));
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n > 0) {
    c = _mm_crc32_u8(c, *p++);
    --n;
  }
  return ~c;
}

#endif  // VHDX_CRC32C_X86

using ExtendFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

ExtendFn ChooseExtend() {
#if defined(VHDX_CRC32C_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) {
    // Build the shift tables now, so the first large CRC does not pay for it.
    (void)LongShift();
    (void)ShortShift();
    return ExtendHardware;
  }
#endif
  return ExtendPortable;
}

ExtendFn ChosenExtend() {
  static const ExtendFn fn = ChooseExtend();
  return fn;
}

}  // namespace

uint32_t ExtendPortable(uint32_t crc, const uint8_t* data, size_t n) { return ~UpdatePortable(~crc, data, n); }

uint32_t Extend(uint32_t crc, const uint8_t* data, size_t n) { return ChosenExtend()(crc, data, n); }

bool HardwareAccelerated() { return ChosenExtend() != ExtendPortable; }

uint32_t ValueWithZeroedField(const uint8_t* data, size_t n, size_t checksum_offset) {
  assert(checksum_offset <= n && n - checksum_offset >= 4);
  static constexpr uint8_t kZeros[4] = {0, 0, 0, 0};
  uint32_t crc = Extend(0, data, checksum_offset);
  crc = Extend(crc, kZeros, sizeof kZeros);
  return Extend(crc, data + checksum_offset + 4, n - checksum_offset - 4);
}

}  // namespace vhdx::crc32c
