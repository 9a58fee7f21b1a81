// Differencing images and parent chains: creation (geometry and locator),
// parent lookup (relative path, override, moved chains, .avhdx), linkage
// checks, cycle detection, dirty parents, and reads and writes through
// sector bitmaps compared sector by sector with a flat model (chains of
// depth 1 to 8, seeded random writes at every level).
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "format/constants.h"
#include "format/metadata.h"
#include "format/parent_locator.h"
#include "support/test_util.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr uint64_t kMi = uint64_t{1} << 20;
constexpr uint64_t kBitmapPageSectors = 4096 * 8;  // sectors described by one 4 KiB bitmap page

// ---- deterministic sector contents ------------------------------------------

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Contents of `sector` as written by write number `tag` (tag 0 = zeros).
void FillSector(uint32_t tag, uint64_t sector, uint32_t lss, uint8_t* out) {
  if (tag == 0) {
    std::memset(out, 0, lss);
    return;
  }
  uint64_t x = (uint64_t{tag} << 40) ^ (sector * 0x2545F4914F6CDD1Dull);
  for (uint32_t i = 0; i < lss; i += 8) {
    uint64_t v = SplitMix(x);
    std::memcpy(out + i, &v, 8);
  }
}

std::vector<uint8_t> FileBytes(const std::string& path, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> out(length);
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0) << path;
  if (fd < 0) return out;
  EXPECT_EQ(::pread(fd, out.data(), length, static_cast<off_t>(offset)), static_cast<ssize_t>(length));
  ::close(fd);
  return out;
}

