// Tests of the plugin's request layer (disk.h) on in-memory images: what
// nbdkit's own request validation hides from the integration test (range
// errors), byte-granular requests against a model, concurrent read-modify-
// write of shared sectors, and the fast-zero decision.
#include "disk.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <cstdio>
#include <thread>
#include <vector>

namespace vhdx_nbdkit {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::unique_ptr<Disk> NewDisk(uint64_t size, uint32_t lss = 512, vhdx::DiskType type = vhdx::DiskType::kDynamic) {
  vhdx::CreateOptions o;
  o.virtual_size = size;
  o.block_size = 1 << 20;
  o.logical_sector_size = lss;
  o.type = type;
  auto image = vhdx::Image::Create(vhdx::NewMemoryFile(), o);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  return std::make_unique<Disk>(std::move(*image));
}

std::vector<uint8_t> ReadAll(Disk& d) {
  std::vector<uint8_t> out(d.size());
  EXPECT_TRUE(d.Read(0, out).ok());
  return out;
}

std::vector<uint8_t> RandomBytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(DiskTest, RangesPastTheEndGetNbdErrors) {
  auto d = NewDisk(4 * kMiB);
  std::vector<uint8_t> buf(1024);
  EXPECT_EQ(d->Read(4 * kMiB - 512, buf).code(), vhdx::ErrorCode::kInvalidArgument);
  EXPECT_EQ(d->Read(UINT64_MAX - 100, buf).code(), vhdx::ErrorCode::kInvalidArgument);
  EXPECT_EQ(d->Map(4 * kMiB, 1).status().code(), vhdx::ErrorCode::kInvalidArgument);
  EXPECT_EQ(d->Write(4 * kMiB - 512, buf, false).code(), vhdx::ErrorCode::kNoSpace);
  EXPECT_EQ(d->Zero(UINT64_MAX, 2, false).code(), vhdx::ErrorCode::kNoSpace);
  EXPECT_EQ(d->ZeroFast(4 * kMiB, 1, false).status().code(), vhdx::ErrorCode::kNoSpace);
  EXPECT_EQ(d->Trim(4 * kMiB - 1, 2, false).code(), vhdx::ErrorCode::kNoSpace);
  // The last byte and empty requests at the end are fine.
  EXPECT_TRUE(d->Write(4 * kMiB - 1, std::span(buf).first(1), true).ok());
  EXPECT_TRUE(d->Read(4 * kMiB, std::span(buf).first(0)).ok());
  EXPECT_TRUE(d->Close().ok());
}

class DiskModelTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(DiskModelTest, ByteGranularRequestsMatchAModel) {
  const uint64_t size = 6 * kMiB;
  auto d = NewDisk(size, GetParam());
  std::vector<uint8_t> model(size);
  std::mt19937_64 rng(GetParam());
  for (int i = 0; i < 400; ++i) {
    const uint64_t off = rng() % size;
    const uint64_t n = 1 + rng() % std::min<uint64_t>(3 * 4096 + 7, size - off);
    switch (rng() % 4) {
      case 0:
      case 1: {
        auto data = RandomBytes(rng, n);
        ASSERT_TRUE(d->Write(off, data, rng() % 8 == 0).ok());
        std::copy(data.begin(), data.end(), model.begin() + off);
        break;
      }
      case 2:
        ASSERT_TRUE(d->Zero(off, n, false).ok());
        std::fill_n(model.begin() + off, n, 0);
        break;
      default: {
        std::vector<uint8_t> got(n);
        ASSERT_TRUE(d->Read(off, got).ok());
        ASSERT_TRUE(std::equal(got.begin(), got.end(), model.begin() + off)) << "read " << off << "+" << n;
      }
    }
  }
  EXPECT_EQ(ReadAll(*d), model);
  EXPECT_TRUE(d->Close().ok());
}

INSTANTIATE_TEST_SUITE_P(SectorSizes, DiskModelTest, ::testing::Values(512u, 4096u));

// Four writers own interleaved 100-byte units, so nearly every sector is
// shared and patched by several threads at once; no byte may be lost.
TEST(DiskTest, ConcurrentPartialSectorWritesKeepNeighbours) {
  const uint64_t size = 2 * kMiB;
  const uint64_t unit = 100;
  auto d = NewDisk(size);
  std::vector<uint8_t> model(size);
  std::vector<std::thread> threads;
  std::vector<char> ok(4, 1);  // one byte per thread: no shared word
  for (int t = 0; t < 4; ++t) {
    // The model is filled in before the threads run: each unit gets one value.
    for (uint64_t u = t; u * unit < 256 * 1024; u += 4) {
      std::fill_n(model.begin() + u * unit, unit, static_cast<uint8_t>(1 + t + (u & 0x3c)));
    }
  }
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t u = t; u * unit < 256 * 1024; u += 4) {
        std::vector<uint8_t> data(unit, static_cast<uint8_t>(1 + t + (u & 0x3c)));
        if (!d->Write(u * unit, data, false).ok()) ok[t] = 0;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<char>(4, 1));
  EXPECT_EQ(ReadAll(*d), model);
  EXPECT_TRUE(d->Close().ok());
}

