// Power-cut tests: seeded workloads run on an image whose file is a
// CrashFile; every Flush of the file is a crash point, and each crash point
// is cut many ways (random subsets of the unflushed writes, in random order,
// torn at 512-byte granularity, size changes lost). Each cut image must
// pass the consistency check, reopen read-write (replaying the log), hold
// what the oracle allows (support/crash_oracle.h), and close and reopen
// clean. docs/design.md ("How the invariants are tested") maps each
// invariant to the workloads here.
//
// VHDX_CRASH_LONG=1 runs more seeds and more cuts per crash point.
#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "chain/merge.h"
#include "support/crash_file.h"
#include "support/crash_oracle.h"
#include "support/test_util.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::CrashFile;
using test::CrashPoint;
using test::Oracle;
using test::SparseBytes;

constexpr uint64_t kMiB = 1 << 20;

// Every cut allocates and frees MiB-sized buffers (log ring, blocks) on
// several threads; keep glibc from returning them to the kernel each time,
// which otherwise dominates the run time with page faults.
[[maybe_unused]] const bool kMallocTuned = [] {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  return true;
}();

bool EnvFlag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}
// VHDX_CRASH_LONG=1: many more seeds and cuts. VHDX_CRASH_QUICK=1: one seed
// and a quarter of the cuts, for the (slow) sanitizer builds.
bool LongMode() { return EnvFlag("VHDX_CRASH_LONG"); }
bool QuickMode() { return EnvFlag("VHDX_CRASH_QUICK"); }

// Drives one image on a CrashFile, recording every write in the oracle and
// every Flush of the file as a crash point.
class Harness {
 public:
  struct Options {
    uint64_t virtual_size = 64 * kMiB;
    uint32_t block_size = 1 << 20;
    uint32_t lss = 512;
    uint32_t log_size = 1 << 20;
    bool punch_hole = true;
    uint64_t seed = 1;
    // Non-empty: the image is a differencing child of this parent, which is
    // all zeros, or (parent_data) holds the oracle's parent pattern.
    std::string parent_path;
    bool parent_data = false;
  };

  explicit Harness(const Options& o)
      : opts_(o),
        oracle_(o.virtual_size, o.block_size, o.parent_data ? Oracle::kParentId : 0),
        file_(std::make_unique<CrashFile>()) {
    rng.seed(o.seed);
    file_->SetPunchHoleSupported(o.punch_hole);
    CreateOptions c;
    c.virtual_size = o.virtual_size;
    c.block_size = o.block_size;
    c.logical_sector_size = o.lss;
    c.physical_sector_size = 4096;
    c.log_size = o.log_size;
    if (!o.parent_path.empty()) {
      CreateOptions p = c;
      p.overwrite = true;
      auto parent = Image::Create(o.parent_path, p);
      EXPECT_TRUE(parent.ok()) << parent.status().ToString();
      if (parent.ok()) {
        if (o.parent_data) {
          std::vector<uint8_t> chunk(kMiB);
          for (uint64_t off = 0; off < o.virtual_size; off += chunk.size()) {
            const uint64_t n = std::min<uint64_t>(chunk.size(), o.virtual_size - off);
            for (uint64_t u = 0; u < n / Oracle::kUnit; ++u) {
              Oracle::Fill(Oracle::kParentId, off / Oracle::kUnit + u, chunk.data() + u * Oracle::kUnit);
            }
            EXPECT_TRUE((*parent)->Write(off, std::span<const uint8_t>(chunk.data(), n)).ok());
          }
        }
        EXPECT_TRUE((*parent)->Close().ok());
      }
      c.parent_path = o.parent_path;
      c.type = DiskType::kDifferencing;
    }
    auto image = Image::Create(BorrowFile(file_.get()), c);
    EXPECT_TRUE(image.ok()) << image.status().ToString();
    if (image.ok()) image_ = std::move(*image);
    // Crash points start once the image exists: a cut during creation
    // leaves a file without the VHDX signature, by design.
    file_->SetClock([this] { return oracle_.Tick(); });
    file_->SetFlushHook([this](const CrashPoint& p) {
      points_.push_back(p);  // serialised by the CrashFile's lock
      return Status::OK();
    });
  }
  ~Harness() {
    if (image_) image_->Close().PermitUncheckedError();
  }

  Image& image() { return *image_; }
  const Options& options() const { return opts_; }
  uint64_t blocks() const { return (opts_.virtual_size + opts_.block_size - 1) / opts_.block_size; }

