// `vhdx convert [-p] -O raw|vhdx [...] SRC DST`: copies a VHDX or raw disk
// into a new raw or VHDX file, writing only ranges that hold non-zero data.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "common.h"
#include "create_args.h"
#include "raw_io.h"
#include "vhdx/image.h"

namespace vhdx::tool {
namespace {

constexpr uint64_t kRawChunk = 4 * kMiB;
// Data ranges are widened to this granularity so reads and writes stay
// sector aligned for either logical sector size.
constexpr uint64_t kAlign = 4096;

struct Range {
  uint64_t offset;
  uint64_t length;
};

struct ConvertOptions {
  std::string src;
  std::string dst;
  std::string format;
  CreateArgs create;
  bool force = false;
  bool progress = false;
};

// A disk to copy from.
class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // Sorted disjoint ranges; everything outside them reads as zeros.
  virtual Result<std::vector<Range>> DataRanges() = 0;
  // Reads inside [0, size()); offset is a multiple of kAlign and the end is
  // too, or equals size().
  virtual Status Read(uint64_t offset, std::span<uint8_t> out) = 0;
};

class VhdxSource : public Source {
 public:
  explicit VhdxSource(std::unique_ptr<Image> image) : image_(std::move(image)) {}
  uint64_t size() const override { return image_->virtual_size(); }
  Result<std::vector<Range>> DataRanges() override {
    auto extents = image_->Map(0, size());
    if (!extents.ok()) return extents.status();
    std::vector<Range> ranges;
    for (const Extent& e : *extents) {
      if (e.kind != Extent::Kind::kData || e.length == 0) continue;
      if (!ranges.empty() && ranges.back().offset + ranges.back().length == e.offset) {
        ranges.back().length += e.length;
      } else {
        ranges.push_back({e.offset, e.length});
      }
    }
    return ranges;
  }
  Status Read(uint64_t offset, std::span<uint8_t> out) override { return image_->Read(offset, out); }
  Image& image() { return *image_; }

 private:
  std::unique_ptr<Image> image_;
};

class RawSource : public Source {
 public:
  RawSource(Fd fd, uint64_t size, std::string name) : fd_(std::move(fd)), size_(size), name_(std::move(name)) {}
  uint64_t size() const override { return size_; }
  Result<std::vector<Range>> DataRanges() override {
    auto segments = DataSegments(fd_.get(), size_, name_);
    if (!segments.ok()) return segments.status();
    std::vector<Range> ranges;
    for (const auto& [offset, length] : *segments) ranges.push_back({offset, length});
    return ranges;
  }
  Status Read(uint64_t offset, std::span<uint8_t> out) override { return PreadFull(fd_.get(), offset, out, name_); }

 private:
  Fd fd_;
  uint64_t size_;
  std::string name_;
};

// A disk to copy to. Never written ranges read as zeros.
class Sink {
 public:
  virtual ~Sink() = default;
  // Copy granularity: all-zero chunks of this size are not written.
  virtual uint64_t chunk_size() const = 0;
  virtual Status Write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes the output complete and closes it.
  virtual Status Finish() = 0;
};

class RawSink : public Sink {
 public:
  RawSink(Fd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  uint64_t chunk_size() const override { return kRawChunk; }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    return PwriteFull(fd_.get(), offset, data, name_);
  }
  Status Finish() override {
    if (::fsync(fd_.get()) != 0) return Status::FromErrno(errno, "fsync " + name_);
    return fd_.Close(name_);
  }

 private:
  Fd fd_;
  std::string name_;
};

class VhdxSink : public Sink {
 public:
  explicit VhdxSink(std::unique_ptr<Image> image) : image_(std::move(image)) {}
  uint64_t chunk_size() const override { return image_->block_size(); }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override { return image_->Write(offset, data); }
  Status Finish() override { return image_->Close(); }

 private:
  std::unique_ptr<Image> image_;
};

bool SameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Size of an open file or block device.
Result<uint64_t> FdSize(int fd, const std::string& name) {
  off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0) return Status::FromErrno(errno, "lseek " + name);
  return static_cast<uint64_t>(end);
}

Result<bool> IsVhdxFile(int fd, const std::string& name) {
  uint8_t signature[8] = {};
  Status s = PreadFull(fd, 0, signature, name);
  if (!s.ok()) return s;
  return std::memcmp(signature, "vhdxfile", 8) == 0;
}

