#include "vhdx/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace vhdx {
namespace {

TEST(Status, OkIsDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(ErrorCode::kOk, s.code());
  EXPECT_EQ("OK", s.ToString());
  EXPECT_TRUE(Status::OK().ok());
  EXPECT_EQ(Status(), Status::OK());
}

TEST(Status, CodesAndToString) {
  EXPECT_EQ("Corruption: bad", Status::Corruption("bad").ToString());
  EXPECT_EQ(ErrorCode::kInvalidArgument, Status::InvalidArgument("x").code());
  EXPECT_EQ(ErrorCode::kNotSupported, Status::NotSupported("x").code());
  EXPECT_EQ(ErrorCode::kNoSpace, Status::NoSpace("x").code());
  EXPECT_EQ(ErrorCode::kReadOnly, Status::ReadOnly("x").code());
  EXPECT_EQ(ErrorCode::kNotFound, Status::NotFound("x").code());
  EXPECT_EQ(ErrorCode::kAlreadyExists, Status::AlreadyExists("x").code());
  Status io = Status::IOError("disk on fire", EIO);
  EXPECT_FALSE(io.ok());
  EXPECT_EQ(EIO, io.sys_errno());
  EXPECT_EQ("disk on fire", io.message());
  EXPECT_EQ("IOError: disk on fire", io.ToString());
}

TEST(Status, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
  for (int c = 0; c <= static_cast<int>(ErrorCode::kAlreadyExists); ++c) {
    std::string_view name = ErrorCodeName(static_cast<ErrorCode>(c));
    EXPECT_FALSE(name.empty());
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

TEST(Status, StructuredCorruption) {
  Status s = Status::Corruption("region table 1", "Checksum", 0x30000, "expected 0x1234abcd, found 0x0");
  EXPECT_EQ(ErrorCode::kCorruption, s.code());
  EXPECT_EQ("region table 1 at file offset 0x30000: Checksum: expected 0x1234abcd, found 0x0", s.message());
  EXPECT_EQ("Corruption: region table 1 at file offset 0x30000: Checksum: expected 0x1234abcd, found 0x0",
            s.ToString());
  EXPECT_EQ("header at file offset 0x0: Signature: bad",
            Status::Corruption("header", "Signature", 0, "bad").message());
  EXPECT_EQ("bat at file offset 0xffffffffffffffff: entry: x",
            Status::Corruption("bat", "entry", ~uint64_t{0}, "x").message());
}

TEST(Status, FromErrnoMapping) {
  struct Case {
    int err;
    ErrorCode code;
  } cases[] = {
      {ENOSPC, ErrorCode::kNoSpace},      {EDQUOT, ErrorCode::kNoSpace},  {EFBIG, ErrorCode::kNoSpace},
      {EROFS, ErrorCode::kReadOnly},      {ENOENT, ErrorCode::kNotFound}, {EEXIST, ErrorCode::kAlreadyExists},
      {EIO, ErrorCode::kIOError},         {EACCES, ErrorCode::kIOError},  {EWOULDBLOCK, ErrorCode::kIOError},
  };
  for (const Case& c : cases) {
    Status s = Status::FromErrno(c.err, "/tmp/x.vhdx: open");
    EXPECT_EQ(c.code, s.code()) << c.err;
    EXPECT_EQ(c.err, s.sys_errno());
    EXPECT_EQ(std::string("/tmp/x.vhdx: open: ") + std::strerror(c.err), s.message());
  }
}

TEST(Status, WithContext) {
  Status s = Status::FromErrno(ENOSPC, "write");
  Status w = s.WithContext("/images/a.vhdx");
  EXPECT_EQ(ErrorCode::kNoSpace, w.code());
  EXPECT_EQ(ENOSPC, w.sys_errno());
  EXPECT_EQ("/images/a.vhdx: " + s.message(), w.message());
  // The original is unchanged.
  EXPECT_EQ("write: " + std::string(std::strerror(ENOSPC)), s.message());
  EXPECT_TRUE(Status::OK().WithContext("ctx").ok());
}

TEST(Result, ValueAndError) {
  Result<int> r = 5;
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(5, *r);
  Result<int> e = Status::NotFound("nope");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(ErrorCode::kNotFound, e.status().code());
  Result<int> bad = Status::OK();
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace vhdx
