// Public facade of Image: argument validation at the boundary, splitting of
// requests at block boundaries, and the descriptive views.
#include <algorithm>
#include <cstring>

#include "format/constants.h"
#include "image/image_impl.h"
#include "util/coding.h"

namespace vhdx {

Image::Image(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Image::~Image() {
  if (impl_ && !impl_->closed) Close().PermitUncheckedError();
}

namespace {

Result<std::unique_ptr<Image::Impl>> LoadImpl(std::unique_ptr<File> file, std::string path,
                                              const OpenOptions& options) {
  auto impl = std::make_unique<Image::Impl>();
  impl->file = std::move(file);
  impl->path = std::move(path);
  impl->read_only = options.read_only || !impl->file->IsWritable();
  impl->next_data_write_guid = options.next_data_write_guid;
  impl->stripes = std::make_unique<std::shared_mutex[]>(Image::Impl::kStripes);
  Diagnostics diag(false);
  Status s = impl->Load(diag, options);
  if (!s.ok()) return s;
  return impl;
}

}  // namespace

Result<std::unique_ptr<Image>> Image::Open(std::unique_ptr<File> file, const OpenOptions& options) {
  if (!file) return Status::InvalidArgument("Image::Open: null file");
  std::string name = file->Name();
  auto impl = LoadImpl(std::move(file), name == "<memory>" ? std::string() : name, options);
  if (!impl.ok()) return impl.status();
  std::unique_ptr<Image> image(new Image(std::move(*impl)));
  if (image->impl_->is_differencing() && options.open_parents) {
    if (Status s = image->impl_->OpenParent(options); !s.ok()) {
      image->impl_->closed = true;  // nothing was written; do not touch the file
      return s;
    }
  }
  const Image::Impl& im = *image->impl_;
  image->impl_->chain.insert(image->impl_->chain.begin(),
                             ChainLinkInfo{im.path, im.header.data_write_guid, im.is_differencing(),
                                           im.geo.virtual_size, im.log_state, im.parent_match});
  return image;
}

Result<std::unique_ptr<Image>> Image::Open(const std::string& path, const OpenOptions& options) {
  auto file = OpenPosixFile(path, options.read_only ? FileMode::kReadOnly : FileMode::kReadWrite);
  if (!file.ok()) return file.status();
  return Open(std::move(*file), options);
}

uint64_t Image::virtual_size() const { return impl_->geo.virtual_size; }
uint32_t Image::logical_sector_size() const { return impl_->geo.logical_sector_size; }
uint32_t Image::physical_sector_size() const { return impl_->physical_sector_size; }
uint32_t Image::block_size() const { return impl_->geo.block_size; }
bool Image::read_only() const { return impl_->read_only; }
DiskType Image::type() const {
  if (impl_->params.has_parent) return DiskType::kDifferencing;
  return impl_->params.leave_block_allocated ? DiskType::kFixed : DiskType::kDynamic;
}

namespace {

Status CheckRange(const Image::Impl& impl, uint64_t offset, uint64_t length, const char* op) {
  const uint64_t lss = impl.geo.logical_sector_size;
  if (offset % lss != 0 || length % lss != 0) {
    return Status::InvalidArgument(std::string(op) + ": offset " + std::to_string(offset) + " and length " +
                                   std::to_string(length) + " must be multiples of the logical sector size " +
                                   std::to_string(lss));
  }
  uint64_t end;
  if (!CheckedAdd(offset, length, &end) || end > impl.geo.virtual_size) {
    return Status::InvalidArgument(std::string(op) + ": range [" + std::to_string(offset) + ", +" +
                                   std::to_string(length) + ") is beyond the end of the disk (" +
                                   std::to_string(impl.geo.virtual_size) + " bytes)");
  }
  if (impl.closed) return Status::InvalidArgument(std::string(op) + ": image is closed");
  return Status::OK();
}

// Invariant 7 (sticky error): a mutating call that fails part-way may leave
// the file and the in-memory state disagreeing (a short data write, a zero
// fill or a sector bitmap change half done), so the image refuses
// everything until it is reopened and its log replayed. The caller gets the
// original error.
Status Sticky(Image::Impl& impl, Status s) {
  if (!s.ok()) impl.Fail(s);
  return s;
}

// Calls fn(block, in_block, pos, n) for each block-sized piece of a range.
template <typename Fn>
Status ForEachBlock(uint64_t block_size, uint64_t offset, uint64_t length, Fn&& fn) {
  uint64_t pos = 0;
  while (pos < length) {
    uint64_t voff = offset + pos;
    uint64_t block = voff / block_size;
    uint64_t in_block = voff % block_size;
    uint64_t n = std::min(block_size - in_block, length - pos);
    if (Status s = fn(block, in_block, pos, n); !s.ok()) return s;
    pos += n;
  }
  return Status::OK();
}

}  // namespace

Status Image::Read(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = CheckRange(*impl_, offset, out.size(), "read"); !s.ok()) return s;
  if (Status s = impl_->CheckAlive(); !s.ok()) return s;
  return ForEachBlock(impl_->geo.block_size, offset, out.size(),
                      [&](uint64_t block, uint64_t in_block, uint64_t pos, uint64_t n) {
                        return impl_->ReadBlockRange(block, in_block, out.subspan(pos, n));
                      });
}

Status Image::Write(uint64_t offset, std::span<const uint8_t> data, const WriteOptions& options) {
  if (Status s = CheckRange(*impl_, offset, data.size(), "write"); !s.ok()) return s;
  if (impl_->read_only) return Status::ReadOnly("write: image is open read-only");
  if (Status s = impl_->CheckAlive(); !s.ok()) return s;
  if (data.empty()) return Status::OK();
  if (Status s = impl_->BeginWrite(true); !s.ok()) return s;
  Status s = ForEachBlock(impl_->geo.block_size, offset, data.size(),
                          [&](uint64_t block, uint64_t in_block, uint64_t pos, uint64_t n) {
                            return impl_->WriteBlockRange(block, in_block, data.subspan(pos, n));
                          });
  if (!s.ok()) return Sticky(*impl_, s);
  if (Status c = impl_->MaybeCommit(); !c.ok()) return c;
  return options.fua ? impl_->FlushAll() : Status::OK();
}

Status Image::WriteZeroes(uint64_t offset, uint64_t length, const WriteOptions& options) {
  if (Status s = CheckRange(*impl_, offset, length, "write-zeroes"); !s.ok()) return s;
  if (impl_->read_only) return Status::ReadOnly("write-zeroes: image is open read-only");
  if (Status s = impl_->CheckAlive(); !s.ok()) return s;
  if (length == 0) return Status::OK();
  if (Status s = impl_->BeginWrite(true); !s.ok()) return s;
  Status s = ForEachBlock(impl_->geo.block_size, offset, length,
                          [&](uint64_t block, uint64_t in_block, uint64_t, uint64_t n) {
                            return impl_->ZeroBlockRange(block, in_block, n);
                          });
  if (!s.ok()) return Sticky(*impl_, s);
  if (Status c = impl_->MaybeCommit(); !c.ok()) return c;
  return options.fua ? impl_->FlushAll() : Status::OK();
}

Status Image::Trim(uint64_t offset, uint64_t length, TrimMode mode) {
  if (Status s = CheckRange(*impl_, offset, length, "trim"); !s.ok()) return s;
  if (impl_->read_only) return Status::ReadOnly("trim: image is open read-only");
  if (Status s = impl_->CheckAlive(); !s.ok()) return s;
  if (length == 0) return Status::OK();
  if (Status s = impl_->BeginWrite(true); !s.ok()) return s;
  Status s = ForEachBlock(impl_->geo.block_size, offset, length,
                          [&](uint64_t block, uint64_t in_block, uint64_t, uint64_t n) {
                            return impl_->TrimBlockRange(block, in_block, n, mode);
                          });
  if (!s.ok()) return Sticky(*impl_, s);
  return impl_->MaybeCommit();
}

Status Image::Flush() {
  if (impl_->closed) return Status::InvalidArgument("flush: image is closed");
  if (impl_->read_only) return Status::OK();
  if (Status s = impl_->CheckAlive(); !s.ok()) return s;
  return impl_->FlushAll();
}

Status Image::Close() {
  if (impl_->closed) return Status::OK();
  Status s;
  if (!impl_->read_only) s = impl_->CloseClean();
  impl_->closed = true;
  if (impl_->parent) {
    Status p = impl_->parent->Close();
    if (s.ok()) s = p;
  }
  impl_->file.reset();
  return s;
}

Result<std::vector<Extent>> Image::Map(uint64_t offset, uint64_t length) {
  if (Status s = CheckRange(*impl_, offset, length, "map"); !s.ok()) return s;
  std::vector<Extent> out;
  auto push = [&](const Extent& e) {
    if (!out.empty()) {
      Extent& last = out.back();
      bool contiguous_file = last.kind != Extent::Kind::kData ||
                             (last.depth == e.depth && last.file_offset + last.length == e.file_offset);
      if (last.kind == e.kind && last.offset + last.length == e.offset && contiguous_file &&
          last.depth == e.depth) {
        last.length += e.length;
        return;
      }
    }
    out.push_back(e);
  };
  Impl& im = *impl_;
  const uint64_t lss = im.geo.logical_sector_size;
  Status st = ForEachBlock(im.geo.block_size, offset, length, [&](uint64_t block, uint64_t in_block, uint64_t pos,
                                                                   uint64_t n) -> Status {
    uint64_t voff = offset + pos;
    format::BatEntry e = im.LoadEntry(im.geo.BatIndexOfBlock(block));
    auto from_parent = [&](uint64_t v, uint64_t len) -> Status {
      if (!im.parent) {
        push({v, len, Extent::Kind::kUnallocated, 0, 0});
        return Status::OK();
      }
      uint64_t psize = im.parent->virtual_size();
      uint64_t inside = v >= psize ? 0 : std::min(len, psize - v);
      if (inside > 0) {
        auto sub = im.parent->Map(v, inside);
        if (!sub.ok()) return sub.status();
        for (Extent x : *sub) {
          if (x.kind == Extent::Kind::kData) x.depth += 1;
          push(x);
        }
      }
      if (inside < len) push({v + inside, len - inside, Extent::Kind::kUnallocated, 0, 0});
      return Status::OK();
    };
    switch (e.state) {
      case format::kPayloadFullyPresent:
        push({voff, n, Extent::Kind::kData, e.file_offset + in_block, 0});
        return Status::OK();
      case format::kPayloadZero:
        push({voff, n, Extent::Kind::kZero, 0, 0});
        return Status::OK();
      case format::kPayloadPartiallyPresent: {
        const uint64_t sector = voff / lss;
        return im.ForEachSectorRun(sector / format::kSectorsPerChunk, sector % format::kSectorsPerChunk, n / lss,
                                   [&](bool present, uint64_t i, uint64_t count) -> Status {
                                     if (!present) return from_parent(voff + i * lss, count * lss);
                                     push({voff + i * lss, count * lss, Extent::Kind::kData,
                                           e.file_offset + in_block + i * lss, 0});
                                     return Status::OK();
                                   });
      }
      case format::kPayloadNotPresent:
        if (im.is_differencing()) return from_parent(voff, n);
        push({voff, n, Extent::Kind::kUnallocated, 0, 0});
        return Status::OK();
      default:  // UNDEFINED, UNMAPPED: read as zeros, nothing stored
        push({voff, n, Extent::Kind::kUnallocated, 0, 0});
        return Status::OK();
    }
  });
  if (!st.ok()) return st;
  return out;
}

ImageInfo Image::Info() const {
  const Impl& im = *impl_;
  ImageInfo info;
  info.path = im.path;
  {
    auto size = im.file ? im.file->Size() : Result<uint64_t>(uint64_t{0});
    info.file_size = size.ok() ? *size : 0;
  }
  info.virtual_size = im.geo.virtual_size;
  info.block_size = im.geo.block_size;
  info.logical_sector_size = im.geo.logical_sector_size;
  info.physical_sector_size = im.physical_sector_size;
  info.type = im.params.has_parent ? "differencing" : im.params.leave_block_allocated ? "fixed" : "dynamic";
  info.leave_block_allocated = im.params.leave_block_allocated;
  info.has_parent = im.params.has_parent;
  info.disk_id = im.disk_id;
  info.creator = im.identifier.creator;
  info.chunk_ratio = static_cast<uint32_t>(im.geo.chunk_ratio);
  info.payload_blocks = im.geo.payload_blocks;
  info.bat_entries = im.geo.bat_entries;
  const uint64_t offsets[2] = {format::kHeader1Offset, format::kHeader2Offset};
  for (int i = 0; i < 2; ++i) {
    HeaderInfo& h = info.headers[i];
    h.file_offset = offsets[i];
    // The in-memory current header is newer than the copy read at open.
    const format::Header* src = nullptr;
    if (i == const_cast<Impl&>(im).current_slot) {
      src = &im.header;
      h.current = true;
    } else if (im.header_copies[i]) {
      src = &*im.header_copies[i];
    }
    if (!src) continue;
    h.valid = true;
    h.sequence_number = src->sequence_number;
    h.file_write_guid = src->file_write_guid;
    h.data_write_guid = src->data_write_guid;
    h.log_guid = src->log_guid;
    h.log_version = src->log_version;
    h.version = src->version;
    h.log_length = src->log_length;
    h.log_offset = src->log_offset;
  }
  info.log_state = im.log_state;
  info.log_entries_replayed = im.log_entries_replayed;
  for (const auto& r : im.regions.entries) {
    std::string name = r.guid == format::BatRegionGuid()        ? "BAT"
                       : r.guid == format::MetadataRegionGuid() ? "metadata"
                                                                : "unknown";
    info.regions.push_back({r.guid, name, r.file_offset, r.length, r.required});
  }
  for (const auto& m : im.metadata_table.entries) {
    const Guid& id = m.item_id;
    std::string name = "unknown";
    if (!m.is_user) {
      if (id == format::FileParametersGuid()) name = "File Parameters";
      else if (id == format::VirtualDiskSizeGuid()) name = "Virtual Disk Size";
      else if (id == format::VirtualDiskIdGuid()) name = "Virtual Disk ID";
      else if (id == format::LogicalSectorSizeGuid()) name = "Logical Sector Size";
      else if (id == format::PhysicalSectorSizeGuid()) name = "Physical Sector Size";
      else if (id == format::ParentLocatorGuid()) name = "Parent Locator";
      else if (id == format::ChsParametersGuid()) name = "CHS Parameters";
      else if (id == format::PmemLabelAreaGuid()) name = "PMEM Label Area";
    } else {
      name = "user";
    }
    info.metadata_items.push_back({id, name, m.offset, m.length, m.is_user, m.is_virtual_disk, m.is_required});
  }
  uint64_t last_allocated_end = 0;
  for (uint64_t block = 0; block < im.geo.payload_blocks; ++block) {
    format::BatEntry e = im.LoadEntry(im.geo.BatIndexOfBlock(block));
    switch (e.state) {
      case format::kPayloadNotPresent: info.blocks.not_present++; break;
      case format::kPayloadUndefined: info.blocks.undefined++; break;
      case format::kPayloadZero: info.blocks.zero++; break;
      case format::kPayloadUnmapped: info.blocks.unmapped++; break;
      case format::kPayloadFullyPresent: info.blocks.fully_present++; break;
      case format::kPayloadPartiallyPresent: info.blocks.partially_present++; break;
      default: break;
    }
    if (e.state == format::kPayloadFullyPresent || e.state == format::kPayloadPartiallyPresent) {
      last_allocated_end = std::min(im.geo.virtual_size, (block + 1) * uint64_t{im.geo.block_size});
    }
  }
  for (uint64_t c = 0; c < im.geo.sector_bitmap_blocks && im.params.has_parent; ++c) {
    if (im.LoadEntry(im.geo.BatIndexOfSectorBitmap(c)).state == format::kSbPresent) info.blocks.sector_bitmaps_present++;
  }
  info.minimum_size = last_allocated_end;
  if (im.parent_locator) info.parent_locator = im.parent_locator->entries;
  info.chain = im.chain;
  return info;
}

}  // namespace vhdx