void WriteFileBytes(const std::string& path, uint64_t offset, std::span<const uint8_t> bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// ---- the flat model of a chain ----------------------------------------------

enum BlockState : uint8_t { kNotPresent, kZeroBlock, kFull, kPartial };
constexpr int8_t kOwnerNone = -1;  // no data anywhere: reads zero, Map says unallocated
constexpr int8_t kOwnerZero = -2;  // a ZERO block: Map says zero

// One image of the chain as the model sees it.
struct Level {
  std::vector<uint32_t> tag;    // per sector: write number whose data it shows (0 = zeros)
  std::vector<int8_t> owner;    // per sector: level whose file holds it, or kOwner*
  std::vector<uint8_t> state;   // per block: this image's BAT state
};

class ChainModel {
 public:
  ChainModel(uint64_t size, uint32_t block_size, uint32_t lss)
      : size_(size), block_size_(block_size), lss_(lss), spb_(block_size / lss) {}

  uint64_t sectors() const { return size_ / lss_; }
  uint64_t blocks() const { return (size_ + block_size_ - 1) / block_size_; }
  int top() const { return static_cast<int>(levels_.size()) - 1; }
  const Level& level(int i) const { return levels_[i]; }

  void NewLevel() {
    Level l;
    if (levels_.empty()) {
      l.tag.assign(sectors(), 0);
      l.owner.assign(sectors(), kOwnerNone);
    } else {
      l.tag = levels_.back().tag;
      l.owner = levels_.back().owner;
    }
    l.state.assign(blocks(), kNotPresent);
    levels_.push_back(std::move(l));
  }

  // Sector-range operations on the top level, mirroring the library's
  // block-state transitions.
  void Write(uint64_t s, uint64_t n, uint32_t tag) {
    ForEachPiece(s, n, [&](uint64_t b, uint64_t ps, uint64_t pn) { WritePiece(b, ps, pn, tag); });
  }
  void WriteZeroes(uint64_t s, uint64_t n) {
    ForEachPiece(s, n, [&](uint64_t b, uint64_t ps, uint64_t pn) { ZeroPiece(b, ps, pn); });
  }
  void Trim(uint64_t s, uint64_t n) {
    ForEachPiece(s, n, [&](uint64_t b, uint64_t ps, uint64_t pn) { TrimPiece(b, ps, pn); });
  }

 private:
  bool diff() const { return levels_.size() > 1; }
  Level& cur() { return levels_.back(); }

  template <typename Fn>
  void ForEachPiece(uint64_t s, uint64_t n, Fn fn) {
    while (n > 0) {
      uint64_t b = s / spb_;
      uint64_t pn = std::min(n, (b + 1) * spb_ - s);
      fn(b, s, pn);
      s += pn;
      n -= pn;
    }
  }
  bool Whole(uint64_t b, uint64_t ps, uint64_t pn) const {
    uint64_t used = std::min<uint64_t>(spb_, sectors() - b * spb_);
    return ps == b * spb_ && pn >= used;
  }
  void SetRange(uint64_t s, uint64_t n, uint32_t tag, int8_t owner) {
    std::fill_n(cur().tag.begin() + s, n, tag);
    std::fill_n(cur().owner.begin() + s, n, owner);
  }
  void FromParent(uint64_t s, uint64_t n) {
    const Level& p = levels_[levels_.size() - 2];
    std::copy_n(p.tag.begin() + s, n, cur().tag.begin() + s);
    std::copy_n(p.owner.begin() + s, n, cur().owner.begin() + s);
  }
  uint64_t BlockSectors(uint64_t b) const { return std::min<uint64_t>(spb_, sectors() - b * spb_); }

  void WritePiece(uint64_t b, uint64_t ps, uint64_t pn, uint32_t tag) {
    const int8_t me = static_cast<int8_t>(top());
    uint8_t& st = cur().state[b];
    if (st == kFull || st == kPartial) {
      SetRange(ps, pn, tag, me);
    } else if (diff() && st == kNotPresent && !Whole(b, ps, pn)) {
      st = kPartial;
      SetRange(ps, pn, tag, me);
    } else {
      // Allocated whole: the rest of the block reads as before (zeros).
      st = kFull;
      std::fill_n(cur().owner.begin() + b * spb_, BlockSectors(b), me);
      SetRange(ps, pn, tag, me);
    }
  }
  void ZeroPiece(uint64_t b, uint64_t ps, uint64_t pn) {
    uint8_t& st = cur().state[b];
    if (Whole(b, ps, pn)) {
      st = kZeroBlock;
      SetRange(b * spb_, BlockSectors(b), 0, kOwnerZero);
    } else if (st == kFull) {
      std::fill_n(cur().tag.begin() + ps, pn, 0);
    } else if ((diff() && st == kNotPresent) || st == kPartial) {
      WritePiece(b, ps, pn, 0);
    }
  }
  void TrimPiece(uint64_t b, uint64_t ps, uint64_t pn) {
    if (!diff()) return ZeroPiece(b, ps, pn);
    uint8_t& st = cur().state[b];
    if (Whole(b, ps, pn)) {
      st = kNotPresent;
      FromParent(b * spb_, BlockSectors(b));
    } else if (st == kPartial) {
      FromParent(ps, pn);
    } else if (st == kFull) {
      st = kPartial;
      FromParent(ps, pn);
    }
  }

  uint64_t size_;
  uint32_t block_size_, lss_;
  uint64_t spb_;
  std::vector<Level> levels_;
};

// Fills `out` with the model's contents of sectors [s, s + out.size()/lss).
void ExpectedContents(const Level& l, uint64_t s, uint32_t lss, std::span<uint8_t> out) {
  for (uint64_t i = 0; i < out.size() / lss; ++i) FillSector(l.tag[s + i], s + i, lss, out.data() + i * lss);
}

// Compares the image's whole contents with level `l`; reports the first bad
// sectors.
void ExpectContentsEqual(Image& image, const Level& l, uint32_t lss, const std::string& what) {
  const uint64_t size = image.virtual_size();
  std::vector<uint8_t> got(4 * kMi), want(4 * kMi);
  int reported = 0;
  for (uint64_t off = 0; off < size; off += got.size()) {
    uint64_t n = std::min<uint64_t>(got.size(), size - off);
    std::span<uint8_t> g(got.data(), n), w(want.data(), n);
    Status s = image.Read(off, g);
    ASSERT_TRUE(s.ok()) << what << ": read at " << off << ": " << s.ToString();
    ExpectedContents(l, off / lss, lss, w);
    if (std::memcmp(g.data(), w.data(), n) == 0) continue;
    for (uint64_t i = 0; i < n / lss && reported < 5; ++i) {
      if (std::memcmp(g.data() + i * lss, w.data() + i * lss, lss) != 0) {
        uint64_t sector = off / lss + i;
        ADD_FAILURE() << what << ": sector " << sector << " (byte " << sector * lss << ") differs; model tag "
                      << l.tag[sector] << " owner " << int{l.owner[sector]};
        ++reported;
      }
    }
    if (reported >= 5) return;
  }
}

// Checks Map(): kinds and depths per sector, and that each data extent's
// file offset holds the data in the file at that depth.
void ExpectMapMatches(Image& image, const Level& l, int top, uint32_t lss, const std::vector<std::string>& paths,
                      const std::string& what) {
  auto map = image.Map(0, image.virtual_size());
  ASSERT_TRUE(map.ok()) << what << ": " << map.status().ToString();
  uint64_t next = 0;
  int reported = 0;
  for (const Extent& e : *map) {
    ASSERT_EQ(e.offset, next) << what << ": extents not contiguous";
    next = e.offset + e.length;
    ASSERT_EQ(e.offset % lss, 0u);
    ASSERT_EQ(e.length % lss, 0u);
    for (uint64_t s = e.offset / lss; s < next / lss && reported < 5; ++s) {
      int8_t o = l.owner[s];
      Extent::Kind want_kind = o == kOwnerNone ? Extent::Kind::kUnallocated
                               : o == kOwnerZero ? Extent::Kind::kZero
                                                 : Extent::Kind::kData;
      bool bad = e.kind != want_kind || (o >= 0 && e.depth != static_cast<uint32_t>(top - o));
      if (bad) {
        ADD_FAILURE() << what << ": Map at sector " << s << ": kind " << int(e.kind) << " depth " << e.depth
                      << ", model owner " << int{o} << " (top " << top << ")";
        ++reported;
      }
    }
    if (e.kind == Extent::Kind::kData && reported == 0) {
      ASSERT_LE(e.depth, static_cast<uint32_t>(top)) << what;
      const std::string& file = paths[top - e.depth];
      uint64_t n = std::min<uint64_t>(e.length, 1 * kMi);  // spot check the start of each extent
      std::vector<uint8_t> raw = FileBytes(file, e.file_offset, n), want(n);
      ExpectedContents(l, e.offset / lss, lss, want);
      EXPECT_TRUE(raw == want) << what << ": Map extent at " << e.offset << " depth " << e.depth
                               << " file offset " << e.file_offset << " does not hold the data";
    }
  }
  EXPECT_EQ(next, image.virtual_size()) << what;
}

// ---- random chain builder ------------------------------------------------------

struct Geometry {
  uint32_t block_size;
  uint32_t lss;
  uint64_t virtual_size;
};

class ChainBuilder {
 public:
  ChainBuilder(std::string dir, Geometry g, uint64_t seed, std::string ext = ".vhdx")
      : dir_(std::move(dir)), g_(g), model_(g.virtual_size, g.block_size, g.lss), rng_(seed), ext_(std::move(ext)) {}

  const std::vector<std::string>& paths() const { return paths_; }
  const ChainModel& model() const { return model_; }
  // BAT states summed over the differencing levels (to show the random
  // operations reach every kind of block).
  const BlockCounts& diff_counts() const { return diff_counts_; }

  // Adds a level (the base first), applies `ops` random operations, and
  // closes it (optionally checking the contents before closing).
  void AddLevel(int ops, bool verify_before_close) {
    const int level = static_cast<int>(paths_.size());
    std::string path = dir_ + "/level" + std::to_string(level) + (level == 0 ? std::string(".vhdx") : ext_);
    CreateOptions co;
    if (level == 0) {
      co.virtual_size = g_.virtual_size;
      co.block_size = g_.block_size;
      co.logical_sector_size = g_.lss;
    } else {
      co.parent_path = paths_.back();
    }
    auto image = Image::Create(path, co);
    ASSERT_TRUE(image.ok()) << path << ": " << image.status().ToString();
    ASSERT_EQ((*image)->logical_sector_size(), g_.lss);
    ASSERT_EQ((*image)->block_size(), g_.block_size);
    ASSERT_EQ((*image)->virtual_size(), g_.virtual_size);
    paths_.push_back(path);
    model_.NewLevel();
    for (int i = 0; i < ops; ++i) {
      RandomOp(**image);
      if (::testing::Test::HasFatalFailure()) return;
    }
    if (verify_before_close) {
      ExpectContentsEqual(**image, model_.level(level), g_.lss, path + " (before close)");
    }
    if (level > 0) {
      BlockCounts b = (*image)->Info().blocks;
      diff_counts_.partially_present += b.partially_present;
      diff_counts_.fully_present += b.fully_present;
      diff_counts_.zero += b.zero;
      diff_counts_.sector_bitmaps_present += b.sector_bitmaps_present;
    }
    Status s = (*image)->Close();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

 private:
  uint64_t Uniform(uint64_t lo, uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }

  void DoWrite(Image& image, uint64_t s, uint64_t n) {
    const uint32_t lss = g_.lss;
    n = std::min(n, model_.sectors() - s);
    if (n == 0) return;
    uint32_t tag = ++tag_;
    std::vector<uint8_t> buf(n * lss);
    for (uint64_t i = 0; i < n; ++i) FillSector(tag, s + i, lss, buf.data() + i * lss);
    Status st = image.Write(s * lss, buf);
    ASSERT_TRUE(st.ok()) << "write " << s << "+" << n << ": " << st.ToString();
    model_.Write(s, n, tag);
  }

  void RandomOp(Image& image) {
    const uint64_t spb = g_.block_size / g_.lss;
    const uint64_t sectors = model_.sectors();
    const uint64_t blocks = model_.blocks();
    switch (Uniform(0, 9)) {
      case 0:
      case 1:
      case 2: {  // short run of sectors
        uint64_t s = Uniform(0, sectors - 1);
        return DoWrite(image, s, Uniform(1, 64));
      }
      case 3: {  // a whole block
        uint64_t b = Uniform(0, blocks - 1);
        return DoWrite(image, b * spb, spb);
      }
      case 4: {  // across a block boundary
        uint64_t b = Uniform(1, blocks - 1);
        uint64_t k = Uniform(1, 16);
        return DoWrite(image, b * spb - k, k + Uniform(1, 16));
      }
      case 5: {  // across a sector-bitmap page boundary (or near the end)
        uint64_t pages = sectors / kBitmapPageSectors;
        uint64_t boundary = pages == 0 ? sectors / 2 : Uniform(1, pages) * kBitmapPageSectors;
        if (boundary >= sectors) boundary = sectors - 1;
        uint64_t k = Uniform(1, 40);
        if (k > boundary) k = boundary;
        return DoWrite(image, boundary - k, k + Uniform(1, 40));
      }
      case 6: {  // several blocks, unaligned
        uint64_t s = Uniform(0, sectors - 1);
        return DoWrite(image, s, Uniform(spb / 2, spb * 5 / 2));
      }
      case 7: {  // write-zeroes: a partial range or whole blocks
        uint64_t s, n;
        if (Uniform(0, 1)) {
          s = Uniform(0, blocks - 1) * spb;
          n = spb * Uniform(1, 2);
        } else {
          s = Uniform(0, sectors - 1);
          n = Uniform(1, 300);
        }
        n = std::min(n, sectors - s);
        Status st = image.WriteZeroes(s * g_.lss, n * g_.lss);
        ASSERT_TRUE(st.ok()) << st.ToString();
        model_.WriteZeroes(s, n);
        return;
      }
      default: {  // trim: the parent shows through again (zeros in a base)
        uint64_t s, n;
        if (Uniform(0, 1)) {
          s = Uniform(0, blocks - 1) * spb;
          n = spb;
        } else {
          s = Uniform(0, sectors - 1);
          n = Uniform(1, 300);
        }
        n = std::min(n, sectors - s);
        Status st = image.Trim(s * g_.lss, n * g_.lss);
        ASSERT_TRUE(st.ok()) << st.ToString();
        model_.Trim(s, n);
        return;
      }
    }
  }

  std::string dir_;
  Geometry g_;
  ChainModel model_;
  std::mt19937_64 rng_;
  std::string ext_;
  std::vector<std::string> paths_;
  uint32_t tag_ = 0;
  BlockCounts diff_counts_;
};

// ---- helpers for crafting locators ---------------------------------------------

Guid DataWriteGuidOf(const std::string& path) {
  OpenOptions o;
  o.open_parents = false;
  auto image = Image::Open(path, o);
  EXPECT_TRUE(image.ok()) << path << ": " << image.status().ToString();
  if (!image.ok()) return Guid();
  ImageInfo info = (*image)->Info();
  return info.headers[info.headers[0].current ? 0 : 1].data_write_guid;
}

std::vector<std::pair<std::string, std::string>> LocatorOf(const std::string& path) {
  OpenOptions o;
  o.open_parents = false;
  auto image = Image::Open(path, o);
  EXPECT_TRUE(image.ok()) << path << ": " << image.status().ToString();
  if (!image.ok()) return {};
  return (*image)->Info().parent_locator;
}

std::string LocatorValue(const std::vector<std::pair<std::string, std::string>>& loc, const std::string& key) {
  for (const auto& [k, v] : loc) {
    if (k == key) return v;
  }
  return "(absent)";
}

// Rewrites the parent locator of the (closed, clean) differencing image at
// `path` in place: the metadata region has no checksum, and the locator is
// the last item, so it may grow.
void EditLocator(const std::string& path, const std::function<void(format::ParentLocator&)>& edit) {
  uint64_t region_off = 0, region_len = 0;
  {
    OpenOptions o;
    o.open_parents = false;
    auto image = Image::Open(path, o);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    for (const RegionInfo& r : (*image)->Info().regions) {
      if (r.name == "metadata") {
        region_off = r.file_offset;
        region_len = r.length;
      }
    }
  }
  ASSERT_NE(region_off, 0u);
  std::vector<uint8_t> region = FileBytes(path, region_off, region_len);
  auto table = format::MetadataTable::Decode(std::span<const uint8_t>(region.data(), 64 * 1024), region_len, region_off);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  format::MetadataTableEntry* entry = nullptr;
  uint32_t items_end = 0;
  for (auto& e : table->entries) {
    items_end = std::max(items_end, e.offset + e.length);
    if (!e.is_user && e.item_id == format::ParentLocatorGuid()) entry = &e;
  }
  ASSERT_NE(entry, nullptr);
  ASSERT_EQ(entry->offset + entry->length, items_end) << "the locator is expected to be the last item";
  auto loc = format::ParentLocator::Decode(std::span<const uint8_t>(region.data() + entry->offset, entry->length),
                                           region_off + entry->offset);
  ASSERT_TRUE(loc.ok()) << loc.status().ToString();
  edit(*loc);
  std::vector<uint8_t> encoded = loc->Encode();
  ASSERT_LE(entry->offset + encoded.size(), region_len);
  std::fill(region.begin() + entry->offset, region.begin() + entry->offset + entry->length, 0);
  std::memcpy(region.data() + entry->offset, encoded.data(), encoded.size());
  entry->length = static_cast<uint32_t>(encoded.size());
  table->EncodeTo(std::span<uint8_t>(region.data(), 64 * 1024));
  WriteFileBytes(path, region_off, region);
}

Result<std::unique_ptr<Image>> CreateBase(const std::string& path, uint64_t size, uint32_t block_size = 1 << 20,
                                          uint32_t lss = 512) {
  CreateOptions co;
  co.virtual_size = size;
  co.block_size = block_size;
  co.logical_sector_size = lss;
  return Image::Create(path, co);
}

Result<std::unique_ptr<Image>> CreateChild(const std::string& path, const std::string& parent) {
  CreateOptions co;
  co.parent_path = parent;
  return Image::Create(path, co);
}

// Writes `len` bytes of pattern `seed` at `off` and closes the image.
void WriteAndClose(Result<std::unique_ptr<Image>> image, uint64_t off, uint64_t len, uint64_t seed) {
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  if (len) {
    std::vector<uint8_t> data = test::Pattern(seed, len);
    Status s = (*image)->Write(off, data);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  Status s = (*image)->Close();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

std::vector<uint8_t> ReadAll(Image& image, uint64_t off, uint64_t len) {
  std::vector<uint8_t> out(len);
  Status s = image.Read(off, out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// ---- random chains compared with the model --------------------------------------

struct ChainCase {
  int depth;  // number of differencing levels on top of the base
  Geometry geo;
  std::string ext;
};

void PrintTo(const ChainCase& c, std::ostream* os) {
  *os << "depth " << c.depth << ", block size " << c.geo.block_size << ", lss " << c.geo.lss << ", size "
      << c.geo.virtual_size << ", " << c.ext;
}

class ChainRandomTest : public ::testing::TestWithParam<ChainCase> {};

TEST_P(ChainRandomTest, MatchesFlatModel) {
  const ChainCase& c = GetParam();
  TempDir dir;
  ChainBuilder builder(dir.path(), c.geo, 0x5eed0000u + c.depth * 131 + c.geo.block_size / kMi * 7 + c.geo.lss,
                       c.ext);
  for (int level = 0; level <= c.depth; ++level) {
    builder.AddLevel(level == 0 ? 40 : 30, level == c.depth);
    ASSERT_FALSE(HasFatalFailure());
  }
  const ChainModel& model = builder.model();
  const auto& paths = builder.paths();
  EXPECT_GT(builder.diff_counts().partially_present, 0u);
  if (c.geo.block_size <= (2u << 20)) {
    EXPECT_GT(builder.diff_counts().fully_present, 0u);
  }
  EXPECT_GT(builder.diff_counts().sector_bitmaps_present, 0u);

  auto image = Image::Open(paths.back());
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ((*image)->type(), DiskType::kDifferencing);
  ImageInfo info = (*image)->Info();
  ASSERT_EQ(info.chain.size(), paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    EXPECT_EQ(fs::weakly_canonical(info.chain[i].path), fs::weakly_canonical(paths[paths.size() - 1 - i]));
    EXPECT_EQ(info.chain[i].differencing, i + 1 < paths.size());
  }
  ExpectContentsEqual(**image, model.level(model.top()), c.geo.lss, "top");
  ExpectMapMatches(**image, model.level(model.top()), model.top(), c.geo.lss, paths, "top");
  ASSERT_TRUE((*image)->Close().ok());

  // A middle level reads its own state, unaffected by its descendants.
  if (c.depth >= 2) {
    int mid = c.depth / 2;
    auto m = Image::Open(paths[mid]);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    ExpectContentsEqual(**m, model.level(mid), c.geo.lss, "level " + std::to_string(mid));
    std::vector<std::string> prefix(paths.begin(), paths.begin() + mid + 1);
    ExpectMapMatches(**m, model.level(mid), mid, c.geo.lss, prefix, "level " + std::to_string(mid));
  }
}

std::vector<ChainCase> RandomCases() {
  std::vector<ChainCase> out;
  const Geometry geos[] = {
      {1 << 20, 512, 64 * kMi},    // ChunkRatio 4096; bitmap pages every 16 MiB
      {2 << 20, 512, 64 * kMi},
      {32 << 20, 512, 64 * kMi},   // a block spans two bitmap pages
      {1 << 20, 4096, 136 * kMi},  // bitmap page boundary at 128 MiB
      {2 << 20, 4096, 136 * kMi},
  };
  for (const Geometry& g : geos) {
    for (int depth : {1, 2, 3, 4, 5, 6, 7, 8}) {
      if (g.block_size == (32u << 20) && depth != 1 && depth != 3) continue;  // slow: 32 MiB zero fills
      out.push_back({depth, g, ".vhdx"});
    }
  }
  out.push_back({3, {1 << 20, 512, 64 * kMi}, ".avhdx"});
  out.push_back({2, {2 << 20, 4096, 136 * kMi}, ".avhdx"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Chains, ChainRandomTest, ::testing::ValuesIn(RandomCases()), [](const auto& p) {
  const ChainCase& c = p.param;
  return "depth" + std::to_string(c.depth) + "_bs" + std::to_string(c.geo.block_size / kMi) + "M_lss" +
         std::to_string(c.geo.lss) + (c.ext == ".avhdx" ? "_avhdx" : "");
});

// ---- creation -------------------------------------------------------------------

TEST(ChainCreate, ChildTakesGeometryFromParentAndWritesLocator) {
  TempDir dir;
  fs::create_directories(dir.Join("base"));
  fs::create_directories(dir.Join("kids"));
  std::string parent = dir.Join("base/parent.vhdx");
  {
    CreateOptions co;
    co.virtual_size = 48 * kMi;
    co.block_size = 2 << 20;
    co.logical_sector_size = 4096;
    co.physical_sector_size = 512;
    auto p = Image::Create(parent, co);
    WriteAndClose(std::move(p), 0, 8192, 1);
  }
  std::string before = test::Sha256OfFile(parent);
  Guid parent_dwg = DataWriteGuidOf(parent);
  Guid parent_disk_id;
  {
    OpenOptions o;
    auto p = Image::Open(parent, o);
    ASSERT_TRUE(p.ok());
    parent_disk_id = (*p)->Info().disk_id;
  }

  // Same directory.
  std::string same = dir.Join("base/child.vhdx");
  {
    auto c = CreateChild(same, parent);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ((*c)->type(), DiskType::kDifferencing);
    EXPECT_EQ((*c)->logical_sector_size(), 4096u);
    EXPECT_EQ((*c)->physical_sector_size(), 512u);
    EXPECT_EQ((*c)->block_size(), 2u << 20);
    EXPECT_EQ((*c)->virtual_size(), 48 * kMi);
    ImageInfo info = (*c)->Info();
    EXPECT_TRUE(info.has_parent);
    EXPECT_EQ(info.disk_id, parent_disk_id);
    ASSERT_EQ(info.chain.size(), 2u);
    ASSERT_TRUE((*c)->Close().ok());
  }
  auto loc = LocatorOf(same);
  EXPECT_EQ(LocatorValue(loc, "parent_linkage"), parent_dwg.ToString(true, true));
  EXPECT_EQ(LocatorValue(loc, "relative_path"), ".\\parent.vhdx");
  // The linkage is lowercase with braces (libvhdi compares it as text).
  std::string linkage = LocatorValue(loc, "parent_linkage");
  EXPECT_EQ(linkage.size(), 38u);
  EXPECT_EQ(linkage.front(), '{');
  EXPECT_EQ(linkage, [&] {
    std::string l = linkage;
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char ch) { return std::tolower(ch); });
    return l;
  }());

  // Another directory, parent given by a relative path from the cwd.
  std::string other = dir.Join("kids/child.avhdx");
  {
    std::error_code ec;
    fs::path old_cwd = fs::current_path();
    fs::current_path(dir.path());
    auto c = CreateChild("kids/child.avhdx", "base/parent.vhdx");
    fs::current_path(old_cwd);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    ASSERT_TRUE((*c)->Close().ok());
  }
  loc = LocatorOf(other);
  EXPECT_EQ(LocatorValue(loc, "relative_path"), "..\\base\\parent.vhdx");
  EXPECT_EQ(LocatorValue(loc, "parent_linkage"), parent_dwg.ToString(true, true));

  // Explicit block size and larger size for the child.
  {
    CreateOptions co;
    co.parent_path = parent;
    co.block_size = 1 << 20;
    co.virtual_size = 64 * kMi;
    auto c = Image::Create(dir.Join("kids/big.vhdx"), co);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ((*c)->block_size(), 1u << 20);
    EXPECT_EQ((*c)->virtual_size(), 64 * kMi);
    EXPECT_EQ((*c)->logical_sector_size(), 4096u);
    ASSERT_TRUE((*c)->Close().ok());
  }
  // Creating children never modified the parent.
  EXPECT_EQ(test::Sha256OfFile(parent), before);
  EXPECT_EQ(DataWriteGuidOf(parent), parent_dwg);
}

TEST(ChainCreate, MissingParentFailsAndLeavesNoFile) {
  TempDir dir;
  auto c = CreateChild(dir.Join("child.vhdx"), dir.Join("nope.vhdx"));
  ASSERT_FALSE(c.ok());
  EXPECT_FALSE(fs::exists(dir.Join("child.vhdx")));
}

TEST(ChainCreate, RefusesToReplaceAFileOfItsOwnChain) {
  TempDir dir;
  std::string a = dir.Join("a.vhdx"), b = dir.Join("b.vhdx"), other = dir.Join("other.vhdx");
  WriteAndClose(CreateBase(a, 8 * kMi), 0, 4096, 1);
  WriteAndClose(CreateChild(b, a), 4096, 4096, 2);
  WriteAndClose(CreateBase(other, 8 * kMi), 0, 4096, 3);
  const std::string sum_a = test::Sha256OfFile(a), sum_b = test::Sha256OfFile(b), sum_o = test::Sha256OfFile(other);
  for (const auto& [target, parent] : std::vector<std::pair<std::string, std::string>>{{a, b}, {b, b}, {a, a}}) {
    CreateOptions co;
    co.parent_path = parent;
    co.overwrite = true;
    auto r = Image::Create(target, co);
    ASSERT_FALSE(r.ok()) << target << " over " << parent;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().ToString();
  }
  // A missing parent leaves an existing target alone too.
  CreateOptions co;
  co.parent_path = dir.Join("missing.vhdx");
  co.overwrite = true;
  EXPECT_FALSE(Image::Create(other, co).ok());
  EXPECT_EQ(test::Sha256OfFile(a), sum_a);
  EXPECT_EQ(test::Sha256OfFile(b), sum_b);
  EXPECT_EQ(test::Sha256OfFile(other), sum_o);
  // Replacing an unrelated file works.
  co.parent_path = b;
  auto ok = Image::Create(other, co);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  std::vector<uint8_t> want = test::Pattern(1, 4096), second = test::Pattern(2, 4096);
  want.insert(want.end(), second.begin(), second.end());
  EXPECT_TRUE(ReadAll(**ok, 0, 8192) == want);
}

TEST(ChainCreate, BlockStatesAfterPartialAndFullWrites) {
  TempDir dir;
  WriteAndClose(CreateBase(dir.Join("p.vhdx"), 16 * kMi), 0, 16 * kMi, 7);
  auto c = CreateChild(dir.Join("c.vhdx"), dir.Join("p.vhdx"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  std::vector<uint8_t> a = test::Pattern(8, 4096), full = test::Pattern(9, 1 * kMi);
  ASSERT_TRUE((*c)->Write(512, a).ok());            // block 0: partial
  ASSERT_TRUE((*c)->Write(3 * kMi, full).ok());     // block 3: full
  ASSERT_TRUE((*c)->Write(5 * kMi - 512, std::span<const uint8_t>(a.data(), 1024)).ok());  // blocks 4 and 5
  ImageInfo info = (*c)->Info();
  EXPECT_EQ(info.blocks.partially_present, 3u);
  EXPECT_EQ(info.blocks.fully_present, 1u);
  EXPECT_EQ(info.blocks.sector_bitmaps_present, 1u);
  ASSERT_TRUE((*c)->Close().ok());

  auto r = Image::Open(dir.Join("c.vhdx"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  info = (*r)->Info();
  EXPECT_EQ(info.blocks.partially_present, 3u);
  EXPECT_EQ(info.blocks.fully_present, 1u);
  EXPECT_EQ(info.blocks.sector_bitmaps_present, 1u);
  std::vector<uint8_t> want = test::Pattern(7, 16 * kMi);
  std::copy(a.begin(), a.end(), want.begin() + 512);
  std::copy(full.begin(), full.end(), want.begin() + 3 * kMi);
  std::copy(a.begin(), a.begin() + 1024, want.begin() + 5 * kMi - 512);
  EXPECT_TRUE(ReadAll(**r, 0, 16 * kMi) == want);
  // Map: the partial block shows the parent around the written sectors.
  auto map = (*r)->Map(0, 1 * kMi);
  ASSERT_TRUE(map.ok());
  ASSERT_EQ(map->size(), 3u);
  EXPECT_EQ((*map)[0].depth, 1u);
  EXPECT_EQ((*map)[0].length, 512u);
  EXPECT_EQ((*map)[1].depth, 0u);
  EXPECT_EQ((*map)[1].length, 4096u);
  EXPECT_EQ((*map)[2].depth, 1u);
}

// ---- opening chains ---------------------------------------------------------------

TEST(ChainOpen, ModifiedParentBreaksLinkage) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 1 * kMi, 1);
  WriteAndClose(CreateChild(c, p), 4096, 4096, 2);
  ASSERT_TRUE(Image::Open(c).ok());

  // Writing the parent after the child linked to it changes its DataWriteGuid.
  Guid old_dwg = DataWriteGuidOf(p);
  {
    OpenOptions rw;
    rw.read_only = false;
    WriteAndClose(Image::Open(p, rw), 2 * kMi, 4096, 3);
  }
  ASSERT_NE(DataWriteGuidOf(p), old_dwg);

  auto bad = Image::Open(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.status().message().find("parent_linkage"), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find(p), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find(old_dwg.ToString(true, true)), std::string::npos)
      << bad.status().ToString();

  OpenOptions ignore;
  ignore.ignore_parent_linkage = true;
  auto ok = Image::Open(c, ignore);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  // Reads now come from the modified parent.
  std::vector<uint8_t> want = test::Pattern(3, 4096);
  EXPECT_TRUE(ReadAll(**ok, 2 * kMi, 4096) == want);
  EXPECT_TRUE(ReadAll(**ok, 4096, 4096) == test::Pattern(2, 4096));

  // Opening the child alone (no parents) still works.
  OpenOptions alone;
  alone.open_parents = false;
  EXPECT_TRUE(Image::Open(c, alone).ok());
}

TEST(ChainOpen, ParentLinkage2IsAccepted) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 1 * kMi, 1);
  WriteAndClose(CreateChild(c, p), 0, 0, 0);
  Guid dwg = DataWriteGuidOf(p);
  EditLocator(c, [&](format::ParentLocator& loc) {
    loc.Set("parent_linkage", Guid::Random().ToString(true, true));
    loc.Set("parent_linkage2", dwg.ToString(true, false));  // uppercase is accepted on read
  });
  auto ok = Image::Open(c);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ReadAll(**ok, 0, 1 * kMi) == test::Pattern(1, 1 * kMi));
  ASSERT_TRUE((*ok)->Close().ok());

  EditLocator(c, [&](format::ParentLocator& loc) { loc.Set("parent_linkage2", Guid::Random().ToString(true, true)); });
  auto bad = Image::Open(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("parent_linkage2"), std::string::npos) << bad.status().ToString();
}

TEST(ChainOpen, MissingParentListsPathsTried) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 4096, 1);
  WriteAndClose(CreateChild(c, p), 0, 0, 0);
  EditLocator(c, [&](format::ParentLocator& loc) {
    loc.Set("absolute_win32_path", "\\\\?\\" + std::string(dir.Join("elsewhere/p.vhdx")));
  });
  fs::rename(p, dir.Join("moved.vhdx"));
  auto bad = Image::Open(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kNotFound);
  const std::string& m = bad.status().message();
  EXPECT_NE(m.find(p), std::string::npos) << m;
  EXPECT_NE(m.find(dir.Join("elsewhere/p.vhdx")), std::string::npos) << m;

  // The absolute path is tried after the relative one.
  fs::create_directories(dir.Join("elsewhere"));
  fs::rename(dir.Join("moved.vhdx"), dir.Join("elsewhere/p.vhdx"));
  auto ok = Image::Open(c);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ReadAll(**ok, 0, 4096) == test::Pattern(1, 4096));
}

// Windows drive paths are looked up where WSL mounts the drives; volume
// GUID paths cannot be resolved on this host and are skipped.
TEST(ChainOpen, DriveLetterPathIsTriedUnderMnt) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 0, 0);
  WriteAndClose(CreateChild(c, p), 0, 0, 0);
  EditLocator(c, [&](format::ParentLocator& loc) {
    loc.Set("relative_path", ".\\gone.vhdx");
    loc.Set("volume_path", "\\\\?\\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\\vms\\p.vhdx");
    loc.Set("absolute_win32_path", "\\\\?\\C:\\vhdx-test-no-such-dir\\p.vhdx");
  });
  auto r = Image::Open(c);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find(dir.Join("gone.vhdx")), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("/mnt/c/vhdx-test-no-such-dir/p.vhdx"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(r.status().message().find("Volume{"), std::string::npos) << r.status().ToString();
}

TEST(ChainOpen, WrongFileAtRelativePathFallsBackToAbsolutePath) {
  TempDir dir;
  fs::create_directories(dir.Join("real"));
  std::string p = dir.Join("real/p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 4096, 1);
  WriteAndClose(CreateChild(c, p), 0, 0, 0);
  // relative_path points at an unrelated image with the same name.
  WriteAndClose(CreateBase(dir.Join("p.vhdx"), 8 * kMi), 0, 4096, 99);
  EditLocator(c, [&](format::ParentLocator& loc) {
    loc.Set("relative_path", ".\\p.vhdx");
    loc.Set("absolute_win32_path", "\\\\?\\" + p);
  });
  auto ok = Image::Open(c);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ReadAll(**ok, 0, 4096) == test::Pattern(1, 4096));
  ASSERT_TRUE((*ok)->Close().ok());

  // Neither candidate matches: a linkage error naming both.
  fs::remove(p);
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 0, 0);
  auto bad = Image::Open(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(bad.status().message().find(dir.Join("p.vhdx")), std::string::npos) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find(p), std::string::npos) << bad.status().ToString();
}

