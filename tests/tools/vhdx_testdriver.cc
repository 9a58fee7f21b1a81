// vhdx_testdriver: a small command-line driver over the public libvhdx API,
// used by the interoperability tests (tests/integration/test_*_interop.py).
// It is deliberately independent of the `vhdx` tool so that those tests keep
// working while the tool changes.
//
// Commands (sizes accept K/M/G suffixes; exit status 0 = success):
//   create PATH SIZE [--type fixed|dynamic] [--block-size N] [--lss N] [--pss N]
//   random-writes PATH SEED COUNT MAXLEN EXPECTED_RAW [--zeroes] [--flush-every N] [--no-close]
//       COUNT seeded random sector-aligned writes of 1..MAXLEN bytes, each
//       applied to the image and to EXPECTED_RAW (created sparse with the
//       disk's size when missing). With --zeroes, one op in eight is a
//       WriteZeroes (half of them one whole block when the disk has >= 8).
//       --trims: half of those ops are a Trim in a random TrimMode instead.
//       --hot OFF (repeatable): a third of the ops straddle one of these
//       offsets (chunk boundaries of large disks, say). Ends with Close().
//   to-raw PATH OUT          whole virtual disk to OUT (sparse where zero)
//   compare PATH RAW         compares the disk with RAW (skipping RAW's holes
//                            where the image stores nothing)
//   info PATH                key=value lines (sizes, geometry, headers, blocks)
//   check PATH               CheckImage; prints problems; exit 1 unless clean
//   write PATH OFFSET LEN BYTE   one write of LEN bytes of value BYTE
//   open-rw PATH             opens read-write and closes (e.g. log replay)
//   trim PATH OFFSET LEN default|zero|unmap   one Trim, then Close
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "vhdx/check.h"
#include "vhdx/image.h"

namespace {

using vhdx::Image;
using vhdx::Status;

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "vhdx_testdriver: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(2);
}

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr, "vhdx_testdriver: %s (see the comment at the top of vhdx_testdriver.cc)\n", msg);
  std::exit(64);
}

uint64_t ParseSize(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 0);
  if (errno != 0 || end == text.c_str()) Usage(("bad number: " + text).c_str());
  uint64_t mult = 1;
  std::string suffix(end);
  if (suffix == "K" || suffix == "k") {
    mult = 1ull << 10;
  } else if (suffix == "M" || suffix == "m") {
    mult = 1ull << 20;
  } else if (suffix == "G" || suffix == "g") {
    mult = 1ull << 30;
  } else if (!suffix.empty()) {
    Usage(("bad size suffix: " + text).c_str());
  }
  return static_cast<uint64_t>(v) * mult;
}

std::unique_ptr<Image> OpenImage(const std::string& path, bool read_only) {
  vhdx::OpenOptions o;
  o.read_only = read_only;
  auto image = Image::Open(path, o);
  if (!image.ok()) Die("open " + path, image.status());
  return std::move(*image);
}

// Positional I/O on a plain file; the helpers die on error.
struct RawFile {
  int fd = -1;
  RawFile(const std::string& path, int flags) {
    fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) Die("open " + path, Status::FromErrno(errno, path));
  }
  ~RawFile() {
    if (fd >= 0) ::close(fd);
  }
  void PWrite(uint64_t off, const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
      if (w <= 0) Die("pwrite", Status::FromErrno(errno, "raw file"));
      p += w, n -= static_cast<size_t>(w), off += static_cast<uint64_t>(w);
    }
  }
  // Short reads past EOF are filled with zeros.
  void PRead(uint64_t off, uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
      if (r < 0) Die("pread", Status::FromErrno(errno, "raw file"));
      if (r == 0) {
        std::memset(p, 0, n);
        return;
      }
      p += r, n -= static_cast<size_t>(r), off += static_cast<uint64_t>(r);
    }
  }
  // Zeros a range by punching a hole (keeps the expected file sparse and
  // avoids writing large zero buffers); falls back to writing zeros.
  void Zero(uint64_t off, uint64_t n) {
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                    static_cast<off_t>(n)) == 0) {
      return;
    }
    std::vector<uint8_t> zeros(std::min<uint64_t>(n, 1u << 20), 0);
    for (uint64_t pos = 0; pos < n; pos += zeros.size()) {
      PWrite(off + pos, zeros.data(), static_cast<size_t>(std::min<uint64_t>(zeros.size(), n - pos)));
    }
  }
  void Truncate(uint64_t size) {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) Die("ftruncate", Status::FromErrno(errno, "raw file"));
  }
};

