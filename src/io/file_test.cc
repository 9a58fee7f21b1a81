#include "vhdx/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace vhdx {
namespace {

namespace fs = std::filesystem;

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vhdx_file_test.XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<uint8_t> ReadAll(File& f, uint64_t offset, size_t n) {
  std::vector<uint8_t> out(n, 0xEE);
  Status s = f.ReadAt(offset, out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

bool AllZero(const std::vector<uint8_t>& v) {
  return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
}

uint64_t SizeOf(File& f) {
  Result<uint64_t> size = f.Size();
  EXPECT_TRUE(size.ok()) << size.status().ToString();
  return size.ok() ? *size : ~uint64_t{0};
}

// ---- both implementations ------------------------------------------------

enum class Kind { kPosix, kMemory };

class FileTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kMemory) {
      file_ = NewMemoryFile();
      return;
    }
    Result<std::unique_ptr<vhdx::File>> f = OpenPosixFile(dir_.File("f.bin"), FileMode::kCreateExclusive);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    file_ = std::move(*f);
  }

  TempDir dir_;
  std::unique_ptr<vhdx::File> file_;
};

TEST_P(FileTest, NewFileIsEmptyAndWritable) {
  EXPECT_EQ(0u, SizeOf(*file_));
  EXPECT_TRUE(file_->IsWritable());
  EXPECT_FALSE(file_->Name().empty());
}

TEST_P(FileTest, ReadBeyondEndIsZero) {
  EXPECT_TRUE(AllZero(ReadAll(*file_, 0, 4096)));
  EXPECT_TRUE(AllZero(ReadAll(*file_, uint64_t{1} << 40, 100)));
  const auto data = Pattern(1000, 1);
  ASSERT_TRUE(file_->WriteAt(0, data).ok());
  // Straddling the end: the file's bytes, then zeros.
  auto got = ReadAll(*file_, 500, 1000);
  EXPECT_TRUE(std::equal(data.begin() + 500, data.end(), got.begin()));
  EXPECT_TRUE(AllZero(std::vector<uint8_t>(got.begin() + 500, got.end())));
  EXPECT_EQ(1000u, SizeOf(*file_));  // reading never extends
}

TEST_P(FileTest, WriteExtends) {
  const auto data = Pattern(3000, 2);
  ASSERT_TRUE(file_->WriteAt(10000, data).ok());
  EXPECT_EQ(13000u, SizeOf(*file_));
  EXPECT_TRUE(AllZero(ReadAll(*file_, 0, 10000)));
  EXPECT_EQ(data, ReadAll(*file_, 10000, 3000));
  // Overwrite in the middle.
  const auto patch = Pattern(100, 3);
  ASSERT_TRUE(file_->WriteAt(10050, patch).ok());
  EXPECT_EQ(patch, ReadAll(*file_, 10050, 100));
  EXPECT_EQ(13000u, SizeOf(*file_));
  // Empty write is fine.
  ASSERT_TRUE(file_->WriteAt(5, std::span<const uint8_t>()).ok());
}

TEST_P(FileTest, TruncateGrowAndShrink) {
  const auto data = Pattern(8192, 4);
  ASSERT_TRUE(file_->WriteAt(0, data).ok());
  ASSERT_TRUE(file_->Truncate(1 << 20).ok());
  EXPECT_EQ(uint64_t{1} << 20, SizeOf(*file_));
  EXPECT_EQ(data, ReadAll(*file_, 0, 8192));
  EXPECT_TRUE(AllZero(ReadAll(*file_, 8192, (1 << 20) - 8192)));
  ASSERT_TRUE(file_->Truncate(100).ok());
  EXPECT_EQ(100u, SizeOf(*file_));
  // Shrunk bytes are gone: growing again yields zeros.
  ASSERT_TRUE(file_->Truncate(8192).ok());
  auto got = ReadAll(*file_, 0, 8192);
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + 100, got.begin()));
  EXPECT_TRUE(AllZero(std::vector<uint8_t>(got.begin() + 100, got.end())));
  ASSERT_TRUE(file_->Truncate(0).ok());
  EXPECT_EQ(0u, SizeOf(*file_));
}