  Status Write(uint64_t offset, uint64_t length, bool fua = false) {
    std::vector<uint8_t> buf(length);
    uint64_t id = oracle_.BeginWrite(offset, length, false, fua, buf);
    WriteOptions w;
    w.fua = fua;
    Status s = image_->Write(offset, buf, w);
    oracle_.EndWrite(id, s.ok());
    return s;
  }
  Status Zero(uint64_t offset, uint64_t length, bool fua = false) {
    uint64_t id = oracle_.BeginWrite(offset, length, true, fua);
    WriteOptions w;
    w.fua = fua;
    Status s = image_->WriteZeroes(offset, length, w);
    oracle_.EndWrite(id, s.ok());
    return s;
  }
  // In a differencing image a trim shows the parent again.
  Status Trim(uint64_t offset, uint64_t length) {
    uint64_t id = opts_.parent_path.empty() ? oracle_.BeginWrite(offset, length, true, false)
                                            : oracle_.BeginReveal(offset, length);
    Status s = image_->Trim(offset, length);
    oracle_.EndWrite(id, s.ok());
    return s;
  }
  Status Flush() {
    uint64_t t = oracle_.BeginFlush();
    Status s = image_->Flush();
    oracle_.EndFlush(t, s.ok());
    return s;
  }
  Status Resize(uint64_t new_size, bool allow_data_loss) {
    uint64_t id = oracle_.BeginResize(new_size);
    ResizeOptions r;
    r.allow_data_loss = allow_data_loss;
    Status s = image_->Resize(new_size, r);
    oracle_.EndWrite(id, s.ok());
    return s;
  }
  // Moves data but changes no content: nothing to tell the oracle.
  Status Compact() { return image_->Compact().status(); }
  // Close (a flush for the oracle) and reopen on the same file; the first
  // data write after it sets the DataWriteGuid to `next_data_write_guid`
  // when one is given (as Merge opens an ancestor).
  Status Reopen(std::optional<Guid> next_data_write_guid = std::nullopt) {
    uint64_t t = oracle_.BeginFlush();
    Status s = image_->Close();
    oracle_.EndFlush(t, s.ok());
    image_.reset();
    if (!s.ok()) return s;
    OpenOptions o;
    o.read_only = false;
    o.parent_path = opts_.parent_path;
    o.next_data_write_guid = next_data_write_guid;
    auto image = Image::Open(BorrowFile(file_.get()), o);
    if (!image.ok()) return image.status();
    image_ = std::move(*image);
    return Status::OK();
  }
  Status Close() {
    uint64_t t = oracle_.BeginFlush();
    Status s = image_->Close();
    oracle_.EndFlush(t, s.ok());
    return s;
  }

  // Random helpers.
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng() % n; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  // A random lss-aligned range inside block `b`.
  std::pair<uint64_t, uint64_t> RangeIn(uint64_t b, uint64_t max_len) {
    const uint64_t lss = opts_.lss;
    const uint64_t start = b * uint64_t{opts_.block_size};
    const uint64_t used = std::min<uint64_t>(opts_.block_size, opts_.virtual_size - start);
    const uint64_t sectors = used / lss;
    uint64_t first = Below(sectors);
    uint64_t count = 1 + Below(std::min<uint64_t>(sectors - first, max_len / lss));
    return {start + first * lss, count * lss};
  }

  const Oracle& oracle() const { return oracle_; }
  // For workloads that change the image by other means than Write (merge).
  Oracle& mutable_oracle() { return oracle_; }
  const std::vector<CrashPoint>& points() const { return points_; }

  // Cuts taken at or after `since` (an oracle clock) must hold one of
  // `allowed` as the DataWriteGuid of their current header.
  struct GuidRule {
    uint64_t since = Oracle::kNever;
    std::vector<Guid> allowed;
  };
  void SetGuidRule(GuidRule rule) { guid_rule_ = std::move(rule); }
  const GuidRule& guid_rule() const { return guid_rule_; }

  std::mt19937_64 rng;

 private:
  Options opts_;
  Oracle oracle_;
  std::unique_ptr<CrashFile> file_;
  std::unique_ptr<Image> image_;
  std::vector<CrashPoint> points_;
  GuidRule guid_rule_;
};

Guid CurrentDataWriteGuid(const Image& image) {
  ImageInfo info = image.Info();
  return info.headers[info.headers[0].current ? 0 : 1].data_write_guid;
}

#define WL_OK(expr)                                           \
  do {                                                        \
    ::vhdx::Status _s = (expr);                               \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString();   \
  } while (0)

// ---- workloads ----------------------------------------------------------------

// Allocating writes of every shape into fresh blocks, flushes in between.
void AllocatingWrites(Harness& h) {
  const uint64_t bs = h.options().block_size;
  const uint64_t span = std::max<uint64_t>(4, 16 * kMiB / bs);  // 16 MiB of the disk
  for (int i = 0; i < 24; ++i) {
    uint64_t b = h.Below(std::min<uint64_t>(h.blocks(), span));
    switch (h.Below(3)) {
      case 0: {
        uint64_t start = b * bs;
        WL_OK(h.Write(start, std::min<uint64_t>(bs, h.options().virtual_size - start)));
        break;
      }
      default: {
        auto [off, len] = h.RangeIn(b, 256 << 10);
        WL_OK(h.Write(off, len, h.OneIn(8)));
      }
    }
    if (h.OneIn(2)) WL_OK(h.Flush());
  }
  WL_OK(h.Flush());
}

// In-place overwrites of allocated blocks, some spanning two blocks.
void Overwrites(Harness& h) {
  const uint64_t bs = h.options().block_size;
  for (uint64_t b = 0; b < 6; ++b) WL_OK(h.Write(b * bs, bs));
  WL_OK(h.Flush());
  for (int i = 0; i < 30; ++i) {
    auto [off, len] = h.RangeIn(h.Below(6), 64 << 10);
    if (h.OneIn(4) && off + len + bs / 2 <= 6 * bs) len += bs / 2;  // crosses into the next block
    WL_OK(h.Write(off, len, h.OneIn(6)));
    if (h.OneIn(3)) WL_OK(h.Flush());
  }
  WL_OK(h.Flush());
}

