// vhdx::Merge on files: folding a child (and the images between) into its
// parent or a further ancestor leaves the ancestor with the child's view;
// the merged child still opens (parent_linkage2) and reads the same; other
// children of the ancestor are refused, not misread; a merge killed half way
// leaves a chain that reads the same and can be merged again; refusals
// change nothing. The power-cut side of merge is in crash_test.cc.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/test_util.h"
#include "vhdx/chain.h"
#include "vhdx/check.h"
#include "vhdx/image.h"

namespace vhdx {
namespace {

using test::TempDir;

constexpr uint64_t kMiB = uint64_t{1} << 20;

struct Geometry {
  uint64_t size;
  uint32_t block_size;
  uint32_t lss;
};

std::unique_ptr<Image> OpenOrDie(const std::string& path, bool writable = false) {
  OpenOptions o;
  o.read_only = !writable;
  auto image = Image::Open(path, o);
  EXPECT_TRUE(image.ok()) << path << ": " << image.status().ToString();
  return image.ok() ? std::move(*image) : nullptr;
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  auto image = OpenOrDie(path);
  if (!image) return {};
  std::vector<uint8_t> out(image->virtual_size());
  EXPECT_TRUE(image->Read(0, out).ok());
  EXPECT_TRUE(image->Close().ok());
  return out;
}

// Creates `path` (a child of `parent`, or a dynamic base image) and gives it
// seeded writes of every shape: whole blocks, partial blocks crossing
// bitmap and block boundaries, write-zeroes and trims.
void MakeLayer(const std::string& path, const std::string& parent, const Geometry& g, uint64_t seed) {
  CreateOptions c;
  c.virtual_size = g.size;
  c.block_size = g.block_size;
  c.logical_sector_size = g.lss;
  c.parent_path = parent;
  auto created = Image::Create(path, c);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_TRUE((*created)->Close().ok());
  auto image = OpenOrDie(path, true);
  ASSERT_TRUE(image);
  std::mt19937_64 rng(seed);
  const uint64_t sectors = g.size / g.lss;
  for (int i = 0; i < 40; ++i) {
    const uint64_t first = rng() % sectors;
    const uint64_t count = 1 + rng() % std::min<uint64_t>(sectors - first, (3 * g.block_size / 2) / g.lss);
    const uint64_t off = first * g.lss, len = count * g.lss;
    switch (rng() % 6) {
      case 0:
        ASSERT_TRUE(image->WriteZeroes(off, len).ok());
        break;
      case 1:
        ASSERT_TRUE(image->Trim(off, len).ok());
        break;
      default:
        ASSERT_TRUE(image->Write(off, test::Pattern(rng(), len)).ok());
    }
  }
  ASSERT_TRUE(image->Close().ok());
}

class MergeTest : public ::testing::TestWithParam<Geometry> {
 protected:
  // base <- mid <- top, each with its own writes.
  void MakeChain() {
    const Geometry& g = GetParam();
    MakeLayer(base_, "", g, 1);
    MakeLayer(mid_, base_, g, 2);
    MakeLayer(top_, mid_, g, 3);
  }
  TempDir dir_;
  std::string base_ = dir_.Join("base.vhdx");
  std::string mid_ = dir_.Join("mid.avhdx");
  std::string top_ = dir_.Join("top.avhdx");
};

TEST_P(MergeTest, IntoParent) {
  MakeChain();
  if (HasFatalFailure()) return;
  const std::vector<uint8_t> top_view = ReadAll(top_);
  const std::vector<uint8_t> base_view = ReadAll(base_);
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  MergeOptions o;
  o.progress = [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); };
  auto r = Merge(top_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ancestor, mid_);
  EXPECT_EQ(r->merged_images, std::vector<std::string>{top_});
  EXPECT_GT(r->bytes_written, 0u);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, GetParam().size);
  EXPECT_EQ(progress.back().second, GetParam().size);

  EXPECT_TRUE(ReadAll(mid_) == top_view) << "the parent does not hold the child's view";
  EXPECT_TRUE(ReadAll(top_) == top_view) << "the merged child reads differently";
  EXPECT_TRUE(ReadAll(base_) == base_view) << "the grandparent changed";
  auto top = OpenOrDie(top_);
  ASSERT_TRUE(top);
  EXPECT_EQ(top->Info().chain[0].parent_match, ParentMatch::kLinkage2);
  for (const auto& path : {base_, mid_, top_}) {
    auto report = CheckImage(path);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->clean()) << path;
  }
}

