// fuzz_log_replay: a valid small image with a dirty log (built once by our
// own writer: created, written, flushed, and copied before the clean close)
// whose log region is overwritten by the fuzz input; then opened read-only
// (replay in memory) and read-write (replay to the file).
//
// Input: byte 0 flags (bit 0: fix the CRC of every entry-looking sector,
// bit 1: also open read-write, bit 2: clear the log before splicing),
// byte 1: splice position in 4 KiB sectors (wraps in the log), the rest:
// bytes written into the log ring from there (wrapping).
//
// Invariants: no crash; the read-only open writes nothing; a read-only and a
// read-write open of the same bytes agree on success and on every byte of
// the virtual disk; bounded writes (fuzz_util.h).
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_util.h"
#include "util/coding.h"
#include "vhdx/image.h"

using namespace vhdx;
using namespace vhdx::fuzz;

namespace {

const DirtyImage& Base() {
  static const DirtyImage d = BuildDirtyImage();
  return d;
}

// Reads the whole virtual disk; empty on any read error.
std::vector<uint8_t> ReadAll(Image& image) {
  std::vector<uint8_t> out(image.virtual_size());
  if (!image.Read(0, out).ok()) return {};
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const DirtyImage& base = Base();
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  auto file = base.file->Clone(false);
  std::vector<uint8_t> ring = file->Peek(base.log_offset, base.log_length);
  if (flags & 4) std::fill(ring.begin(), ring.end(), 0);
  const uint32_t sectors = base.log_length / 4096;
  uint64_t pos = uint64_t{data[1]} % sectors * 4096;
  size_t n = std::min<size_t>(size - 2, ring.size());
  for (size_t i = 0; i < n; ++i) ring[(pos + i) % ring.size()] = data[2 + i];
  file->Poke(base.log_offset, ring);
  if (flags & 1) FixChecksums(file.get(), kFixLogChecksums);
  auto rw_file = file->Clone(true);

  OpenOptions ro;
  auto ro_image = Image::Open(std::make_unique<BorrowedFile>(file.get()), ro);
  std::vector<uint8_t> ro_content;
  if (ro_image.ok()) {
    ExerciseImage(**ro_image, 16);
    ro_content = ReadAll(**ro_image);
    FUZZ_CHECK((*ro_image)->Close().ok());
  }
  if (!(flags & 2)) return 0;

  OpenOptions rw;
  rw.read_only = false;
  auto rw_image = Image::Open(std::make_unique<BorrowedFile>(rw_file.get()), rw);
  FUZZ_CHECK_MSG(rw_image.ok() == ro_image.ok(),
                 "read-only open: " + (ro_image.ok() ? std::string("OK") : ro_image.status().ToString()) +
                     "; read-write open: " + (rw_image.ok() ? std::string("OK") : rw_image.status().ToString()));
  if (!rw_image.ok()) return 0;
  std::vector<uint8_t> rw_content = ReadAll(**rw_image);
  FUZZ_CHECK_MSG(rw_content == ro_content, "replay in memory and replay to the file disagree");
  FUZZ_CHECK((*rw_image)->Close().ok());
  // Replayed and closed cleanly: opens again with the same content.
  auto again = Image::Open(std::make_unique<BorrowedFile>(rw_file.get()), ro);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(ReadAll(**again) == rw_content);
  return 0;
}