// Partial-block writes: the rest of each new block must read as zeros.
void PartialBlocks(Harness& h) {
  for (int i = 0; i < 30; ++i) {
    auto [off, len] = h.RangeIn(h.Below(std::min<uint64_t>(h.blocks(), 24)), 32 << 10);
    WL_OK(h.Write(off, len));
    if (h.OneIn(3)) WL_OK(h.Flush());
  }
  WL_OK(h.Flush());
}

// Whole blocks trimmed or zeroed (their space freed), then new blocks
// written while the frees are pending and after they are durable: freed
// space is reused for full and partial blocks.
void TrimReuse(Harness& h) {
  const uint64_t bs = h.options().block_size;
  const uint64_t n = std::min<uint64_t>(h.blocks(), 24);
  for (uint64_t b = 0; b < 8; ++b) WL_OK(h.Write(b * bs, bs));
  WL_OK(h.Flush());
  uint64_t next = 8;
  for (int round = 0; round < 4; ++round) {
    // Free two or three blocks.
    for (int k = 0; k < 3; ++k) {
      uint64_t b = h.Below(next);
      if (h.OneIn(2)) {
        WL_OK(h.Trim(b * bs, bs));
      } else {
        WL_OK(h.Zero(b * bs, bs));
      }
    }
    // Partial zeroing inside an allocated block.
    auto [zo, zl] = h.RangeIn(h.Below(next), 128 << 10);
    WL_OK(h.Zero(zo, zl));
    if (h.OneIn(2)) WL_OK(h.Flush());  // frees become reusable
    // New blocks (reusing space when the frees are durable), partial or full,
    // and rewrites of freed blocks.
    for (int k = 0; k < 3; ++k) {
      uint64_t b = h.OneIn(3) ? h.Below(next) : std::min(next++, n - 1);
      if (h.OneIn(2)) {
        WL_OK(h.Write(b * bs, bs));
      } else {
        auto [off, len] = h.RangeIn(b, 64 << 10);
        WL_OK(h.Write(off, len, h.OneIn(5)));
      }
    }
    WL_OK(h.Flush());
  }
}

// Close and reopen in the middle: free space inside the file then has
// unknown content, so partial writes into it need a durable zero fill.
void ReopenReuse(Harness& h) {
  const uint64_t bs = h.options().block_size;
  for (uint64_t b = 0; b < 6; ++b) WL_OK(h.Write(b * bs, bs));
  WL_OK(h.Trim(1 * bs, bs));
  WL_OK(h.Zero(3 * bs, bs));
  WL_OK(h.Flush());
  WL_OK(h.Reopen());
  for (int i = 0; i < 6; ++i) {
    auto [off, len] = h.RangeIn(8 + i, 16 << 10);
    WL_OK(h.Write(off, len));
    if (h.OneIn(2)) WL_OK(h.Flush());
  }
  WL_OK(h.Trim(4 * bs, bs));
  WL_OK(h.Reopen());
  for (int i = 0; i < 4; ++i) {
    auto [off, len] = h.RangeIn(16 + i, 16 << 10);
    WL_OK(h.Write(off, len));
  }
  WL_OK(h.Close());
}

// Several threads write their own 64 KiB stripes of the same blocks (so they
// race to allocate them) while flushing and issuing FUA writes.
void RacingThreads(Harness& h, int threads) {
  const uint64_t stripe = 64 << 10;
  const uint64_t stripes = std::min<uint64_t>(h.options().virtual_size, 12 * uint64_t{h.options().block_size}) / stripe;
  const uint64_t lss = h.options().lss;
  std::vector<std::thread> ts;
  std::atomic<bool> failed{false};
  std::vector<uint64_t> seeds;
  for (int t = 0; t < threads; ++t) seeds.push_back(h.rng());
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937_64 r(seeds[t]);
      for (int i = 0; i < 25 && !failed; ++i) {
        uint64_t s = (r() % (stripes / threads)) * threads + t;  // stripes owned by this thread
        uint64_t first = r() % (stripe / lss);
        uint64_t count = 1 + r() % (stripe / lss - first);
        Status st;
        if (r() % 8 == 0) {
          st = h.Zero(s * stripe + first * lss, count * lss);
        } else {
          st = h.Write(s * stripe + first * lss, count * lss, r() % 8 == 0);
        }
        if (st.ok() && r() % 3 == 0) st = h.Flush();
        if (!st.ok()) {
          ADD_FAILURE() << "thread " << t << ": " << st.ToString();
          failed = true;
        }
      }
    });
  }
  for (auto& th : ts) th.join();
  WL_OK(h.Flush());
}

// Commits of more than a log entry's worth of pages (one BAT page per
// write) and enough commits to wrap the log ring.
void BigCommits(Harness& h) {
  const uint64_t bs = h.options().block_size;
  const uint64_t entries_per_page = 512;
  const uint64_t lss = h.options().lss;
  // Blocks whose BAT entries are on different pages. The first round makes
  // two back-to-back commits of 128 pages (the commit threshold) whose log
  // entries together are larger than the ring.
  for (uint64_t round = 0; round < 2; ++round) {
    const uint64_t writes = round == 0 ? 270 : 150;
    for (uint64_t k = 0; k < writes; ++k) {
      uint64_t b = (k * entries_per_page + round * 7) % h.blocks();
      WL_OK(h.Write(b * bs + h.Below(bs / lss) * lss, lss));
    }
    WL_OK(h.Flush());
  }
}

