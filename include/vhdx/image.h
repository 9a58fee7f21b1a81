// libvhdx: open, create, read and write VHDX images and differencing chains.
//
// Thread safety: an Image may be used from many threads at once. Read,
// Write, WriteZeroes, Trim and Flush may run concurrently; Close must not
// race with other calls.
//
// Durability: a Write returns once the data is in the host file (not
// necessarily durable). Flush makes every write that completed before it
// durable, data and metadata. A write with `fua` is durable when it returns.
//
// Format reference: docs/format.md; design and invariants: docs/design.md.
#ifndef VHDX_IMAGE_H_
#define VHDX_IMAGE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vhdx/export.h"
#include "vhdx/file.h"
#include "vhdx/guid.h"
#include "vhdx/info.h"
#include "vhdx/status.h"

namespace vhdx {

struct OpenOptions {
  // Open read-only. A dirty log is then replayed in memory only: the file is
  // left byte-for-byte unchanged and reads see the replayed state.
  bool read_only = true;

  // For a differencing image: the path of its parent, overriding the paths
  // stored in the parent locator. Ancestors further up are still found
  // through their own locators.
  std::string parent_path;

  // Open the parent chain of a differencing image. When false, the image
  // opens alone; reads of sectors that would come from a parent fail with
  // kNotSupported. Used by `vhdx info` and `vhdx check`.
  bool open_parents = true;

  // Accept a parent whose DataWriteGuid matches neither parent_linkage nor
  // parent_linkage2 (dangerous: reads may be silently wrong).
  bool ignore_parent_linkage = false;

  // Writable opens: the DataWriteGuid to set before the first user-visible
  // change, instead of a random one. Merge uses it to record the parent's
  // next identity in the child's parent_linkage2 first ([MS-VHDX] 2.6.2.6.3).
  std::optional<Guid> next_data_write_guid;
};

enum class DiskType : uint8_t { kFixed, kDynamic, kDifferencing };

struct CreateOptions {
  // Virtual disk size in bytes: a multiple of the logical sector size,
  // at most 64 TiB. For a differencing image 0 means "the parent's size".
  uint64_t virtual_size = 0;
  DiskType type = DiskType::kDynamic;
  // Payload block size: a power of two from 1 MiB to 256 MiB. 0 means the
  // default (32 MiB, or the parent's block size for a differencing image).
  uint32_t block_size = 0;
  // 512 or 4096; part of the on-disk format and fixed for the image's life.
  // Ignored for differencing images (taken from the parent).
  uint32_t logical_sector_size = 512;
  uint32_t physical_sector_size = 4096;
  // Log size: a multiple of 1 MiB, at least 1 MiB.
  uint32_t log_size = 1 << 20;
  // Replace an existing file at the path instead of failing.
  bool overwrite = false;
  // Differencing image: path of the parent (absolute or relative to the
  // current directory). The locator stores it relative to the child.
  std::string parent_path;
  // Virtual disk identifier; random when unset (a child copies its parent's).
  std::optional<Guid> disk_id;
  // Creator string written into the file identifier (diagnostic only).
  std::string creator;
};

struct WriteOptions {
  // Force unit access: the write is durable when the call returns.
  bool fua = false;
};

enum class TrimMode : uint8_t {
  // The range reads back as zeros afterwards (base images) or shows the
  // parent again (differencing images).
  kDefault,
  // The range reads back as zeros, also in differencing images.
  kZero,
  // Whole blocks become UNMAPPED keeping their file space as a soft anchor.
  kUnmapKeepSpace,
};

struct ResizeOptions {
  // Allow shrinking below the end of allocated data (the data beyond the new
  // end is discarded). Without it such a shrink fails with kInvalidArgument.
  bool allow_data_loss = false;
};

struct CompactResult {
  uint64_t file_size_before = 0;
  uint64_t file_size_after = 0;
  uint64_t blocks_zeroed = 0;   // all-zero blocks turned into ZERO blocks
  uint64_t blocks_moved = 0;    // blocks moved into holes nearer the start
};

// One run of the virtual disk with uniform allocation.
struct Extent {
  enum class Kind : uint8_t {
    kData,         // stored in the image (or an ancestor, see depth)
    kZero,         // reads as zeros and the format says so (ZERO block)
    kUnallocated,  // no data anywhere in the chain; reads as zeros
  };
  uint64_t offset = 0;  // virtual byte offset
  uint64_t length = 0;
  Kind kind = Kind::kUnallocated;
  // For kData: the file offset in the image that holds it, and the depth of
  // that image in the chain (0 = the image itself, 1 = its parent, ...).
  uint64_t file_offset = 0;
  uint32_t depth = 0;
};

class VHDX_EXPORT Image {
 public:
  // Opens the image at `path`, and for a differencing image its whole chain.
  static Result<std::unique_ptr<Image>> Open(const std::string& path, const OpenOptions& options = {});
  // Opens an image held by `file` (for example an in-memory file). A
  // differencing image opened this way resolves parents relative to the
  // current directory, or via options.parent_path.
  static Result<std::unique_ptr<Image>> Open(std::unique_ptr<File> file, const OpenOptions& options = {});

  // Creates a new image and returns it opened read-write.
  static Result<std::unique_ptr<Image>> Create(const std::string& path, const CreateOptions& options);
  static Result<std::unique_ptr<Image>> Create(std::unique_ptr<File> file, const CreateOptions& options);

  // Closes cleanly when Close was not called; errors are lost (call Close).
  ~Image();
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  // Reads `out.size()` bytes at virtual byte `offset`. Offset and length must
  // be multiples of the logical sector size and inside the disk.
  Status Read(uint64_t offset, std::span<uint8_t> out);
  // Writes at virtual byte `offset` under the same alignment rules.
  Status Write(uint64_t offset, std::span<const uint8_t> data, const WriteOptions& options = {});
  // Makes the range read as zeros. Whole blocks become ZERO without writing
  // data; partial blocks are zero-filled.
  Status WriteZeroes(uint64_t offset, uint64_t length, const WriteOptions& options = {});
  // Discards the range (see TrimMode); space of whole blocks is freed.
  Status Trim(uint64_t offset, uint64_t length, TrimMode mode = TrimMode::kDefault);
  // Makes every completed write durable.
  Status Flush();
  // Changes the virtual size (a multiple of the logical sector size, at most
  // 64 TiB). Growing relocates the BAT when it outgrows its region; both go
  // through the log. Must not run concurrently with other calls.
  Status Resize(uint64_t new_size, const ResizeOptions& options = {});
  // Gives space back like Optimize-VHD (Full): all-zero blocks become ZERO
  // blocks, blocks near the end of the file move into holes, and on Close
  // the file is truncated. Fixed images keep every block allocated (only
  // trailing free space is released). Must not run concurrently with other
  // calls; the result's file_size_after is the size Close will leave.
  Result<CompactResult> Compact();
  // Writes back all metadata, marks the log clean, truncates trailing free
  // space and closes the file. Later calls fail.
  Status Close();

  // Allocation map of [offset, offset+length), adjacent equal runs merged.
  Result<std::vector<Extent>> Map(uint64_t offset, uint64_t length);

  // Everything `vhdx info` shows.
  ImageInfo Info() const;

  uint64_t virtual_size() const;
  uint32_t logical_sector_size() const;
  uint32_t physical_sector_size() const;
  uint32_t block_size() const;
  DiskType type() const;
  bool read_only() const;

  struct Impl;

 private:
  friend struct ImageAccess;  // internal tooling in src/ (chain operations)
  explicit Image(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vhdx

#endif  // VHDX_IMAGE_H_