int CmdCreate(int argc, char** argv) {
  if (argc < 2) Usage("create PATH SIZE [options]");
  vhdx::CreateOptions o;
  o.virtual_size = ParseSize(argv[1]);
  o.type = vhdx::DiskType::kDynamic;
  o.overwrite = true;
  o.creator = "vhdx_testdriver";
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--type") {
      std::string t = next();
      if (t == "fixed") {
        o.type = vhdx::DiskType::kFixed;
      } else if (t == "dynamic") {
        o.type = vhdx::DiskType::kDynamic;
      } else {
        Usage("--type fixed|dynamic");
      }
    } else if (a == "--block-size") {
      o.block_size = static_cast<uint32_t>(ParseSize(next()));
    } else if (a == "--lss") {
      o.logical_sector_size = static_cast<uint32_t>(ParseSize(next()));
    } else if (a == "--pss") {
      o.physical_sector_size = static_cast<uint32_t>(ParseSize(next()));
    } else {
      Usage(("unknown option " + a).c_str());
    }
  }
  auto image = Image::Create(argv[0], o);
  if (!image.ok()) Die("create", image.status());
  if (Status s = (*image)->Close(); !s.ok()) Die("close", s);
  return 0;
}

int CmdRandomWrites(int argc, char** argv) {
  if (argc < 5) Usage("random-writes PATH SEED COUNT MAXLEN EXPECTED_RAW [options]");
  const std::string path = argv[0];
  const uint64_t seed = ParseSize(argv[1]);
  const uint64_t count = ParseSize(argv[2]);
  const uint64_t maxlen = ParseSize(argv[3]);
  const std::string raw_path = argv[4];
  bool zeroes = false, trims = false, close = true;
  uint64_t flush_every = 0;
  std::vector<uint64_t> hot;  // offsets that a third of the writes straddle
  for (int i = 5; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--zeroes") {
      zeroes = true;
    } else if (a == "--trims") {
      trims = true;
    } else if (a == "--no-close") {
      close = false;
    } else if (a == "--flush-every" && i + 1 < argc) {
      flush_every = ParseSize(argv[++i]);
    } else if (a == "--hot" && i + 1 < argc) {
      hot.push_back(ParseSize(argv[++i]));
    } else {
      Usage(("unknown option " + a).c_str());
    }
  }
  auto image = OpenImage(path, false);
  const uint64_t size = image->virtual_size();
  const uint64_t lss = image->logical_sector_size();
  const uint64_t bs = image->block_size();
  if (maxlen < lss) Usage("MAXLEN is below the logical sector size");
  RawFile raw(raw_path, O_RDWR | O_CREAT);
  struct stat st;
  if (::fstat(raw.fd, &st) != 0) Die("fstat", Status::FromErrno(errno, raw_path));
  if (static_cast<uint64_t>(st.st_size) != size) raw.Truncate(size);

  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf;
  for (uint64_t op = 0; op < count; ++op) {
    uint64_t sectors = size / lss;
    uint64_t len = (1 + rng() % (maxlen / lss)) * lss;
    len = std::min(len, size);
    uint64_t off = rng() % (sectors - len / lss + 1) * lss;
    if (!hot.empty() && rng() % 3 == 0) {
      // Straddle (or touch) a hot offset, e.g. a chunk boundary.
      uint64_t h = hot[rng() % hot.size()] / lss * lss;
      uint64_t back = rng() % (len / lss) * lss;
      off = std::min(h - std::min(h, back), size - len);
    }
    bool zero_op = zeroes && rng() % 8 == 0;
    const uint64_t blocks = (size + bs - 1) / bs;
    if (zero_op && blocks >= 8 && rng() % 2 == 0) {
      // Block-aligned: one whole block becomes ZERO (only on disks with
      // enough blocks that this does not wipe most of the written data).
      off = rng() % blocks * bs;
      len = std::min<uint64_t>(bs, size - off);
    }
    if (zero_op && trims && rng() % 2 == 0) {
      // Trim in any mode: kDefault, kZero, kUnmapKeepSpace (whole blocks
      // become UNMAPPED keeping a soft anchor). Base images read zeros.
      auto mode = static_cast<vhdx::TrimMode>(rng() % 3);
      if (Status s = image->Trim(off, len, mode); !s.ok()) {
        Die("Trim at " + std::to_string(off) + " len " + std::to_string(len), s);
      }
      raw.Zero(off, len);
    } else if (zero_op) {
      if (Status s = image->WriteZeroes(off, len); !s.ok()) {
        Die("WriteZeroes at " + std::to_string(off) + " len " + std::to_string(len), s);
      }
      raw.Zero(off, len);
    } else {
      buf.resize(len);
      for (uint64_t i = 0; i < len; i += 8) {
        uint64_t v = rng();
        std::memcpy(buf.data() + i, &v, std::min<uint64_t>(8, len - i));
      }
      if (Status s = image->Write(off, buf); !s.ok()) {
        Die("Write at " + std::to_string(off) + " len " + std::to_string(len), s);
      }
    }
    if (!zero_op) raw.PWrite(off, buf.data(), buf.size());
    if (flush_every != 0 && (op + 1) % flush_every == 0) {
      if (Status s = image->Flush(); !s.ok()) Die("Flush", s);
    }
  }
  if (close) {
    if (Status s = image->Close(); !s.ok()) Die("Close", s);
  } else {
    if (Status s = image->Flush(); !s.ok()) Die("Flush", s);
    // Leave the image open without a clean close: simulate a crash after a
    // flush by skipping the destructor's close.
    std::fflush(stdout);
    std::_Exit(0);
  }
  return 0;
}