// Sync writes into a fresh base image: each write allocates a block in
// never-used space and is followed by a flush, so commits take the
// single-flush path (entry and data durable together, the previous
// commit's applies carried in the entry); overwrites, FUA writes and an
// occasional trim (whose freed space is reused, forcing the leading flush)
// interleave with them. Consecutive new blocks have their BAT entries on
// different BAT pages, so a commit whose entry does not carry the previous
// commit's pages loses them when their applies are cut.
void SyncWrites(Harness& h) {
  const uint64_t bs = h.options().block_size;
  const uint64_t stride = 509;  // BAT entries per page are at most 512
  ASSERT_GT(h.blocks(), 4 * stride);
  std::vector<uint64_t> used;
  auto new_block = [&] { return (used.size() * stride + used.size() / 4) % h.blocks(); };
  for (int i = 0; i < 40; ++i) {
    if (h.OneIn(8) && used.size() > 2) {
      WL_OK(h.Trim(used[h.Below(used.size())] * bs, bs));
    } else if (h.OneIn(4) && !used.empty()) {
      auto [off, len] = h.RangeIn(used[h.Below(used.size())], 16 << 10);
      WL_OK(h.Write(off, len, h.OneIn(3)));
    } else {
      const uint64_t b = new_block();
      used.push_back(b);
      auto [off, len] = h.RangeIn(b, 16 << 10);
      WL_OK(h.Write(off, len));
    }
    WL_OK(h.Flush());
  }
  WL_OK(h.Close());
}

// Many small commits: the log ring wraps several times.
void ManyCommits(Harness& h) {
  const uint64_t bs = h.options().block_size;
  for (int i = 0; i < 300; ++i) {
    uint64_t b = h.Below(8);
    if (h.OneIn(4)) {
      WL_OK(h.Trim(b * bs, bs));
    } else {
      auto [off, len] = h.RangeIn(b, 8 << 10);
      WL_OK(h.Write(off, len));
    }
    WL_OK(h.Flush());
  }
}

// Compaction (blocks moved into holes left by trims) and resizes: a grow
// that relocates the BAT, a shrink that drops data, a grow back over the
// dropped range (which must read as zeros), with writes in between.
void ResizeCompact(Harness& h) {
  const uint64_t bs = h.options().block_size;
  for (uint64_t b = 0; b < 8; ++b) WL_OK(h.Write(b * bs, bs));
  WL_OK(h.Write(12 * bs + 4096, 8192));
  WL_OK(h.Flush());
  WL_OK(h.Trim(1 * bs, 2 * bs));
  WL_OK(h.Zero(4 * bs, bs));
  WL_OK(h.Flush());
  WL_OK(h.Compact());  // blocks 5-7 and 12 move down into the holes
  WL_OK(h.Write(6 * bs + 4096, 4096));
  WL_OK(h.Flush());
  // More entries than the 1 MiB BAT region holds: the BAT moves.
  const uint64_t big = uint64_t{130} << 30;
  WL_OK(h.Resize(big, false));
  WL_OK(h.Write(big - 3 * bs + 4096, 4096));
  WL_OK(h.Write(40 * kMiB, 8192));
  WL_OK(h.Flush());
  WL_OK(h.Resize(48 * kMiB, true));  // drops the data at the end
  WL_OK(h.Flush());
  WL_OK(h.Resize(64 * kMiB, false));  // the dropped range comes back as zeros
  WL_OK(h.Write(50 * kMiB + 4096, 4096));
  WL_OK(h.Trim(0, bs));
  WL_OK(h.Compact());
  WL_OK(h.Close());
}

// `count` random partial operations in blocks [first, first + n): trims
// (in a differencing image the parent shows through again), write-zeroes
// and writes (one in six FUA); `kinds` above 3 weights writes up. A flush
// follows one operation in three.
void RandomPartialOps(Harness& h, int count, uint64_t first, uint64_t n, uint64_t kinds) {
  for (int i = 0; i < count; ++i) {
    auto [off, len] = h.RangeIn(first + h.Below(n), 64 << 10);
    switch (h.Below(kinds)) {
      case 0:
        WL_OK(h.Trim(off, len));
        break;
      case 1:
        WL_OK(h.Zero(off, len));
        break;
      default:
        WL_OK(h.Write(off, len, h.OneIn(6)));
    }
    if (h.OneIn(3)) WL_OK(h.Flush());
  }
}

// Differencing child of an all-zero parent: partial writes make
// PARTIALLY_PRESENT blocks and sector bitmap blocks; trims free blocks
// (the parent shows through again), so later bitmap and payload blocks are
// allocated in reused space (invariant 2 for sector bitmap blocks).
void DifferencingWrites(Harness& h) {
  const uint64_t bs = h.options().block_size;
  for (uint64_t b = 0; b < 4; ++b) WL_OK(h.Write(b * bs, bs));
  WL_OK(h.Flush());
  WL_OK(h.Trim(0, 2 * bs));  // two blocks freed
  WL_OK(h.Flush());
  // The first partial write allocates the chunk's sector bitmap block (into
  // the freed space), then a data block; partial trims clear bits.
  RandomPartialOps(h, 16, 0, 12, 5);
  if (::testing::Test::HasFatalFailure()) return;
  WL_OK(h.Write(5 * bs, bs));  // PARTIALLY_PRESENT or new block becomes fully written
  WL_OK(h.Close());
}