// A stale relative path that reaches a sibling (same differencing
// grandparent) must not make the real parent look like a cycle.
TEST(ChainOpen, SiblingAtRelativePathIsNotACycle) {
  TempDir dir;
  fs::create_directories(dir.Join("real"));
  std::string x0 = dir.Join("x0.vhdx"), x = dir.Join("x.vhdx"), sib = dir.Join("p.vhdx");
  std::string p = dir.Join("real/p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(x0, 8 * kMi), 0, 4096, 1);
  WriteAndClose(CreateChild(x, x0), 4096, 4096, 2);
  WriteAndClose(CreateChild(sib, x), 8192, 4096, 3);
  WriteAndClose(CreateChild(p, x), 8192, 4096, 4);
  WriteAndClose(CreateChild(c, p), 12288, 4096, 5);
  EditLocator(c, [&](format::ParentLocator& loc) {
    loc.Set("relative_path", ".\\p.vhdx");
    loc.Set("absolute_win32_path", "\\\\?\\" + p);
  });
  auto ok = Image::Open(c);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  const uint64_t seeds[4] = {1, 2, 4, 5};  // x0, x, p (not the sibling's 3), c
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(ReadAll(**ok, i * 4096, 4096) == test::Pattern(seeds[i], 4096)) << i;
  EXPECT_EQ((*ok)->Info().chain.size(), 4u);
}

TEST(ChainOpen, ParentPathOverride) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 1 * kMi, 1);
  WriteAndClose(CreateChild(c, p), 4096, 4096, 2);
  std::string renamed = dir.Join("renamed-parent.vhdx");
  fs::rename(p, renamed);
  ASSERT_EQ(Image::Open(c).status().code(), ErrorCode::kNotFound);
  OpenOptions o;
  o.parent_path = renamed;
  auto ok = Image::Open(c, o);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  std::vector<uint8_t> want = test::Pattern(1, 1 * kMi);
  std::vector<uint8_t> two = test::Pattern(2, 4096);
  std::copy(two.begin(), two.end(), want.begin() + 4096);
  EXPECT_TRUE(ReadAll(**ok, 0, 1 * kMi) == want);
  ImageInfo info = (*ok)->Info();
  ASSERT_EQ(info.chain.size(), 2u);
  EXPECT_EQ(info.chain[1].path, renamed);
  ASSERT_TRUE((*ok)->Close().ok());

  // The override is checked like any other candidate.
  std::string stranger = dir.Join("stranger.vhdx");
  WriteAndClose(CreateBase(stranger, 8 * kMi), 0, 0, 0);
  o.parent_path = stranger;
  auto bad = Image::Open(c, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kCorruption);
}

