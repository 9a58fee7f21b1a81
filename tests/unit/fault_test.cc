// I/O fault tests (SQLite do_ioerr_test style): for N = 1, 2, ... the Nth
// I/O call of a workload fails with EIO (then, in a second pass, ENOSPC),
// until a run completes without reaching N. Each time:
//  * the error reaches the caller of the API call during which it happened;
//  * the image then refuses further writes (sticky error state);
//  * the file passes the consistency check, reopens (replaying its log) and
//    holds, per 512-byte unit, what the oracle allows: everything flushed
//    before the failure, and for the rest the old or the new value.
// The workload starts from a clean image or from one with a dirty log, so
// that failures inside replay are covered too.
#include <gtest/gtest.h>

#include <cerrno>
#include <random>

#include "support/crash_file.h"
#include "support/crash_oracle.h"
#include "support/fault_file.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::FaultFile;
using test::Oracle;
using test::SparseBytes;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kVirtual = 64 * kMiB;
constexpr uint32_t kBlock = 1 << 20;

struct FaultCase {
  const char* name;
  int sys_errno;
  bool dirty_start;  // the workload starts by replaying a dirty log
  bool punch_hole;   // the host can punch holes (freed space known zero)
};

// A File whose PunchHole is unsupported, so freed space must be zero filled.
class NoPunchFile final : public FileWrapper {
 public:
  using FileWrapper::FileWrapper;
  Status PunchHole(uint64_t, uint64_t) override { return Status::NotSupported("no hole punching"); }
};

struct Op {
  enum class Kind { kWrite, kZero, kTrim, kFlush, kClose } kind;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool fua = false;
};

std::vector<Op> Workload() {
  const uint64_t b = kBlock;
  return {
      {Op::Kind::kWrite, 6 * b, b},                    // allocating, full block
      {Op::Kind::kWrite, 7 * b + 100 * 1024, 64 * 1024},  // allocating, partial
      {Op::Kind::kWrite, 0 * b + 8192, 8192},          // in place
      {Op::Kind::kFlush},
      {Op::Kind::kTrim, 1 * b, b},                     // frees a block
      {Op::Kind::kZero, 2 * b, b},                     // frees a block
      {Op::Kind::kZero, 3 * b + 4096, 20 * 1024},      // zero fill in place
      {Op::Kind::kFlush},                              // frees become reusable
      {Op::Kind::kWrite, 9 * b + 512, 3 * 512},        // partial into reused space
      {Op::Kind::kWrite, 10 * b + 4096, 4096, true},   // FUA
      {Op::Kind::kWrite, 11 * b, b},                   // full block into reused space
      {Op::Kind::kWrite, 0, 2 * b + 4096},             // spans blocks, reallocates the freed ones
      {Op::Kind::kFlush},
      {Op::Kind::kWrite, 12 * b + 4096, 4096},
      {Op::Kind::kClose},
  };
}

Status RunOp(Image& image, Oracle& oracle, const Op& op) {
  switch (op.kind) {
    case Op::Kind::kWrite: {
      std::vector<uint8_t> buf(op.length);
      uint64_t id = oracle.BeginWrite(op.offset, op.length, false, op.fua, buf);
      WriteOptions w;
      w.fua = op.fua;
      Status s = image.Write(op.offset, buf, w);
      oracle.EndWrite(id, s.ok());
      return s;
    }
    case Op::Kind::kZero:
    case Op::Kind::kTrim: {
      uint64_t id = oracle.BeginWrite(op.offset, op.length, true, false);
      Status s = op.kind == Op::Kind::kZero ? image.WriteZeroes(op.offset, op.length) : image.Trim(op.offset, op.length);
      oracle.EndWrite(id, s.ok());
      return s;
    }
    case Op::Kind::kFlush:
    case Op::Kind::kClose: {
      uint64_t t = oracle.BeginFlush();
      Status s = op.kind == Op::Kind::kFlush ? image.Flush() : image.Close();
      oracle.EndFlush(t, s.ok());
      return s;
    }
  }
  return Status::OK();
}

std::unique_ptr<File> MakeFile(std::shared_ptr<SparseBytes> bytes, bool punch_hole) {
  std::unique_ptr<File> f = test::NewSparseFile(std::move(bytes));
  if (!punch_hole) f = std::make_unique<NoPunchFile>(std::move(f));
  return f;
}

// Builds the starting image (recording its content in `oracle`); returns
// its bytes.
std::shared_ptr<SparseBytes> BuildStart(const FaultCase& c, Oracle& oracle) {
  auto bytes = std::make_shared<SparseBytes>();
  CreateOptions co;
  co.virtual_size = kVirtual;
  co.block_size = kBlock;
  auto image = Image::Create(MakeFile(bytes, c.punch_hole), co);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  if (!image.ok()) return nullptr;
  const uint64_t b = kBlock;
  std::vector<Op> setup = {
      {Op::Kind::kWrite, 0, 4 * b},   {Op::Kind::kWrite, 5 * b + 4096, 8192}, {Op::Kind::kTrim, 4 * b, b},
      {Op::Kind::kFlush},             {Op::Kind::kWrite, 8 * b, b},           {Op::Kind::kFlush},
  };
  for (const Op& op : setup) EXPECT_TRUE(RunOp(**image, oracle, op).ok());
  if (c.dirty_start) {
    // A copy taken now is what a power cut leaves: the log is dirty.
    auto copy = std::make_shared<SparseBytes>(*bytes);
    (*image)->Close().PermitUncheckedError();
    return copy;
  }
  EXPECT_TRUE(RunOp(**image, oracle, {Op::Kind::kClose}).ok());
  return bytes;
}