// Merge (invariants 2 and 9 for the ancestor of a chain): two differencing
// layers are folded into the harness image by the copy step Merge uses
// (chain::CopyLayers), after the image was reopened the way Merge opens an
// ancestor, with the next DataWriteGuid that the child's parent_linkage2
// already names. The layers hold partial blocks, whole blocks and zeroed
// ranges; the upper one overrides the lower one in places, and the lower
// one holds garbage wherever it is overridden, so taking a sector from the
// wrong layer shows up as a value no write produced. Every sector the merge
// must write is one oracle write in flight for the whole merge. Cuts from
// the reopen on must hold the old or the announced DataWriteGuid, the two
// values the child's linkage accepts.
void MergeLayers(Harness& h) {
  const uint64_t bs = h.options().block_size, lss = h.options().lss;
  const uint64_t vsize = h.options().virtual_size;
  const uint64_t span_blocks = std::min<uint64_t>(h.blocks(), 12);
  // The ancestor's own data, partly overridden by the layers.
  for (uint64_t b = 0; b < span_blocks; b += 2) {
    auto [off, len] = h.RangeIn(b, bs);
    WL_OK(h.Write(off, len));
  }
  WL_OK(h.Flush());
  const Guid old_id = CurrentDataWriteGuid(h.image());
  std::array<uint8_t, 16> raw;
  for (auto& byte : raw) byte = static_cast<uint8_t>(h.rng());
  const Guid next_id = Guid::FromBytes(raw);
  h.SetGuidRule({h.mutable_oracle().Tick(), {old_id, next_id}});
  WL_OK(h.Reopen(next_id));

  // The layers live in memory; their (unused) parent only gives them the
  // ancestor's geometry, since the copy step opens layers alone.
  test::TempDir dir;
  CreateOptions c;
  c.virtual_size = vsize;
  c.block_size = static_cast<uint32_t>(bs);
  c.logical_sector_size = static_cast<uint32_t>(lss);
  c.physical_sector_size = 4096;
  {
    auto geometry = Image::Create(dir.Join("geometry.vhdx"), c);
    ASSERT_TRUE(geometry.ok()) << geometry.status().ToString();
    WL_OK((*geometry)->Close());
  }
  c.parent_path = dir.Join("geometry.vhdx");
  c.type = DiskType::kDifferencing;
  enum : uint8_t { kUndefined = 0, kData = 1, kZeroed = 2 };
  const uint64_t sectors = vsize / lss;
  std::vector<std::unique_ptr<Image>> layers;  // [0] topmost
  std::vector<std::vector<uint8_t>> state(2, std::vector<uint8_t>(sectors, kUndefined));
  for (int i = 0; i < 2; ++i) {
    auto layer = Image::Create(NewMemoryFile(), c);
    ASSERT_TRUE(layer.ok()) << layer.status().ToString();
    layers.push_back(std::move(*layer));
  }
  for (int li = 1; li >= 0; --li) {
    for (int op = 0; op < 10; ++op) {
      const uint64_t b = h.Below(span_blocks);
      auto [off, len] = h.OneIn(4) ? std::pair<uint64_t, uint64_t>{b * bs, std::min(bs, vsize - b * bs)}
                                   : h.RangeIn(b, 192 << 10);
      const bool zero = h.OneIn(4);
      if (zero) {
        WL_OK(layers[li]->WriteZeroes(off, len));
      } else {
        std::vector<uint8_t> garbage(len);
        for (auto& byte : garbage) byte = static_cast<uint8_t>(h.rng() | 1);
        WL_OK(layers[li]->Write(off, garbage));
      }
      std::fill_n(state[li].begin() + off / lss, len / lss, zero ? kZeroed : kData);
    }
  }
  // What the merge must write: runs of sectors with the same source. Data
  // runs get the oracle's pattern, written into their source layer.
  std::vector<uint64_t> ids;
  uint64_t expected_bytes = 0;
  auto source_of = [&](uint64_t sector) -> std::pair<int, uint8_t> {
    for (int li = 0; li < 2; ++li) {
      if (state[li][sector] != kUndefined) return {li, state[li][sector]};
    }
    return {-1, kUndefined};
  };
  for (uint64_t sct = 0; sct < sectors;) {
    const auto src = source_of(sct);
    uint64_t end = sct + 1;
    while (end < sectors && source_of(end) == src) ++end;
    const uint64_t off = sct * lss, len = (end - sct) * lss;
    if (src.first >= 0) {
      expected_bytes += len;
      if (src.second == kZeroed) {
        ids.push_back(h.mutable_oracle().BeginWrite(off, len, true, false));
      } else {
        std::vector<uint8_t> buf(len);
        ids.push_back(h.mutable_oracle().BeginWrite(off, len, false, false, buf));
        WL_OK(layers[src.first]->Write(off, buf));
      }
    }
    sct = end;
  }
  std::vector<Image*> sources{layers[0].get(), layers[1].get()};
  auto written = chain::CopyLayers(sources, h.image(), vsize);
  for (uint64_t id : ids) h.mutable_oracle().EndWrite(id, written.ok());
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, expected_bytes);
  WL_OK(h.Flush());
  // The merged ancestor goes on being written.
  for (int i = 0; i < 4; ++i) {
    auto [off, len] = h.RangeIn(h.Below(span_blocks), 32 << 10);
    WL_OK(h.Write(off, len));
  }
  WL_OK(h.Close());
}

