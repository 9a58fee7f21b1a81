// Helpers shared by the `vhdx` tool's commands: size parsing, number
// formatting, error reporting and the progress bar.
#ifndef VHDX_TOOLS_COMMON_H_
#define VHDX_TOOLS_COMMON_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "vhdx/status.h"

namespace vhdx::tool {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;

inline constexpr uint64_t kKiB = uint64_t{1} << 10;
inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr uint64_t kGiB = uint64_t{1} << 30;
inline constexpr uint64_t kTiB = uint64_t{1} << 40;

// Parses a byte count: plain bytes ("4096") or a number with a binary suffix
// K, M, G, T, P or E (case-insensitive, optionally followed by "iB" or "B"),
// e.g. "64K", "1M", "1.5G", "2TiB". The result must be a whole number of bytes.
Result<uint64_t> ParseSize(std::string_view text);

// "1 GiB", "1.5 MiB", "512 B": three significant digits, like qemu-img.
std::string HumanSize(uint64_t bytes);
// "1 GiB (1073741824 bytes)".
std::string HumanSizeWithBytes(uint64_t bytes);
// "0x1f00000".
std::string Hex(uint64_t value);

// Prints "vhdx: <command>: <file>: <status>" to stderr and returns
// kExitFailure.
int Fail(std::string_view command, std::string_view file, const Status& status);
// Same for an invalid argument detected by the tool itself.
int FailArgument(std::string_view command, std::string_view file, std::string message);

bool IsAllZero(std::span<const uint8_t> data);

// Rounds `value` up to a multiple of `align` (a power of two); false on overflow.
bool AlignUp(uint64_t value, uint64_t align, uint64_t* out);

// A progress indicator on stderr in qemu-img's style "    (12.34/100%)".
// Draws nothing unless enabled and stderr is a terminal.
class Progress {
 public:
  Progress(bool enabled, uint64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void Update(uint64_t done);
  // Draws 100% and ends the line.
  void Finish();

 private:
  bool active_;
  uint64_t total_;
  int last_permyriad_ = -1;
  bool finished_ = false;
};

}  // namespace vhdx::tool

#endif  // VHDX_TOOLS_COMMON_H_
