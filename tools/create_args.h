// Options shared by `vhdx create` and `vhdx convert -O vhdx`: turning the
// command-line strings into a vhdx::CreateOptions, with QEMU-style messages
// for values the format does not allow. The library validates them again.
#ifndef VHDX_TOOLS_CREATE_ARGS_H_
#define VHDX_TOOLS_CREATE_ARGS_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "vhdx/image.h"
#include "vhdx/status.h"

namespace vhdx::tool {

inline constexpr uint64_t kMaxVirtualSize = uint64_t{64} << 40;  // 64 TiB

struct CreateArgs {
  std::string type = "dynamic";  // "dynamic" or "fixed"
  std::string block_size;        // empty: the library's default
  uint32_t logical_sector_size = 0;   // 0: default
  uint32_t physical_sector_size = 0;  // 0: default
  std::string log_size;          // empty: the library's default
};

// Registers -t, -b/--block-size, --logical-sector-size, --physical-sector-size
// and, when `with_log_size`, --log-size.
void AddCreateArgs(CLI::App* cmd, CreateArgs* args, bool with_log_size);

// Fills type, block_size, sector sizes and log_size of `out` from `args`.
// Sector sizes left at 0 in `args` keep the values already in `out`.
Status ApplyCreateArgs(const CreateArgs& args, CreateOptions* out);

// Checks a virtual size against the format's limits for the sector size.
Status ValidateVirtualSize(uint64_t size, uint32_t logical_sector_size);

// "libvhdx <version>", written into created images.
std::string CreatorString();

}  // namespace vhdx::tool

#endif  // VHDX_TOOLS_CREATE_ARGS_H_
