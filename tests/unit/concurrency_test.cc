// Many threads reading, writing, trimming and flushing one image at once.
// Each thread owns an interleaved set of sectors inside shared blocks, so
// threads race on allocation of the same blocks while the final content is
// still deterministic. Run under ThreadSanitizer by scripts/ci-sanitizers.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "support/test_util.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

struct Config {
  uint32_t lss;
  uint32_t block_size;
  bool on_disk;
};

class ConcurrentIoTest : public ::testing::TestWithParam<Config> {};

TEST_P(ConcurrentIoTest, RacingWritersAllocatorsAndFlushes) {
  const Config cfg = GetParam();
  const uint64_t size = 32ull << 20;
  const int kThreads = 8;
  const uint32_t lss = cfg.lss;
  test::TempDir dir;
  const std::string path = dir.Join("c.vhdx");
  CreateOptions co;
  co.virtual_size = size;
  co.block_size = cfg.block_size;
  co.logical_sector_size = lss;
  auto created = cfg.on_disk ? Image::Create(path, co) : Image::Create(NewMemoryFile(), co);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Image& img = **created;

  // Sector s belongs to thread (s / 8) % kThreads: runs of 8 sectors, so
  // every block is shared by all threads.
  const uint64_t sectors = size / lss;
  std::vector<uint8_t> model(size, 0);
  std::atomic<int> failures{0};
  auto owner = [&](uint64_t s) { return static_cast<int>((s / 8) % kThreads); };
  auto worker = [&](int t) {
    std::mt19937_64 rng(1000 + t);
    std::vector<uint8_t> buf;
    for (int op = 0; op < 400; ++op) {
      // A run of this thread's sectors: pick a start run owned by t.
      uint64_t run = (rng() % (sectors / 8 / kThreads)) * kThreads + t;
      uint64_t first = run * 8;
      uint64_t count = 1 + rng() % 8;
      int kind = static_cast<int>(rng() % 10);
      if (kind < 6) {
        buf.resize(count * lss);
        for (auto& b : buf) b = static_cast<uint8_t>(rng());
        if (!img.Write(first * lss, buf).ok()) failures++;
        std::copy(buf.begin(), buf.end(), model.begin() + first * lss);
      } else if (kind < 7) {
        if (!img.WriteZeroes(first * lss, count * lss).ok()) failures++;
        std::fill(model.begin() + first * lss, model.begin() + (first + count) * lss, 0);
      } else if (kind < 8) {
        if (!img.Flush().ok()) failures++;
      } else {
        // Reads of own sectors must see exactly what this thread wrote.
        buf.resize(count * lss);
        if (!img.Read(first * lss, buf).ok()) failures++;
        if (!std::equal(buf.begin(), buf.end(), model.begin() + first * lss)) failures++;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  (void)owner;

  std::vector<uint8_t> all(size);
  ASSERT_TRUE(img.Read(0, all).ok());
  EXPECT_TRUE(all == model);
  if (cfg.on_disk) {
    ASSERT_TRUE(img.Close().ok());
    auto again = Image::Open(path);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    ASSERT_TRUE((*again)->Read(0, all).ok());
    EXPECT_TRUE(all == model);
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, ConcurrentIoTest,
                         ::testing::Values(Config{512, 1 << 20, false}, Config{4096, 1 << 20, false},
                                           Config{512, 2 << 20, true}));

// Two writers racing to allocate the very same block with full-block and
// partial writes: the block is allocated once and both writes land.
TEST(ConcurrentAllocationTest, SameBlockRace) {
  for (int round = 0; round < 20; ++round) {
    CreateOptions co;
    co.virtual_size = 8 << 20;
    co.block_size = 1 << 20;
    auto created = Image::Create(NewMemoryFile(), co);
    ASSERT_TRUE(created.ok());
    Image& img = **created;
    std::vector<uint8_t> a(4096, 0xaa), b(4096, 0xbb);
    std::thread ta([&] { ASSERT_TRUE(img.Write(0, a).ok()); });
    std::thread tb([&] { ASSERT_TRUE(img.Write(8192, b).ok()); });
    ta.join();
    tb.join();
    std::vector<uint8_t> out(12288);
    ASSERT_TRUE(img.Read(0, out).ok());
    EXPECT_TRUE(std::equal(a.begin(), a.end(), out.begin()));
    EXPECT_TRUE(std::all_of(out.begin() + 4096, out.begin() + 8192, [](uint8_t v) { return v == 0; }));
    EXPECT_TRUE(std::equal(b.begin(), b.end(), out.begin() + 8192));
    EXPECT_EQ(img.Info().blocks.fully_present, 1u);
  }
}

}  // namespace
}  // namespace vhdx
