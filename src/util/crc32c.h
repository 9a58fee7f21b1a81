// CRC-32C (Castagnoli), as VHDX uses it: init ~0, reflected, final ~0.
// Uses the SSE4.2 crc32 instruction when the CPU has it.
#ifndef VHDX_SRC_UTIL_CRC32C_H_
#define VHDX_SRC_UTIL_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace vhdx::crc32c {

// Continues a CRC: Extend(Extend(0, a), b) == Value(a ++ b).
uint32_t Extend(uint32_t crc, const uint8_t* data, size_t n);
inline uint32_t Value(const uint8_t* data, size_t n) { return Extend(0, data, n); }

// The portable table-driven implementation (exposed for tests and benches).
uint32_t ExtendPortable(uint32_t crc, const uint8_t* data, size_t n);
// True when Extend uses the hardware instruction.
bool HardwareAccelerated();

// CRC of `n` bytes at `data` with the 4-byte checksum field at
// `checksum_offset` treated as zero (VHDX header, region table, log entry).
uint32_t ValueWithZeroedField(const uint8_t* data, size_t n, size_t checksum_offset);

}  // namespace vhdx::crc32c

#endif  // VHDX_SRC_UTIL_CRC32C_H_