TEST(DiskTest, FastZeroOnlyWithoutWritingData) {
  auto d = NewDisk(8 * kMiB);
  std::vector<uint8_t> data(3 * kMiB, 0x5a);
  ASSERT_TRUE(d->Write(0, data, false).ok());  // blocks 0-2 hold data
  // Part of a data block: not fast, nothing changed.
  auto r = d->ZeroFast(4096, 8192, false);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(ReadAll(*d)[4096], 0x5a);
  // Whole blocks: fast, and the map shows a ZERO block.
  r = d->ZeroFast(kMiB, kMiB, true);
  ASSERT_TRUE(r.ok() && *r);
  auto map = d->Map(kMiB, kMiB);
  ASSERT_TRUE(map.ok());
  ASSERT_EQ(map->size(), 1u);
  EXPECT_EQ(map->front().kind, vhdx::Extent::Kind::kZero);
  // Unaligned, spanning whole blocks with edges that already read as zeros.
  r = d->ZeroFast(kMiB + 7, 6 * kMiB, false);
  ASSERT_TRUE(r.ok() && *r);
  // Up to the end of the disk counts as whole.
  r = d->ZeroFast(7 * kMiB, kMiB, false);
  ASSERT_TRUE(r.ok() && *r);
  auto content = ReadAll(*d);
  EXPECT_EQ(content[kMiB - 1], 0x5a);
  EXPECT_EQ(content[2 * kMiB + 100], 0);
  EXPECT_EQ(content[3 * kMiB - 1], 0);
  EXPECT_TRUE(d->Close().ok());

  auto fixed = NewDisk(2 * kMiB, 512, vhdx::DiskType::kFixed);
  r = fixed->ZeroFast(0, 2 * kMiB, false);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_TRUE(fixed->Close().ok());
}

TEST(DiskTest, TrimLeavesPartialSectorsAlone) {
  auto d = NewDisk(2 * kMiB);
  std::vector<uint8_t> data(8192, 0x77);
  ASSERT_TRUE(d->Write(0, data, false).ok());
  ASSERT_TRUE(d->Trim(100, 2000, true).ok());  // whole sectors 512..2047
  auto content = ReadAll(*d);
  EXPECT_EQ(content[100], 0x77);
  EXPECT_EQ(content[511], 0x77);
  EXPECT_EQ(content[512], 0);
  EXPECT_EQ(content[2047], 0);
  EXPECT_EQ(content[2048], 0x77);
  EXPECT_TRUE(d->Close().ok());
}

// A file whose reads and writes fail on demand, like a disk going bad.
class FailingFile : public vhdx::FileWrapper {
 public:
  FailingFile(std::unique_ptr<vhdx::File> target, std::atomic<bool>* fail)
      : FileWrapper(std::move(target)), fail_(fail) {}
  vhdx::Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    if (*fail_) return vhdx::Status::IOError("injected read error", EIO);
    return FileWrapper::ReadAt(offset, out);
  }
  vhdx::Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    if (*fail_) return vhdx::Status::IOError("injected write error", EIO);
    return FileWrapper::WriteAt(offset, data);
  }
  vhdx::Status Flush() override {
    if (*fail_) return vhdx::Status::IOError("injected flush error", EIO);
    return FileWrapper::Flush();
  }

 private:
  std::atomic<bool>* fail_;
};

TEST(DiskTest, ErrorsMapToNbdErrnos) {
  EXPECT_EQ(NbdErrno(vhdx::Status::OK()), 0);
  EXPECT_EQ(NbdErrno(vhdx::Status::InvalidArgument("x")), EINVAL);
  EXPECT_EQ(NbdErrno(vhdx::Status::NoSpace("x")), ENOSPC);
  EXPECT_EQ(NbdErrno(vhdx::Status::ReadOnly("x")), EROFS);
  EXPECT_EQ(NbdErrno(vhdx::Status::Corruption("x")), EIO);
  EXPECT_EQ(NbdErrno(vhdx::Status::IOError("x", EIO)), EIO);
  EXPECT_EQ(NbdErrno(vhdx::Status::NotSupported("x")), EIO);

  // A failing host file: every request fails with EIO, none crashes.
  std::atomic<bool> fail{false};
  vhdx::CreateOptions o;
  o.virtual_size = 4 * kMiB;
  o.block_size = 1 << 20;
  auto image = vhdx::Image::Create(std::make_unique<FailingFile>(vhdx::NewMemoryFile(), &fail), o);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  Disk d(std::move(*image));
  std::vector<uint8_t> data(4096, 0x42);
  ASSERT_TRUE(d.Write(0, data, false).ok());
  fail = true;
  std::vector<uint8_t> buf(1000);
  EXPECT_EQ(NbdErrno(d.Read(10, buf)), EIO);
  EXPECT_EQ(NbdErrno(d.Write(kMiB + 3, buf, false)), EIO);
  EXPECT_EQ(NbdErrno(d.Write(0, data, true)), EIO);
  EXPECT_EQ(NbdErrno(d.Zero(100, 5000, true)), EIO);
  EXPECT_EQ(NbdErrno(d.Flush()), EIO);
  EXPECT_NE(d.Close().code(), vhdx::ErrorCode::kOk);

  // A read-only image refuses modifications with EROFS.
  const std::string path = ::testing::TempDir() + "/nbdkit_disk_test_ro.vhdx";
  vhdx::CreateOptions c;
  c.virtual_size = 2 * kMiB;
  c.overwrite = true;
  auto created = vhdx::Image::Create(path, c);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_TRUE((*created)->Close().ok());
  vhdx::OpenOptions read_only;
  read_only.read_only = true;
  auto opened = vhdx::Image::Open(path, read_only);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Disk ro(std::move(*opened));
  EXPECT_TRUE(ro.read_only());
  EXPECT_EQ(NbdErrno(ro.Write(0, data, false)), EROFS);
  EXPECT_EQ(NbdErrno(ro.Write(1, buf, false)), EROFS);  // unaligned: refused before any read-modify-write
  EXPECT_EQ(NbdErrno(ro.Zero(0, kMiB, false)), EROFS);
  EXPECT_TRUE(ro.Close().ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vhdx_nbdkit
