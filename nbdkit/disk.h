// The plugin's view of one served image: NBD request semantics on top of the
// public vhdx::Image API, with no dependency on nbdkit (nbdkit glue lives in
// vhdx_plugin.cc).
//
// What this layer adds to vhdx::Image:
//  (1) Checks with NBD error codes (NbdErrno): a request past the end of the
//      disk is kInvalidArgument for reads and kNoSpace for modifications (the
//      NBD protocol's EINVAL / ENOSPC); a modification of a read-only image is
//      kReadOnly (EROFS) before anything is read or written.
//  (2) Byte granularity. vhdx::Image takes whole logical sectors only; NBD
//      clients may ignore the advertised minimum block size. Unaligned reads
//      read the covering sectors; unaligned writes and zeroes patch their
//      partial edge sectors by read-modify-write.
//  (3) Fast zero: a zero request that can be done without writing data, or a
//      "no" before anything is changed.
//
// Invariant: a read-modify-write of a partial sector holds rmw_ exclusively,
// and every other modification holds it shared, so an RMW never writes back
// stale bytes of a sector that a concurrent request changed in between.
// Reads take no lock (the library's reads are consistent per sector).
#ifndef VHDX_NBDKIT_DISK_H_
#define VHDX_NBDKIT_DISK_H_

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <vector>

#include "vhdx/image.h"
#include "vhdx/status.h"

namespace vhdx_nbdkit {

// The NBD error (errno value) a client gets for a library status: EINVAL,
// ENOSPC, EROFS, ENOENT, and EIO for corruption, I/O errors and unsupported
// features met while serving data (EOPNOTSUPP would make nbdkit retry a zero
// as a write).
int NbdErrno(const vhdx::Status& s);

class Disk {
 public:
  explicit Disk(std::unique_ptr<vhdx::Image> image);

  uint64_t size() const { return size_; }
  uint32_t logical_sector_size() const { return lss_; }
  uint32_t physical_sector_size() const { return image_->physical_sector_size(); }
  uint32_t block_size() const { return image_->block_size(); }
  vhdx::DiskType type() const { return image_->type(); }
  bool read_only() const { return image_->read_only(); }

  // Any offset and length inside the disk.
  vhdx::Status Read(uint64_t offset, std::span<uint8_t> out);
  vhdx::Status Write(uint64_t offset, std::span<const uint8_t> data, bool fua);
  // The range reads back as zeros afterwards.
  vhdx::Status Zero(uint64_t offset, uint64_t length, bool fua);
  // Zeroes the range only if no data has to be written for it: whole blocks
  // become ZERO in metadata, partial-block edges must already read as zeros.
  // Returns false, having changed nothing, when that is not possible.
  vhdx::Result<bool> ZeroFast(uint64_t offset, uint64_t length, bool fua);
  // Discards the whole sectors inside the range (an advisory operation: a
  // partial sector at either edge is left alone).
  vhdx::Status Trim(uint64_t offset, uint64_t length, bool fua);
  vhdx::Status Flush();
  // Allocation map of the sectors covering [offset, offset+length); the
  // first extent may start before `offset`.
  vhdx::Result<std::vector<vhdx::Extent>> Map(uint64_t offset, uint64_t length);

  // Marks the image clean and closes it; no other call may run concurrently.
  vhdx::Status Close();

 private:
  enum class Access { kRead, kModify };
  // Range (and, for kModify, writability) of a request.
  vhdx::Status CheckRange(const char* op, uint64_t offset, uint64_t length, Access access) const;
  // Replaces bytes [at, at+len) of the sector at `sector_offset` with
  // `bytes`, or with zeros when `bytes` is empty. Caller holds rmw_
  // exclusively.
  vhdx::Status PatchSector(uint64_t sector_offset, uint64_t at, std::span<const uint8_t> bytes, uint64_t len);
  // Changes [offset, offset+length): whole(off, len, bytes, fua) for the
  // sector-aligned middle, PatchSector for partial edge sectors. `data` is
  // empty for zeroes. Flushes at the end when `fua` and the request was
  // split.
  template <typename WholeFn>
  vhdx::Status Modify(uint64_t offset, uint64_t length, std::span<const uint8_t> data, bool fua,
                      WholeFn&& whole);
  // True when [offset, offset+length) reads as zeros according to the map.
  vhdx::Result<bool> ReadsAsZeros(uint64_t offset, uint64_t length);

  const std::unique_ptr<vhdx::Image> image_;
  const uint64_t size_;
  const uint32_t lss_;
  std::shared_mutex rmw_;  // see the invariant at the top of this file
};

}  // namespace vhdx_nbdkit

#endif  // VHDX_NBDKIT_DISK_H_
