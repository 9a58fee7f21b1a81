// The write path against a flat model of the disk: partial and full writes
// into NOT_PRESENT and ZERO blocks, overwrites, reuse of freed space (with
// and without host hole punching), truncation on close, clean headers after
// close, argument validation, 4096-byte sectors, and a seeded random mix of
// every operation with close/reopen cycles and concurrent free/reuse.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "image/image_impl.h"
#include "support/test_util.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::Pattern;
using test::TempDir;

constexpr uint64_t kMiB = 1 << 20;

uint64_t AlignUpTo(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// A File that forwards to one the test owns, so the bytes outlive the Image
// and can be reopened. Optionally refuses to punch holes, so freed space
// keeps its stale bytes and is never "known zero" when reused.
class BorrowedFile : public FileWrapper {
 public:
  BorrowedFile(File* target, bool no_punch) : FileWrapper(BorrowFile(target)), no_punch_(no_punch) {}
  Status PunchHole(uint64_t offset, uint64_t length) override {
    if (no_punch_) return Status::NotSupported("test: no hole punching");
    return FileWrapper::PunchHole(offset, length);
  }

 private:
  bool no_punch_;
};

// A disk image in memory plus the model of its content.
struct MemDisk {
  std::unique_ptr<File> backing = NewMemoryFile();
  bool no_punch = false;
  std::vector<uint8_t> model;

  std::unique_ptr<Image> Create(const CreateOptions& o) {
    model.assign(o.virtual_size, 0);
    auto img = Image::Create(std::make_unique<BorrowedFile>(backing.get(), no_punch), o);
    EXPECT_TRUE(img.ok()) << img.status().ToString();
    return img.ok() ? std::move(*img) : nullptr;
  }
  std::unique_ptr<Image> Open(bool read_only = false) {
    OpenOptions oo;
    oo.read_only = read_only;
    auto img = Image::Open(std::make_unique<BorrowedFile>(backing.get(), no_punch), oo);
    EXPECT_TRUE(img.ok()) << img.status().ToString();
    return img.ok() ? std::move(*img) : nullptr;
  }
  void Write(Image& img, uint64_t off, const std::vector<uint8_t>& data) {
    Status s = img.Write(off, data);
    ASSERT_TRUE(s.ok()) << "Write at " << off << " len " << data.size() << ": " << s.ToString();
    std::copy(data.begin(), data.end(), model.begin() + static_cast<ptrdiff_t>(off));
  }
  void Zero(Image& img, uint64_t off, uint64_t len) {
    Status s = img.WriteZeroes(off, len);
    ASSERT_TRUE(s.ok()) << "WriteZeroes at " << off << " len " << len << ": " << s.ToString();
    std::fill_n(model.begin() + static_cast<ptrdiff_t>(off), len, 0);
  }
  uint64_t FileSize() { return *backing->Size(); }
};

// First differing byte of the image against the model, or -1.
int64_t FirstDifference(Image& img, const std::vector<uint8_t>& model) {
  std::vector<uint8_t> buf(model.size());
  Status s = img.Read(0, buf);
  EXPECT_TRUE(s.ok()) << s.ToString();
  for (size_t i = 0; i < model.size(); ++i) {
    if (buf[i] != model[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

#define EXPECT_MATCHES_MODEL(img, model)                        \
  do {                                                          \
    int64_t diff_ = FirstDifference((img), (model));            \
    EXPECT_EQ(diff_, -1) << "first difference at byte " << diff_; \
  } while (0)

CreateOptions Opts(uint64_t size, uint32_t block, uint32_t lss = 512, DiskType type = DiskType::kDynamic) {
  CreateOptions o;
  o.virtual_size = size;
  o.block_size = block;
  o.logical_sector_size = lss;
  o.physical_sector_size = lss;
  o.type = type;
  return o;
}

// File offset of the block holding virtual byte `voff`, or 0 when the
// block is not stored in the file.
uint64_t FileOffsetOf(Image& img, uint64_t voff) {
  auto map = img.Map(voff, img.logical_sector_size());
  EXPECT_TRUE(map.ok());
  if (!map.ok() || map->empty() || (*map)[0].kind != Extent::Kind::kData) return 0;
  return (*map)[0].file_offset - (voff - (*map)[0].offset);
}

class SectorSizeTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(SectorSizeTest, PartialWritesIntoNotPresentBlocksReadZerosAround) {
  const uint32_t lss = GetParam();
  MemDisk d;
  auto img = d.Create(Opts(16 * kMiB, 1 * kMiB, lss));
  ASSERT_TRUE(img);
  // Start of a block, middle, end, crossing a block boundary, one sector.
  d.Write(*img, 1 * kMiB, Pattern(1, 8192));
  d.Write(*img, 3 * kMiB + 64 * 1024, Pattern(2, 3 * lss));
  d.Write(*img, 6 * kMiB - 2 * lss, Pattern(3, 2 * lss));
  d.Write(*img, 8 * kMiB - 4096, Pattern(4, 8192 + 4096));
  d.Write(*img, 12 * kMiB + 7 * lss, Pattern(5, lss));
  EXPECT_MATCHES_MODEL(*img, d.model);
  EXPECT_EQ(img->Info().blocks.fully_present, 6u);
  ASSERT_TRUE(img->Close().ok());
  auto again = d.Open(true);
  ASSERT_TRUE(again);
  EXPECT_MATCHES_MODEL(*again, d.model);
  EXPECT_EQ(again->logical_sector_size(), lss);
}

TEST_P(SectorSizeTest, PartialWriteIntoZeroBlockOverStaleSpaceReadsZerosAround) {
  const uint32_t lss = GetParam();
  for (bool no_punch : {false, true}) {
    SCOPED_TRACE(no_punch ? "host cannot punch holes" : "host punches holes");
    MemDisk d;
    d.no_punch = no_punch;
    auto img = d.Create(Opts(8 * kMiB, 1 * kMiB, lss));
    ASSERT_TRUE(img);
    d.Write(*img, 2 * kMiB, Pattern(10, kMiB));  // full block of data
    const uint64_t old_offset = FileOffsetOf(*img, 2 * kMiB);
    ASSERT_NE(old_offset, 0u);
    d.Zero(*img, 2 * kMiB, kMiB);  // becomes ZERO, its space freed at commit
    EXPECT_EQ(img->Info().blocks.zero, 1u);
    ASSERT_TRUE(img->Flush().ok());
    // The same block again, partially: may land on its old (stale) space.
    d.Write(*img, 2 * kMiB + 5 * 4096, Pattern(11, 4096));
    // Another block, partially: takes freed space too if the first did not.
    d.Write(*img, 5 * kMiB + 4096, Pattern(12, lss));
    EXPECT_MATCHES_MODEL(*img, d.model);
    const uint64_t a = FileOffsetOf(*img, 2 * kMiB), b = FileOffsetOf(*img, 5 * kMiB);
    EXPECT_TRUE(a == old_offset || b == old_offset) << "freed space was not reused";
    ASSERT_TRUE(img->Close().ok());
    auto again = d.Open(true);
    ASSERT_TRUE(again);
    EXPECT_MATCHES_MODEL(*again, d.model);
  }
}

TEST_P(SectorSizeTest, OverwritesAndFullBlockWrites) {
  const uint32_t lss = GetParam();
  MemDisk d;
  auto img = d.Create(Opts(10 * kMiB + 4 * 4096, 2 * kMiB, lss));  // short last block
  ASSERT_TRUE(img);
  d.Write(*img, 0, Pattern(20, 6 * kMiB));               // three whole blocks
  d.Write(*img, kMiB - lss, Pattern(21, 2 * lss));       // overwrite across nothing special
  d.Write(*img, 2 * kMiB - 4096, Pattern(22, 8192));     // overwrite across a block boundary
  d.Write(*img, 10 * kMiB, Pattern(23, 4 * 4096));       // the whole short last block
  d.Write(*img, 10 * kMiB + 4096, Pattern(24, lss));     // and over it again
  EXPECT_MATCHES_MODEL(*img, d.model);
  ASSERT_TRUE(img->Close().ok());
  auto again = d.Open(false);
  ASSERT_TRUE(again);
  EXPECT_MATCHES_MODEL(*again, d.model);
  d.Write(*again, 3 * kMiB, Pattern(25, 3 * kMiB));  // second session
  ASSERT_TRUE(again->Close().ok());
  auto third = d.Open(true);
  EXPECT_MATCHES_MODEL(*third, d.model);
}

TEST_P(SectorSizeTest, AlignmentAndRangeAreValidated) {
  const uint32_t lss = GetParam();
  MemDisk d;
  const uint64_t size = 4 * kMiB;
  auto img = d.Create(Opts(size, 1 * kMiB, lss));
  ASSERT_TRUE(img);
  std::vector<uint8_t> sector(lss, 1), half(lss / 2, 1), buf(lss);
  auto code = [](const Status& s) { return s.code(); };
  // Unaligned offsets and lengths.
  EXPECT_EQ(code(img->Write(1, sector)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Write(lss / 2, sector)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Write(0, half)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Read(lss / 2, buf)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->WriteZeroes(0, lss / 2)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->WriteZeroes(lss / 2, lss)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Trim(lss / 2, lss)), ErrorCode::kInvalidArgument);
  // Beyond the end, partly beyond, and offsets that overflow.
  EXPECT_EQ(code(img->Write(size, sector)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Write(size - lss, std::vector<uint8_t>(2 * lss))), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Write(UINT64_MAX - lss + 1, sector)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Read(size, buf)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Read(UINT64_MAX - lss + 1, buf)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->WriteZeroes(size - lss, 2 * lss)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->WriteZeroes(UINT64_MAX - lss + 1, 2 * lss)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Trim(size, lss)), ErrorCode::kInvalidArgument);
  EXPECT_EQ(code(img->Trim(UINT64_MAX - lss + 1, 2 * lss)), ErrorCode::kInvalidArgument);
  // The last sector itself is fine, and nothing above changed the disk.
  d.Write(*img, size - lss, sector);
  EXPECT_MATCHES_MODEL(*img, d.model);
  EXPECT_EQ(img->Info().blocks.fully_present, 1u);
  ASSERT_TRUE(img->Close().ok());
}

INSTANTIATE_TEST_SUITE_P(Lss, SectorSizeTest, ::testing::Values(512u, 4096u));

TEST(WritePathTest, ReadOnlyImageRefusesWrites) {
  MemDisk d;
  auto img = d.Create(Opts(4 * kMiB, 1 * kMiB));
  ASSERT_TRUE(img);
  d.Write(*img, 0, Pattern(30, 4096));
  ASSERT_TRUE(img->Close().ok());
  std::vector<uint8_t> before(*d.backing->Size());
  ASSERT_TRUE(d.backing->ReadAt(0, before).ok());

  auto ro = d.Open(true);
  ASSERT_TRUE(ro);
  EXPECT_TRUE(ro->read_only());
  std::vector<uint8_t> data(4096, 7);
  EXPECT_EQ(ro->Write(0, data).code(), ErrorCode::kReadOnly);
  EXPECT_EQ(ro->Write(kMiB, data).code(), ErrorCode::kReadOnly);  // would allocate
  EXPECT_EQ(ro->WriteZeroes(0, kMiB).code(), ErrorCode::kReadOnly);
  EXPECT_EQ(ro->Trim(0, kMiB).code(), ErrorCode::kReadOnly);
  EXPECT_MATCHES_MODEL(*ro, d.model);
  ASSERT_TRUE(ro->Close().ok());
  std::vector<uint8_t> after(*d.backing->Size());
  ASSERT_TRUE(d.backing->ReadAt(0, after).ok());
  EXPECT_TRUE(before == after) << "a read-only session changed the file";

  // A read-write session without writes leaves the file unchanged too.
  auto rw = d.Open(false);
  ASSERT_TRUE(rw);
  EXPECT_MATCHES_MODEL(*rw, d.model);
  ASSERT_TRUE(rw->Close().ok());
  std::vector<uint8_t> after_rw(*d.backing->Size());
  ASSERT_TRUE(d.backing->ReadAt(0, after_rw).ok());
  EXPECT_TRUE(before == after_rw) << "an unmodified read-write session changed the file";
}

TEST(WritePathTest, HeadersAfterCloseAreCleanAndAgree) {
  MemDisk d;
  auto img = d.Create(Opts(8 * kMiB, 1 * kMiB));
  ASSERT_TRUE(img);
  ASSERT_TRUE(img->Close().ok());
  auto first = d.Open(true);
  ImageInfo created = first->Info();
  ASSERT_TRUE(first->Close().ok());

  auto rw = d.Open(false);
  ASSERT_TRUE(rw);
  d.Write(*rw, 0, Pattern(40, 3 * kMiB));
  ASSERT_TRUE(rw->Flush().ok());
  d.Write(*rw, 5 * kMiB, Pattern(41, 4096));
  ASSERT_TRUE(rw->Close().ok());

  auto ro = d.Open(true);
  ASSERT_TRUE(ro);
  ImageInfo info = ro->Info();
  EXPECT_EQ(info.log_state, LogState::kClean);
  for (const HeaderInfo& h : info.headers) {
    EXPECT_TRUE(h.valid);
    EXPECT_TRUE(h.log_guid.IsZero()) << "LogGuid left set: " << h.log_guid.ToString();
  }
  // Pitfall F: both headers carry the same (new) DataWriteGuid.
  EXPECT_EQ(info.headers[0].data_write_guid, info.headers[1].data_write_guid);
  const HeaderInfo& cur_before = created.headers[created.headers[0].current ? 0 : 1];
  const HeaderInfo& cur_after = info.headers[info.headers[0].current ? 0 : 1];
  EXPECT_NE(cur_before.data_write_guid, cur_after.data_write_guid);
  EXPECT_NE(cur_before.file_write_guid, cur_after.file_write_guid);
  EXPECT_GT(cur_after.sequence_number, cur_before.sequence_number);
  EXPECT_MATCHES_MODEL(*ro, d.model);
}

uint64_t PathSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// End of the last stored block according to Map (0 when none).
uint64_t EndOfData(Image& img) {
  auto map = img.Map(0, img.virtual_size());
  EXPECT_TRUE(map.ok());
  uint64_t end = 0;
  for (const Extent& e : *map) {
    if (e.kind != Extent::Kind::kData) continue;
    // Blocks are stored whole; round the run's end up to its block.
    const uint64_t bs = img.block_size();
    uint64_t first_block_voff = e.offset / bs * bs;
    uint64_t file_start = e.file_offset - (e.offset - first_block_voff);
    uint64_t blocks = (e.offset + e.length - first_block_voff + bs - 1) / bs;
    end = std::max(end, file_start + blocks * bs);
  }
  return end;
}

TEST(WritePathTest, CloseTruncatesTrailingFreeSpace) {
  TempDir dir;
  const std::string path = dir.Join("t.vhdx");
  CreateOptions o = Opts(64 * kMiB, 1 * kMiB);
  std::vector<uint8_t> model(o.virtual_size, 0);
  {
    auto img = Image::Create(path, o);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    const uint64_t empty_size = PathSize(path);
    ASSERT_TRUE((*img)->Close().ok());
    EXPECT_EQ(PathSize(path), empty_size) << "an empty image's size changed on close";
  }
  OpenOptions rw;
  rw.read_only = false;
  {
    auto img = Image::Open(path, rw);
    ASSERT_TRUE(img.ok());
    for (uint64_t b = 0; b < 20; ++b) {
      auto data = Pattern(100 + b, 4096);
      ASSERT_TRUE((*img)->Write(b * kMiB + 8192, data).ok());
      std::copy(data.begin(), data.end(), model.begin() + static_cast<ptrdiff_t>(b * kMiB + 8192));
    }
    ASSERT_TRUE((*img)->Close().ok());
  }
  uint64_t end20;
  {
    auto img = Image::Open(path);
    ASSERT_TRUE(img.ok());
    end20 = EndOfData(**img);
    EXPECT_EQ(PathSize(path), end20) << "file not truncated to its last block on close";
    EXPECT_MATCHES_MODEL(**img, model);
  }
  {
    // Zero the blocks stored last in the file: the file shrinks on close.
    auto img = Image::Open(path, rw);
    ASSERT_TRUE(img.ok());
    std::vector<std::pair<uint64_t, uint64_t>> by_offset;  // file offset, block
    for (uint64_t b = 0; b < 20; ++b) by_offset.push_back({FileOffsetOf(**img, b * kMiB), b});
    std::sort(by_offset.begin(), by_offset.end());
    for (size_t i = 15; i < 20; ++i) {
      uint64_t b = by_offset[i].second;
      ASSERT_TRUE((*img)->WriteZeroes(b * kMiB, kMiB).ok());
      std::fill_n(model.begin() + static_cast<ptrdiff_t>(b * kMiB), kMiB, 0);
    }
    ASSERT_TRUE((*img)->Close().ok());
  }
  {
    auto img = Image::Open(path);
    ASSERT_TRUE(img.ok());
    uint64_t end15 = EndOfData(**img);
    EXPECT_EQ(end15, end20 - 5 * kMiB);
    EXPECT_EQ(PathSize(path), end15);
    EXPECT_MATCHES_MODEL(**img, model);
  }
  auto report = CheckImage(path);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->clean()) << report->problems.size() << " problems, first: "
                               << (report->problems.empty() ? "" : report->problems[0].message);
}

TEST(WritePathTest, FreedSpaceIsNotReusedBeforeTheCommit) {
  // Until the BAT change that frees a block is durable, a crash could bring
  // the old entry back; its space must not be handed to another block yet.
  MemDisk d;
  d.no_punch = true;
  auto img = d.Create(Opts(16 * kMiB, 1 * kMiB));
  ASSERT_TRUE(img);
  for (uint64_t b = 0; b < 4; ++b) d.Write(*img, b * kMiB, Pattern(200 + b, kMiB));
  ASSERT_TRUE(img->Flush().ok());
  const uint64_t freed = FileOffsetOf(*img, 1 * kMiB);
  d.Zero(*img, 1 * kMiB, kMiB);
  d.Write(*img, 9 * kMiB, Pattern(210, 4096));  // no flush in between
  EXPECT_NE(FileOffsetOf(*img, 9 * kMiB), freed);
  EXPECT_MATCHES_MODEL(*img, d.model);
  ASSERT_TRUE(img->Close().ok());
}

TEST(WritePathTest, FixedImagesStayFullyAllocated) {
  for (uint32_t lss : {512u, 4096u}) {
    MemDisk d;
    auto img = d.Create(Opts(8 * kMiB + 8192, 2 * kMiB, lss, DiskType::kFixed));
    ASSERT_TRUE(img);
    const uint64_t size_before = d.FileSize();
    EXPECT_EQ(img->Info().blocks.fully_present, 5u);
    d.Write(*img, kMiB, Pattern(300, 3 * kMiB));
    d.Zero(*img, 2 * kMiB, 2 * kMiB);  // a whole block: must stay FULLY_PRESENT
    ASSERT_TRUE(img->Trim(6 * kMiB, 2 * kMiB).ok());
    std::fill_n(d.model.begin() + 6 * kMiB, 2 * kMiB, 0);
    EXPECT_EQ(img->Info().blocks.fully_present, 5u);
    EXPECT_MATCHES_MODEL(*img, d.model);
    ASSERT_TRUE(img->Close().ok());
    EXPECT_EQ(d.FileSize(), size_before) << "fixed image changed size";
    auto again = d.Open(true);
    EXPECT_EQ(again->Info().blocks.fully_present, 5u);
    EXPECT_MATCHES_MODEL(*again, d.model);
  }
}

// A seeded mix of every operation against the model, with flushes and
// close/reopen cycles, on dynamic and fixed images of both sector sizes.
struct MixConfig {
  DiskType type;
  uint32_t lss;
  uint32_t block_size;
  bool no_punch;
};

class RandomMixTest : public ::testing::TestWithParam<MixConfig> {};

TEST_P(RandomMixTest, MatchesModel) {
  const MixConfig c = GetParam();
  const uint64_t size = 12 * kMiB + 3 * 4096;
  MemDisk d;
  d.no_punch = c.no_punch;
  auto img = d.Create(Opts(size, c.block_size, c.lss, c.type));
  ASSERT_TRUE(img);
  std::mt19937_64 rng(c.lss + c.block_size + (c.type == DiskType::kFixed ? 1 : 0) + (c.no_punch ? 2 : 0));
  const uint64_t sectors = size / c.lss;
  for (int op = 0; op < 300; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    uint64_t len = (1 + rng() % (2 * c.block_size / c.lss)) * c.lss;
    len = std::min(len, size);
    uint64_t off = rng() % (sectors - len / c.lss + 1) * c.lss;
    if (rng() % 3 == 0) {  // block aligned ranges exercise whole-block paths
      off = off / c.block_size * c.block_size;
      len = std::min<uint64_t>(AlignUpTo(len, c.block_size), size - off);
    }
    int kind = static_cast<int>(rng() % 20);
    if (kind < 10) {
      d.Write(*img, off, Pattern(rng(), len));
    } else if (kind < 13) {
      d.Zero(*img, off, len);
    } else if (kind < 16) {
      TrimMode mode = static_cast<TrimMode>(rng() % 3);
      Status s = img->Trim(off, len, mode);
      ASSERT_TRUE(s.ok()) << s.ToString();
      std::fill_n(d.model.begin() + static_cast<ptrdiff_t>(off), len, 0);
    } else if (kind < 18) {
      ASSERT_TRUE(img->Flush().ok());
    } else if (kind < 19) {
      std::vector<uint8_t> buf(len);
      ASSERT_TRUE(img->Read(off, buf).ok());
      ASSERT_TRUE(std::equal(buf.begin(), buf.end(), d.model.begin() + static_cast<ptrdiff_t>(off)))
          << "read at " << off << " len " << len;
    } else {
      ASSERT_TRUE(img->Close().ok());
      img = d.Open(false);
      ASSERT_TRUE(img);
      EXPECT_MATCHES_MODEL(*img, d.model);
    }
    if (HasFailure()) return;
  }
  EXPECT_MATCHES_MODEL(*img, d.model);
  if (c.type == DiskType::kFixed) {
    EXPECT_EQ(img->Info().blocks.fully_present, (size + c.block_size - 1) / c.block_size);
  }
  ASSERT_TRUE(img->Close().ok());
  auto ro = d.Open(true);
  ASSERT_TRUE(ro);
  EXPECT_MATCHES_MODEL(*ro, d.model);
  EXPECT_TRUE(ro->Info().headers[0].log_guid.IsZero());
}

INSTANTIATE_TEST_SUITE_P(
    Configs, RandomMixTest,
    ::testing::Values(MixConfig{DiskType::kDynamic, 512, 1 << 20, false},
                      MixConfig{DiskType::kDynamic, 512, 1 << 20, true},
                      MixConfig{DiskType::kDynamic, 4096, 1 << 20, true},
                      MixConfig{DiskType::kDynamic, 4096, 2 << 20, false},
                      MixConfig{DiskType::kFixed, 512, 1 << 20, false},
                      MixConfig{DiskType::kFixed, 4096, 2 << 20, true}),
    [](const auto& param_info) {
      const MixConfig& c = param_info.param;
      return std::string(c.type == DiskType::kFixed ? "fixed" : "dynamic") + "_lss" + std::to_string(c.lss) +
             "_bs" + std::to_string(c.block_size >> 20) + "M" + (c.no_punch ? "_nopunch" : "");
    });

// Threads own disjoint blocks and keep writing and zeroing them (freeing
// and reallocating space) while others flush: space freed by one thread is
// reused by another, and must never show its old data.
TEST(WritePathConcurrencyTest, FreeAndReuseAcrossThreads) {
  for (bool no_punch : {true, false}) {
    SCOPED_TRACE(no_punch ? "no hole punching" : "hole punching");
    MemDisk d;
    d.no_punch = no_punch;
    const int kThreads = 8;
    const uint64_t blocks = 32;
    auto img = d.Create(Opts(blocks * kMiB, 1 * kMiB));
    ASSERT_TRUE(img);
    std::atomic<int> failures{0};
    auto worker = [&](int t) {
      std::mt19937_64 rng(5000 + t);
      for (int op = 0; op < 150; ++op) {
        // Blocks t, t+8, t+16, t+24 belong to thread t.
        uint64_t block = static_cast<uint64_t>(t) + kThreads * (rng() % (blocks / kThreads));
        uint64_t base = block * kMiB;
        int kind = static_cast<int>(rng() % 10);
        if (kind < 5) {
          uint64_t off = rng() % 256 * 4096;
          uint64_t len = std::min<uint64_t>((1 + rng() % 64) * 4096, kMiB - off);
          auto data = Pattern(rng(), len);
          if (!img->Write(base + off, data).ok()) failures++;
          std::copy(data.begin(), data.end(), d.model.begin() + static_cast<ptrdiff_t>(base + off));
        } else if (kind < 8) {
          if (!img->WriteZeroes(base, kMiB).ok()) failures++;
          std::fill_n(d.model.begin() + static_cast<ptrdiff_t>(base), kMiB, 0);
        } else if (kind < 9) {
          if (!img->Flush().ok()) failures++;
        } else {
          std::vector<uint8_t> buf(kMiB);
          if (!img->Read(base, buf).ok()) failures++;
          if (!std::equal(buf.begin(), buf.end(), d.model.begin() + static_cast<ptrdiff_t>(base))) failures++;
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_MATCHES_MODEL(*img, d.model);
    ASSERT_TRUE(img->Close().ok());
    auto again = d.Open(true);
    ASSERT_TRUE(again);
    EXPECT_MATCHES_MODEL(*again, d.model);
    // No two blocks share file space.
    std::set<uint64_t> offsets;
    for (uint64_t b = 0; b < blocks; ++b) {
      uint64_t off = FileOffsetOf(*again, b * kMiB);
      if (off != 0) {
        EXPECT_TRUE(offsets.insert(off).second) << "block " << b << " shares space at " << off;
      }
    }
  }
}

// ---- flushes per commit -----------------------------------------------------

// Counts the file flushes an image makes.
class FlushCountingFile : public FileWrapper {
 public:
  FlushCountingFile(std::unique_ptr<File> target, std::atomic<int>* flushes)
      : FileWrapper(std::move(target)), flushes_(flushes) {}
  Status Flush() override {
    flushes_->fetch_add(1);
    return FileWrapper::Flush();
  }

 private:
  std::atomic<int>* flushes_;
};

// Flushes made by `op` on `image`.
template <typename Op>
int FlushesOf(std::atomic<int>& counter, Op op) {
  const int before = counter.load();
  op();
  return counter.load() - before;
}

// A sync write that allocates a block in never-used space of a base image
// costs one flush (entry and data durable together); one that reuses freed
// space, or any allocation in a differencing image (whose old content is the
// parent's, not zeros), keeps the leading flush that makes the data durable
// before the entry (invariants 1 and 2).
TEST(WritePathTest, SyncWriteCommitsFlushOnceOnlyIntoNeverUsedSpace) {
  TempDir dir;
  CreateOptions c;
  c.virtual_size = 64 * kMiB;
  c.block_size = 1 << 20;
  {
    auto parent = Image::Create(dir.Join("parent.vhdx"), c);
    ASSERT_TRUE(parent.ok()) << parent.status().ToString();
    ASSERT_TRUE((*parent)->Close().ok());
  }
  for (bool differencing : {false, true}) {
    SCOPED_TRACE(differencing ? "differencing" : "base");
    std::atomic<int> flushes{0};
    CreateOptions cc = c;
    if (differencing) cc.parent_path = dir.Join("parent.vhdx");
    auto created = Image::Create(std::make_unique<FlushCountingFile>(NewMemoryFile(), &flushes), cc);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    Image& image = **created;
    Image::Impl& impl = ImageAccess::Get(image);
    std::vector<uint8_t> data = test::Pattern(7, 4096);
    // The session's first commit establishes the log and a durable size.
    ASSERT_TRUE(image.Write(0, data).ok());
    ASSERT_TRUE(image.Flush().ok());
    const uint64_t single_before = impl.single_flush_commits;
    for (uint64_t b = 1; b <= 4; ++b) {
      // Differencing: whole blocks (a partial write there also changes the
      // sector bitmap, which always takes the leading flush).
      const int n = FlushesOf(flushes, [&] {
        if (differencing) {
          ASSERT_TRUE(image.Write(b * (1 << 20), test::Pattern(b, 1 << 20)).ok());
        } else {
          ASSERT_TRUE(image.Write(b * (1 << 20) + 8192, data).ok());
        }
        ASSERT_TRUE(image.Flush().ok());
      });
      EXPECT_EQ(n, differencing ? 2 : 1) << "block " << b;
    }
    EXPECT_EQ(impl.single_flush_commits - single_before, differencing ? 0u : 4u);
    // A flush with nothing to commit is one flush.
    EXPECT_EQ(FlushesOf(flushes, [&] { ASSERT_TRUE(image.Flush().ok()); }), 1);
    if (!differencing) {
      // Freed space reused: the leading flush is back.
      ASSERT_TRUE(image.Trim(2 * (1 << 20), 1 << 20).ok());
      ASSERT_TRUE(image.Flush().ok());
      const int n = FlushesOf(flushes, [&] {
        ASSERT_TRUE(image.Write(9 * (1 << 20), data).ok());
        ASSERT_TRUE(image.Flush().ok());
      });
      EXPECT_EQ(n, 2);
      EXPECT_EQ(ImageAccess::Get(image).single_flush_commits - single_before, 4u);
    }
    ASSERT_TRUE(image.Close().ok());
  }
}

}  // namespace
}  // namespace vhdx