TEST(ChainOpen, ParentPathOverrideAppliesToTheFirstParentOnly) {
  TempDir dir;
  std::string a = dir.Join("a.vhdx"), b = dir.Join("b.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(a, 8 * kMi), 0, 4096, 1);
  WriteAndClose(CreateChild(b, a), 4096, 4096, 2);
  WriteAndClose(CreateChild(c, b), 8192, 4096, 3);
  fs::create_directories(dir.Join("sub"));
  fs::rename(b, dir.Join("sub/b.vhdx"));
  fs::rename(a, dir.Join("sub/a.vhdx"));
  OpenOptions o;
  o.parent_path = dir.Join("sub/b.vhdx");
  auto ok = Image::Open(c, o);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ReadAll(**ok, 0, 4096) == test::Pattern(1, 4096));
  EXPECT_TRUE(ReadAll(**ok, 4096, 4096) == test::Pattern(2, 4096));
  EXPECT_TRUE(ReadAll(**ok, 8192, 4096) == test::Pattern(3, 4096));
  EXPECT_EQ((*ok)->Info().chain.size(), 3u);
}

TEST(ChainOpen, CycleOfTwoIsReported) {
  TempDir dir;
  std::string x = dir.Join("x.vhdx"), a = dir.Join("a.vhdx"), b = dir.Join("b.vhdx");
  WriteAndClose(CreateBase(x, 8 * kMi), 0, 0, 0);
  WriteAndClose(CreateChild(a, x), 0, 4096, 1);
  WriteAndClose(CreateChild(b, a), 4096, 4096, 2);
  // Point a at b: a -> b -> a.
  Guid b_dwg = DataWriteGuidOf(b);
  EditLocator(a, [&](format::ParentLocator& loc) {
    loc.Set("relative_path", ".\\b.vhdx");
    loc.Set("parent_linkage", b_dwg.ToString(true, true));
  });
  for (const std::string& start : {a, b}) {
    auto r = Image::Open(start);
    ASSERT_FALSE(r.ok()) << start;
    EXPECT_NE(r.status().message().find("cycle"), std::string::npos) << r.status().ToString();
    OpenOptions ignore;
    ignore.ignore_parent_linkage = true;
    auto r2 = Image::Open(start, ignore);
    ASSERT_FALSE(r2.ok()) << start;
    EXPECT_NE(r2.status().message().find("cycle"), std::string::npos) << r2.status().ToString();
  }
  // The detection state does not leak into later opens on this thread.
  EXPECT_TRUE(Image::Open(x).ok());
  OpenOptions alone;
  alone.open_parents = false;
  EXPECT_TRUE(Image::Open(a, alone).ok());
}

