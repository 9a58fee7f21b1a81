// Rewriting items of the metadata region (parent locator updates). The
// region is re-packed in memory and every changed 4 KiB page is logged.
#include <algorithm>
#include <cstring>
#include <mutex>

#include "format/constants.h"
#include "image/image_impl.h"

namespace vhdx {

Status Image::Impl::UpdateMetadataItem(const Guid& id, std::span<const uint8_t> value, bool is_virtual_disk,
                                       bool is_required) {
  if (read_only) return Status::ReadOnly("metadata update: image is open read-only");
  if (value.size() > format::kMaxMetadataItemSize) return Status::InvalidArgument("metadata item too large");
  if (Status s = BeginWrite(false); !s.ok()) return s;
  std::lock_guard commit(commit_mu_);  // no commit may snapshot a half-built region
  // Current bytes of the region as the log would leave them: dirty pages
  // first, then the file.
  std::vector<uint8_t> old_region(metadata_length);
  if (Status s = file->ReadAt(metadata_offset, old_region); !s.ok()) return s;
  {
    std::lock_guard lock(meta_mu_);
    for (const auto& [off, bytes] : dirty_pages) {
      if (off >= metadata_offset && off < metadata_offset + metadata_length) {
        std::memcpy(old_region.data() + (off - metadata_offset), bytes.data(), bytes.size());
      }
    }
  }
  format::MetadataTable table = metadata_table;
  std::vector<std::vector<uint8_t>> values;
  bool replaced = false;
  for (auto& e : table.entries) {
    if (!e.is_user && e.item_id == id) {
      values.emplace_back(value.begin(), value.end());
      e.is_virtual_disk = is_virtual_disk;
      e.is_required = is_required;
      replaced = true;
    } else {
      // Invariant: Decode checked every item lies inside the region.
      values.emplace_back(old_region.begin() + e.offset, old_region.begin() + e.offset + e.length);
    }
  }
  if (!replaced) {
    if (table.entries.size() >= format::kMaxMetadataEntries) {
      return Status::NoSpace("metadata table is full");
    }
    table.entries.push_back({id, 0, 0, false, is_virtual_disk, is_required});
    values.emplace_back(value.begin(), value.end());
  }
  std::vector<uint8_t> region(metadata_length, 0);
  uint64_t pos = format::kMetadataTableSize;
  for (size_t i = 0; i < table.entries.size(); ++i) {
    auto& e = table.entries[i];
    e.length = static_cast<uint32_t>(values[i].size());
    if (e.length == 0) {
      e.offset = 0;
      continue;
    }
    if (pos + e.length > metadata_length) return Status::NoSpace("metadata region is full");
    e.offset = static_cast<uint32_t>(pos);
    std::memcpy(region.data() + pos, values[i].data(), e.length);
    pos += e.length;
  }
  table.EncodeTo(std::span<uint8_t>(region.data(), format::kMetadataTableSize));
  {
    std::lock_guard lock(meta_mu_);
    for (uint64_t off = 0; off < metadata_length; off += 4096) {
      if (std::memcmp(region.data() + off, old_region.data() + off, 4096) == 0) continue;
      dirty_pages[metadata_offset + off].assign(region.begin() + off, region.begin() + off + 4096);
      dirty_count.fetch_add(1);
    }
  }
  metadata_table = std::move(table);
  if (id == format::ParentLocatorGuid()) {
    auto loc = format::ParentLocator::Decode(value, metadata_offset);
    if (!loc.ok()) return loc.status();
    parent_locator = std::move(*loc);
  }
  return Status::OK();
}

void Image::Impl::LogRegionTablesLocked(const format::RegionTable& table) {
  std::vector<uint8_t> raw(format::kRegionTableSize);
  table.EncodeTo(raw);
  for (uint64_t base : {format::kRegionTable1Offset, format::kRegionTable2Offset}) {
    for (uint64_t off = 0; off < raw.size(); off += 4096) {
      dirty_pages[base + off].assign(raw.begin() + static_cast<ptrdiff_t>(off),
                                     raw.begin() + static_cast<ptrdiff_t>(off + 4096));
      dirty_count.fetch_add(1);
    }
  }
}

}  // namespace vhdx