// Reopens `bytes` without faults and checks it against the oracle.
std::string VerifyAfterFailure(const std::shared_ptr<SparseBytes>& bytes, const Oracle& oracle, uint64_t now) {
  bool dirty = false;
  auto problems = test::CheckBytes(bytes, false, &dirty);
  if (!problems.empty()) return "check after the failure: " + problems.front();
  OpenOptions o;
  o.read_only = false;
  auto image = Image::Open(test::NewSparseFile(bytes), o);
  if (!image.ok()) return "reopen: " + image.status().ToString();
  std::string err = oracle.Verify(**image, now);
  if (!err.empty()) return "content after reopen:\n" + err;
  if (Status s = (*image)->Close(); !s.ok()) return "close after reopen: " + s.ToString();
  problems = test::CheckBytes(bytes, true, &dirty);
  if (!problems.empty()) return "check after close: " + problems.front();
  if (dirty) return "log dirty after a clean close";
  return "";
}

class FaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(FaultTest, FailEveryIoInTurn) {
  const FaultCase& c = GetParam();
  const std::vector<Op> ops = Workload();
  const Status injected = Status::FromErrno(c.sys_errno, "injected");
  uint64_t n = 1;
  uint64_t failures = 0;
  for (;; ++n) {
    ASSERT_LT(n, 5000u) << "the workload never completes";
    Oracle oracle(kVirtual, kBlock);
    std::shared_ptr<SparseBytes> start = BuildStart(c, oracle);
    ASSERT_TRUE(start);
    auto bytes = std::make_shared<SparseBytes>(*start);
    auto fault = std::make_unique<FaultFile>(MakeFile(bytes, c.punch_hole));
    FaultFile* ff = fault.get();
    ff->FailNth(n, injected);

    std::string where;
    Status failed;
    bool swallowed = false;
    OpenOptions o;
    o.read_only = false;
    // The test keeps the fault file: Open (on failure) and Close destroy
    // what they own, and the fault state is read after both.
    auto image = Image::Open(BorrowFile(ff), o);
    if (!image.ok()) {
      failed = image.status();
      where = "open";
    } else {
      for (size_t i = 0; i < ops.size(); ++i) {
        const bool before = ff->fired();
        Status s = RunOp(**image, oracle, ops[i]);
        if (!s.ok()) {
          failed = s;
          where = "op " + std::to_string(i);
          break;
        }
        const bool advisory = ff->fired_op() == FaultFile::Op::kPunchHole ||
                              (ff->fired_op() == FaultFile::Op::kTruncate && c.sys_errno == ENOSPC);
        if (!before && ff->fired() && !advisory) {
          // Hole punching is advisory (the space is then zero filled), and
          // a file that cannot grow by a large step is retried with the
          // block alone when the file system is full; every other failure
          // must be reported.
          swallowed = true;
          where = "op " + std::to_string(i);
          break;
        }
      }
    }
    const bool fired = ff->fired();
    const FaultFile::Op fired_op = ff->fired_op();
    if (!fired) {
      ASSERT_TRUE(failed.ok()) << "error without an injected fault at " << where << ": " << failed.ToString();
      break;  // the whole workload ran: done
    }
    EXPECT_FALSE(swallowed) << c.name << " N=" << n << ": the injected " << FaultFile::OpName(fired_op)
                            << " failure at " << where << " did not reach the caller";
    if (!failed.ok()) {
      ++failures;
      EXPECT_EQ(failed.code(), injected.code())
          << c.name << " N=" << n << " at " << where << ": " << failed.ToString();
      if (image.ok()) {
        // Sticky: the image refuses further writes.
        std::vector<uint8_t> buf(4096);
        uint64_t id = oracle.BeginWrite(20 * kBlock, buf.size(), false, false, buf);
        Status again = (*image)->Write(20 * kBlock, buf);
        oracle.EndWrite(id, false);  // never required, whatever it returned
        EXPECT_FALSE(again.ok()) << c.name << " N=" << n << ": write accepted after the " << FaultFile::OpName(fired_op)
                                 << " failure at " << where;
      }
    }
    if (image.ok()) (*image)->Close().PermitUncheckedError();
    image = Status::InvalidArgument("closed");
    std::string err = VerifyAfterFailure(bytes, oracle, oracle.Tick());
    ASSERT_EQ(err, "") << c.name << " N=" << n << ": injected " << FaultFile::OpName(fired_op)
                       << " failure at " << where << " (" << failed.ToString() << ")";
  }
  std::printf("[ fault    ] %s: %llu I/O calls failed in turn, %llu surfaced as errors\n", c.name,
              static_cast<unsigned long long>(n - 1), static_cast<unsigned long long>(failures));
}

INSTANTIATE_TEST_SUITE_P(Fault, FaultTest,
                         ::testing::Values(FaultCase{"eio_clean", EIO, false, true},
                                           FaultCase{"eio_clean_nopunch", EIO, false, false},
                                           FaultCase{"eio_dirty_log", EIO, true, true},
                                           FaultCase{"enospc_clean", ENOSPC, false, true},
                                           FaultCase{"enospc_clean_nopunch", ENOSPC, false, false},
                                           FaultCase{"enospc_dirty_log", ENOSPC, true, false}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace vhdx