TEST(ChainOpen, SelfParentIsReported) {
  TempDir dir;
  std::string x = dir.Join("x.vhdx"), a = dir.Join("a.vhdx");
  WriteAndClose(CreateBase(x, 8 * kMi), 0, 0, 0);
  WriteAndClose(CreateChild(a, x), 0, 4096, 1);
  Guid a_dwg = DataWriteGuidOf(a);
  EditLocator(a, [&](format::ParentLocator& loc) {
    loc.Set("relative_path", ".\\a.vhdx");
    loc.Set("parent_linkage", a_dwg.ToString(true, true));
  });
  auto r = Image::Open(a);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cycle"), std::string::npos) << r.status().ToString();
  // Also through a hard link (same file, other name).
  ASSERT_EQ(::link(a.c_str(), dir.Join("alias.vhdx").c_str()), 0);
  EditLocator(a, [&](format::ParentLocator& loc) { loc.Set("relative_path", ".\\alias.vhdx"); });
  r = Image::Open(a);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cycle"), std::string::npos) << r.status().ToString();
}

TEST(ChainOpen, SectorSizeMismatchIsReported) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), q = dir.Join("q.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 0, 0);
  WriteAndClose(CreateBase(q, 8 * kMi, 1 << 20, 4096), 0, 0, 0);
  WriteAndClose(CreateChild(c, p), 0, 0, 0);
  Guid q_dwg = DataWriteGuidOf(q);
  EditLocator(c, [&](format::ParentLocator& loc) {
    loc.Set("relative_path", ".\\q.vhdx");
    loc.Set("parent_linkage", q_dwg.ToString(true, true));
  });
  auto r = Image::Open(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sector size"), std::string::npos) << r.status().ToString();
}

TEST(ChainOpen, MovedChainStillOpens) {
  TempDir dir;
  fs::create_directories(dir.Join("chain/base"));
  fs::create_directories(dir.Join("chain/deltas/deeper"));
  std::string a = dir.Join("chain/base/a.vhdx");
  std::string b = dir.Join("chain/deltas/b.avhdx");
  std::string c = dir.Join("chain/deltas/deeper/c.avhdx");
  WriteAndClose(CreateBase(a, 8 * kMi, 1 << 20, 4096), 0, 2 * kMi, 1);
  WriteAndClose(CreateChild(b, a), 4096, 4096, 2);
  WriteAndClose(CreateChild(c, b), 1 * kMi - 4096, 8192, 3);
  EXPECT_EQ(LocatorValue(LocatorOf(b), "relative_path"), "..\\base\\a.vhdx");
  EXPECT_EQ(LocatorValue(LocatorOf(c), "relative_path"), "..\\b.avhdx");

  std::vector<uint8_t> want = test::Pattern(1, 2 * kMi);
  std::vector<uint8_t> p2 = test::Pattern(2, 4096), p3 = test::Pattern(3, 8192);
  std::copy(p2.begin(), p2.end(), want.begin() + 4096);
  std::copy(p3.begin(), p3.end(), want.begin() + 1 * kMi - 4096);

  fs::rename(dir.Join("chain"), dir.Join("moved"));
  auto r = Image::Open(dir.Join("moved/deltas/deeper/c.avhdx"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(ReadAll(**r, 0, 2 * kMi) == want);
  ImageInfo info = (*r)->Info();
  ASSERT_EQ(info.chain.size(), 3u);
  EXPECT_EQ(fs::path(info.chain[2].path).lexically_normal(), fs::path(dir.Join("moved/base/a.vhdx")));
  ASSERT_TRUE((*r)->Close().ok());

  // Opened through a relative path from another working directory.
  fs::path old_cwd = fs::current_path();
  fs::current_path(dir.Join("moved/base"));
  auto r2 = Image::Open("../deltas/deeper/c.avhdx");
  fs::current_path(old_cwd);
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_TRUE(ReadAll(**r2, 0, 2 * kMi) == want);
}

TEST(ChainOpen, ChildBiggerThanParentReadsZerosBeyondParentEnd) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 3 * kMi), 0, 3 * kMi, 1);
  {
    CreateOptions co;
    co.parent_path = p;
    co.virtual_size = 8 * kMi;
    auto img = Image::Create(c, co);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    // A partial write to a block beyond the parent's end, and one that
    // straddles it.
    std::vector<uint8_t> d = test::Pattern(2, 4096);
    ASSERT_TRUE((*img)->Write(6 * kMi + 512, d).ok());
    ASSERT_TRUE((*img)->Write(3 * kMi - 2048, d).ok());
    ASSERT_TRUE((*img)->Close().ok());
  }
  auto r = Image::Open(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ((*r)->virtual_size(), 8 * kMi);
  std::vector<uint8_t> want(8 * kMi, 0);
  std::vector<uint8_t> p1 = test::Pattern(1, 3 * kMi), d = test::Pattern(2, 4096);
  std::copy(p1.begin(), p1.end(), want.begin());
  std::copy(d.begin(), d.end(), want.begin() + 6 * kMi + 512);
  std::copy(d.begin(), d.end(), want.begin() + 3 * kMi - 2048);
  EXPECT_TRUE(ReadAll(**r, 0, 8 * kMi) == want);
  // Reads that straddle the parent's end, sector by sector and unaligned to blocks.
  EXPECT_TRUE(ReadAll(**r, 3 * kMi - 4096, 16384) ==
              std::vector<uint8_t>(want.begin() + 3 * kMi - 4096, want.begin() + 3 * kMi + 12288));
  auto map = (*r)->Map(0, 8 * kMi);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  for (const Extent& e : *map) {
    if (e.offset >= 3 * kMi + 2048) {
      bool ours = e.offset >= 6 * kMi + 512 && e.offset + e.length <= 6 * kMi + 4608;
      if (!ours) {
        EXPECT_EQ(e.kind, Extent::Kind::kUnallocated) << e.offset;
      }
    }
  }
}

TEST(ChainOpen, ChildSmallerThanParent) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 8 * kMi), 0, 8 * kMi, 1);
  CreateOptions co;
  co.parent_path = p;
  co.virtual_size = 3 * kMi - 4096;  // last block short
  auto img = Image::Create(c, co);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  std::vector<uint8_t> d = test::Pattern(2, 8192);
  ASSERT_TRUE((*img)->Write(3 * kMi - 8192 - 4096, d).ok());
  ASSERT_TRUE((*img)->Close().ok());
  auto r = Image::Open(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<uint8_t> want = test::Pattern(1, 8 * kMi);
  want.resize(3 * kMi - 4096);
  std::copy(d.begin(), d.end(), want.end() - 8192);
  EXPECT_TRUE(ReadAll(**r, 0, want.size()) == want);
}

