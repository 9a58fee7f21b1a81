#include "fuzz_util.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "format/constants.h"
#include "format/header.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "vhdx/check.h"

namespace vhdx::fuzz {

void CheckFailed(const char* cond, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s%s%s\n", file, line, cond, msg ? ": " : "", msg ? msg : "");
  std::abort();
}

// ---- SparseFile -------------------------------------------------------------------

std::unique_ptr<SparseFile> SparseFile::Clone(bool writable) const {
  std::lock_guard lock(mu_);
  auto copy = std::make_unique<SparseFile>(size_, writable);
  copy->pages_ = pages_;
  return copy;
}

Result<uint64_t> SparseFile::Size() {
  std::lock_guard lock(mu_);
  return size_;
}

Status SparseFile::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  std::lock_guard lock(mu_);
  std::memset(out.data(), 0, out.size());
  if (out.empty() || offset >= size_) return Status::OK();
  const uint64_t end = std::min<uint64_t>(size_, offset + out.size());
  // Walk only the pages that exist: cost is independent of the read length.
  for (auto it = pages_.lower_bound(offset / kPage); it != pages_.end() && it->first * kPage < end; ++it) {
    const uint64_t page_start = it->first * kPage;
    const uint64_t from = std::max(offset, page_start);
    const uint64_t to = std::min(end, page_start + kPage);
    std::memcpy(out.data() + (from - offset), it->second.data() + (from - page_start), to - from);
  }
  return Status::OK();
}

void SparseFile::Spend(uint64_t n) {
  bytes_written_ += n;
  FUZZ_CHECK_MSG(bytes_written_ <= kMaxBytesWritten,
                 "the library wrote more than 1 GiB for one fuzz input (" + std::to_string(bytes_written_) + ")");
}

void SparseFile::Poke(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  for (size_t pos = 0; pos < data.size();) {
    const uint64_t off = offset + pos;
    const uint64_t in_page = off % kPage;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kPage - in_page, data.size() - pos));
    auto [it, inserted] = pages_.try_emplace(off / kPage);
    if (inserted) it->second.fill(0);
    std::memcpy(it->second.data() + in_page, data.data() + pos, n);
    pos += n;
  }
}

std::vector<uint8_t> SparseFile::Peek(uint64_t offset, size_t n) const {
  std::vector<uint8_t> out(n);
  const_cast<SparseFile*>(this)->ReadAt(offset, out).PermitUncheckedError();
  return out;
}

Status SparseFile::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  FUZZ_CHECK_MSG(writable_, "the library wrote to a file opened read-only");
  uint64_t end;
  if (__builtin_add_overflow(offset, data.size(), &end)) return Status::InvalidArgument("sparse: write overflows");
  {
    std::lock_guard lock(mu_);
    Spend(data.size());
    size_ = std::max(size_, end);
  }
  Poke(offset, data);
  return Status::OK();
}

void SparseFile::DropPagesLocked(uint64_t first_page, uint64_t end_page) {
  if (first_page >= end_page) return;
  pages_.erase(pages_.lower_bound(first_page), pages_.lower_bound(end_page));
}

void SparseFile::ZeroBytesLocked(uint64_t offset, uint64_t length) {
  const uint64_t end = offset + length;
  for (auto it = pages_.lower_bound(offset / kPage); it != pages_.end() && it->first * kPage < end; ++it) {
    const uint64_t page_start = it->first * kPage;
    const uint64_t from = std::max(offset, page_start);
    const uint64_t to = std::min(end, page_start + kPage);
    std::memset(it->second.data() + (from - page_start), 0, to - from);
  }
}

Status SparseFile::Truncate(uint64_t size) {
  FUZZ_CHECK_MSG(writable_, "the library truncated a file opened read-only");
  std::lock_guard lock(mu_);
  if (size < size_) {
    ZeroBytesLocked(size, std::min<uint64_t>(size_ - size, kPage));
    DropPagesLocked(DivCeil(size, kPage), UINT64_MAX);
  }
  size_ = size;
  return Status::OK();
}

