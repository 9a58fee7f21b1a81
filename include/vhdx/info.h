// Descriptive views of an image: what `vhdx info` prints.
#ifndef VHDX_INFO_H_
#define VHDX_INFO_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "vhdx/guid.h"

namespace vhdx {

struct HeaderInfo {
  bool valid = false;    // signature and checksum verify
  bool current = false;  // chosen as the current header
  uint64_t file_offset = 0;
  uint64_t sequence_number = 0;
  Guid file_write_guid;
  Guid data_write_guid;
  Guid log_guid;
  uint16_t log_version = 0;
  uint16_t version = 0;
  uint32_t log_length = 0;
  uint64_t log_offset = 0;
};

struct RegionInfo {
  Guid guid;
  std::string name;  // "BAT", "metadata" or "unknown"
  uint64_t file_offset = 0;
  uint32_t length = 0;
  bool required = false;
};

struct MetadataItemInfo {
  Guid item_id;
  std::string name;  // "File Parameters", ..., or "unknown"
  uint32_t offset = 0;  // from the start of the metadata region
  uint32_t length = 0;
  bool is_user = false;
  bool is_virtual_disk = false;
  bool is_required = false;
};

// Counts of BAT entries by state.
struct BlockCounts {
  uint64_t not_present = 0;
  uint64_t undefined = 0;
  uint64_t zero = 0;
  uint64_t unmapped = 0;
  uint64_t fully_present = 0;
  uint64_t partially_present = 0;
  uint64_t sector_bitmaps_present = 0;
};

enum class LogState : uint8_t {
  kClean,              // header LogGuid is zero
  kReplayed,           // was dirty; replayed to the file on this open
  kReplayedInMemory,   // dirty; replayed in memory (read-only open)
};

// How a differencing image's parent was accepted.
enum class ParentMatch : uint8_t {
  kNone,            // not differencing, or opened without its parents
  kLinkage,         // the parent's DataWriteGuid equals parent_linkage
  kLinkage2,        // ... equals parent_linkage2 (a merge into it was started)
  kIgnored,         // neither; accepted because linkage checks were off
};

struct ChainLinkInfo {
  std::string path;
  Guid data_write_guid;
  bool differencing = false;
  uint64_t virtual_size = 0;
  LogState log_state = LogState::kClean;
  // How this image's parent (the next link) was accepted.
  ParentMatch parent_match = ParentMatch::kNone;
};

struct ImageInfo {
  std::string path;
  uint64_t file_size = 0;
  uint64_t virtual_size = 0;
  uint32_t block_size = 0;
  uint32_t logical_sector_size = 0;
  uint32_t physical_sector_size = 0;
  std::string type;  // "fixed", "dynamic" or "differencing"
  bool leave_block_allocated = false;
  bool has_parent = false;
  Guid disk_id;
  std::string creator;
  uint32_t chunk_ratio = 0;
  uint64_t payload_blocks = 0;
  uint64_t bat_entries = 0;
  std::array<HeaderInfo, 2> headers;
  LogState log_state = LogState::kClean;
  uint32_t log_entries_replayed = 0;
  std::vector<RegionInfo> regions;
  std::vector<MetadataItemInfo> metadata_items;
  BlockCounts blocks;
  // Parent locator key/value pairs in file order (empty without a parent).
  std::vector<std::pair<std::string, std::string>> parent_locator;
  // The chain below this image: element 0 is the image itself, then its
  // parent and so on (just the image when it has no parent).
  std::vector<ChainLinkInfo> chain;
  // The smallest virtual size the disk can be shrunk to without cutting off
  // allocated data.
  uint64_t minimum_size = 0;
};

}  // namespace vhdx

#endif  // VHDX_INFO_H_