// Writes the runs of `data` (to be stored at `offset`) that are not all
// zero, at kAlign granularity, so that zero pages stay holes/unallocated.
Status WriteNonZero(Sink& dst, uint64_t offset, std::span<const uint8_t> data) {
  if (IsAllZero(data)) return Status::OK();
  size_t pos = 0;
  while (pos < data.size()) {
    // Skip zero pages, then extend the run over non-zero pages.
    auto page_at = [&](size_t p) { return data.subspan(p, std::min<size_t>(kAlign, data.size() - p)); };
    while (pos < data.size() && IsAllZero(page_at(pos))) pos += page_at(pos).size();
    if (pos >= data.size()) break;
    size_t run_end = pos;
    while (run_end < data.size() && !IsAllZero(page_at(run_end))) run_end += page_at(run_end).size();
    Status s = dst.Write(offset + pos, data.subspan(pos, run_end - pos));
    if (!s.ok()) return s.WithContext("writing output at offset " + std::to_string(offset + pos));
    pos = run_end;
  }
  return Status::OK();
}

// Copies every non-zero chunk of `src` into `dst` (whose size is `out_size`
// >= src.size()).
Status Copy(Source& src, Sink& dst, uint64_t out_size, Progress& progress) {
  auto ranges = src.DataRanges();
  if (!ranges.ok()) return ranges.status();
  const uint64_t chunk = dst.chunk_size();
  std::vector<uint8_t> buffer(chunk);
  uint64_t covered = 0;  // everything below has been copied or skipped
  for (const Range& r : *ranges) {
    uint64_t start = r.offset / kAlign * kAlign;
    uint64_t end;
    if (!AlignUp(r.offset + r.length, kAlign, &end)) end = out_size;
    end = std::min(end, out_size);
    start = std::max(start, covered);
    for (uint64_t pos = start; pos < end;) {
      const uint64_t next = std::min((pos / chunk + 1) * chunk, end);
      std::span<uint8_t> piece(buffer.data(), next - pos);
      // The part past the source's end (output rounded up) is zero.
      const uint64_t readable = pos < src.size() ? std::min(next, src.size()) - pos : 0;
      if (readable > 0) {
        Status s = src.Read(pos, piece.first(readable));
        if (!s.ok()) return s.WithContext("reading source at offset " + std::to_string(pos));
      }
      std::fill(piece.begin() + static_cast<ptrdiff_t>(readable), piece.end(), uint8_t{0});
      Status s = WriteNonZero(dst, pos, piece);
      if (!s.ok()) return s;
      pos = next;
      progress.Update(pos);
    }
    covered = std::max(covered, end);
  }
  return Status::OK();
}

