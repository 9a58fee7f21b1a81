// fuzz_chain: a valid differencing child whose parent file is hostile. The
// input (sparse image format, fuzz_util.h) describes the parent; it is
// written to parent.vhdx beside child.vhdx in a private temporary directory
// and the child is opened with its chain. Flag bit 4 sets
// ignore_parent_linkage, so parents whose DataWriteGuid does not match get
// as far as being read (and a copy of the child as its own parent reaches
// the cycle check); bit 5 makes the harness write the child's
// parent_linkage into the DataWriteGuid of every header-looking sector of
// the parent (with a valid CRC), so mutated parents pass the linkage check.
//
// Invariants: no crash; the files are never written (read-only opens);
// reads of the child either succeed or fail with a file-caused error.
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "vhdx/image.h"

using namespace vhdx;
using namespace vhdx::fuzz;

namespace {

struct Dir {
  std::string path;
  Dir() {
    char tmpl[] = "/tmp/vhdx-fuzz-chain-XXXXXX";
    FUZZ_CHECK(mkdtemp(tmpl) != nullptr);
    path = tmpl;
    CreateOptions popts;
    popts.virtual_size = 8 << 20;
    popts.block_size = 1 << 20;
    auto parent = Image::Create(path + "/parent.vhdx", popts);
    FUZZ_CHECK_MSG(parent.ok(), parent.status().ToString());
    std::vector<uint8_t> buf(1 << 20, 0x11);
    FUZZ_CHECK((*parent)->Write(0, buf).ok());
    FUZZ_CHECK((*parent)->Write(5 << 20, buf).ok());
    FUZZ_CHECK((*parent)->Close().ok());
    CreateOptions copts;
    copts.type = DiskType::kDifferencing;
    copts.parent_path = path + "/parent.vhdx";
    auto child = Image::Create(path + "/child.vhdx", copts);
    FUZZ_CHECK_MSG(child.ok(), child.status().ToString());
    std::vector<uint8_t> small(4096, 0x22);
    FUZZ_CHECK((*child)->Write(1 << 20, small).ok());
    FUZZ_CHECK((*child)->Write((5 << 20) + 512, small).ok());
    FUZZ_CHECK((*child)->Close().ok());
    // The child is only ever opened read-only from here on.
    chmod((path + "/child.vhdx").c_str(), 0444);
    OpenOptions alone;
    alone.open_parents = false;
    auto c = Image::Open(path + "/child.vhdx", alone);
    FUZZ_CHECK_MSG(c.ok(), c.status().ToString());
    for (const auto& [key, value] : (*c)->Info().parent_locator) {
      if (key == "parent_linkage") linkage = *Guid::Parse(value);
    }
    FUZZ_CHECK(!linkage.IsZero());
  }
  Guid linkage;
  ~Dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

const Dir& TheDir() {
  static Dir dir;
  return dir;
}

bool WriteSparse(const SparseFile& file, const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  uint64_t size = const_cast<SparseFile&>(file).Size().value();
  bool ok = ftruncate(fd, static_cast<off_t>(size)) == 0;
  for (const auto& [index, page] : file.pages()) {
    if (!ok) break;
    uint64_t off = index * SparseFile::kPage;
    if (off >= size) break;
    size_t n = static_cast<size_t>(std::min<uint64_t>(page.size(), size - off));
    ok = pwrite(fd, page.data(), n, static_cast<off_t>(off)) == static_cast<ssize_t>(n);
  }
  close(fd);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Dir& dir = TheDir();
  SparseInput in = ParseSparse(data, size);
  if (in.flags & 0x20) {
    for (uint64_t off : {uint64_t{64 << 10}, uint64_t{128 << 10}}) {
      std::vector<uint8_t> h = in.file->Peek(off, 4096);
      if (std::memcmp(h.data(), "head", 4) != 0) continue;
      dir.linkage.ToBytes(std::span<uint8_t, 16>(h.data() + 32, 16));  // DataWriteGuid
      in.file->Poke(off, h);
    }
    FixChecksums(in.file.get(), kFixHeaderChecksums);
  }
  const std::string parent = dir.path + "/parent.vhdx";
  if (!WriteSparse(*in.file, parent)) return 0;
  OpenOptions opts;
  opts.ignore_parent_linkage = (in.flags & 0x10) != 0;
  auto image = Image::Open(dir.path + "/child.vhdx", opts);
  if (getenv("FUZZ_VERBOSE")) std::fprintf(stderr, "open: %s\n", image.ok() ? "OK" : image.status().ToString().c_str());
  if (!image.ok()) {
    FUZZ_CHECK(!image.status().message().empty());
    return 0;
  }
  ExerciseImage(**image, 16);
  ImageInfo info = (*image)->Info();
  FUZZ_CHECK(info.chain.size() >= 2 && info.chain.size() <= 64);
  FUZZ_CHECK((*image)->Close().ok());
  return 0;
}
