// Shared pieces of the libFuzzer targets: a sparse in-memory File, the
// "sparse image" input format that lets a few KiB of fuzz input describe a
// multi-megabyte VHDX, and checksum fix-ups so mutations get past the CRCs.
// See docs/fuzzing.md.
#ifndef VHDX_FUZZ_FUZZ_UTIL_H_
#define VHDX_FUZZ_FUZZ_UTIL_H_

#include <array>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "vhdx/file.h"
#include "vhdx/image.h"

namespace vhdx::fuzz {

// Aborts the process (a fuzzer "crash") when an invariant of the library
// does not hold. Unlike assert, active in every build type.
#define FUZZ_CHECK(cond)                                                         \
  do {                                                                           \
    if (!(cond)) ::vhdx::fuzz::CheckFailed(#cond, __FILE__, __LINE__, nullptr);  \
  } while (0)
#define FUZZ_CHECK_MSG(cond, msg)                                                        \
  do {                                                                                   \
    if (!(cond)) ::vhdx::fuzz::CheckFailed(#cond, __FILE__, __LINE__, std::string(msg).c_str()); \
  } while (0)
[[noreturn]] void CheckFailed(const char* cond, const char* file, int line, const char* msg);

// Sizes and byte budgets the targets enforce on the library: a fuzz input of
// a few KiB must not make it write more than this into a file.
constexpr uint64_t kMaxBytesWritten = uint64_t{1} << 30;  // 1 GiB
// Largest file size an input may declare (sparse, so cheap to hold).
constexpr uint64_t kMaxDeclaredSize = uint64_t{64} << 30;  // 64 GiB

// A sparse file held as 4 KiB pages in a map; pages never written read as
// zero, so a declared size of gigabytes costs nothing. Counts the bytes the
// library writes and aborts when a read-only file is written or the write
// budget is exceeded: both mean a hostile image made the library do
// something it must not.
class SparseFile final : public File {
 public:
  static constexpr uint64_t kPage = 4096;
  using Page = std::array<uint8_t, kPage>;

  SparseFile(uint64_t size, bool writable) : size_(size), writable_(writable) {}
  // A copy with the same contents (and its own write counter).
  std::unique_ptr<SparseFile> Clone(bool writable) const;

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Flush() override { return Status::OK(); }
  Result<uint64_t> Size() override;
  Status Truncate(uint64_t size) override;
  Status ZeroRange(uint64_t offset, uint64_t length) override;
  Status PunchHole(uint64_t offset, uint64_t length) override;
  Status Allocate(uint64_t offset, uint64_t length) override;
  std::string Name() const override { return "<sparse>"; }
  bool IsWritable() const override { return writable_; }

  // Direct access for building inputs (no budget, no read-only check).
  void Poke(uint64_t offset, std::span<const uint8_t> data);
  std::vector<uint8_t> Peek(uint64_t offset, size_t n) const;
  void SetSize(uint64_t size) { size_ = size; }
  const std::map<uint64_t, Page>& pages() const { return pages_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  void Spend(uint64_t n);
  void DropPagesLocked(uint64_t first_page, uint64_t end_page);  // [first, end)
  void ZeroBytesLocked(uint64_t offset, uint64_t length);        // inside pages only

  mutable std::mutex mu_;
  std::map<uint64_t, Page> pages_;  // page index -> bytes; guarded by mu_
  uint64_t size_;                   // guarded by mu_
  bool writable_;
  uint64_t bytes_written_ = 0;  // guarded by mu_
};


// ---- the sparse image input format ------------------------------------------
//
//   byte 0      flags (kFix*, kAlsoReadWrite)
//   bytes 1..8  declared file size, u64 LE (clamped to kMaxDeclaredSize)
//   then records until the input ends:
//     u32 LE file offset, u16 LE length, `length` bytes (cut at the input end)
//   Records are applied in order onto a zero file of the declared size.
//
// make_seeds converts real images to this format (SerializeSparse).
enum : uint8_t {
  kFixHeaderChecksums = 1 << 0,
  kFixRegionChecksums = 1 << 1,
  kFixLogChecksums = 1 << 2,
  kAlsoReadWrite = 1 << 3,
};

struct SparseInput {
  uint8_t flags = 0;
  std::unique_ptr<SparseFile> file;
};
SparseInput ParseSparse(const uint8_t* data, size_t size);
// Encodes a file's non-zero pages as records (pages split into runs of
// non-zero bytes, so the output stays small).
std::vector<uint8_t> SerializeSparse(const SparseFile& file, uint8_t flags);

// Recomputes the CRC-32C of both headers, both region tables and every log
// entry that looks like one, as selected by `flags`, so that mutations of
// checksummed structures are not all rejected at the checksum.
void FixChecksums(SparseFile* file, uint8_t flags);

// Reads a bounded sample of the image: Info, Map over windows, and the first
// and last sector of up to `max_blocks` blocks (the first ones, the last
// ones and some in between). Returns a digest of what it read.
uint64_t ExerciseImage(Image& image, uint64_t max_blocks);

// Writes `file` to a memfd and runs CheckImage on /proc/self/fd/N.
void RunCheck(const SparseFile& file);

// Builds a small valid dynamic image in memory and returns its file.
std::unique_ptr<SparseFile> BuildImage(uint64_t virtual_size, uint32_t block_size, uint32_t lss,
                                       DiskType type);

// A small image with a dirty log, made by our own writer: created, written,
// flushed (so the log holds entries and the header names the log) and
// copied before Close cleans it. The copy is read-only.
struct DirtyImage {
  std::unique_ptr<SparseFile> file;
  uint64_t log_offset = 0;
  uint32_t log_length = 0;
  uint64_t virtual_size = 0;
};
DirtyImage BuildDirtyImage();

}  // namespace vhdx::fuzz

#endif  // VHDX_FUZZ_FUZZ_UTIL_H_