TEST_P(FileTest, ZeroRange) {
  const size_t n = 3 << 20;
  const auto data = Pattern(n, 5);
  ASSERT_TRUE(file_->WriteAt(0, data).ok());
  // Unaligned, spanning more than one 1 MiB chunk.
  const uint64_t off = 12345, len = (1 << 20) + 777777;
  ASSERT_TRUE(file_->ZeroRange(off, len).ok());
  auto got = ReadAll(*file_, 0, n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t want = (i >= off && i < off + len) ? 0 : data[i];
    ASSERT_EQ(want, got[i]) << "byte " << i;
  }
  EXPECT_EQ(n, SizeOf(*file_));
  // A range past the end extends the file with zeros.
  ASSERT_TRUE(file_->ZeroRange(n + 4096, 8192).ok());
  EXPECT_EQ(n + 4096 + 8192, SizeOf(*file_));
  EXPECT_TRUE(AllZero(ReadAll(*file_, n, 4096 + 8192)));
  ASSERT_TRUE(file_->ZeroRange(0, 0).ok());
  EXPECT_FALSE(file_->ZeroRange(~uint64_t{0} - 5, 10).ok());
}

TEST_P(FileTest, PunchHole) {
  const size_t n = 1 << 20;
  const auto data = Pattern(n, 6);
  ASSERT_TRUE(file_->WriteAt(0, data).ok());
  ASSERT_TRUE(file_->PunchHole(65536, 131072).ok());
  ASSERT_TRUE(file_->PunchHole(1000, 3).ok());  // unaligned
  auto got = ReadAll(*file_, 0, n);
  for (size_t i = 0; i < n; ++i) {
    const bool zeroed = (i >= 65536 && i < 65536 + 131072) || (i >= 1000 && i < 1003);
    ASSERT_EQ(zeroed ? 0 : data[i], got[i]) << "byte " << i;
  }
  EXPECT_EQ(n, SizeOf(*file_));
  // Straddling and beyond the end: only the inside part, size unchanged.
  ASSERT_TRUE(file_->PunchHole(n - 4096, 1 << 20).ok());
  EXPECT_EQ(n, SizeOf(*file_));
  EXPECT_TRUE(AllZero(ReadAll(*file_, n - 4096, 4096)));
  ASSERT_TRUE(file_->PunchHole(n + 4096, 4096).ok());
  EXPECT_EQ(n, SizeOf(*file_));
}

TEST_P(FileTest, Allocate) {
  const auto data = Pattern(10000, 7);
  ASSERT_TRUE(file_->WriteAt(0, data).ok());
  // Extends, keeps existing data, new bytes read as zero.
  ASSERT_TRUE(file_->Allocate(4096, 2 << 20).ok());
  EXPECT_EQ(4096u + (2 << 20), SizeOf(*file_));
  EXPECT_EQ(data, ReadAll(*file_, 0, 10000));
  EXPECT_TRUE(AllZero(ReadAll(*file_, 10000, 4096 + (2 << 20) - 10000)));
  // Inside the file: no change at all.
  ASSERT_TRUE(file_->Allocate(0, 5000).ok());
  EXPECT_EQ(4096u + (2 << 20), SizeOf(*file_));
  EXPECT_EQ(data, ReadAll(*file_, 0, 10000));
}

TEST_P(FileTest, Flush) {
  ASSERT_TRUE(file_->WriteAt(0, Pattern(100, 8)).ok());
  EXPECT_TRUE(file_->Flush().ok());
}