int RunConvert(const ConvertOptions& o) {
  const bool to_vhdx = o.format == "vhdx";
  if (!to_vhdx) {
    const CreateArgs defaults;
    if (o.create.type != defaults.type || !o.create.block_size.empty() || o.create.logical_sector_size != 0 ||
        o.create.physical_sector_size != 0) {
      return FailArgument("convert", o.dst, "-t, -b and the sector size options only apply to -O vhdx");
    }
  }

  // Open the source and learn its format.
  auto src_fd = OpenFd(o.src, O_RDONLY);
  if (!src_fd.ok()) return Fail("convert", o.src, src_fd.status());
  auto is_vhdx = IsVhdxFile(src_fd->get(), o.src);
  if (!is_vhdx.ok()) return Fail("convert", o.src, is_vhdx.status());
  auto src_stat = StatPath(o.src);
  if (!src_stat.ok()) return Fail("convert", o.src, src_stat.status());

  // Every file the source reads from: the image and, for a differencing
  // image, its ancestors. The output must be none of them.
  std::vector<std::string> inputs{o.src};
  std::unique_ptr<Source> source;
  CreateOptions create;
  create.creator = CreatorString();
  if (*is_vhdx) {
    src_fd->Close(o.src).PermitUncheckedError();  // read-only descriptor
    OpenOptions open;
    open.read_only = true;
    auto image = Image::Open(o.src, open);
    if (!image.ok()) return Fail("convert", o.src, image.status());
    const ImageInfo info = (*image)->Info();
    for (size_t i = 1; i < info.chain.size(); ++i) inputs.push_back(info.chain[i].path);
    create.logical_sector_size = (*image)->logical_sector_size();
    create.physical_sector_size = (*image)->physical_sector_size();
    source = std::make_unique<VhdxSource>(std::move(*image));
  } else {
    auto size = FdSize(src_fd->get(), o.src);
    if (!size.ok()) return Fail("convert", o.src, size.status());
    source = std::make_unique<RawSource>(std::move(*src_fd), *size, o.src);
  }

  // Refuse to overwrite the source (also through another name) or, without
  // --force, any existing file.
  auto dst_stat = StatPath(o.dst);
  if (dst_stat.ok()) {
    for (const std::string& input : inputs) {
      auto in_stat = StatPath(input);
      if (in_stat.ok() && SameFile(*in_stat, *dst_stat)) {
        return FailArgument("convert", o.dst,
                            input == o.src ? "output is the same file as the input " + o.src
                                           : "output is the same file as " + input + ", a parent of " + o.src);
      }
    }
    if (!o.force) {
      return Fail("convert", o.dst, Status::AlreadyExists("file exists (use --force to overwrite it)"));
    }
    if (!S_ISREG(dst_stat->st_mode)) {
      // Zero ranges are left unwritten and a failed convert removes DST:
      // both are only right for a regular file.
      return FailArgument("convert", o.dst, "output exists and is not a regular file");
    }
  } else if (dst_stat.status().code() != ErrorCode::kNotFound) {
    return Fail("convert", o.dst, dst_stat.status());
  }

  // Create the output.
  std::unique_ptr<Sink> sink;
  uint64_t out_size = source->size();
  if (to_vhdx) {
    Status s = ApplyCreateArgs(o.create, &create);
    if (!s.ok()) return Fail("convert", o.dst, s);
    if (!AlignUp(out_size, create.logical_sector_size, &out_size)) out_size = UINT64_MAX;
    s = ValidateVirtualSize(out_size, create.logical_sector_size);
    if (!s.ok()) return Fail("convert", o.dst, s);
    create.virtual_size = out_size;
    create.overwrite = o.force;
    auto image = Image::Create(o.dst, create);
    if (!image.ok()) return Fail("convert", o.dst, image.status());
    sink = std::make_unique<VhdxSink>(std::move(*image));
  } else {
    auto fd = OpenFd(o.dst, O_WRONLY | O_CREAT | (o.force ? O_TRUNC : O_EXCL), 0644);
    if (!fd.ok()) return Fail("convert", o.dst, fd.status());
    if (::ftruncate(fd->get(), static_cast<off_t>(out_size)) != 0) {
      Status s = Status::FromErrno(errno, "ftruncate " + o.dst);
      ::unlink(o.dst.c_str());
      return Fail("convert", o.dst, s);
    }
    sink = std::make_unique<RawSink>(std::move(*fd), o.dst);
  }

  Progress progress(o.progress, out_size);
  Status s = Copy(*source, *sink, out_size, progress);
  if (s.ok()) s = sink->Finish();
  sink.reset();
  if (!s.ok()) {
    ::unlink(o.dst.c_str());  // leave no half-written output behind
    return Fail("convert", o.dst, s);
  }
  progress.Finish();
  return kExitOk;
}

}  // namespace

void AddConvertCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a VHDX or raw disk into a raw or VHDX file (zero ranges "
                                                "stay holes / unallocated)");
  cmd->add_flag("-p,--progress", o->progress, "Show progress on stderr (only when it is a terminal)");
  cmd->add_option("-O,--output-format", o->format, "Output format: raw or vhdx")
      ->required()
      ->check(CLI::IsMember({"raw", "vhdx"}));
  AddCreateArgs(cmd, &o->create, /*with_log_size=*/false);
  cmd->add_flag("-f,--force", o->force, "Overwrite DST if it exists");
  cmd->add_option("SRC", o->src, "Source: a VHDX image (detected by its signature) or a raw disk")->required();
  cmd->add_option("DST", o->dst, "Output file")->required();
  cmd->callback([o, &exit_code] { exit_code = RunConvert(*o); });
}

}  // namespace vhdx::tool