// A parent with a dirty log is opened read-only and replayed in memory: the
// child links to its replayed state and reads through it, and the parent's
// file never changes.
TEST(ChainOpen, DirtyParentIsReplayedInMemory) {
  if (!test::SamplesAvailable()) GTEST_SKIP() << "shared/samples not found";
  TempDir dir;
  std::string p = test::DecompressSample("iotest-dirtylog-10G-4M.vhdx", dir.path());
  std::string before = test::Sha256OfFile(p);
  std::string c = dir.Join("child.vhdx");
  {
    auto img = CreateChild(c, p);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    EXPECT_EQ((*img)->virtual_size(), 10ull << 30);
    std::vector<uint8_t> d = test::Pattern(5, 8192);
    ASSERT_TRUE((*img)->Write(4 * kMi - 4096, d).ok());
    ASSERT_TRUE((*img)->Close().ok());
  }
  EXPECT_EQ(test::Sha256OfFile(p), before);
  auto parent = Image::Open(p);
  ASSERT_TRUE(parent.ok()) << parent.status().ToString();
  EXPECT_EQ((*parent)->Info().log_state, LogState::kReplayedInMemory);
  auto child = Image::Open(c);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  // Everything the parent holds reads the same through the child, except
  // the range the child wrote.
  auto map = (*parent)->Map(0, (*parent)->virtual_size());
  ASSERT_TRUE(map.ok());
  uint64_t compared = 0;
  for (const Extent& e : *map) {
    if (e.kind != Extent::Kind::kData) continue;
    for (uint64_t off = e.offset; off < e.offset + e.length; off += 4 * kMi) {
      uint64_t n = std::min<uint64_t>(4 * kMi, e.offset + e.length - off);
      std::vector<uint8_t> want = ReadAll(**parent, off, n);
      const uint64_t w0 = 4 * kMi - 4096, w1 = w0 + 8192;  // what the child wrote
      if (off < w1 && w0 < off + n) {
        std::vector<uint8_t> d = test::Pattern(5, 8192);
        for (uint64_t b = std::max(off, w0); b < std::min(off + n, w1); ++b) want[b - off] = d[b - w0];
      }
      ASSERT_TRUE(ReadAll(**child, off, n) == want) << "at " << off;
      compared += n;
    }
  }
  EXPECT_GT(compared, 0u);
  std::vector<uint8_t> got = ReadAll(**child, 4 * kMi - 4096, 8192);
  EXPECT_TRUE(got == test::Pattern(5, 8192));
  EXPECT_EQ(test::Sha256OfFile(p), before);
}