constexpr size_t kChunk = 4u << 20;

int CmdToRaw(int argc, char** argv) {
  if (argc != 2) Usage("to-raw PATH OUT");
  auto image = OpenImage(argv[0], true);
  const uint64_t size = image->virtual_size();
  RawFile out(argv[1], O_WRONLY | O_CREAT | O_TRUNC);
  std::vector<uint8_t> buf(kChunk);
  for (uint64_t off = 0; off < size; off += kChunk) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    std::span<uint8_t> part(buf.data(), n);
    if (Status s = image->Read(off, part); !s.ok()) Die("Read at " + std::to_string(off), s);
    bool all_zero = std::all_of(part.begin(), part.end(), [](uint8_t b) { return b == 0; });
    if (!all_zero) out.PWrite(off, part.data(), n);
  }
  out.Truncate(size);
  if (Status s = image->Close(); !s.ok()) Die("close", s);
  return 0;
}

// Compares [off, off+n) of the image with the raw file; prints and returns
// false at the first difference.
bool CompareRange(Image& image, RawFile& raw, uint64_t off, uint64_t n, bool raw_is_hole) {
  static std::vector<uint8_t> a(kChunk), b(kChunk);
  for (uint64_t pos = off; pos < off + n; pos += kChunk) {
    size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk, off + n - pos));
    if (Status s = image.Read(pos, std::span<uint8_t>(a.data(), len)); !s.ok()) Die("Read", s);
    if (raw_is_hole) {
      std::memset(b.data(), 0, len);
    } else {
      raw.PRead(pos, b.data(), len);
    }
    if (std::memcmp(a.data(), b.data(), len) != 0) {
      size_t i = 0;
      while (a[i] == b[i]) ++i;
      std::printf("content differs at offset %" PRIu64 " (image 0x%02x, raw 0x%02x)\n", pos + i, a[i], b[i]);
      return false;
    }
  }
  return true;
}

// Walks the raw file's data extents (SEEK_DATA/SEEK_HOLE) and compares them;
// inside the raw file's holes only the image's stored (kData) extents are
// read and must be zero, so sparse multi-GiB disks compare quickly.
int CmdCompare(int argc, char** argv) {
  if (argc != 2) Usage("compare PATH RAW");
  auto image = OpenImage(argv[0], true);
  const uint64_t size = image->virtual_size();
  RawFile raw(argv[1], O_RDONLY);
  struct stat st;
  if (::fstat(raw.fd, &st) != 0) Die("fstat", Status::FromErrno(errno, argv[1]));
  if (static_cast<uint64_t>(st.st_size) != size) {
    std::printf("size differs: image %" PRIu64 ", raw %" PRIu64 "\n", size, static_cast<uint64_t>(st.st_size));
    return 1;
  }
  const uint64_t lss = image->logical_sector_size();
  uint64_t pos = 0;
  while (pos < size) {
    off_t data = ::lseek(raw.fd, static_cast<off_t>(pos), SEEK_DATA);
    uint64_t data_start = data < 0 ? size : static_cast<uint64_t>(data);
    data_start = std::min(size, data_start / lss * lss);
    if (data_start > pos) {
      // A hole in the raw file: the image's stored parts there must be zero.
      auto map = image->Map(pos, data_start - pos);
      if (!map.ok()) Die("Map", map.status());
      for (const vhdx::Extent& e : *map) {
        if (e.kind == vhdx::Extent::Kind::kData && !CompareRange(*image, raw, e.offset, e.length, true)) return 1;
      }
      pos = data_start;
      if (pos >= size) break;
    }
    off_t hole = ::lseek(raw.fd, static_cast<off_t>(pos), SEEK_HOLE);
    uint64_t hole_start = hole < 0 ? size : static_cast<uint64_t>(hole);
    hole_start = std::min(size, (hole_start + lss - 1) / lss * lss);
    if (hole_start <= pos) hole_start = std::min(size, pos + lss);
    if (!CompareRange(*image, raw, pos, hole_start - pos, false)) return 1;
    pos = hole_start;
  }
  std::printf("identical\n");
  return 0;
}