// Differencing child of a parent full of data (the oracle's parent
// pattern): whole blocks written into never-used space with a flush after
// each (a commit that could skip its leading flush, were the block's old
// content zeros rather than the parent's), partial writes, write-zeroes and
// trims that show the parent again, then whole blocks over reused space.
void DifferencingOverParentData(Harness& h) {
  const uint64_t bs = h.options().block_size;
  WL_OK(h.Write(0, bs));  // the session's first commit
  WL_OK(h.Flush());
  for (uint64_t b = 1; b < 6; ++b) {
    WL_OK(h.Write(b * bs, bs));
    WL_OK(h.Flush());
  }
  RandomPartialOps(h, 12, 6, 6, 4);
  if (::testing::Test::HasFatalFailure()) return;
  WL_OK(h.Trim(bs, 2 * bs));  // blocks 1 and 2 show the parent again
  WL_OK(h.Flush());
  for (uint64_t b = 12; b < 15; ++b) {
    WL_OK(h.Write(b * bs, bs));  // reuses the space of blocks 1 and 2 first
    WL_OK(h.Flush());
  }
  WL_OK(h.Close());
}

// ---- cut and verify -----------------------------------------------------------

// Checks one cut image; returns "" or what went wrong.
std::string VerifyCut(const Oracle& oracle, const CrashPoint& point, SparseBytes cut, bool deep,
                      bool whole_blocks = true, const std::string& parent = "",
                      const Harness::GuidRule& guid_rule = {}) {
  bool dirty = false;
  auto bytes = std::make_shared<SparseBytes>(std::move(cut));
  auto problems = test::CheckBytes(bytes, false, &dirty);
  if (!problems.empty()) return "check of the cut image: " + problems.front();
  OpenOptions o;
  o.read_only = false;
  o.parent_path = parent;
  auto image = Image::Open(test::NewSparseFile(bytes), o);
  if (!image.ok()) return "reopen (replay): " + image.status().ToString();
  if (point.clock >= guid_rule.since) {
    const Guid id = CurrentDataWriteGuid(**image);
    if (std::find(guid_rule.allowed.begin(), guid_rule.allowed.end(), id) == guid_rule.allowed.end()) {
      return "DataWriteGuid " + id.ToString() + " is none of those the chain's linkage accepts";
    }
  }
  std::string err = oracle.Verify(**image, point.clock, whole_blocks);
  if (!err.empty()) return "content after replay:\n" + err;
  if (Status s = (*image)->Close(); !s.ok()) return "close after replay: " + s.ToString();
  image->reset();
  problems = test::CheckBytes(bytes, true, &dirty);
  if (!problems.empty()) return "check after close: " + problems.front();
  if (dirty) return "check after close: log still dirty";
  if (deep) {
    o.read_only = true;
    auto again = Image::Open(test::NewSparseFile(bytes), o);
    if (!again.ok()) return "reopen after close: " + again.status().ToString();
    err = oracle.Verify(**again, point.clock, whole_blocks);
    if (!err.empty()) return "content after close and reopen:\n" + err;
  }
  return "";
}

struct RunStats {
  uint64_t points = 0;
  uint64_t cuts = 0;
  uint64_t failures = 0;
};

RunStats CutAll(const Harness& h, uint64_t seed, int variants, const char* name, bool whole_blocks) {
  const auto& points = h.points();
  std::atomic<uint64_t> cuts{0}, failures{0};
  std::mutex report_mu;
  int reported = 0;
  const unsigned workers = std::max(2u, std::min(4u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < points.size();) {
      for (int v = 0; v < variants; ++v) {
        std::mt19937_64 rng(seed * 1000003 + i * 7919 + static_cast<uint64_t>(v));
        SparseBytes cut = test::PowerCut(points[i], rng);
        std::string err = VerifyCut(h.oracle(), points[i], std::move(cut), v % 4 == 0, whole_blocks,
                                    h.options().parent_path, h.guid_rule());
        cuts++;
        if (!err.empty()) {
          failures++;
          std::lock_guard lock(report_mu);
          if (reported++ < 3) {
            ADD_FAILURE() << name << " seed " << seed << ": crash point " << i << " (file flush "
                          << points[i].flush_number << ", " << points[i].pending.size()
                          << " pending ops), variant " << v << ": " << err;
          }
        }
      }
    }
  };
  std::vector<std::thread> ts;
  for (unsigned w = 0; w < workers; ++w) ts.emplace_back(work);
  for (auto& t : ts) t.join();
  return {points.size(), cuts.load(), failures.load()};
}

struct Scenario {
  const char* name;
  Harness::Options options;
  std::function<void(Harness&)> workload;
  int variants;  // cuts per crash point (short mode)
  int seeds;     // seeds in short mode
  // Verify whole blocks (zero fill of unwritten units) or written units only
  // (workloads touching hundreds of blocks, where reads would dominate).
  bool whole_blocks = true;
};