// Threads write disjoint interleaved blocks concurrently; every block lands.
TEST_P(FileTest, ConcurrentPositionalWrites) {
  constexpr int kThreads = 4;
  constexpr int kBlocksPerThread = 64;
  constexpr size_t kBlock = 4096 + 13;  // unaligned on purpose
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBlocksPerThread; ++i) {
        const int block = i * kThreads + t;
        const auto data = Pattern(kBlock, static_cast<uint32_t>(block));
        if (!file_->WriteAt(static_cast<uint64_t>(block) * kBlock, data).ok()) ++failures;
        std::vector<uint8_t> back(kBlock);
        if (!file_->ReadAt(static_cast<uint64_t>(block) * kBlock, back).ok() || back != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(0, failures.load());
  EXPECT_EQ(uint64_t{kThreads} * kBlocksPerThread * kBlock, SizeOf(*file_));
  for (int block = 0; block < kThreads * kBlocksPerThread; ++block) {
    ASSERT_EQ(Pattern(kBlock, static_cast<uint32_t>(block)),
              ReadAll(*file_, static_cast<uint64_t>(block) * kBlock, kBlock))
        << "block " << block;
  }
}

INSTANTIATE_TEST_SUITE_P(Impl, FileTest, ::testing::Values(Kind::kPosix, Kind::kMemory),
                         [](const ::testing::TestParamInfo<Kind>& param_info) {
                           return param_info.param == Kind::kPosix ? std::string("Posix") : std::string("Memory");
                         });

// ---- memory file specifics ------------------------------------------------

TEST(MemoryFile, InitialContentsAndName) {
  auto f = NewMemoryFile({1, 2, 3});
  EXPECT_EQ("<memory>", f->Name());
  EXPECT_EQ(3u, SizeOf(*f));
  EXPECT_EQ((std::vector<uint8_t>{1, 2, 3, 0}), ReadAll(*f, 0, 4));
}

TEST(MemoryFile, HugeWriteFailsCleanly) {
  auto f = NewMemoryFile();
  const uint8_t b = 1;
  Status s = f->WriteAt(~uint64_t{0} - 1, std::span<const uint8_t>(&b, 1));
  EXPECT_FALSE(s.ok());
  s = f->WriteAt(~uint64_t{0}, std::span<const uint8_t>(&b, 1));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(0u, SizeOf(*f));
}

// ---- POSIX specifics --------------------------------------------------------

TEST(PosixFile, OpenMissingIsNotFound) {
  TempDir dir;
  for (FileMode mode : {FileMode::kReadOnly, FileMode::kReadWrite}) {
    auto f = OpenPosixFile(dir.File("missing.vhdx"), mode);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(ErrorCode::kNotFound, f.status().code());
    EXPECT_NE(std::string::npos, f.status().message().find("missing.vhdx")) << f.status().message();
  }
}

TEST(PosixFile, CreateExclusiveFailsOnExisting) {
  TempDir dir;
  const std::string path = dir.File("a.vhdx");
  {
    auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
  }
  auto again = OpenPosixFile(path, FileMode::kCreateExclusive);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(ErrorCode::kAlreadyExists, again.status().code());
  EXPECT_NE(std::string::npos, again.status().message().find(path));
}

TEST(PosixFile, CreateTruncateEmptiesExisting) {
  TempDir dir;
  const std::string path = dir.File("t.vhdx");
  {
    auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->WriteAt(0, Pattern(5000, 1)).ok());
  }
  auto f = OpenPosixFile(path, FileMode::kCreateTruncate);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(0u, SizeOf(**f));
}

TEST(PosixFile, DataPersistsAcrossOpens) {
  TempDir dir;
  const std::string path = dir.File("p.vhdx");
  const auto data = Pattern(12345, 9);
  {
    auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->WriteAt(100, data).ok());
    ASSERT_TRUE((*f)->Flush().ok());
  }
  auto f = OpenPosixFile(path, FileMode::kReadOnly);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_FALSE((*f)->IsWritable());
  EXPECT_EQ(path, (*f)->Name());
  EXPECT_EQ(data, ReadAll(**f, 100, data.size()));
}

