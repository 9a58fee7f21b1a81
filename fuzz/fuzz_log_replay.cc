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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <span>
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

// Digest of the whole virtual disk (FNV-1a over 64-bit words), read in
// chunks into one reused buffer so that no input costs large allocations;
// 0 on any read error.
uint64_t Digest(Image& image) {
  static std::vector<uint8_t> buf(256 << 10);
  uint64_t h = 1469598103934665603ull;
  for (uint64_t off = 0; off < image.virtual_size(); off += buf.size()) {
    const uint64_t n = std::min<uint64_t>(buf.size(), image.virtual_size() - off);
    if (!image.Read(off, std::span<uint8_t>(buf.data(), n)).ok()) return 0;
    for (uint64_t i = 0; i + 8 <= n; i += 8) h = (h ^ LoadLE64(buf.data() + i)) * 1099511628211ull;
  }
  return h | 1;
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
  auto ro_image = Image::Open(BorrowFile(file.get()), ro);
  if (getenv("FUZZ_VERBOSE")) {
    std::fprintf(stderr, "read-only open: %s\n",
                 ro_image.ok() ? ("OK, entries replayed: " + std::to_string((*ro_image)->Info().log_entries_replayed)).c_str()
                               : ro_image.status().ToString().c_str());
  }
  uint64_t ro_content = 0;
  if (ro_image.ok()) {
    ExerciseImage(**ro_image, 16);
    ro_content = Digest(**ro_image);
    FUZZ_CHECK((*ro_image)->Close().ok());
  }
  if (!(flags & 2)) return 0;

  OpenOptions rw;
  rw.read_only = false;
  auto rw_image = Image::Open(BorrowFile(rw_file.get()), rw);
  FUZZ_CHECK_MSG(rw_image.ok() == ro_image.ok(),
                 "read-only open: " + (ro_image.ok() ? std::string("OK") : ro_image.status().ToString()) +
                     "; read-write open: " + (rw_image.ok() ? std::string("OK") : rw_image.status().ToString()));
  if (!rw_image.ok()) return 0;
  const uint64_t rw_content = Digest(**rw_image);
  FUZZ_CHECK_MSG(rw_content == ro_content, "replay in memory and replay to the file disagree");
  FUZZ_CHECK((*rw_image)->Close().ok());
  // Replayed and closed cleanly: opens again with the same content.
  auto again = Image::Open(BorrowFile(rw_file.get()), ro);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(Digest(**again) == rw_content);
  return 0;
}