int CmdInfo(int argc, char** argv) {
  if (argc != 1) Usage("info PATH");
  auto image = OpenImage(argv[0], true);
  vhdx::ImageInfo info = image->Info();
  std::printf("virtual_size=%" PRIu64 "\n", info.virtual_size);
  std::printf("file_size=%" PRIu64 "\n", info.file_size);
  std::printf("block_size=%u\n", info.block_size);
  std::printf("logical_sector_size=%u\n", info.logical_sector_size);
  std::printf("physical_sector_size=%u\n", info.physical_sector_size);
  std::printf("type=%s\n", info.type.c_str());
  std::printf("leave_block_allocated=%d\n", info.leave_block_allocated ? 1 : 0);
  std::printf("log_state=%d\n", static_cast<int>(info.log_state));
  for (int i = 0; i < 2; ++i) {
    const vhdx::HeaderInfo& h = info.headers[static_cast<size_t>(i)];
    std::printf("header%d_valid=%d\n", i + 1, h.valid ? 1 : 0);
    std::printf("header%d_sequence=%" PRIu64 "\n", i + 1, h.sequence_number);
    std::printf("header%d_log_guid=%s\n", i + 1, h.log_guid.ToString().c_str());
    std::printf("header%d_data_write_guid=%s\n", i + 1, h.data_write_guid.ToString().c_str());
  }
  const vhdx::BlockCounts& c = info.blocks;
  std::printf("blocks_not_present=%" PRIu64 "\n", c.not_present);
  std::printf("blocks_zero=%" PRIu64 "\n", c.zero);
  std::printf("blocks_fully_present=%" PRIu64 "\n", c.fully_present);
  std::printf("blocks_partially_present=%" PRIu64 "\n", c.partially_present);
  std::printf("blocks_unmapped=%" PRIu64 "\n", c.unmapped);
  std::printf("blocks_undefined=%" PRIu64 "\n", c.undefined);
  if (Status s = image->Close(); !s.ok()) Die("close", s);
  return 0;
}

int CmdCheck(int argc, char** argv) {
  if (argc != 1) Usage("check PATH");
  auto report = vhdx::CheckImage(argv[0]);
  if (!report.ok()) Die("check", report.status());
  for (const auto& p : report->problems) {
    std::printf("%s: %s at 0x%" PRIx64 ": %s\n",
                p.severity == vhdx::CheckProblem::Severity::kError ? "error" : "warning", p.structure.c_str(),
                p.file_offset, p.message.c_str());
  }
  std::printf("errors=%" PRIu64 " warnings=%" PRIu64 "\n", report->errors(), report->warnings());
  return report->clean() ? 0 : 1;
}

int CmdWrite(int argc, char** argv) {
  if (argc != 4) Usage("write PATH OFFSET LEN BYTE");
  auto image = OpenImage(argv[0], false);
  std::vector<uint8_t> buf(ParseSize(argv[2]), static_cast<uint8_t>(ParseSize(argv[3])));
  if (Status s = image->Write(ParseSize(argv[1]), buf); !s.ok()) Die("Write", s);
  if (Status s = image->Close(); !s.ok()) Die("Close", s);
  return 0;
}

int CmdTrim(int argc, char** argv) {
  if (argc != 4) Usage("trim PATH OFFSET LEN default|zero|unmap");
  auto image = OpenImage(argv[0], false);
  std::string m = argv[3];
  vhdx::TrimMode mode = m == "zero"    ? vhdx::TrimMode::kZero
                        : m == "unmap" ? vhdx::TrimMode::kUnmapKeepSpace
                                       : vhdx::TrimMode::kDefault;
  if (Status s = image->Trim(ParseSize(argv[1]), ParseSize(argv[2]), mode); !s.ok()) Die("Trim", s);
  if (Status s = image->Close(); !s.ok()) Die("Close", s);
  return 0;
}

int CmdOpenRw(int argc, char** argv) {
  if (argc != 1) Usage("open-rw PATH");
  auto image = OpenImage(argv[0], false);
  if (Status s = image->Close(); !s.ok()) Die("Close", s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage("missing command");
  std::string cmd = argv[1];
  int n = argc - 2;
  char** a = argv + 2;
  if (cmd == "create") return CmdCreate(n, a);
  if (cmd == "random-writes") return CmdRandomWrites(n, a);
  if (cmd == "to-raw") return CmdToRaw(n, a);
  if (cmd == "compare") return CmdCompare(n, a);
  if (cmd == "info") return CmdInfo(n, a);
  if (cmd == "check") return CmdCheck(n, a);
  if (cmd == "write") return CmdWrite(n, a);
  if (cmd == "open-rw") return CmdOpenRw(n, a);
  if (cmd == "trim") return CmdTrim(n, a);
  Usage(("unknown command " + cmd).c_str());
}
