// A read-only file seen through an in-memory overlay of 4 KiB pages: what a
// read-only open of an image with a dirty log replays into, so that reads
// see the replayed state while the file itself is never written.
#ifndef VHDX_SRC_IO_OVERLAY_FILE_H_
#define VHDX_SRC_IO_OVERLAY_FILE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <vector>

#include "vhdx/file.h"

namespace vhdx {

class OverlayFile final : public File {
 public:
  explicit OverlayFile(std::unique_ptr<File> base);

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  // Writes go to the overlay only (4 KiB pages, read-modify-write).
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Flush() override { return Status::OK(); }
  Result<uint64_t> Size() override;
  // Changes only the apparent size.
  Status Truncate(uint64_t size) override;
  Status ZeroRange(uint64_t offset, uint64_t length) override;
  Status PunchHole(uint64_t offset, uint64_t length) override { return ZeroRange(offset, length); }
  Status Allocate(uint64_t offset, uint64_t length) override;
  std::string Name() const override { return base_->Name(); }
  // Writable in the sense that replay may write into it; the image layer
  // still opens read-only.
  bool IsWritable() const override { return true; }

  size_t page_count() const;

 private:
  static constexpr uint64_t kPage = 4096;
  Status LoadPage(uint64_t page_index, std::vector<uint8_t>* page);

  std::unique_ptr<File> base_;
  mutable std::shared_mutex mu_;
  // Guarded by mu_: overlaid pages keyed by page index, and the size.
  std::map<uint64_t, std::vector<uint8_t>> pages_;
  // Zero ranges larger than a page are recorded as ranges, not pages, so a
  // hostile zero descriptor cannot make us allocate per page. Keyed by start.
  std::map<uint64_t, uint64_t> zero_ranges_;
  uint64_t size_ = 0;
  uint64_t base_size_ = 0;
};

}  // namespace vhdx

#endif  // VHDX_SRC_IO_OVERLAY_FILE_H_