std::atomic<uint64_t> g_total_cuts{0};

class CrashTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(CrashTest, EveryFlushPointSurvivesPowerCuts) {
  const Scenario& sc = GetParam();
  const bool long_mode = LongMode();
  const bool quick = QuickMode();
  const int seeds = long_mode ? sc.seeds * 8 : quick ? 1 : sc.seeds;
  const int variants = long_mode ? sc.variants * 4 : quick ? std::max(1, sc.variants / 4) : sc.variants;
  auto t0 = std::chrono::steady_clock::now();
  RunStats total;
  for (int s = 0; s < seeds; ++s) {
    Harness::Options o = sc.options;
    o.seed = o.seed * 7777 + static_cast<uint64_t>(s);
    Harness h(o);
    ASSERT_TRUE(&h.image() != nullptr);
    sc.workload(h);
    if (::testing::Test::HasFatalFailure()) return;
    RunStats r = CutAll(h, o.seed, variants, sc.name, sc.whole_blocks);
    total.points += r.points;
    total.cuts += r.cuts;
    total.failures += r.failures;
    if (r.failures) break;
  }
  g_total_cuts += total.cuts;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ crash    ] %s: %llu crash points, %llu cut states, %llu failed, %.1f s (total cuts so far %llu)\n",
              sc.name, static_cast<unsigned long long>(total.points), static_cast<unsigned long long>(total.cuts),
              static_cast<unsigned long long>(total.failures), secs,
              static_cast<unsigned long long>(g_total_cuts.load()));
  EXPECT_EQ(total.failures, 0u);
}

Harness::Options Opt(uint64_t vsize, uint32_t bs, uint32_t lss, bool punch = true, uint64_t seed = 1) {
  Harness::Options o;
  o.virtual_size = vsize;
  o.block_size = bs;
  o.lss = lss;
  o.punch_hole = punch;
  o.seed = seed;
  return o;
}

// Differencing scenarios keep their all-zero parent in a directory that
// lives as long as the test program.
Harness::Options Diff(Harness::Options o) {
  static test::TempDir* dir = new test::TempDir();
  o.parent_path = dir->Join("parent-" + std::to_string(o.seed) + ".vhdx");
  return o;
}

