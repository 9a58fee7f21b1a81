// Micro-benchmarks of libvhdx's hot paths (docs/performance.md,
// "Micro-benchmarks"):
//
//   Crc32c*            CRC-32C, hardware (SSE4.2) and portable paths
//   BatLookup          virtual offset -> BAT index -> decoded entry
//   ImageRead/Write*   range resolution through the public API on an
//                      in-memory file (block split, stripe lock, BAT lookup)
//   SectorBitmapRead*  reads of PARTIALLY_PRESENT blocks of a differencing
//                      image: bitmap scan into runs, child/parent reads
//   EncodeLogEntry     building a log entry of N metadata pages
//   OpenImage          opening a dynamic image with a large BAT (in memory)
//
// Run: build/vhdx_micro_bench [--benchmark_filter=REGEX]
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "format/bat.h"
#include "format/log_format.h"
#include "util/crc32c.h"
#include "vhdx/file.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed = 1) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

void Check(const Status& s, benchmark::State& state) {
  if (!s.ok()) state.SkipWithError(s.ToString().c_str());
}

// ---- CRC-32C ------------------------------------------------------------------

void BM_Crc32cHardware(benchmark::State& state) {
  if (!crc32c::HardwareAccelerated()) {
    state.SkipWithError("no SSE4.2 on this CPU");
    return;
  }
  auto data = RandomBytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(crc32c::Value(data.data(), data.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32cHardware)->Arg(64)->Arg(4096)->Arg(64 << 10)->Arg(1 << 20);

void BM_Crc32cPortable(benchmark::State& state) {
  auto data = RandomBytes(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(crc32c::ExtendPortable(0, data.data(), data.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32cPortable)->Arg(4096)->Arg(1 << 20);

// ---- BAT lookup ---------------------------------------------------------------

// The work ReadBlockRange/WriteBlockRange do per request before any I/O:
// block number, BAT index (skipping sector-bitmap entries), atomic load,
// decode. 64 TiB disk with 1 MiB blocks: 64 Mi entries would be 512 MiB, so
// the table covers 1 Mi blocks and the offsets wrap into it.
void BM_BatLookup(benchmark::State& state) {
  auto geo = format::Geometry::Compute(uint64_t{1} << 40, 1 << 20, 512, false);
  if (!geo.ok()) { state.SkipWithError(geo.status().ToString().c_str()); return; }
  const uint64_t entries = geo->bat_entries;
  auto bat = std::make_unique<std::atomic<uint64_t>[]>(entries);
  for (uint64_t i = 0; i < entries; ++i) bat[i].store(((i + 8) << 20) | format::kPayloadFullyPresent);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> offsets(4096);
  for (auto& o : offsets) o = rng() % geo->virtual_size / 4096 * 4096;
  size_t i = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    const uint64_t voff = offsets[i++ & 4095];
    const uint64_t block = voff / geo->block_size;
    const uint64_t in_block = voff % geo->block_size;
    format::BatEntry e = format::BatEntry::Decode(bat[geo->BatIndexOfBlock(block)].load(std::memory_order_acquire));
    sum += e.file_offset + in_block + e.state;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_BatLookup);

// ---- read/write range resolution through the public API ---------------------------

// A 64 MiB dynamic image with 1 MiB blocks, every block written, in memory.
std::unique_ptr<Image> FullMemoryImage(benchmark::State& state) {
  CreateOptions o;
  o.virtual_size = 64 * kMiB;
  o.block_size = 1 << 20;
  auto image = Image::Create(NewMemoryFile(), o);
  if (!image.ok()) {
    state.SkipWithError(image.status().ToString().c_str());
    return nullptr;
  }
  auto block = RandomBytes(kMiB);
  for (uint64_t off = 0; off < o.virtual_size; off += kMiB) {
    if (Status s = (*image)->Write(off, block); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      return nullptr;
    }
  }
  if (Status s = (*image)->Flush(); !s.ok()) state.SkipWithError(s.ToString().c_str());
  return std::move(*image);
}

// Random reads of range(0) bytes; 1 MiB reads start mid-block so they span two
// blocks.
void BM_ImageRead(benchmark::State& state) {
  auto image = FullMemoryImage(state);
  if (!image) return;
  const uint64_t len = static_cast<uint64_t>(state.range(0));
  std::vector<uint8_t> buf(len);
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    uint64_t off = rng() % (image->virtual_size() - len - kMiB / 2) / 4096 * 4096;
    if (len >= kMiB) off = off / kMiB * kMiB + kMiB / 2;
    Check(image->Read(off, buf), state);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}
BENCHMARK(BM_ImageRead)->Arg(4096)->Arg(64 << 10)->Arg(1 << 20)->ThreadRange(1, 2)->UseRealTime();

// In-place writes into allocated blocks (no metadata change).
void BM_ImageWriteAllocated(benchmark::State& state) {
  auto image = FullMemoryImage(state);
  if (!image) return;
  const uint64_t len = static_cast<uint64_t>(state.range(0));
  auto buf = RandomBytes(len, 5);
  std::mt19937_64 rng(4);
  for (auto _ : state) {
    uint64_t off = rng() % (image->virtual_size() - len) / 4096 * 4096;
    Check(image->Write(off, buf), state);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}
BENCHMARK(BM_ImageWriteAllocated)->Arg(4096)->Arg(1 << 20);

// A sparse in-memory file: 4 KiB pages in a hash map, so growing it costs
// nothing (NewMemoryFile zero-fills a vector on every extension, which would
// dominate a benchmark of block allocation). Not the copy-on-write
// SparseBytes of tests/support: its page bookkeeping made this benchmark
// eight times slower, measuring the file instead of the image.
class SparseFile final : public File {
 public:
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    std::lock_guard lock(mu_);
    for (size_t done = 0; done < out.size();) {
      const uint64_t pos = offset + done, page = pos / 4096, in = pos % 4096;
      const size_t n = std::min<size_t>(4096 - in, out.size() - done);
      auto it = pages_.find(page);
      if (it == pages_.end() || pos >= size_) {
        std::memset(out.data() + done, 0, n);
      } else {
        std::memcpy(out.data() + done, it->second.data() + in, n);
      }
      done += n;
    }
    return Status::OK();
  }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard lock(mu_);
    for (size_t done = 0; done < data.size();) {
      const uint64_t pos = offset + done, page = pos / 4096, in = pos % 4096;
      const size_t n = std::min<size_t>(4096 - in, data.size() - done);
      auto& p = pages_[page];
      if (p.empty()) p.resize(4096);
      std::memcpy(p.data() + in, data.data() + done, n);
      done += n;
    }
    size_ = std::max<uint64_t>(size_, offset + data.size());
    return Status::OK();
  }
  Status Flush() override { return Status::OK(); }
  Result<uint64_t> Size() override {
    std::lock_guard lock(mu_);
    return size_;
  }
  Status Truncate(uint64_t size) override {
    std::lock_guard lock(mu_);
    if (size < size_) {
      std::erase_if(pages_, [&](const auto& kv) { return kv.first * 4096 >= size; });
      // A later extension must read zeros past the cut, also in its page.
      if (auto it = pages_.find(size / 4096); it != pages_.end()) {
        std::memset(it->second.data() + size % 4096, 0, 4096 - size % 4096);
      }
    }
    size_ = size;
    return Status::OK();
  }
  Status ZeroRange(uint64_t offset, uint64_t length) override {
    std::lock_guard lock(mu_);
    // Whole pages are dropped; the partial pages at either end are cleared.
    for (uint64_t pos = offset; pos < offset + length;) {
      const uint64_t page = pos / 4096, in = pos % 4096;
      const uint64_t n = std::min<uint64_t>(4096 - in, offset + length - pos);
      auto it = pages_.find(page);
      if (it != pages_.end()) {
        if (n == 4096) {
          pages_.erase(it);
        } else {
          std::memset(it->second.data() + in, 0, n);
        }
      }
      pos += n;
    }
    size_ = std::max<uint64_t>(size_, offset + length);
    return Status::OK();
  }
  std::string Name() const override { return "<sparse>"; }
  bool IsWritable() const override { return true; }

 private:
  std::mutex mu_;
  std::unordered_map<uint64_t, std::vector<uint8_t>> pages_;
  uint64_t size_ = 0;
};

// 4 KiB writes that each allocate a new 1 MiB block (BAT update, dirty page
// tracking, commits every 128 dirty BAT pages); a fresh image every 16 Ki
// writes.
void BM_ImageWriteAllocating(benchmark::State& state) {
  auto buf = RandomBytes(4096, 6);
  CreateOptions o;
  constexpr uint64_t kBlocks = 16 * 1024;
  o.virtual_size = kBlocks * kMiB;
  o.block_size = 1 << 20;
  std::unique_ptr<Image> image;
  uint64_t block = kBlocks;
  for (auto _ : state) {
    if (block == kBlocks) {
      state.PauseTiming();
      image.reset();
      auto created = Image::Create(std::make_unique<SparseFile>(), o);
      if (!created.ok()) { state.SkipWithError(created.status().ToString().c_str()); return; }
      image = std::move(*created);
      block = 0;
      state.ResumeTiming();
    }
    // Spread over the BAT like random writes: consecutive writes hit
    // different BAT pages (512 entries per page).
    const uint64_t b = (block * 521) % kBlocks;
    ++block;
    Check(image->Write(b * kMiB, buf), state);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ImageWriteAllocating);

// ---- sector bitmaps (differencing images) ---------------------------------------

// Parent and child on temp files: a 64 MiB parent full of data, and a child
// in which every block is PARTIALLY_PRESENT with a run of `run` sectors
// written, then `run` sectors from the parent, alternating (run = 0: every
// sector of the child's blocks written, one long run).
class DiffFixture {
 public:
  explicit DiffFixture(benchmark::State& state, uint64_t run) {
    char tmpl[] = "/tmp/vhdx-micro-XXXXXX";
    if (!mkdtemp(tmpl)) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    dir_ = tmpl;
    const std::string parent = dir_ + "/parent.vhdx", child = dir_ + "/child.vhdx";
    CreateOptions o;
    o.virtual_size = 64 * kMiB;
    o.block_size = 1 << 20;
    {
      auto p = Image::Create(parent, o);
      if (!p.ok()) { state.SkipWithError(p.status().ToString().c_str()); return; }
      auto data = RandomBytes(kMiB, 8);
      for (uint64_t off = 0; off < o.virtual_size; off += kMiB) Check((*p)->Write(off, data), state);
      Check((*p)->Close(), state);
    }
    CreateOptions c;
    c.parent_path = parent;
    c.type = DiskType::kDifferencing;
    {
      auto ch = Image::Create(child, c);
      if (!ch.ok()) { state.SkipWithError(ch.status().ToString().c_str()); return; }
      const uint64_t piece = run == 0 ? kMiB - 512 : run * 512;  // run 0: all but the last sector
      auto data = RandomBytes(piece, 9);
      for (uint64_t off = 0; off < o.virtual_size; off += (run == 0 ? kMiB : 2 * piece)) {
        Check((*ch)->Write(off, data), state);
      }
      if (run == 0) {
        // Fill the last sector too, keeping the block PARTIALLY_PRESENT.
        std::vector<uint8_t> sector(512, 1);
        for (uint64_t off = kMiB - 512; off < o.virtual_size; off += kMiB) Check((*ch)->Write(off, sector), state);
      }
      Check((*ch)->Close(), state);
    }
    OpenOptions oo;
    auto img = Image::Open(child, oo);
    if (!img.ok()) { state.SkipWithError(img.status().ToString().c_str()); return; }
    image = std::move(*img);
  }
  ~DiffFixture() {
    image.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Image> image;

 private:
  std::string dir_;
};

// 1 MiB reads of PARTIALLY_PRESENT blocks; range(0) sectors per run.
void BM_SectorBitmapRead(benchmark::State& state) {
  DiffFixture f(state, static_cast<uint64_t>(state.range(0)));
  if (!f.image) return;
  std::vector<uint8_t> buf(kMiB);
  uint64_t block = 0;
  for (auto _ : state) {
    Check(f.image->Read(block * kMiB, buf), state);
    block = (block + 1) % 64;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kMiB));
}
BENCHMARK(BM_SectorBitmapRead)->Arg(0)->Arg(8)->Arg(64)->UseRealTime();

// The allocation map of the same image (bitmap scan without data reads).
void BM_SectorBitmapMap(benchmark::State& state) {
  DiffFixture f(state, static_cast<uint64_t>(state.range(0)));
  if (!f.image) return;
  for (auto _ : state) {
    auto m = f.image->Map(0, f.image->virtual_size());
    if (!m.ok()) state.SkipWithError(m.status().ToString().c_str());
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.image->virtual_size()));
}
BENCHMARK(BM_SectorBitmapMap)->Arg(0)->Arg(8)->UseRealTime();

// ---- log entries -----------------------------------------------------------------

void BM_EncodeLogEntry(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  auto pages = RandomBytes(n * 4096, 10);
  format::LogEntryToWrite e;
  e.sequence_number = 42;
  e.log_guid = Guid::Random();
  e.flushed_file_offset = e.last_file_offset = 64 * kMiB;
  for (size_t i = 0; i < n; ++i) e.pages.emplace_back((i + 64) * 4096, pages.data() + i * 4096);
  for (auto _ : state) benchmark::DoNotOptimize(format::EncodeLogEntry(e));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * 4096));
}
BENCHMARK(BM_EncodeLogEntry)->Arg(1)->Arg(16)->Arg(128);

// ---- open ------------------------------------------------------------------------

// Read-only open of an empty 4 TiB dynamic image with 1 MiB blocks (4 Mi BAT
// entries, 32 MiB BAT) held in memory: BAT load and validation.
void BM_OpenImage(benchmark::State& state) {
  CreateOptions o;
  o.virtual_size = uint64_t{4} << 40;
  o.block_size = 1 << 20;
  char tmpl[] = "/tmp/vhdx-micro-XXXXXX";
  if (!mkdtemp(tmpl)) { state.SkipWithError("mkdtemp failed"); return; }
  const std::string dir = tmpl, path = dir + "/huge.vhdx";
  std::vector<uint8_t> bytes;
  {
    auto image = Image::Create(path, o);
    if (!image.ok()) { state.SkipWithError(image.status().ToString().c_str()); return; }
    Check((*image)->Close(), state);
    auto file = OpenPosixFile(path, FileMode::kReadOnly);
    if (!file.ok()) { state.SkipWithError(file.status().ToString().c_str()); return; }
    bytes.resize(*(*file)->Size());
    Check((*file)->ReadAt(0, bytes), state);
  }
  std::filesystem::remove_all(dir);
  for (auto _ : state) {
    state.PauseTiming();
    auto file = NewMemoryFile(bytes);
    state.ResumeTiming();
    auto opened = Image::Open(std::move(file));
    if (!opened.ok()) state.SkipWithError(opened.status().ToString().c_str());
    benchmark::DoNotOptimize(opened);
    state.PauseTiming();
    if (opened.ok()) opened->reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_OpenImage)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace vhdx

BENCHMARK_MAIN();
