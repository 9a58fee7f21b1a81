// make_seeds: writes seed corpora for every fuzz target into
// <out>/<target>/, from images our writer builds and from any VHDX files
// given on the command line (converted to the sparse image format with only
// their metadata and a few data pages, so each seed stays small).
//   make_seeds OUT_DIR [image.vhdx ...]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "format/constants.h"
#include "format/header.h"
#include "format/parent_locator.h"
#include "format/region_table.h"
#include "fuzz_util.h"
#include "util/coding.h"
#include "vhdx/image.h"

using namespace vhdx;
using namespace vhdx::fuzz;
namespace fs = std::filesystem;

namespace {

std::string g_out;

void Emit(const std::string& target, const std::string& name, const std::vector<uint8_t>& bytes) {
  fs::create_directories(g_out + "/" + target);
  std::ofstream f(g_out + "/" + target + "/" + name, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  std::printf("%s/%s: %zu bytes\n", target.c_str(), name.c_str(), bytes.size());
}

// Reads a VHDX file into a SparseFile keeping the header section, the log,
// the BAT and metadata regions, and at most `data_pages` other non-zero pages.
std::unique_ptr<SparseFile> LoadImageFile(const std::string& path, int data_pages) {
  auto file = OpenPosixFile(path, FileMode::kReadOnly);
  if (!file.ok()) return nullptr;
  uint64_t size = (*file)->Size().value();
  auto out = std::make_unique<SparseFile>(size, false);
  std::vector<std::pair<uint64_t, uint64_t>> keep = {{0, format::kHeaderSectionSize}};
  for (uint64_t off : {format::kHeader1Offset, format::kHeader2Offset}) {
    std::vector<uint8_t> raw(4096);
    (*file)->ReadAt(off, raw).PermitUncheckedError();
    if (auto h = format::Header::Decode(raw, off); h.ok()) keep.push_back({h->log_offset, h->log_length});
  }
  std::vector<uint8_t> rt(format::kRegionTableSize);
  (*file)->ReadAt(format::kRegionTable1Offset, rt).PermitUncheckedError();
  if (auto t = format::RegionTable::Decode(rt, format::kRegionTable1Offset); t.ok()) {
    for (const auto& e : t->entries) keep.push_back({e.file_offset, e.length});
  }
  std::vector<uint8_t> page(4096);
  auto kept = [&](uint64_t off) {
    for (auto [o, l] : keep) {
      if (off >= o && off < o + l) return true;
    }
    return false;
  };
  for (uint64_t off = 0; off < size && off < (uint64_t{4} << 30); off += 4096) {
    const bool meta = kept(off);
    if (!meta && data_pages <= 0) {
      // Skip ahead to the next kept range.
      uint64_t next = size;
      for (auto [o, l] : keep) {
        if (o > off) next = std::min(next, o);
      }
      off = AlignUp(next, 4096) - 4096;
      continue;
    }
    (*file)->ReadAt(off, page).PermitUncheckedError();
    if (std::all_of(page.begin(), page.end(), [](uint8_t b) { return b == 0; })) continue;
    if (!meta) --data_pages;
    out->Poke(off, page);
  }
  return out;
}

std::unique_ptr<SparseFile> Build(uint64_t vsize, uint32_t bs, uint32_t lss, DiskType type, bool write) {
  auto file = std::make_unique<SparseFile>(0, true);
  CreateOptions opts;
  opts.virtual_size = vsize;
  opts.block_size = bs;
  opts.logical_sector_size = lss;
  opts.type = type;
  auto image = Image::Create(BorrowFile(file.get()), opts);
  if (!image.ok()) {
    std::fprintf(stderr, "create: %s\n", image.status().ToString().c_str());
    std::exit(1);
  }
  if (write) {
    std::vector<uint8_t> buf(8192, 0x3C);
    (*image)->Write(0, buf).PermitUncheckedError();
    (*image)->Write(vsize - buf.size(), buf).PermitUncheckedError();
    (*image)->WriteZeroes(vsize / 2 / bs * bs, bs).PermitUncheckedError();
  }
  if (!(*image)->Close().ok()) std::exit(1);
  return file;
}

void PluginSeeds() {
  auto op = [](std::vector<uint8_t>& v, uint8_t kind, uint32_t off, uint16_t len, uint8_t fill) {
    uint8_t r[8];
    r[0] = kind;
    StoreLE32(r + 1, off);
    StoreLE16(r + 5, len);
    r[7] = fill;
    v.insert(v.end(), r, r + 8);
  };
  std::vector<uint8_t> a = {0};
  op(a, 1, 0, 4096, 0x11);
  op(a, 0, 0, 8192, 0);
  op(a, 1, 1000, 3000, 0x22);  // unaligned
  op(a, 2, 700, 100, 0);
  op(a, 0, 512, 4096, 0);
  op(a, 0x14, 1 << 20, 1024, 0);  // trim a whole block
  op(a, 5, 0, 0, 0);
  op(a, 6, 0, 65535, 0);
  Emit("fuzz_plugin", "basic", a);
  std::vector<uint8_t> b = {1 | 2 | 4};
  op(b, 0x11, 3 << 20, 2048, 0x33);
  op(b, 3, 2 << 20, 65535, 0);
  op(b, 0x13, 0, 4096, 0);
  op(b, 0x12, 1 << 20, 1024, 0);
  op(b, 0x20 | 1, 0, 512, 1);  // huge offset
  op(b, 0x0C, 4096, 4096, 0);
  op(b, 6, 0, 65535, 0);
  Emit("fuzz_plugin", "fixed4k", b);
}

void LocatorSeeds() {
  format::ParentLocator loc;
  loc.locator_type = format::VhdxParentLocatorTypeGuid();
  loc.Set("parent_linkage", "{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}");
  loc.Set("relative_path", "..\\\\sub\\\\parent.vhdx");
  loc.Set("volume_path", "\\\\?\\Volume{26A21BDA-A627-11D7-9931-806E6F6E6963}\\parent.vhdx");
  loc.Set("absolute_win32_path", "\\\\?\\d:\\parent.vhdx");
  loc.Set("parent_linkage2", "{00000000-24c8-49a6-a959-5e4bf1288bfb}");
  Emit("fuzz_parent_locator", "windows_like", loc.Encode());
  format::ParentLocator small;
  small.locator_type = format::VhdxParentLocatorTypeGuid();
  small.Set("parent_linkage", "{83ED0EC3-24C8-49A6-A959-5E4BF1288BFB}");
  small.Set("relative_path", "p.vhdx");
  Emit("fuzz_parent_locator", "minimal", small.Encode());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR [image.vhdx ...]\n");
    return 2;
  }
  g_out = argv[1];
  const uint8_t all = kFixHeaderChecksums | kFixRegionChecksums | kFixLogChecksums;

  // fuzz_open: our own images, clean and dirty, and converted files.
  Emit("fuzz_open", "dynamic_8m", SerializeSparse(*Build(8 << 20, 1 << 20, 512, DiskType::kDynamic, true), all));
  Emit("fuzz_open", "dynamic_rw",
       SerializeSparse(*Build(3 << 20, 1 << 20, 512, DiskType::kDynamic, true), all | kAlsoReadWrite));
  Emit("fuzz_open", "fixed_4k", SerializeSparse(*Build(2 << 20, 1 << 20, 4096, DiskType::kFixed, true), all));
  Emit("fuzz_open", "empty_64t",
       SerializeSparse(*Build(uint64_t{64} << 40, 256 << 20, 4096, DiskType::kDynamic, false), all));
  DirtyImage dirty = BuildDirtyImage();
  Emit("fuzz_open", "dirty", SerializeSparse(*dirty.file, all | kAlsoReadWrite));
  for (int i = 2; i < argc; ++i) {
    auto f = LoadImageFile(argv[i], 8);
    if (!f) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      continue;
    }
    Emit("fuzz_open", fs::path(argv[i]).filename().string(), SerializeSparse(*f, all | kAlsoReadWrite));
  }