// ... whose parent holds the oracle's parent pattern.
Harness::Options DiffData(Harness::Options o) {
  o = Diff(o);
  o.parent_data = true;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Crash, CrashTest,
    ::testing::Values(
        Scenario{"alloc_1M_512", Opt(64 * kMiB, 1 << 20, 512, true, 11), AllocatingWrites, 40, 2},
        Scenario{"alloc_2M_4096", Opt(96 * kMiB, 2 << 20, 4096, true, 12), AllocatingWrites, 40, 2},
        Scenario{"overwrite_1M_512", Opt(64 * kMiB, 1 << 20, 512, true, 13), Overwrites, 30, 2},
        Scenario{"partial_1M_512", Opt(64 * kMiB + 3 * 4096, 1 << 20, 512, true, 14), PartialBlocks, 30, 2},
        Scenario{"partial_2M_4096", Opt(256 * kMiB, 2 << 20, 4096, true, 15), PartialBlocks, 30, 1},
        Scenario{"trim_reuse_punch", Opt(64 * kMiB, 1 << 20, 512, true, 16), TrimReuse, 30, 2},
        Scenario{"trim_reuse_nopunch", Opt(64 * kMiB, 1 << 20, 512, false, 17), TrimReuse, 30, 2},
        Scenario{"trim_reuse_2M_4096_nopunch", Opt(128 * kMiB, 2 << 20, 4096, false, 18), TrimReuse, 30, 1},
        Scenario{"reopen_reuse_nopunch", Opt(64 * kMiB, 1 << 20, 512, false, 19), ReopenReuse, 30, 2},
        Scenario{"threads_2", Opt(64 * kMiB, 1 << 20, 512, false, 20), [](Harness& h) { RacingThreads(h, 2); }, 16,
                 2},
        Scenario{"threads_4", Opt(64 * kMiB, 1 << 20, 4096, true, 21), [](Harness& h) { RacingThreads(h, 4); }, 12,
                 2},
        Scenario{"big_commits", Opt(uint64_t{160} << 30, 1 << 20, 512, true, 22), BigCommits, 12, 1, false},
        Scenario{"resize_compact", Opt(64 * kMiB, 1 << 20, 512, false, 24), ResizeCompact, 30, 1},
        Scenario{"resize_compact_punch_4096", Opt(64 * kMiB, 1 << 20, 4096, true, 25), ResizeCompact, 30, 1},
        Scenario{"differencing_nopunch", Diff(Opt(64 * kMiB, 1 << 20, 512, false, 26)), DifferencingWrites, 30, 2},
        Scenario{"differencing_4096", Diff(Opt(64 * kMiB, 2 << 20, 4096, true, 27)), DifferencingWrites, 30, 1},
        Scenario{"differencing_parent_data", DiffData(Opt(64 * kMiB, 1 << 20, 512, false, 32)),
                 DifferencingOverParentData, 30, 2},
        Scenario{"differencing_parent_data_4096", DiffData(Opt(64 * kMiB, 2 << 20, 4096, true, 33)),
                 DifferencingOverParentData, 30, 1},
        Scenario{"merge_nopunch", Opt(64 * kMiB, 1 << 20, 512, false, 28), MergeLayers, 30, 2},
        Scenario{"merge_2M_4096", Opt(64 * kMiB, 2 << 20, 4096, true, 29), MergeLayers, 30, 1},
        Scenario{"sync_writes_1M_512", Opt(4096 * kMiB, 1 << 20, 512, false, 30), SyncWrites, 30, 2},
        Scenario{"sync_writes_1M_4096_punch", Opt(4096 * kMiB, 1 << 20, 4096, true, 31), SyncWrites, 30, 1},
        Scenario{"many_commits_ring_wrap", Opt(64 * kMiB, 1 << 20, 512, false, 23), ManyCommits, 3, 1}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// The hook can stop a workload at the Nth flush: the flush fails, the image
// enters its sticky error state, and the state captured there survives
// every cut.
TEST(CrashAbort, FailedFlushIsStickyAndCutsAreConsistent) {
  Harness::Options o = Opt(64 * kMiB, 1 << 20, 512, false, 99);
  for (uint64_t n = 1; n <= 12; ++n) {
    auto file = std::make_unique<CrashFile>();
    file->SetPunchHoleSupported(false);
    CreateOptions c;
    c.virtual_size = o.virtual_size;
    c.block_size = o.block_size;
    auto image = Image::Create(BorrowFile(file.get()), c);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    Oracle oracle(o.virtual_size, o.block_size);
    CrashPoint point;
    const uint64_t base = file->flush_count();
    file->StopAtFlush(base + n, &point, /*abort=*/true);
    file->SetClock([&] { return oracle.Tick(); });
    std::mt19937_64 rng(n);
    Status failure;
    for (int i = 0; i < 12 && failure.ok(); ++i) {
      uint64_t off = (rng() % 16) * kMiB + (rng() % 64) * 4096;
      std::vector<uint8_t> buf(4096 * (1 + rng() % 8));
      uint64_t id = oracle.BeginWrite(off, buf.size(), false, false, buf);
      Status s = (*image)->Write(off, buf);
      oracle.EndWrite(id, s.ok());
      if (!s.ok()) {
        failure = s;
        break;
      }
      uint64_t t = oracle.BeginFlush();
      s = (*image)->Flush();
      oracle.EndFlush(t, s.ok());
      if (!s.ok()) failure = s;
    }
    ASSERT_FALSE(failure.ok()) << "flush " << n << " was never reached";
    // Sticky: nothing is accepted any more.
    std::vector<uint8_t> one(512, 1);
    EXPECT_FALSE((*image)->Write(0, one).ok());
    EXPECT_FALSE((*image)->Flush().ok());
    EXPECT_FALSE((*image)->Close().ok());
    for (int v = 0; v < 50; ++v) {
      std::mt19937_64 r(n * 100 + static_cast<uint64_t>(v));
      std::string err = VerifyCut(oracle, point, test::PowerCut(point, r), true);
      ASSERT_EQ(err, "") << "abort at flush " << n << ", variant " << v;
    }
  }
}

// Sanity of the harness itself: cutting with nothing lost reproduces the
// file, cutting with everything lost gives the durable bytes.
TEST(CrashHarness, CutModesBracketTheFile) {
  CrashFile f;
  std::vector<uint8_t> a(10240, 0xaa), b(3072, 0xbb);
  ASSERT_TRUE(f.WriteAt(0, a).ok());
  ASSERT_TRUE(f.Flush().ok());
  ASSERT_TRUE(f.WriteAt(5120, b).ok());
  ASSERT_TRUE(f.Truncate(20000).ok());
  ASSERT_TRUE(f.PunchHole(0, 4096).ok());
  CrashPoint p = f.Snapshot();
  std::mt19937_64 rng(1);
  test::CutOptions none;
  none.mode = test::CutOptions::Mode::kNone;
  EXPECT_TRUE(test::PowerCut(p, rng, none) == f.Durable());
  test::CutOptions prefix_all;
  prefix_all.mode = test::CutOptions::Mode::kPrefix;
  bool saw_full = false;
  for (int i = 0; i < 64 && !saw_full; ++i) saw_full = test::PowerCut(p, rng, prefix_all) == f.Current();
  EXPECT_TRUE(saw_full);
  // Torn cuts only ever hold old or new bytes, per 512-byte sector.
  test::CutOptions harsh;
  harsh.mode = test::CutOptions::Mode::kAll;
  harsh.tear_probability = 1.0;
  for (int i = 0; i < 64; ++i) {
    SparseBytes cut = test::PowerCut(p, rng, harsh);
    std::vector<uint8_t> bytes = cut.Flatten();
    for (size_t s = 0; s < std::min<size_t>(bytes.size(), 10240); s += 512) {
      uint8_t first = bytes[s];
      for (size_t j = s; j < std::min<size_t>(s + 512, std::min<size_t>(bytes.size(), 10240)); ++j) {
        ASSERT_EQ(bytes[j], first) << "sector " << s / 512 << " mixes two writes";
      }
      ASSERT_TRUE(first == 0xaa || first == 0xbb || first == 0) << "sector " << s / 512;
    }
  }
}

}  // namespace
}  // namespace vhdx