// A differencing image opened read-write keeps its parents read-only, and
// a reopen in a second session sees both sessions' writes.
TEST(ChainWrite, SecondSessionOnPartiallyPresentBlocks) {
  TempDir dir;
  std::string p = dir.Join("p.vhdx"), c = dir.Join("c.vhdx");
  WriteAndClose(CreateBase(p, 4 * kMi, 1 << 20, 4096), 0, 4 * kMi, 1);
  WriteAndClose(CreateChild(c, p), 8192, 4096, 2);
  std::string parent_sum = test::Sha256OfFile(p);
  {
    OpenOptions rw;
    rw.read_only = false;
    auto img = Image::Open(c, rw);
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    std::vector<uint8_t> d = test::Pattern(3, 4096);
    ASSERT_TRUE((*img)->Write(16384, d).ok());
    // Full-block write over a PARTIALLY_PRESENT block.
    std::vector<uint8_t> full = test::Pattern(4, 1 * kMi);
    ASSERT_TRUE((*img)->Write(1 * kMi, full).ok());
    ASSERT_TRUE((*img)->Write(2 * kMi + 4096, d).ok());
    ASSERT_TRUE((*img)->Write(2 * kMi, full).ok());
    // A full-block write makes the block FULLY_PRESENT, also over a
    // PARTIALLY_PRESENT one.
    BlockCounts counts = (*img)->Info().blocks;
    EXPECT_EQ(counts.partially_present, 1u);
    EXPECT_EQ(counts.fully_present, 2u);
    ASSERT_TRUE((*img)->Close().ok());
  }
  EXPECT_EQ(test::Sha256OfFile(p), parent_sum);
  auto r = Image::Open(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<uint8_t> want = test::Pattern(1, 4 * kMi);
  auto put = [&](uint64_t off, const std::vector<uint8_t>& d) { std::copy(d.begin(), d.end(), want.begin() + off); };
  put(8192, test::Pattern(2, 4096));
  put(16384, test::Pattern(3, 4096));
  put(1 * kMi, test::Pattern(4, 1 * kMi));
  put(2 * kMi, test::Pattern(4, 1 * kMi));
  EXPECT_TRUE(ReadAll(**r, 0, 4 * kMi) == want);
}

}  // namespace
}  // namespace vhdx
