// fuzz_plugin: the nbdkit plugin's request path (nbdkit/disk.h, no nbdkit
// needed) on a writable in-memory image, driven by a fuzzer-chosen request
// sequence and checked against a byte-array model of the disk.
//
// Input: byte 0 image config (bit 0 fixed, bit 1 4 KiB sectors, bits 2-3
// size: 2, 3, 5 or 9 MiB minus a sector), then 8-byte requests:
//   u8 op (bits 0-2 kind, bit 3 fua, bit 4 long length, bit 5 huge offset),
//   u32 LE offset, u16 LE length, u8 fill byte.
//
// Invariants: reads return what the model holds; Map's zero/unallocated
// extents read as zeros; requests past the end fail (EINVAL for reads,
// ENOSPC for modifications) and change nothing; after Close the image
// reopens with exactly the model's content.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "disk.h"
#include "fuzz_util.h"
#include "util/coding.h"
#include "vhdx/image.h"

using namespace vhdx;
using namespace vhdx::fuzz;
using vhdx_nbdkit::Disk;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t config = data[0];
  const uint32_t lss = (config & 2) ? 4096 : 512;
  static constexpr uint64_t kSizes[] = {2, 3, 5, 9};
  const uint64_t vsize = (kSizes[(config >> 2) & 3] << 20) - lss;
  SparseFile file(0, true);
  CreateOptions opts;
  opts.virtual_size = vsize;
  opts.block_size = 1 << 20;
  opts.logical_sector_size = lss;
  opts.type = (config & 1) ? DiskType::kFixed : DiskType::kDynamic;
  auto created = Image::Create(BorrowFile(&file), opts);
  FUZZ_CHECK_MSG(created.ok(), created.status().ToString());
  Disk disk(std::move(*created));
  // Reused between inputs: large per-input allocations cost page faults.
  static std::vector<uint8_t> model, buf, all;
  model.assign(vsize, 0);

  for (size_t pos = 1; pos + 8 <= size; pos += 8) {
    const uint8_t op = data[pos];
    uint64_t offset = LoadLE32(data + pos + 1) % (vsize + 8192);
    uint64_t length = LoadLE16(data + pos + 5);
    if (op & 0x10) length *= 1024;
    if (op & 0x20) offset = UINT64_MAX - offset;
    const uint8_t fill = data[pos + 7];
    const bool fua = op & 8;
    const bool inside = offset <= vsize && length <= vsize - offset;
    switch (op & 7) {
      case 0: {  // read
        buf.assign(std::min<uint64_t>(length, 64 << 20), 0);
        Status s = disk.Read(offset, buf);
        if (!inside || buf.size() != length) {
          FUZZ_CHECK(s.code() == ErrorCode::kInvalidArgument || (inside && s.ok()));
          break;
        }
        FUZZ_CHECK_MSG(s.ok(), s.ToString());
        FUZZ_CHECK_MSG(std::equal(buf.begin(), buf.end(), model.begin() + static_cast<ptrdiff_t>(offset)),
                       "read returned other bytes than were written");
        break;
      }
      case 1: {  // write
        buf.assign(std::min<uint64_t>(length, 64 << 20), fill);
        if (!buf.empty()) buf[0] = static_cast<uint8_t>(fill ^ 0x5A);
        Status s = disk.Write(offset, buf, fua);
        if (!inside) {
          FUZZ_CHECK(s.code() == ErrorCode::kNoSpace);
          break;
        }
        FUZZ_CHECK_MSG(s.ok(), s.ToString());
        std::copy(buf.begin(), buf.end(), model.begin() + static_cast<ptrdiff_t>(offset));
        break;
      }
      case 2: {  // zero
        Status s = disk.Zero(offset, length, fua);
        if (!inside) {
          FUZZ_CHECK(s.code() == ErrorCode::kNoSpace);
          break;
        }
        FUZZ_CHECK_MSG(s.ok(), s.ToString());
        std::fill_n(model.begin() + static_cast<ptrdiff_t>(offset), length, 0);
        break;
      }
      case 3: {  // fast zero
        auto r = disk.ZeroFast(offset, length, fua);
        if (!inside) {
          FUZZ_CHECK(!r.ok() && r.status().code() == ErrorCode::kNoSpace);
          break;
        }
        FUZZ_CHECK_MSG(r.ok(), r.status().ToString());
        if (*r) std::fill_n(model.begin() + static_cast<ptrdiff_t>(offset), length, 0);
        break;
      }
      case 4: {  // trim: whole sectors read as zeros afterwards (base images)
        Status s = disk.Trim(offset, length, fua);
        if (!inside) {
          FUZZ_CHECK(s.code() == ErrorCode::kNoSpace);
          break;
        }
        FUZZ_CHECK_MSG(s.ok(), s.ToString());
        const uint64_t from = AlignUp(offset, lss), to = (offset + length) / lss * lss;
        if (to > from) std::fill_n(model.begin() + static_cast<ptrdiff_t>(from), to - from, 0);
        break;
      }
      case 5: {  // flush
        Status s = disk.Flush();
        FUZZ_CHECK_MSG(s.ok(), s.ToString());
        break;
      }
      default: {  // extents
        auto map = disk.Map(offset, length);
        if (!inside) {
          FUZZ_CHECK(!map.ok() && map.status().code() == ErrorCode::kInvalidArgument);
          break;
        }
        FUZZ_CHECK_MSG(map.ok(), map.status().ToString());
        for (const Extent& e : *map) {
          FUZZ_CHECK(e.offset + e.length <= vsize);
          if (e.kind == Extent::Kind::kData) continue;
          FUZZ_CHECK_MSG(std::all_of(model.begin() + static_cast<ptrdiff_t>(e.offset),
                                     model.begin() + static_cast<ptrdiff_t>(e.offset + e.length),
                                     [](uint8_t b) { return b == 0; }),
                         "an extent mapped as zero holds data");
        }
        break;
      }
    }
  }
  Status closed = disk.Close();
  FUZZ_CHECK_MSG(closed.ok(), closed.ToString());
  auto again = Image::Open(BorrowFile(&file), OpenOptions{});
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  all.assign(vsize, 0);
  FUZZ_CHECK((*again)->Read(0, all).ok());
  FUZZ_CHECK_MSG(all == model, "content after close and reopen differs from what was written");
  return 0;
}