Status SparseFile::ZeroRange(uint64_t offset, uint64_t length) {
  FUZZ_CHECK_MSG(writable_, "the library zeroed a range of a file opened read-only");
  uint64_t end;
  if (__builtin_add_overflow(offset, length, &end)) return Status::InvalidArgument("sparse: zero range overflows");
  std::lock_guard lock(mu_);
  // A real file system does work for the part inside the file (ZERO_RANGE
  // allocates, the fallback writes zeros); beyond the end it is an extension.
  if (offset < size_) Spend(std::min(end, size_) - offset);
  ZeroBytesLocked(offset, length);
  DropPagesLocked(DivCeil(offset, kPage), end / kPage);
  size_ = std::max(size_, end);
  return Status::OK();
}

Status SparseFile::PunchHole(uint64_t offset, uint64_t length) {
  FUZZ_CHECK_MSG(writable_, "the library punched a hole in a file opened read-only");
  uint64_t end;
  if (__builtin_add_overflow(offset, length, &end)) return Status::InvalidArgument("sparse: punch overflows");
  std::lock_guard lock(mu_);
  end = std::min(end, size_);
  if (offset >= end) return Status::OK();
  ZeroBytesLocked(offset, end - offset);
  DropPagesLocked(DivCeil(offset, kPage), end / kPage);
  return Status::OK();
}

Status SparseFile::Allocate(uint64_t offset, uint64_t length) {
  FUZZ_CHECK_MSG(writable_, "the library allocated in a file opened read-only");
  uint64_t end;
  if (__builtin_add_overflow(offset, length, &end)) return Status::InvalidArgument("sparse: allocate overflows");
  std::lock_guard lock(mu_);
  // Real allocation costs disk space like a write.
  if (end > size_) Spend(end - std::max(offset, size_));
  size_ = std::max(size_, end);
  return Status::OK();
}

// ---- sparse image format ----------------------------------------------------------

SparseInput ParseSparse(const uint8_t* data, size_t size) {
  SparseInput in;
  in.flags = size > 0 ? data[0] : 0;
  uint64_t declared = size >= 9 ? LoadLE64(data + 1) : 0;
  declared = std::min(declared, kMaxDeclaredSize);
  in.file = std::make_unique<SparseFile>(declared, false);
  size_t pos = 9;
  while (pos + 6 <= size) {
    const uint32_t off = LoadLE32(data + pos);
    size_t len = LoadLE16(data + pos + 4);
    pos += 6;
    len = std::min(len, size - pos);
    in.file->Poke(off, {data + pos, len});
    pos += len;
  }
  // Records may reach past the declared size: the file is that long then.
  uint64_t end = in.file->pages().empty() ? 0 : (in.file->pages().rbegin()->first + 1) * SparseFile::kPage;
  if (end > declared) in.file->SetSize(end);
  FixChecksums(in.file.get(), in.flags);
  return in;
}

std::vector<uint8_t> SerializeSparse(const SparseFile& file, uint8_t flags) {
  std::vector<uint8_t> out(9);
  out[0] = flags;
  uint64_t size = const_cast<SparseFile&>(file).Size().value();
  StoreLE64(out.data() + 1, size);
  for (const auto& [index, page] : file.pages()) {
    const uint64_t base = index * SparseFile::kPage;
    if (base > UINT32_MAX) break;
    size_t i = 0;
    while (i < page.size()) {
      while (i < page.size() && page[i] == 0) ++i;
      if (i == page.size()) break;
      // A run ends at 16 zero bytes in a row.
      size_t j = i, zeros = 0;
      while (j < page.size() && zeros < 16) {
        zeros = page[j] == 0 ? zeros + 1 : 0;
        ++j;
      }
      size_t len = j - i - zeros;
      uint8_t rec[6];
      StoreLE32(rec, static_cast<uint32_t>(base + i));
      StoreLE16(rec + 4, static_cast<uint16_t>(len));
      out.insert(out.end(), rec, rec + 6);
      out.insert(out.end(), page.begin() + static_cast<ptrdiff_t>(i), page.begin() + static_cast<ptrdiff_t>(i + len));
      i = j;
    }
  }
  return out;
}

