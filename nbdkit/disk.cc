// NBD request semantics on top of vhdx::Image. See disk.h.
#include "disk.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

namespace vhdx_nbdkit {

using vhdx::Result;
using vhdx::Status;

namespace {

uint64_t AlignDown(uint64_t v, uint64_t a) { return v - v % a; }
uint64_t AlignUp(uint64_t v, uint64_t a) { return AlignDown(v + a - 1, a); }

// Field by field, so that options added later keep their defaults.
vhdx::WriteOptions WithFua(bool fua) {
  vhdx::WriteOptions o;
  o.fua = fua;
  return o;
}

bool AllZero(std::span<const uint8_t> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

int NbdErrno(const Status& s) {
  switch (s.code()) {
    case vhdx::ErrorCode::kOk: return 0;
    case vhdx::ErrorCode::kInvalidArgument: return EINVAL;
    case vhdx::ErrorCode::kNoSpace: return ENOSPC;
    case vhdx::ErrorCode::kReadOnly: return EROFS;
    case vhdx::ErrorCode::kNotFound: return ENOENT;
    default: return EIO;
  }
}

Disk::Disk(std::unique_ptr<vhdx::Image> image)
    : image_(std::move(image)), size_(image_->virtual_size()), lss_(image_->logical_sector_size()) {}

Status Disk::CheckRange(const char* op, uint64_t offset, uint64_t length, Access access) const {
  if (access == Access::kModify && image_->read_only()) {
    return Status::ReadOnly(std::string(op) + ": the image is open read-only");
  }
  if (offset <= size_ && length <= size_ - offset) return Status::OK();
  std::string msg = std::string(op) + ": range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                    ") is beyond the end of the disk (" + std::to_string(size_) + " bytes)";
  return access == Access::kRead ? Status::InvalidArgument(std::move(msg)) : Status::NoSpace(std::move(msg));
}

Status Disk::Read(uint64_t offset, std::span<uint8_t> out) {
  if (Status s = CheckRange("read", offset, out.size(), Access::kRead); !s.ok()) return s;
  const uint64_t end = offset + out.size();
  if (offset % lss_ == 0 && end % lss_ == 0) return image_->Read(offset, out);
  // Unaligned: the partial edge sectors go through a bounce buffer.
  std::vector<uint8_t> sector(lss_);
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t sector_start = AlignDown(pos, lss_);
    if (pos == sector_start && end - pos >= lss_) {
      const uint64_t n = AlignDown(end - pos, lss_);
      if (Status s = image_->Read(pos, out.subspan(pos - offset, n)); !s.ok()) return s;
      pos += n;
      continue;
    }
    if (Status s = image_->Read(sector_start, sector); !s.ok()) return s;
    const uint64_t n = std::min(end, sector_start + lss_) - pos;
    std::memcpy(out.data() + (pos - offset), sector.data() + (pos - sector_start), n);
    pos += n;
  }
  return Status::OK();
}

Status Disk::PatchSector(uint64_t sector_offset, uint64_t at, std::span<const uint8_t> bytes, uint64_t len) {
  std::vector<uint8_t> sector(lss_);
  if (Status s = image_->Read(sector_offset, sector); !s.ok()) return s;
  std::span<uint8_t> part = std::span<uint8_t>(sector).subspan(at, len);
  if (bytes.empty()) {
    if (AllZero(part)) return Status::OK();  // nothing to change; do not allocate
    std::fill(part.begin(), part.end(), uint8_t{0});
  } else {
    std::memcpy(part.data(), bytes.data(), len);
  }
  return image_->Write(sector_offset, sector);
}

template <typename WholeFn>
Status Disk::Modify(uint64_t offset, uint64_t length, std::span<const uint8_t> data, bool fua, WholeFn&& whole) {
  const uint64_t end = offset + length;
  if (offset % lss_ == 0 && end % lss_ == 0) {
    std::shared_lock lock(rmw_);
    return whole(offset, length, data, fua);
  }
  auto part = [&](uint64_t from, uint64_t to) {
    return data.empty() ? data : data.subspan(from - offset, to - from);
  };
  std::unique_lock lock(rmw_);
  const uint64_t head_end = std::min(end, AlignUp(offset, lss_));
  const uint64_t middle_end = std::max(head_end, AlignDown(end, lss_));
  if (head_end > offset) {
    const uint64_t sector = AlignDown(offset, lss_);
    if (Status s = PatchSector(sector, offset - sector, part(offset, head_end), head_end - offset); !s.ok()) return s;
  }
  if (middle_end > head_end) {
    if (Status s = whole(head_end, middle_end - head_end, part(head_end, middle_end), false); !s.ok()) return s;
  }
  if (end > middle_end) {
    if (Status s = PatchSector(middle_end, 0, part(middle_end, end), end - middle_end); !s.ok()) return s;
  }
  return fua ? image_->Flush() : Status::OK();
}

Status Disk::Write(uint64_t offset, std::span<const uint8_t> data, bool fua) {
  if (Status s = CheckRange("write", offset, data.size(), Access::kModify); !s.ok()) return s;
  if (data.empty()) return fua ? image_->Flush() : Status::OK();
  return Modify(offset, data.size(), data, fua,
                [this](uint64_t off, uint64_t, std::span<const uint8_t> bytes, bool f) {
                  return image_->Write(off, bytes, WithFua(f));
                });
}

Status Disk::Zero(uint64_t offset, uint64_t length, bool fua) {
  if (Status s = CheckRange("zero", offset, length, Access::kModify); !s.ok()) return s;
  if (length == 0) return fua ? image_->Flush() : Status::OK();
  return Modify(offset, length, {}, fua, [this](uint64_t off, uint64_t len, std::span<const uint8_t>, bool f) {
    return image_->WriteZeroes(off, len, WithFua(f));
  });
}

Result<bool> Disk::ReadsAsZeros(uint64_t offset, uint64_t length) {
  auto extents = Map(offset, length);
  if (!extents.ok()) return extents.status();
  return std::none_of(extents->begin(), extents->end(),
                      [](const vhdx::Extent& e) { return e.kind == vhdx::Extent::Kind::kData; });
}

Result<bool> Disk::ZeroFast(uint64_t offset, uint64_t length, bool fua) {
  if (Status s = CheckRange("zero", offset, length, Access::kModify); !s.ok()) return s;
  // Fixed images keep every block allocated: zeroing writes the file.
  if (image_->type() == vhdx::DiskType::kFixed) return false;
  // [first_whole, last_whole) is made of whole blocks (the last block of the
  // disk counts as whole up to the end of the disk); the library turns those
  // into ZERO blocks without writing data. The edges would be zero-filled.
  const uint64_t bs = image_->block_size();
  const uint64_t end = offset + length;
  const uint64_t first_whole = std::min(end, AlignUp(offset, bs));
  const uint64_t last_whole = std::max(first_whole, end == size_ ? end : AlignDown(end, bs));
  for (auto [from, to] : {std::pair{offset, first_whole}, std::pair{last_whole, end}}) {
    if (from == to) continue;
    auto zero = ReadsAsZeros(from, to - from);
    if (!zero.ok()) return zero.status();
    if (!*zero) return false;  // would have to write data: not fast
  }
  if (last_whole > first_whole) {
    std::shared_lock lock(rmw_);
    if (Status s = image_->WriteZeroes(first_whole, last_whole - first_whole, WithFua(fua)); !s.ok()) {
      return s;
    }
  } else if (fua) {
    if (Status s = image_->Flush(); !s.ok()) return s;
  }
  return true;
}

Status Disk::Trim(uint64_t offset, uint64_t length, bool fua) {
  if (Status s = CheckRange("trim", offset, length, Access::kModify); !s.ok()) return s;
  const uint64_t from = AlignUp(offset, lss_);
  const uint64_t to = AlignDown(offset + length, lss_);
  if (to > from) {
    std::shared_lock lock(rmw_);
    if (Status s = image_->Trim(from, to - from); !s.ok()) return s;
  }
  return fua ? image_->Flush() : Status::OK();
}

Status Disk::Flush() { return image_->Flush(); }

Result<std::vector<vhdx::Extent>> Disk::Map(uint64_t offset, uint64_t length) {
  if (Status s = CheckRange("extents", offset, length, Access::kRead); !s.ok()) return s;
  const uint64_t from = AlignDown(offset, lss_);
  const uint64_t to = AlignUp(offset + length, lss_);  // <= size_: the size is a multiple of lss_
  return image_->Map(from, to - from);
}

Status Disk::Close() { return image_->Close(); }

}  // namespace vhdx_nbdkit
