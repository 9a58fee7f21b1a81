// Opening an image: header selection, log replay, region table, metadata and
// BAT validation. Every value read from the file is validated here, at the
// boundary; code behind it asserts. See docs/format.md.
#include <algorithm>
#include <cstring>
#include <vector>

#include "format/constants.h"
#include "image/image_impl.h"
#include "io/overlay_file.h"
#include "log/log_reader.h"
#include "util/coding.h"

namespace vhdx {



Status Diagnostics::Error(const Status& s, std::string structure, uint64_t offset) {
  problems_.push_back({CheckProblem::Severity::kError, std::move(structure), offset, s.message(), false});
  return collect_all_ ? Status::OK() : s;
}

void Diagnostics::Warning(std::string structure, uint64_t offset, std::string message) {
  problems_.push_back({CheckProblem::Severity::kWarning, std::move(structure), offset, std::move(message), false});
}

namespace {

std::string Hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Marks 1 MiB units of the file as owned by a structure; detects overlaps.
class SpaceMap {
 public:
  explicit SpaceMap(uint64_t file_size) : units_(DivCeil(file_size, kMiB) + 1, false) {}
  // Returns false when any unit was already owned. Units beyond the map
  // (objects past EOF) are not tracked; the caller reports those separately.
  bool Claim(uint64_t offset, uint64_t length) {
    bool ok = true;
    uint64_t first = offset / kMiB, last = DivCeil(offset + length, kMiB);
    for (uint64_t u = first; u < last && u < units_.size(); ++u) {
      if (units_[u]) ok = false;
      units_[u] = true;
    }
    return ok;
  }
  bool Owned(uint64_t unit) const { return unit < units_.size() && units_[unit]; }
  uint64_t units() const { return units_.size(); }