void FixChecksums(SparseFile* file, uint8_t flags) {
  auto fix = [&](uint64_t off, size_t n, const char* sig) {
    std::vector<uint8_t> raw = file->Peek(off, n);
    if (std::memcmp(raw.data(), sig, 4) != 0) return;
    StoreLE32(raw.data() + 4, crc32c::ValueWithZeroedField(raw.data(), raw.size(), 4));
    file->Poke(off + 4, std::span<const uint8_t>(raw.data() + 4, 4));
  };
  if (flags & kFixHeaderChecksums) {
    fix(format::kHeader1Offset, format::kHeaderSize, "head");
    fix(format::kHeader2Offset, format::kHeaderSize, "head");
  }
  if (flags & kFixRegionChecksums) {
    fix(format::kRegionTable1Offset, format::kRegionTableSize, "regi");
    fix(format::kRegionTable2Offset, format::kRegionTableSize, "regi");
  }
  if (!(flags & kFixLogChecksums)) return;
  // The log named by header 1 (or 2): fix every "loge" sector whose length
  // is plausible, unwrapping entries that wrap around the ring.
  for (uint64_t hoff : {format::kHeader1Offset, format::kHeader2Offset}) {
    std::vector<uint8_t> h = file->Peek(hoff, 80);
    if (std::memcmp(h.data(), "head", 4) != 0) continue;
    const uint32_t log_length = LoadLE32(h.data() + 68);
    const uint64_t log_offset = LoadLE64(h.data() + 72);
    if (log_length == 0 || log_length % 4096 != 0 || log_length > (16u << 20)) continue;
    std::vector<uint8_t> ring = file->Peek(log_offset, log_length);
    bool changed = false;
    for (uint32_t at = 0; at < log_length; at += 4096) {
      if (std::memcmp(ring.data() + at, "loge", 4) != 0) continue;
      const uint32_t len = LoadLE32(ring.data() + at + 8);
      if (len == 0 || len % 4096 != 0 || len >= log_length) continue;
      std::vector<uint8_t> entry(len);
      for (uint32_t i = 0; i < len; ++i) entry[i] = ring[(at + i) % log_length];
      uint32_t crc = crc32c::ValueWithZeroedField(entry.data(), entry.size(), 4);
      StoreLE32(ring.data() + at + 4, crc);
      changed = true;
    }
    if (changed) file->Poke(log_offset, ring);
    break;
  }
}

// ---- exercising an open image -------------------------------------------------------

uint64_t ExerciseImage(Image& image, uint64_t max_blocks) {
  uint64_t digest = 0;
  ImageInfo info = image.Info();
  digest += info.blocks.fully_present + info.bat_entries + info.metadata_items.size();
  const uint64_t vsize = image.virtual_size();
  const uint64_t bs = image.block_size();
  const uint64_t lss = image.logical_sector_size();
  FUZZ_CHECK(bs != 0 && lss != 0);
  const uint64_t blocks = DivCeil(vsize, bs);

  std::vector<uint64_t> picks;
  if (blocks <= max_blocks) {
    for (uint64_t b = 0; b < blocks; ++b) picks.push_back(b);
  } else {
    for (uint64_t b = 0; b < max_blocks / 2; ++b) picks.push_back(b);
    for (uint64_t b = blocks - max_blocks / 4; b < blocks; ++b) picks.push_back(b);
    uint64_t stride = blocks / (max_blocks / 4 + 1) + 1;
    for (uint64_t b = max_blocks / 2; b < blocks; b += stride) picks.push_back(b);
  }

  std::vector<uint8_t> sector(lss);
  for (uint64_t b : picks) {
    const uint64_t start = b * bs;
    const uint64_t end = std::min(vsize, start + bs);
    for (uint64_t off : {start, end - lss}) {
      Status s = image.Read(off, sector);
      if (s.ok()) {
        for (uint8_t c : sector) digest = digest * 31 + c;
      } else {
        // A read of a valid range fails only for reasons the file gives.
        FUZZ_CHECK_MSG(s.code() != ErrorCode::kInvalidArgument, s.ToString());
      }
    }
    auto map = image.Map(start, end - start);
    if (map.ok()) {
      uint64_t covered = 0;
      for (const Extent& e : *map) {
        FUZZ_CHECK(e.offset == start + covered);
        covered += e.length;
      }
      FUZZ_CHECK(covered == end - start);
    }
  }
  // Invalid requests are refused cleanly.
  FUZZ_CHECK(image.Read(vsize, sector).code() == ErrorCode::kInvalidArgument);
  if (lss > 1) FUZZ_CHECK(!image.Read(1, sector).ok());
  FUZZ_CHECK(!image.Read(UINT64_MAX - lss + 1, sector).ok());
  return digest;
}