TEST(PosixFile, ReadOnlyRejectsWrites) {
  TempDir dir;
  const std::string path = dir.File("ro.vhdx");
  {
    auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->WriteAt(0, Pattern(4096, 1)).ok());
  }
  auto f = OpenPosixFile(path, FileMode::kReadOnly);
  ASSERT_TRUE(f.ok());
  const uint8_t b = 0;
  EXPECT_EQ(ErrorCode::kReadOnly, (*f)->WriteAt(0, std::span<const uint8_t>(&b, 1)).code());
  EXPECT_EQ(ErrorCode::kReadOnly, (*f)->Truncate(0).code());
  EXPECT_EQ(ErrorCode::kReadOnly, (*f)->ZeroRange(0, 10).code());
  EXPECT_EQ(ErrorCode::kReadOnly, (*f)->PunchHole(0, 10).code());
  EXPECT_EQ(ErrorCode::kReadOnly, (*f)->Allocate(0, 10).code());
  EXPECT_EQ(4096u, SizeOf(**f));
}

TEST(PosixFile, WritersExcludeEachOther) {
  TempDir dir;
  const std::string path = dir.File("locked.vhdx");
  auto first = OpenPosixFile(path, FileMode::kCreateExclusive);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = OpenPosixFile(path, FileMode::kReadWrite);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(ErrorCode::kIOError, second.status().code());
  EXPECT_TRUE(second.status().sys_errno() == EWOULDBLOCK || second.status().sys_errno() == EAGAIN);
  EXPECT_NE(std::string::npos, second.status().message().find("in use by another process"))
      << second.status().message();
  // A reader is refused too while a writer holds the image.
  auto reader = OpenPosixFile(path, FileMode::kReadOnly);
  EXPECT_FALSE(reader.ok());
  // kCreateTruncate must not clobber an image in use.
  ASSERT_TRUE((*first)->WriteAt(0, Pattern(100, 1)).ok());
  auto trunc = OpenPosixFile(path, FileMode::kCreateTruncate);
  EXPECT_FALSE(trunc.ok());
  EXPECT_EQ(100u, SizeOf(**first));
  // Once closed, the image can be opened again.
  first = Status::NotFound("closed");
  auto third = OpenPosixFile(path, FileMode::kReadWrite);
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST(PosixFile, ReadersShare) {
  TempDir dir;
  const std::string path = dir.File("shared.vhdx");
  { ASSERT_TRUE(OpenPosixFile(path, FileMode::kCreateExclusive).ok()); }
  auto r1 = OpenPosixFile(path, FileMode::kReadOnly);
  auto r2 = OpenPosixFile(path, FileMode::kReadOnly);
  EXPECT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_TRUE(r2.ok()) << r2.status().ToString();
  auto w = OpenPosixFile(path, FileMode::kReadWrite);
  EXPECT_FALSE(w.ok());
}

TEST(PosixFile, LockHeldAcrossProcesses) {
  TempDir dir;
  const std::string path = dir.File("proc.vhdx");
  auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
  ASSERT_TRUE(f.ok());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto other = OpenPosixFile(path, FileMode::kReadWrite);
    ::_exit(!other.ok() && other.status().sys_errno() == EWOULDBLOCK ? 0 : 1);
  }
  int wstatus = 0;
  ASSERT_EQ(pid, ::waitpid(pid, &wstatus, 0));
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
}

TEST(PosixFile, AllocateIsNotSparse) {
  TempDir dir;
  const std::string path = dir.File("alloc.vhdx");
  auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Allocate(0, 4 << 20).ok());
  struct stat st;
  ASSERT_EQ(0, ::stat(path.c_str(), &st));
  EXPECT_EQ(4 << 20, st.st_size);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{4} << 20);
}

}  // namespace
}  // namespace vhdx