 private:
  std::vector<bool> units_;
};

}  // namespace

// What one Load carries from step to step.
struct LoadState {
  uint64_t file_size = 0;     // the file's size, after a replay
  bool log_ok = true;         // the header's log placement is valid
  std::optional<SpaceMap> space;  // 1 MiB units owned by a structure
};

Status Image::Impl::Load(Diagnostics& diag, const OpenOptions& options) {
  (void)options;
  LoadState st;
  auto size_or = file->Size();
  if (!size_or.ok()) return size_or.status();
  st.file_size = *size_or;
  opened_file_size = st.file_size;
  if (st.file_size < format::kRegionTable2Offset + format::kRegionTableSize) {
    Status s = Status::Corruption("file", "size", 0,
                                  "file is " + std::to_string(st.file_size) +
                                      " bytes, too small to hold a VHDX header section");
    (void)diag.Error(s, "file", 0);
    return s;
  }

  if (Status s = LoadFileIdentifier(diag); !s.ok()) return s;
  if (Status s = LoadHeaders(diag, st); !s.ok()) return s;
  if (Status s = ReplayLogOnOpen(diag, st); !s.ok()) return s;
  if (Status s = LoadRegionTables(diag, st); !s.ok()) return s;
  if (Status s = LoadMetadata(diag); !s.ok()) return s;
  if (Status s = LoadBat(diag, st); !s.ok()) return s;
  if (!read_only) BuildFreeSpace(st);
  return Status::OK();
}

// The file identifier: not a VHDX at all means nothing else is worth checking.
Status Image::Impl::LoadFileIdentifier(Diagnostics& diag) {
  std::vector<uint8_t> raw(1024);
  if (Status s = file->ReadAt(0, raw); !s.ok()) return s;
  auto id = format::FileIdentifier::Decode(raw);
  if (!id.ok()) {
    (void)diag.Error(id.status(), "file identifier", 0);
    return id.status();
  }
  identifier = *id;
  return Status::OK();
}

// Both header copies; the current one chosen, its version and log placement
// checked (st.log_ok false: the log cannot be used).
Status Image::Impl::LoadHeaders(Diagnostics& diag, LoadState& st) {
  std::vector<uint8_t> raw4k(format::kHeaderSize);
  const uint64_t header_offsets[2] = {format::kHeader1Offset, format::kHeader2Offset};
  for (int i = 0; i < 2; ++i) {
    if (Status s = file->ReadAt(header_offsets[i], raw4k); !s.ok()) return s;
    auto h = format::Header::Decode(raw4k, header_offsets[i]);
    if (h.ok()) {
      header_copies[i] = *h;
    } else {
      diag.Warning("header " + std::to_string(i + 1), header_offsets[i],
                   "invalid, the other copy is used: " + h.status().message());
      headers_need_rewrite = true;
    }
  }
  if (!header_copies[0] && !header_copies[1]) {
    Status s = Status::Corruption("headers", "Checksum", format::kHeader1Offset, "neither header copy is valid");
    (void)diag.Error(s, "headers", format::kHeader1Offset);
    return s;
  }
  if (header_copies[0] && header_copies[1]) {
    // Equal sequence numbers (Disk2VHD writes two identical headers): prefer
    // header 1; the next update goes to header 2 with a higher number.
    current_slot = header_copies[1]->sequence_number > header_copies[0]->sequence_number ? 1 : 0;
    if (header_copies[0]->sequence_number == header_copies[1]->sequence_number) {
      std::vector<uint8_t> a(format::kHeaderSize), b(format::kHeaderSize);
      header_copies[0]->EncodeTo(a);
      header_copies[1]->EncodeTo(b);
      if (a != b) {
        headers_need_rewrite = true;
        diag.Warning("headers", format::kHeader1Offset,
                     "both headers have sequence number " + std::to_string(header_copies[0]->sequence_number) +
                         " but differ; header 1 is used");
      }
    }
  } else {
    current_slot = header_copies[0] ? 0 : 1;
  }
  header = *header_copies[current_slot];
  const uint64_t header_off = header_offsets[current_slot];
  const std::string header_name = "header " + std::to_string(current_slot + 1);
  if (header.version != 1) {
    Status s = Status::NotSupported(header_name + ": Version is " + std::to_string(header.version) +
                                    ", only version 1 is defined");
    (void)diag.Error(s, header_name, header_off);
    return s;
  }
  if (header.log_version != 0 && !header.log_guid.IsZero()) {
    Status s = Status::NotSupported(header_name + ": LogVersion " + std::to_string(header.log_version) +
                                    " with a log to replay is not supported");
    (void)diag.Error(s, header_name, header_off);
    return s;
  }
  // Log placement.
  st.log_ok = true;
  if (header.log_length != 0) {
    uint64_t log_end = header.log_offset + header.log_length;  // no overflow: u64 + u32 bounded below
    std::string why;
    if (header.log_offset < format::kHeaderSectionSize || header.log_offset % kMiB != 0) {
      why = "LogOffset " + Hex(header.log_offset) + " must be a multiple of 1 MiB past the header section";
    } else if (header.log_length % kMiB != 0) {
      why = "LogLength " + Hex(header.log_length) + " must be a multiple of 1 MiB";
    } else if (header.log_length > format::kMaxLogLength) {
      why = "LogLength " + Hex(header.log_length) + " exceeds the supported maximum of 1 GiB";
    } else if (header.log_offset > format::kMaxFileSize || log_end > format::kMaxFileSize) {
      why = "log lies beyond any plausible file size";
    }
    if (!why.empty()) {
      st.log_ok = false;
      Status s = Status::Corruption(header_name, "LogOffset/LogLength", header_off, why);
      if (Status r = diag.Error(s, header_name, header_off); !r.ok()) return r;
    }
  } else if (!header.log_guid.IsZero()) {
    Status s = Status::Corruption(header_name, "LogGuid", header_off, "a log to replay but LogLength is 0");
    (void)diag.Error(s, header_name, header_off);
    return s;
  }
  return Status::OK();
}

// A dirty log is replayed: to the file on a writable open, into an
// in-memory overlay on a read-only one.
Status Image::Impl::ReplayLogOnOpen(Diagnostics& diag, LoadState& st) {
  if (header.log_guid.IsZero() || !st.log_ok) return Status::OK();
  auto seq = log::FindActiveSequence(file.get(), st.file_size, header.log_offset, header.log_length,
                                     header.log_guid);
  if (!seq.ok()) {
    (void)diag.Error(seq.status(), "log", header.log_offset);
    return seq.status();  // an image whose log cannot be replayed must not be used
  }
  log_entries_replayed = static_cast<uint32_t>(seq->entries.size());
  if (read_only) {
    // Replay into memory; the file is never written.
    auto overlay = std::make_unique<OverlayFile>(std::move(file));
    if (Status s = log::Replay(*seq, overlay.get()); !s.ok()) return s;
    file = std::move(overlay);
    log_state = LogState::kReplayedInMemory;
  } else {
    // New FileWriteGuid first, keeping the LogGuid until the replay is
    // durable; then clear the LogGuid.
    std::lock_guard lock(meta_mu_);
    format::Header next = header;
    next.file_write_guid = Guid::Random();
    if (Status s = WriteHeaderLocked(next); !s.ok()) return s;
    file_guid_updated = true;
    if (Status s = log::Replay(*seq, file.get()); !s.ok()) return s;
    if (Status s = file->Flush(); !s.ok()) return s;
    next = header;
    next.log_guid = Guid();
    if (Status s = WriteHeaderLocked(next); !s.ok()) return s;
    log_state = LogState::kReplayed;
  }
  auto new_size = file->Size();
  if (!new_size.ok()) return new_size.status();
  st.file_size = *new_size;
  return Status::OK();
}

// The region tables; the BAT and metadata regions located and claimed in
// the space map, which starts here.
Status Image::Impl::LoadRegionTables(Diagnostics& diag, LoadState& st) {
  std::vector<uint8_t> raw64k(format::kRegionTableSize);
  std::optional<format::RegionTable> tables[2];
  const uint64_t table_offsets[2] = {format::kRegionTable1Offset, format::kRegionTable2Offset};
  for (int i = 0; i < 2; ++i) {
    if (Status s = file->ReadAt(table_offsets[i], raw64k); !s.ok()) return s;
    auto t = format::RegionTable::Decode(raw64k, table_offsets[i]);
    if (t.ok()) {
      tables[i] = std::move(*t);
    } else {
      Status s = t.status();
      if (Status r = diag.Error(s, "region table " + std::to_string(i + 1), table_offsets[i]); !r.ok() && i == 1 &&
                                                                                               !tables[0]) {
        return r;
      }
    }
  }
  if (!tables[0] && !tables[1]) {
    return Status::Corruption("region tables", "Checksum", format::kRegionTable1Offset,
                              "neither region table copy is valid");
  }
  region_tables_need_rewrite = !tables[0] || !tables[1];
  if (tables[0] && tables[1] && !(*tables[0] == *tables[1])) {
    region_tables_need_rewrite = true;
    diag.Warning("region table 2", format::kRegionTable2Offset, "differs from region table 1; copy 1 is used");
  }
  regions = tables[0] ? *tables[0] : *tables[1];
  const format::RegionTableEntry* bat_region = nullptr;
  const format::RegionTableEntry* meta_region = nullptr;
  for (const auto& r : regions.entries) {
    if (r.guid == format::BatRegionGuid()) {
      bat_region = &r;
    } else if (r.guid == format::MetadataRegionGuid()) {
      meta_region = &r;
    } else if (r.required) {
      Status s = Status::NotSupported("region table: unknown required region " + r.guid.ToString());
      (void)diag.Error(s, "region table", format::kRegionTable1Offset);
      return s;
    }
  }
  if (!bat_region || !meta_region) {
    Status s = Status::Corruption("region table", "entries", format::kRegionTable1Offset,
                                  bat_region ? "no metadata region" : "no BAT region");
    (void)diag.Error(s, "region table", format::kRegionTable1Offset);
    return s;
  }
  st.space.emplace(st.file_size);
  st.space->Claim(0, format::kHeaderSectionSize);
  if (header.log_length != 0 && st.log_ok && !st.space->Claim(header.log_offset, header.log_length)) {
    // cannot overlap anything yet
  }
  for (const auto& r : regions.entries) {
    uint64_t end = r.file_offset + r.length;  // bounded by Decode
    std::string name = r.guid == format::BatRegionGuid() ? "BAT region"
                       : r.guid == format::MetadataRegionGuid() ? "metadata region"
                                                                 : "region " + r.guid.ToString();
    if (end > st.file_size) {
      Status s = Status::Corruption(name, "FileOffset", r.file_offset, "region extends beyond the end of file");
      if (Status e = diag.Error(s, name, r.file_offset); !e.ok()) return e;
      if (&r == bat_region || &r == meta_region) return s;
    }
    if (!st.space->Claim(r.file_offset, r.length)) {
      Status s = Status::Corruption(name, "FileOffset", r.file_offset, "region overlaps the log or another region");
      if (Status e = diag.Error(s, name, r.file_offset); !e.ok()) return e;
    }
  }
  bat_offset = bat_region->file_offset;
  bat_length = bat_region->length;
  metadata_offset = meta_region->file_offset;
  metadata_length = meta_region->length;
  return Status::OK();
}

// The metadata table and the system items; the geometry follows from them.
Status Image::Impl::LoadMetadata(Diagnostics& diag) {
  if (metadata_length > format::kMaxMetadataRegionLength) {
    Status s = Status::Corruption("metadata region", "Length", metadata_offset,
                                  "larger than the supported maximum of 128 MiB");
    (void)diag.Error(s, "metadata region", metadata_offset);
    return s;
  }
  {
    std::vector<uint8_t> table_raw(format::kMetadataTableSize);
    if (Status s = file->ReadAt(metadata_offset, table_raw); !s.ok()) return s;
    auto t = format::MetadataTable::Decode(table_raw, metadata_length, metadata_offset);
    if (!t.ok()) {
      (void)diag.Error(t.status(), "metadata table", metadata_offset);
      return t.status();
    }
    metadata_table = std::move(*t);
  }
  auto read_item = [&](const Guid& id, const char* name, uint32_t expected_len,
                       std::vector<uint8_t>* out) -> Status {
    const format::MetadataTableEntry* e = metadata_table.FindSystem(id);
    if (!e) return Status::Corruption("metadata table", name, metadata_offset, "required item is missing");
    if (expected_len != 0 && e->length != expected_len) {
      return Status::Corruption("metadata item", name, metadata_offset + e->offset,
                                "length " + std::to_string(e->length) + ", expected " + std::to_string(expected_len));
    }
    out->resize(e->length);
    return file->ReadAt(metadata_offset + e->offset, *out);
  };
  for (const auto& e : metadata_table.entries) {
    const Guid& id = e.item_id;
    bool known = !e.is_user && (id == format::FileParametersGuid() || id == format::VirtualDiskSizeGuid() ||
                                id == format::VirtualDiskIdGuid() || id == format::LogicalSectorSizeGuid() ||
                                id == format::PhysicalSectorSizeGuid() || id == format::ParentLocatorGuid() ||
                                id == format::ChsParametersGuid() || id == format::PmemLabelAreaGuid());
    if (!e.is_user && id == format::IncompleteFileGuid()) {
      Status s = Status::NotSupported("metadata: the image carries the \"incomplete file\" item: its creation never "
                                      "finished");
      (void)diag.Error(s, "metadata table", metadata_offset);
      return s;
    }
    if (!known && e.is_required) {
      Status s = Status::NotSupported("metadata: unknown required item " + id.ToString());
      (void)diag.Error(s, "metadata table", metadata_offset);
      return s;
    }
    if (!e.is_user && id == format::FileParametersGuid() && e.is_virtual_disk) {
      diag.Warning("metadata table", metadata_offset, "File Parameters is marked IsVirtualDisk");
    }
    if (!e.is_user && (id == format::VirtualDiskSizeGuid() || id == format::LogicalSectorSizeGuid()) &&
        !e.is_virtual_disk) {
      diag.Warning("metadata table", metadata_offset, "a virtual-disk item is not marked IsVirtualDisk");
    }
  }
  std::vector<uint8_t> item;
  auto fail_item = [&](const Status& s) {
    (void)diag.Error(s, "metadata", metadata_offset);
    return s;
  };
  if (Status s = read_item(format::FileParametersGuid(), "File Parameters", 8, &item); !s.ok()) return fail_item(s);
  {
    auto fp = format::FileParameters::Decode(item, metadata_offset);
    if (!fp.ok()) return fail_item(fp.status());
    params = *fp;
  }
  uint64_t virtual_size = 0;
  if (Status s = read_item(format::VirtualDiskSizeGuid(), "Virtual Disk Size", 8, &item); !s.ok()) return fail_item(s);
  {
    auto v = format::DecodeVirtualDiskSize(item, metadata_offset);
    if (!v.ok()) return fail_item(v.status());
    virtual_size = *v;
  }
  if (Status s = read_item(format::VirtualDiskIdGuid(), "Virtual Disk ID", 16, &item); !s.ok()) return fail_item(s);
  {
    auto v = format::DecodeVirtualDiskId(item, metadata_offset);
    if (!v.ok()) return fail_item(v.status());
    disk_id = *v;
  }
  uint32_t lss = 0;
  if (Status s = read_item(format::LogicalSectorSizeGuid(), "Logical Sector Size", 4, &item); !s.ok()) {
    return fail_item(s);
  }
  {
    auto v = format::DecodeSectorSize(item, metadata_offset, "Logical Sector Size");
    if (!v.ok()) return fail_item(v.status());
    lss = *v;
  }
  if (Status s = read_item(format::PhysicalSectorSizeGuid(), "Physical Sector Size", 4, &item); !s.ok()) {
    return fail_item(s);
  }
  {
    auto v = format::DecodeSectorSize(item, metadata_offset, "Physical Sector Size");
    if (!v.ok()) return fail_item(v.status());
    physical_sector_size = *v;
  }
  if (params.has_parent) {
    if (Status s = read_item(format::ParentLocatorGuid(), "Parent Locator", 0, &item); !s.ok()) return fail_item(s);
    auto loc = format::ParentLocator::Decode(item, metadata_offset);
    if (!loc.ok()) return fail_item(loc.status());
    parent_locator = std::move(*loc);
  }
  {
    auto g = format::Geometry::Compute(virtual_size, params.block_size, lss, params.has_parent);
    if (!g.ok()) return fail_item(g.status());
    geo = *g;
  }
  return Status::OK();
}

// The BAT, read and validated entry by entry; every allocated block claims
// its space.
Status Image::Impl::LoadBat(Diagnostics& diag, LoadState& st) {
  uint64_t bat_bytes = geo.bat_entries * 8;  // <= 2^27 entries by the geometry limits
  if (bat_bytes > bat_length) {
    Status s = Status::Corruption("BAT region", "Length", bat_offset,
                                  "holds " + std::to_string(bat_length / 8) + " entries but the geometry needs " +
                                      std::to_string(geo.bat_entries));
    (void)diag.Error(s, "BAT region", bat_offset);
    return s;
  }
  bat = std::make_unique<std::atomic<uint64_t>[]>(geo.bat_entries);
  {
    constexpr uint64_t kChunk = 4 * kMiB;
    std::vector<uint8_t> buf(std::min<uint64_t>(kChunk, std::max<uint64_t>(bat_bytes, 8)));
    for (uint64_t pos = 0; pos < bat_bytes; pos += kChunk) {
      uint64_t n = std::min(kChunk, bat_bytes - pos);
      if (Status s = file->ReadAt(bat_offset + pos, std::span<uint8_t>(buf.data(), n)); !s.ok()) return s;
      for (uint64_t i = 0; i < n / 8; ++i) {
        bat[pos / 8 + i].store(LoadLE64(buf.data() + i * 8), std::memory_order_relaxed);
      }
    }
  }
  // Validate every entry. A bad entry is made inert (NOT_PRESENT) in check
  // mode so that the rest can still be examined.
  const uint64_t virtual_end_block_bytes = geo.virtual_size - (geo.payload_blocks == 0 ? 0 : (geo.payload_blocks - 1) * uint64_t{geo.block_size});
  for (uint64_t idx = 0; idx < geo.bat_entries; ++idx) {
    uint64_t raw = bat[idx].load(std::memory_order_relaxed);
    format::BatEntry e = format::BatEntry::Decode(raw);
    const bool is_sb = geo.IsSectorBitmapIndex(idx);
    const uint64_t entry_off = bat_offset + idx * 8;
    auto bad = [&](const std::string& what) -> Status {
      std::string name = "BAT entry " + std::to_string(idx);
      Status s = Status::Corruption(name, "State", entry_off, what + " (entry " + Hex(raw) + ")");
      bat[idx].store(0, std::memory_order_relaxed);
      invalid_bat_entries.push_back(idx);
      return diag.Error(s, name, entry_off);
    };
    if (!format::BatEntry::ReservedBitsClear(raw)) {
      if (Status s = bad("reserved bits 3-19 are set"); !s.ok()) return s;
      continue;
    }
    uint64_t length = 0;
    if (is_sb) {
      if (e.state == format::kSbNotPresent) continue;
      if (!params.has_parent) {
        diag.Warning("BAT entry " + std::to_string(idx), entry_off,
                     "sector bitmap entry allocated in a non-differencing image; ignored");
        bat[idx].store(0, std::memory_order_relaxed);
        continue;
      }
      if (e.state != format::kSbPresent) {
        if (Status s = bad("invalid sector bitmap state " + std::to_string(e.state)); !s.ok()) return s;
        continue;
      }
      length = format::kSectorBitmapBlockSize;
    } else {
      switch (e.state) {
        case format::kPayloadNotPresent:
        case format::kPayloadZero:
          if (e.file_offset != 0) {
            // Offsets are reserved in these states; never use them.
            bat[idx].store(e.state, std::memory_order_relaxed);
          }
          continue;
        case format::kPayloadUndefined:
        case format::kPayloadUnmapped:
          if (e.file_offset == 0) continue;
          length = geo.block_size;  // soft anchor: the space still belongs to the block
          break;
        case format::kPayloadFullyPresent:
          length = geo.block_size;
          break;
        case format::kPayloadPartiallyPresent:
          if (!params.has_parent) {
            if (Status s = bad("PARTIALLY_PRESENT in a non-differencing image"); !s.ok()) return s;
            continue;
          }
          length = geo.block_size;
          break;
        default:
          if (Status s = bad("invalid payload block state " + std::to_string(e.state)); !s.ok()) return s;
          continue;
      }
    }
    if (e.file_offset < format::kHeaderSectionSize) {
      if (Status s = bad("allocated block at file offset " + Hex(e.file_offset) + " inside the header section");
          !s.ok()) {
        return s;
      }
      continue;
    }
    // The last payload block may be partly outside the file if the part the
    // virtual disk uses is inside (older writers left partial last blocks).
    uint64_t needed = length;
    if (!is_sb) {
      uint64_t block = idx - idx / (geo.chunk_ratio + 1);
      if (block + 1 == geo.payload_blocks) needed = virtual_end_block_bytes;
    }
    if (e.file_offset > st.file_size || needed > st.file_size - e.file_offset) {
      if (Status s = bad("block at file offset " + Hex(e.file_offset) + " lies beyond the end of file (" +
                         Hex(st.file_size) + ")");
          !s.ok()) {
        return s;
      }
      continue;
    }
    if (!st.space->Claim(e.file_offset, length)) {
      if (Status s = bad("block at file offset " + Hex(e.file_offset) +
                         " overlaps the headers, log, a region or another block");
          !s.ok()) {
        return s;
      }
      continue;
    }
  }
  if (params.has_parent) {
    // PARTIALLY_PRESENT needs its chunk's sector bitmap.
    for (uint64_t block = 0; block < geo.payload_blocks; ++block) {
      uint64_t idx = geo.BatIndexOfBlock(block);
      if (LoadEntry(idx).state != format::kPayloadPartiallyPresent) continue;
      uint64_t sb_idx = geo.BatIndexOfSectorBitmap(block / geo.chunk_ratio);
      if (LoadEntry(sb_idx).state != format::kSbPresent) {
        std::string name = "BAT entry " + std::to_string(idx);
        Status s = Status::Corruption(name, "State", bat_offset + idx * 8,
                                      "PARTIALLY_PRESENT but the chunk's sector bitmap block is not present");
        bat[idx].store(0, std::memory_order_relaxed);
        invalid_bat_entries.push_back(idx);
        if (Status r = diag.Error(s, name, bat_offset + idx * 8); !r.ok()) return r;
      }
    }
  }
  return Status::OK();
}

// Everything no structure owns is free space, of unknown content.
void Image::Impl::BuildFreeSpace(LoadState& st) {
  std::lock_guard lock(alloc_mu_);
  file_end = AlignUp(st.file_size, kMiB);
  never_used_from = file_end;
  uint64_t units = file_end / kMiB;
  for (uint64_t u = 1; u < units;) {
    if (st.space->Owned(u)) {
      ++u;
      continue;
    }
    uint64_t start = u;
    while (u < units && !st.space->Owned(u)) ++u;
    free_space.Add(start * kMiB, (u - start) * kMiB, false);
  }
}

}  // namespace vhdx
