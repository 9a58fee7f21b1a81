// Creating fixed, dynamic and differencing images. The layout follows what
// Windows writes: log at 1 MiB, metadata region after it, then the BAT, then
// payload blocks (docs/format.md "File layout").
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "format/constants.h"
#include "image/image_impl.h"
#include "util/coding.h"

namespace vhdx {

namespace {

constexpr uint32_t kDefaultBlockSize = 32 << 20;
constexpr uint64_t kPage = 4096;

Status ValidateCreateOptions(const CreateOptions& o, bool differencing) {
  if (!differencing) {
    if (o.logical_sector_size != 512 && o.logical_sector_size != 4096) {
      return Status::InvalidArgument("logical sector size must be 512 or 4096");
    }
    if (o.virtual_size == 0) return Status::InvalidArgument("disk size must be greater than 0");
  }
  if (o.physical_sector_size != 512 && o.physical_sector_size != 4096) {
    return Status::InvalidArgument("physical sector size must be 512 or 4096");
  }
  if (o.virtual_size > format::kMaxVirtualDiskSize) {
    return Status::InvalidArgument("image size too large; the maximum is 64 TiB");
  }
  if (o.block_size != 0 && (!IsPowerOfTwo(o.block_size) || o.block_size < format::kMinBlockSize ||
                            o.block_size > format::kMaxBlockSize)) {
    return Status::InvalidArgument("block size must be a power of two between 1 MiB and 256 MiB");
  }
  if (o.log_size == 0 || o.log_size % kMiB != 0) {
    return Status::InvalidArgument("log size must be a non-zero multiple of 1 MiB");
  }
  if (o.log_size > format::kMaxLogLength) return Status::InvalidArgument("log size must be at most 1 GiB");
  if (differencing && o.type == DiskType::kFixed) {
    return Status::InvalidArgument("a differencing image cannot be fixed");
  }
  return Status::OK();
}

std::string ToWindowsPath(std::string p) {
  std::replace(p.begin(), p.end(), '/', '\\');
  return p;
}

// absolute_win32_path must be "\\?\" and a drive letter or UNC share, which a
// POSIX path only has when it lies on a Windows drive mounted the WSL way
// (/mnt/c/... -> \\?\C:\...). Empty when it cannot be known.
std::string Win32AbsolutePath(const std::filesystem::path& abs) {
  std::string p = abs.lexically_normal().generic_string();
  if (p.size() < 8 || p.compare(0, 5, "/mnt/") != 0 || p[6] != '/') return {};
  char drive = p[5];
  if (drive < 'a' || drive > 'z') return {};
  return "\\\\?\\" + std::string(1, static_cast<char>(drive - 'a' + 'A')) + ":" + ToWindowsPath(p.substr(6));
}

}  // namespace

Result<std::unique_ptr<Image>> Image::Create(std::unique_ptr<File> file, const CreateOptions& in) {
  if (!file) return Status::InvalidArgument("Image::Create: null file");
  CreateOptions o = in;
  const bool differencing = !o.parent_path.empty() || o.type == DiskType::kDifferencing;
  if (differencing && o.parent_path.empty()) {
    return Status::InvalidArgument("a differencing image needs a parent path");
  }
  if (Status s = ValidateCreateOptions(o, differencing); !s.ok()) return s;

  format::ParentLocator locator;
  if (differencing) {
    OpenOptions popts;
    popts.read_only = true;
    auto parent = Image::Open(o.parent_path, popts);
    if (!parent.ok()) return parent.status().WithContext("opening parent " + o.parent_path);
    const Image& p = **parent;
    if (o.virtual_size == 0) o.virtual_size = p.virtual_size();
    if (o.block_size == 0) o.block_size = p.block_size();
    o.logical_sector_size = p.logical_sector_size();
    o.physical_sector_size = p.physical_sector_size();
    ImageInfo pinfo = p.Info();
    if (!o.disk_id) o.disk_id = pinfo.disk_id;
    locator.locator_type = format::VhdxParentLocatorTypeGuid();
    locator.Set("parent_linkage", pinfo.headers[pinfo.headers[0].current ? 0 : 1].data_write_guid.ToString(true, true));
    // relative_path is relative to the child's directory, '\' separated.
    std::error_code ec;
    std::filesystem::path child_dir = std::filesystem::absolute(file->Name(), ec).parent_path();
    std::filesystem::path parent_abs = std::filesystem::absolute(o.parent_path, ec);
    std::filesystem::path rel = std::filesystem::relative(parent_abs, child_dir, ec);
    if (ec || rel.empty()) rel = parent_abs.filename();
    std::string rel_text = rel.generic_string();
    if (rel_text.rfind("../", 0) != 0) rel_text = "./" + rel_text;  // as Windows: .\parent.vhdx
    locator.Set("relative_path", ToWindowsPath(rel_text));
    // volume_path (\\?\Volume{GUID}\...) cannot be known on a POSIX host.
    if (std::string win = Win32AbsolutePath(parent_abs); !win.empty()) locator.Set("absolute_win32_path", win);
    if (Status s = (*parent)->Close(); !s.ok()) return s;
  }
  if (o.block_size == 0) o.block_size = kDefaultBlockSize;
  if (o.virtual_size % o.logical_sector_size != 0) {
    return Status::InvalidArgument("disk size must be a multiple of the logical sector size (" +
                                   std::to_string(o.logical_sector_size) + ")");
  }
  auto geo = format::Geometry::Compute(o.virtual_size, o.block_size, o.logical_sector_size, differencing);
  if (!geo.ok()) return geo.status();

  const uint64_t log_offset = format::kHeaderSectionSize;
  const uint64_t metadata_offset = log_offset + o.log_size;
  const uint64_t metadata_length = kMiB;
  const uint64_t bat_offset = metadata_offset + metadata_length;
  const uint64_t bat_length = std::max<uint64_t>(geo->BatRegionSize(), kMiB);
  const uint64_t payload_offset = bat_offset + bat_length;
  const bool fixed = o.type == DiskType::kFixed;

  // Region table: BAT first, then metadata, both required (as Windows).
  format::RegionTable regions;
  regions.entries.push_back({format::BatRegionGuid(), bat_offset, static_cast<uint32_t>(bat_length), true});
  regions.entries.push_back({format::MetadataRegionGuid(), metadata_offset, static_cast<uint32_t>(metadata_length), true});

  // Metadata items, packed from 64 KiB in Windows order.
  std::vector<uint8_t> meta(metadata_length, 0);
  format::MetadataTable table;
  uint32_t item_off = static_cast<uint32_t>(format::kMetadataTableSize);
  auto add_item = [&](const Guid& id, std::span<const uint8_t> bytes, bool virtual_disk) {
    std::memcpy(meta.data() + item_off, bytes.data(), bytes.size());
    table.entries.push_back({id, item_off, static_cast<uint32_t>(bytes.size()), false, virtual_disk, true});
    item_off += static_cast<uint32_t>(bytes.size());
  };
  uint8_t buf[16];
  format::FileParameters fp{o.block_size, fixed, differencing};
  fp.EncodeTo(std::span<uint8_t>(buf, 8));
  add_item(format::FileParametersGuid(), std::span<const uint8_t>(buf, 8), false);
  StoreLE64(buf, o.virtual_size);
  add_item(format::VirtualDiskSizeGuid(), std::span<const uint8_t>(buf, 8), true);
  StoreLE32(buf, o.logical_sector_size);
  add_item(format::LogicalSectorSizeGuid(), std::span<const uint8_t>(buf, 4), true);
  StoreLE32(buf, o.physical_sector_size);
  add_item(format::PhysicalSectorSizeGuid(), std::span<const uint8_t>(buf, 4), true);
  Guid disk_id = o.disk_id.value_or(Guid::Random());
  disk_id.ToBytes(std::span<uint8_t, 16>(buf, 16));
  add_item(format::VirtualDiskIdGuid(), std::span<const uint8_t>(buf, 16), true);
  if (differencing) {
    std::vector<uint8_t> loc = locator.Encode();
    if (loc.size() > metadata_length - item_off) return Status::InvalidArgument("parent path too long");
    add_item(format::ParentLocatorGuid(), loc, false);
  }
  table.EncodeTo(std::span<uint8_t>(meta.data(), format::kMetadataTableSize));

  // BAT: fixed images get every payload block FULLY_PRESENT, in order.
  std::vector<uint8_t> bat(bat_length, 0);
  uint64_t file_end = payload_offset;
  if (fixed) {
    for (uint64_t b = 0; b < geo->payload_blocks; ++b) {
      StoreLE64(bat.data() + geo->BatIndexOfBlock(b) * 8,
                format::BatEntry{format::kPayloadFullyPresent, file_end}.Encode());
      file_end += o.block_size;
    }
  }

  File* f = file.get();
  if (Status s = f->Truncate(0); !s.ok()) return s;
  // The signature goes last: until it is written and flushed the file is
  // not a VHDX, so a crash mid-create never leaves a plausible image.
  if (fixed) {
    if (Status s = f->Allocate(payload_offset, file_end - payload_offset); !s.ok()) {
      return s.WithContext("allocating the fixed image");
    }
  } else {
    if (Status s = f->Truncate(payload_offset); !s.ok()) return s;
  }
  std::vector<uint8_t> rt(format::kRegionTableSize);
  regions.EncodeTo(rt);
  for (uint64_t off : {format::kRegionTable1Offset, format::kRegionTable2Offset}) {
    if (Status s = f->WriteAt(off, rt); !s.ok()) return s;
  }
  // The file was just extended with Truncate, so both regions already read
  // as zeros: only their non-zero prefixes are written, and the rest stays a
  // hole in a sparse host file (a 4 TiB image with 1 MiB blocks would
  // otherwise write a 32 MiB BAT of zeros).
  const uint64_t meta_used = AlignUp(uint64_t{item_off}, kPage);
  if (Status s = f->WriteAt(metadata_offset, std::span<const uint8_t>(meta.data(), meta_used)); !s.ok()) return s;
  if (fixed) {
    const uint64_t bat_used = AlignUp(geo->bat_entries * 8, kPage);
    if (Status s = f->WriteAt(bat_offset, std::span<const uint8_t>(bat.data(), bat_used)); !s.ok()) return s;
  }
  format::Header h;
  h.sequence_number = 1;
  h.file_write_guid = Guid::Random();
  h.data_write_guid = Guid::Random();
  h.log_guid = Guid();
  h.log_version = 0;
  h.version = 1;
  h.log_length = o.log_size;
  h.log_offset = log_offset;
  std::vector<uint8_t> raw(format::kHeaderSize);
  h.EncodeTo(raw);
  if (Status s = f->WriteAt(format::kHeader1Offset, raw); !s.ok()) return s;
  h.sequence_number = 2;
  h.EncodeTo(raw);
  if (Status s = f->WriteAt(format::kHeader2Offset, raw); !s.ok()) return s;
  if (Status s = f->Flush(); !s.ok()) return s;
  format::FileIdentifier id;
  id.creator = o.creator.empty() ? std::string("libvhdx ") + VHDX_VERSION_STRING : o.creator;
  std::vector<uint8_t> ident(format::kFileIdentifierSize);
  id.EncodeTo(ident);
  if (Status s = f->WriteAt(0, ident); !s.ok()) return s;
  if (Status s = f->Flush(); !s.ok()) return s;

  OpenOptions opts;
  opts.read_only = false;
  return Image::Open(std::move(file), opts);
}

Result<std::unique_ptr<Image>> Image::Create(const std::string& path, const CreateOptions& options) {
  if (!options.parent_path.empty()) {
    // Check the parent chain before the target is touched: replacing a file
    // must not destroy it when the parent cannot be opened, nor when the
    // target is the parent itself or one of its ancestors.
    auto parent = Image::Open(options.parent_path, OpenOptions{});
    if (!parent.ok()) return parent.status().WithContext("opening parent " + options.parent_path);
    struct stat target;
    if (::stat(path.c_str(), &target) == 0) {
      for (const ChainLinkInfo& link : (*parent)->Info().chain) {
        struct stat st;
        if (::stat(link.path.c_str(), &st) == 0 && st.st_dev == target.st_dev && st.st_ino == target.st_ino) {
          return Status::InvalidArgument(path + " is " + link.path +
                                         ", part of the parent chain of the new image; refusing to replace it");
        }
      }
    }
    if (Status s = (*parent)->Close(); !s.ok()) return s;
  }
  auto file = OpenPosixFile(path, options.overwrite ? FileMode::kCreateTruncate : FileMode::kCreateExclusive);
  if (!file.ok()) {
    if (file.status().code() == ErrorCode::kAlreadyExists) {
      return Status::AlreadyExists(path + ": file exists (use --force / overwrite to replace it)");
    }
    return file.status();
  }
  auto image = Create(std::move(*file), options);
  if (!image.ok()) ::unlink(path.c_str());  // never leave a half-made image behind
  return image;
}

}  // namespace vhdx