  // fuzz_log_replay: the dirty image's log as it is (flags: fix CRCs, also
  // read-write, splice at sector 0), and a zeroed log.
  {
    std::vector<uint8_t> ring = dirty.file->Peek(dirty.log_offset, dirty.log_length);
    size_t used = ring.size();
    while (used > 0 && ring[used - 1] == 0) --used;
    std::vector<uint8_t> seed = {3, 0};
    seed.insert(seed.end(), ring.begin(), ring.begin() + static_cast<ptrdiff_t>(AlignUp(used, 4096)));
    Emit("fuzz_log_replay", "our_log", seed);
    Emit("fuzz_log_replay", "cleared", {7, 0});
  }

  // fuzz_chain: a parent built like the harness's (its DataWriteGuid is
  // adopted by flag 0x20), and a differencing image as its own parent.
  {
    char tmpl[] = "/tmp/vhdx-seeds-XXXXXX";
    if (!mkdtemp(tmpl)) return 1;
    std::string dir = tmpl;
    CreateOptions popts;
    popts.virtual_size = 8 << 20;
    popts.block_size = 1 << 20;
    auto parent = Image::Create(dir + "/parent.vhdx", popts);
    if (!parent.ok()) return 1;
    std::vector<uint8_t> buf(1 << 20, 0x11);
    (*parent)->Write(0, buf).PermitUncheckedError();
    if (!(*parent)->Close().ok()) return 1;
    CreateOptions copts;
    copts.type = DiskType::kDifferencing;
    copts.parent_path = dir + "/parent.vhdx";
    auto child = Image::Create(dir + "/child.vhdx", copts);
    if (!child.ok()) return 1;
    (*child)->Write(0, std::vector<uint8_t>(4096, 0x22)).PermitUncheckedError();
    if (!(*child)->Close().ok()) return 1;
    Emit("fuzz_chain", "parent", SerializeSparse(*LoadImageFile(dir + "/parent.vhdx", 4), all | 0x20));
    Emit("fuzz_chain", "self_cycle", SerializeSparse(*LoadImageFile(dir + "/child.vhdx", 4), all | 0x10));
    Emit("fuzz_open", "differencing", SerializeSparse(*LoadImageFile(dir + "/child.vhdx", 4), all));
    fs::remove_all(dir);
  }

  LocatorSeeds();
  PluginSeeds();
  return 0;
}