namespace vhdx {
namespace {

// Implements only the required methods, so ZeroRange, PunchHole and Allocate
// use File's defaults. Counts the largest single write.
class MinimalFile : public File {
 public:
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override { return inner_->ReadAt(offset, out); }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    largest_write = std::max(largest_write, data.size());
    return inner_->WriteAt(offset, data);
  }
  Status Flush() override { return inner_->Flush(); }
  Result<uint64_t> Size() override { return inner_->Size(); }
  Status Truncate(uint64_t size) override { return inner_->Truncate(size); }
  std::string Name() const override { return "minimal"; }
  bool IsWritable() const override { return true; }

  size_t largest_write = 0;

 private:
  std::unique_ptr<File> inner_ = NewMemoryFile();
};

TEST(FileDefaults, ZeroRangeWritesBoundedChunks) {
  MinimalFile f;
  const auto data = Pattern(3 << 20, 11);
  ASSERT_TRUE(f.WriteAt(0, data).ok());
  f.largest_write = 0;
  ASSERT_TRUE(f.ZeroRange(100, (3 << 20) + 500).ok());
  EXPECT_LE(f.largest_write, size_t{1} << 20);
  EXPECT_EQ(uint64_t{3 << 20} + 600, SizeOf(f));
  auto got = ReadAll(f, 0, (3 << 20) + 600);
  EXPECT_TRUE(std::equal(data.begin(), data.begin() + 100, got.begin()));
  EXPECT_TRUE(AllZero(std::vector<uint8_t>(got.begin() + 100, got.end())));
  EXPECT_FALSE(f.ZeroRange(~uint64_t{0}, 2).ok());
}

TEST(FileDefaults, PunchHoleZeroes) {
  MinimalFile f;
  ASSERT_TRUE(f.WriteAt(0, Pattern(8192, 12)).ok());
  ASSERT_TRUE(f.PunchHole(4096, 4096).ok());
  EXPECT_TRUE(AllZero(ReadAll(f, 4096, 4096)));
}

TEST(FileDefaults, AllocateKeepsDataAndExtends) {
  MinimalFile f;
  const auto data = Pattern(8192, 13);
  ASSERT_TRUE(f.WriteAt(0, data).ok());
  ASSERT_TRUE(f.Allocate(0, 20000).ok());
  EXPECT_EQ(20000u, SizeOf(f));
  EXPECT_EQ(data, ReadAll(f, 0, 8192));
  EXPECT_TRUE(AllZero(ReadAll(f, 8192, 20000 - 8192)));
  ASSERT_TRUE(f.Allocate(30000, 100).ok());
  EXPECT_EQ(30100u, SizeOf(f));
}

// tmpfs lacks FALLOC_FL_ZERO_RANGE on many kernels, which exercises the
// punch-hole-then-extend fallback.
TEST(PosixFile, ZeroRangeOnTmpfs) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  char tmpl[] = "/dev/shm/vhdx_file_test.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) GTEST_SKIP() << "cannot create a directory in /dev/shm";
  const std::string path = std::string(tmpl) + "/z.bin";
  {
    auto f = OpenPosixFile(path, FileMode::kCreateExclusive);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const auto data = Pattern(65536, 14);
    ASSERT_TRUE((*f)->WriteAt(0, data).ok());
    ASSERT_TRUE((*f)->ZeroRange(1000, 2000).ok());
    ASSERT_TRUE((*f)->ZeroRange(60000, 10000).ok());  // straddles the end
    EXPECT_EQ(70000u, SizeOf(**f));
    auto got = ReadAll(**f, 0, 70000);
    for (size_t i = 0; i < got.size(); ++i) {
      const bool zero = (i >= 1000 && i < 3000) || i >= 60000;
      ASSERT_EQ(zero ? 0 : data[i], got[i]) << "byte " << i;
    }
    ASSERT_TRUE((*f)->Allocate(0, 100000).ok());
    EXPECT_EQ(100000u, SizeOf(**f));
    EXPECT_TRUE(std::equal(data.begin(), data.begin() + 1000, ReadAll(**f, 0, 1000).begin()));
  }
  std::error_code ec;
  fs::remove_all(tmpl, ec);
}

}  // namespace
}  // namespace vhdx
