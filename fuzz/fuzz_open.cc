// fuzz_open: an arbitrary image (sparse image format, fuzz_util.h) opened
// read-only from memory; Info, Map and a bounded read of every block; the
// collect-all check; with kAlsoReadWrite, a read-write open of a copy, a few
// writes, a clean close and a reopen that must succeed.
//
// Invariants checked beyond "no crash": a read-only open never writes the
// file; reads of valid ranges never fail with InvalidArgument; Map covers
// exactly what it was asked; an image we opened read-write and closed
// cleanly opens again; at most 1 GiB is written per input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fuzz_util.h"
#include "vhdx/image.h"

using namespace vhdx;
using namespace vhdx::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SparseInput in = ParseSparse(data, size);
  std::unique_ptr<SparseFile> rw_copy;
  if (in.flags & kAlsoReadWrite) rw_copy = in.file->Clone(true);
  const SparseFile& original = *in.file;

  OpenOptions ro;
  ro.read_only = true;
  ro.open_parents = false;
  {
    auto image = Image::Open(BorrowFile(in.file.get()), ro);
    if (getenv("FUZZ_VERBOSE")) std::fprintf(stderr, "open: %s\n", image.ok() ? "OK" : image.status().ToString().c_str());
    if (image.ok()) {
      ExerciseImage(**image, 256);
      FUZZ_CHECK((*image)->Close().ok());
    } else {
      FUZZ_CHECK(!image.status().message().empty());
    }
  }
  RunCheck(original);

  if (!rw_copy) return 0;
  OpenOptions rw;
  rw.read_only = false;
  rw.open_parents = false;
  auto image = Image::Open(BorrowFile(rw_copy.get()), rw);
  if (!image.ok()) return 0;
  Image& img = **image;
  const uint64_t vsize = img.virtual_size();
  const uint64_t lss = img.logical_sector_size();
  std::vector<uint8_t> buf(2 * lss, 0xA5);
  bool wrote_ok = true;
  if (vsize >= 2 * lss) {
    wrote_ok &= img.Write(0, buf).ok();
    wrote_ok &= img.Write(vsize - 2 * lss, buf).ok();
    wrote_ok &= img.WriteZeroes(vsize / 2 / lss * lss, lss).ok();
    wrote_ok &= img.Trim(0, std::min<uint64_t>(vsize, img.block_size())).ok();
  }
  ExerciseImage(img, 64);
  Status closed = img.Close();
  image->reset();
  if (!wrote_ok || !closed.ok()) return 0;  // e.g. the sparse file's budget
  // What we closed cleanly must open again (differencing images alone).
  auto again = Image::Open(BorrowFile(rw_copy.get()), ro);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  ExerciseImage(**again, 64);
  return 0;
}