void RunCheck(const SparseFile& file) {
  int fd = memfd_create("fuzz-image", MFD_CLOEXEC);
  if (fd < 0) return;
  uint64_t size = const_cast<SparseFile&>(file).Size().value();
  bool ok = ftruncate(fd, static_cast<off_t>(size)) == 0;
  for (const auto& [index, page] : file.pages()) {
    if (!ok) break;
    uint64_t off = index * SparseFile::kPage;
    if (off >= size) break;
    size_t n = static_cast<size_t>(std::min<uint64_t>(page.size(), size - off));
    ok = pwrite(fd, page.data(), n, static_cast<off_t>(off)) == static_cast<ssize_t>(n);
  }
  if (ok) {
    auto report = CheckImage("/proc/self/fd/" + std::to_string(fd));
    if (report.ok()) {
      for (const auto& p : report->problems) FUZZ_CHECK(!p.message.empty());
    }
  }
  close(fd);
}

std::unique_ptr<SparseFile> BuildImage(uint64_t virtual_size, uint32_t block_size, uint32_t lss, DiskType type) {
  auto file = std::make_unique<SparseFile>(0, true);
  CreateOptions opts;
  opts.virtual_size = virtual_size;
  opts.block_size = block_size;
  opts.logical_sector_size = lss;
  opts.type = type;
  auto image = Image::Create(BorrowFile(file.get()), opts);
  FUZZ_CHECK_MSG(image.ok(), image.status().ToString());
  FUZZ_CHECK((*image)->Close().ok());
  return file;
}

DirtyImage BuildDirtyImage() {
  SparseFile file(0, true);
  CreateOptions opts;
  opts.virtual_size = 4 << 20;
  opts.block_size = 1 << 20;
  auto image = Image::Create(BorrowFile(&file), opts);
  FUZZ_CHECK_MSG(image.ok(), image.status().ToString());
  std::vector<uint8_t> buf(16 << 10);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 7 + 1);
  FUZZ_CHECK((*image)->Write(0, buf).ok());
  FUZZ_CHECK((*image)->Write(1 << 20, buf).ok());
  FUZZ_CHECK((*image)->WriteZeroes(2 << 20, 1 << 20).ok());
  FUZZ_CHECK((*image)->Flush().ok());
  FUZZ_CHECK((*image)->Write((3 << 20) + 8192, buf).ok());
  FUZZ_CHECK((*image)->Flush().ok());
  DirtyImage d;
  d.file = file.Clone(false);
  d.virtual_size = opts.virtual_size;
  FUZZ_CHECK((*image)->Close().ok());
  // The current header: the one with the higher sequence number.
  uint64_t best_seq = 0;
  for (uint64_t off : {format::kHeader1Offset, format::kHeader2Offset}) {
    auto h = format::Header::Decode(d.file->Peek(off, 4096), off);
    if (h.ok() && h->sequence_number >= best_seq) {
      best_seq = h->sequence_number;
      d.log_offset = h->log_offset;
      d.log_length = h->log_length;
      FUZZ_CHECK_MSG(!h->log_guid.IsZero(), "the flushed image should have a live log");
    }
  }
  FUZZ_CHECK(d.log_length != 0);
  // Replace the random session LogGuid with a fixed one in both headers and
  // every entry, so that inputs saved by one fuzzing process (corpora,
  // regression files) still match the log in the next.
  const Guid fixed = Guid::Parse("{f022f022-0000-4000-8000-000000000001}").value();
  for (uint64_t off : {format::kHeader1Offset, format::kHeader2Offset}) {
    auto h = format::Header::Decode(d.file->Peek(off, 4096), off);
    if (!h.ok() || h->log_guid.IsZero()) continue;
    h->log_guid = fixed;
    std::vector<uint8_t> raw(4096);
    h->EncodeTo(raw);
    d.file->Poke(off, raw);
  }
  std::vector<uint8_t> ring = d.file->Peek(d.log_offset, d.log_length);
  for (uint32_t at = 0; at < d.log_length; at += 4096) {
    if (std::memcmp(ring.data() + at, "loge", 4) == 0) fixed.ToBytes(std::span<uint8_t, 16>(ring.data() + at + 32, 16));
  }
  d.file->Poke(d.log_offset, ring);
  FixChecksums(d.file.get(), kFixLogChecksums);
  return d;
}

}  // namespace vhdx::fuzz
