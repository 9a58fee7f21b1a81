#include "create_args.h"

#include "common.h"

namespace vhdx::tool {

void AddCreateArgs(CLI::App* cmd, CreateArgs* args, bool with_log_size) {
  cmd->add_option("-t,--type", args->type, "Image type: dynamic (default) or fixed (fully allocated)")
      ->check(CLI::IsMember({"dynamic", "fixed"}));
  cmd->add_option("-b,--block-size", args->block_size,
                  "Payload block size: a power of two from 1M to 256M (default 32M)");
  cmd->add_option("--logical-sector-size", args->logical_sector_size, "Logical sector size: 512 (default) or 4096");
  cmd->add_option("--physical-sector-size", args->physical_sector_size,
                  "Physical sector size: 512 or 4096 (default)");
  if (with_log_size) {
    cmd->add_option("--log-size", args->log_size, "Log size: a multiple of 1M (default 1M)");
  }
}

Status ApplyCreateArgs(const CreateArgs& args, CreateOptions* out) {
  if (args.type == "fixed") {
    out->type = DiskType::kFixed;
  } else if (args.type == "dynamic") {
    out->type = DiskType::kDynamic;
  } else {
    return Status::InvalidArgument("Invalid image type '" + args.type + "' (use dynamic or fixed)");
  }

  if (!args.block_size.empty()) {
    auto bs = ParseSize(args.block_size);
    if (!bs.ok()) return Status::InvalidArgument("Invalid block size: " + bs.status().message());
    uint64_t v = *bs;
    if (v < kMiB || v > 256 * kMiB) {
      return Status::InvalidArgument("Block size must be between 1 MiB and 256 MiB (got " + std::to_string(v) + ")");
    }
    if ((v & (v - 1)) != 0) {
      return Status::InvalidArgument("Block size must be a power of two (got " + std::to_string(v) + ")");
    }
    out->block_size = static_cast<uint32_t>(v);
  }

  if (args.logical_sector_size != 0) out->logical_sector_size = args.logical_sector_size;
  if (args.physical_sector_size != 0) out->physical_sector_size = args.physical_sector_size;
  if (out->logical_sector_size != 512 && out->logical_sector_size != 4096) {
    return Status::InvalidArgument("Logical sector size must be 512 or 4096 (got " +
                                   std::to_string(out->logical_sector_size) + ")");
  }
  if (out->physical_sector_size != 512 && out->physical_sector_size != 4096) {
    return Status::InvalidArgument("Physical sector size must be 512 or 4096 (got " +
                                   std::to_string(out->physical_sector_size) + ")");
  }
  if (out->physical_sector_size < out->logical_sector_size) {
    // A physical sector size of 512 with 4096-byte logical sectors is
    // refused by Hyper-V as well.
    if (args.physical_sector_size != 0) {
      return Status::InvalidArgument("Physical sector size (" + std::to_string(out->physical_sector_size) +
                                     ") must not be smaller than the logical sector size (" +
                                     std::to_string(out->logical_sector_size) + ")");
    }
    out->physical_sector_size = out->logical_sector_size;
  }

  if (!args.log_size.empty()) {
    auto ls = ParseSize(args.log_size);
    if (!ls.ok()) return Status::InvalidArgument("Invalid log size: " + ls.status().message());
    uint64_t v = *ls;
    if (v == 0 || v % kMiB != 0) {
      return Status::InvalidArgument("Log size must be a multiple of 1 MiB (got " + std::to_string(v) + ")");
    }
    if (v > 4 * kGiB - kMiB) {
      return Status::InvalidArgument("Log size must be less than 4 GiB (got " + std::to_string(v) + ")");
    }
    out->log_size = static_cast<uint32_t>(v);
  }
  return Status::OK();
}

Status ValidateVirtualSize(uint64_t size, uint32_t logical_sector_size) {
  if (size > kMaxVirtualSize) {
    return Status::InvalidArgument("Image size too large; max of 64 TiB (got " + std::to_string(size) + ")");
  }
  if (logical_sector_size != 0 && size % logical_sector_size != 0) {
    return Status::InvalidArgument("Image size must be a multiple of the logical sector size " +
                                   std::to_string(logical_sector_size) + " (got " + std::to_string(size) + ")");
  }
  return Status::OK();
}

std::string CreatorString() { return "libvhdx " VHDX_TOOL_VERSION; }

}  // namespace vhdx::tool