TEST_P(MergeTest, IntoGrandparentLeavesSiblingsRefused) {
  MakeChain();
  if (HasFatalFailure()) return;
  const std::string sibling = dir_.Join("sibling.avhdx");
  MakeLayer(sibling, base_, GetParam(), 4);
  if (HasFatalFailure()) return;
  const std::vector<uint8_t> top_view = ReadAll(top_);
  MergeOptions o;
  o.into = base_;
  auto r = Merge(top_, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ancestor, base_);
  EXPECT_EQ(r->merged_images, (std::vector<std::string>{top_, mid_}));

  EXPECT_TRUE(ReadAll(base_) == top_view) << "the ancestor does not hold the child's view";
  EXPECT_TRUE(ReadAll(top_) == top_view) << "the merged child reads differently";
  auto sib = Image::Open(sibling);
  ASSERT_FALSE(sib.ok()) << "a sibling would read the changed ancestor";
  EXPECT_EQ(sib.status().code(), ErrorCode::kCorruption) << sib.status().ToString();
  EXPECT_NE(sib.status().ToString().find("parent_linkage"), std::string::npos) << sib.status().ToString();
}

// The merge process dies half way through the copy (no flush, no close):
// the chain reads as before, and a second merge completes.
TEST_P(MergeTest, KilledMergeLeavesTheChainReadableAndCanBeRerun) {
  MakeChain();
  if (HasFatalFailure()) return;
  const std::vector<uint8_t> top_view = ReadAll(top_);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    MergeOptions o;
    o.progress = [](uint64_t done, uint64_t total) {
      if (done >= total / 2 && done < total) ::_exit(42);
    };
    (void)Merge(top_, o);
    ::_exit(1);  // the merge finished in one window: the test is mis-sized
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 42);

  auto mid = OpenOrDie(mid_);
  ASSERT_TRUE(mid);
  EXPECT_TRUE(ReadAll(top_) == top_view) << "the interrupted chain reads differently";
  auto top = OpenOrDie(top_);
  ASSERT_TRUE(top);
  EXPECT_EQ(top->Info().chain[0].parent_match, ParentMatch::kLinkage2);
  ASSERT_TRUE(top->Close().ok());
  ASSERT_TRUE(mid->Close().ok());

  auto r = Merge(top_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(ReadAll(mid_) == top_view);
  EXPECT_TRUE(ReadAll(top_) == top_view);
  auto report = CheckImage(mid_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->clean());
}

// Refusals happen before any file changes.
TEST_P(MergeTest, RefusalsChangeNothing) {
  MakeChain();
  if (HasFatalFailure()) return;
  const std::string before_base = test::Sha256OfFile(base_);
  const std::string before_mid = test::Sha256OfFile(mid_);
  const std::string before_top = test::Sha256OfFile(top_);

  auto r = Merge(base_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().ToString();

  MergeOptions into_self;
  into_self.into = top_;
  r = Merge(top_, into_self);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << r.status().ToString();

  const std::string stranger = dir_.Join("stranger.vhdx");
  MakeLayer(stranger, "", GetParam(), 5);
  if (HasFatalFailure()) return;
  MergeOptions into_stranger;
  into_stranger.into = stranger;
  r = Merge(top_, into_stranger);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().ToString().find("not an ancestor"), std::string::npos) << r.status().ToString();

  // A child bigger than its parent.
  const std::string big = dir_.Join("big.avhdx");
  CreateOptions c;
  c.virtual_size = GetParam().size * 2;
  c.parent_path = top_;
  auto created = Image::Create(big, c);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_TRUE((*created)->Close().ok());
  const std::string before_big = test::Sha256OfFile(big);
  r = Merge(big);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotSupported) << r.status().ToString();
  EXPECT_EQ(test::Sha256OfFile(big), before_big);

  EXPECT_EQ(test::Sha256OfFile(base_), before_base);
  EXPECT_EQ(test::Sha256OfFile(mid_), before_mid);
  EXPECT_EQ(test::Sha256OfFile(top_), before_top);
}

INSTANTIATE_TEST_SUITE_P(Geometries, MergeTest,
                         ::testing::Values(Geometry{24 * kMiB, 1 << 20, 512}, Geometry{40 * kMiB, 2 << 20, 4096},
                                           Geometry{24 * kMiB + 3 * 4096, 1 << 20, 4096}),
                         [](const auto& p) {
                           return std::to_string(p.param.block_size >> 20) + "M_" + std::to_string(p.param.lss) +
                                  (p.param.size % p.param.block_size ? "_partial_last" : "");
                         });

}  // namespace
}  // namespace vhdx
