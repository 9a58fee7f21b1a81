// An image left dirty by our writer (the process dies right after a log
// entry became durable, before it was applied) is replayed by QEMU's
// `qemu-img check -r all` to the same content our own replay gives.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/test_util.h"
#include "vhdx/check.h"
#include "vhdx/file.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

// Ends the process, without closing anything, after the Nth flush.
class DieAfterFlush : public FileWrapper {
 public:
  DieAfterFlush(std::unique_ptr<File> f, int n) : FileWrapper(std::move(f)), remaining_(n) {}
  Status Flush() override {
    Status s = FileWrapper::Flush();
    if (--remaining_ == 0) _exit(0);
    return s;
  }

 private:
  int remaining_;
};

// Writes a seeded pattern in a child process that dies at flush `n`.
// Returns false if the workload finished before reaching that flush.
bool RunAndDie(const std::string& path, int n) {
  pid_t pid = fork();
  if (pid == 0) {
    auto file = OpenPosixFile(path, FileMode::kReadWrite);
    if (!file.ok()) _exit(2);
    OpenOptions o;
    o.read_only = false;
    auto img = Image::Open(std::make_unique<DieAfterFlush>(std::move(*file), n), o);
    if (!img.ok()) _exit(3);
    for (int i = 0; i < 24; ++i) {
      std::vector<uint8_t> data = test::Pattern(100 + i, 64 << 10);
      uint64_t off = (uint64_t{static_cast<uint64_t>(i) * 2654435761u} % 60) << 20;
      if (!(*img)->Write(off, data).ok()) _exit(4);
      if (i % 4 == 3 && !(*img)->Flush().ok()) _exit(5);
    }
    _exit(7);  // never reached flush n: not a useful cut
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(DirtyInteropTest, QemuReplaysOurLogLikeWeDo) {
  if (!test::HaveCommand("qemu-img")) GTEST_SKIP() << "qemu-img not installed";
  int cuts = 0;
  for (int n = 1; n < 40; ++n) {
    test::TempDir dir;
    const std::string ours = dir.Join("ours.vhdx"), theirs = dir.Join("theirs.vhdx");
    {
      CreateOptions co;
      co.virtual_size = 64 << 20;
      co.block_size = 1 << 20;
      auto img = Image::Create(ours, co);
      ASSERT_TRUE(img.ok());
      ASSERT_TRUE((*img)->Close().ok());
    }
    if (!RunAndDie(ours, n)) break;
    auto report = CheckImage(ours);
    ASSERT_TRUE(report.ok());
    if (!report->log_was_dirty) continue;  // died at a flush outside a commit
    ++cuts;
    ASSERT_EQ(test::Run("cp --sparse=always '" + ours + "' '" + theirs + "'"), 0);
    // QEMU replays its copy; we replay ours with a writable open.
    ASSERT_EQ(test::Run("qemu-img check -q -r all '" + theirs + "' >/dev/null 2>&1 || true"), 0);
    {
      OpenOptions o;
      o.read_only = false;
      auto img = Image::Open(ours, o);
      ASSERT_TRUE(img.ok()) << img.status().ToString();
      ASSERT_TRUE((*img)->Close().ok());
    }
    EXPECT_EQ(test::Run("qemu-img check -q '" + theirs + "'"), 0) << "cut " << n;
    EXPECT_EQ(test::Run("qemu-img compare -q -f vhdx -F vhdx '" + ours + "' '" + theirs + "'"), 0)
        << "QEMU's replay differs from ours at cut " << n;
  }
  EXPECT_GT(cuts, 2) << "no dirty states were produced";
}

}  // namespace
}  // namespace vhdx
