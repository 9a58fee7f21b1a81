// `vhdx read FILE OFFSET LENGTH` and `vhdx write FILE OFFSET LENGTH`: raw
// bytes of the virtual disk to stdout / from stdin.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "common.h"
#include "raw_io.h"
#include "vhdx/image.h"

namespace vhdx::tool {
namespace {

constexpr uint64_t kIoChunk = 4 * kMiB;

struct IoOptions {
  std::string file;
  std::string offset;
  std::string length;
};

// Parses OFFSET and LENGTH and checks them against the disk size.
Status ParseRange(const char* command, const IoOptions& o, uint64_t disk_size, uint64_t* offset,
                  uint64_t* length) {
  auto off = ParseSize(o.offset);
  if (!off.ok()) return Status::InvalidArgument("OFFSET: " + off.status().message());
  auto len = ParseSize(o.length);
  if (!len.ok()) return Status::InvalidArgument("LENGTH: " + len.status().message());
  uint64_t end;
  if (__builtin_add_overflow(*off, *len, &end) || end > disk_size) {
    return Status::InvalidArgument(std::string(command) + " of " + std::to_string(*len) + " bytes at offset " +
                                   std::to_string(*off) + " is beyond the end of the disk (" +
                                   std::to_string(disk_size) + " bytes)");
  }
  *offset = *off;
  *length = *len;
  return Status::OK();
}

int RunRead(const IoOptions& o) {
  OpenOptions open;
  open.read_only = true;
  auto image = Image::Open(o.file, open);
  if (!image.ok()) return Fail("read", o.file, image.status());
  Image& img = **image;
  uint64_t offset, length;
  Status s = ParseRange("read", o, img.virtual_size(), &offset, &length);
  if (!s.ok()) return Fail("read", o.file, s);

  // The library reads whole sectors; widen the range and print the slice.
  const uint64_t sector = img.logical_sector_size();
  const uint64_t end = offset + length;
  std::vector<uint8_t> buffer(std::min<uint64_t>(kIoChunk, length + 2 * sector));
  for (uint64_t pos = offset; pos < end;) {
    const uint64_t aligned = pos / sector * sector;
    uint64_t aligned_end = std::min(aligned + buffer.size(), img.virtual_size());
    const uint64_t want_end = std::min(aligned_end, end);
    AlignUp(want_end, sector, &aligned_end);
    std::span<uint8_t> piece(buffer.data(), aligned_end - aligned);
    s = img.Read(aligned, piece);
    if (!s.ok()) return Fail("read", o.file, s);
    s = WriteStream(STDOUT_FILENO, piece.subspan(pos - aligned, want_end - pos), "stdout");
    if (!s.ok()) return Fail("read", o.file, s);
    pos = want_end;
  }
  return kExitOk;
}

int RunWrite(const IoOptions& o) {
  OpenOptions open;
  open.read_only = false;
  auto image = Image::Open(o.file, open);
  if (!image.ok()) return Fail("write", o.file, image.status());
  Image& img = **image;
  uint64_t offset, length;
  Status s = ParseRange("write", o, img.virtual_size(), &offset, &length);
  if (!s.ok()) return Fail("write", o.file, s);
  const uint64_t sector = img.logical_sector_size();
  if (offset % sector != 0 || length % sector != 0) {
    return FailArgument("write", o.file,
                        "OFFSET and LENGTH must be multiples of the logical sector size " + std::to_string(sector) +
                            " (got offset " + std::to_string(offset) + ", length " + std::to_string(length) + ")");
  }

  std::vector<uint8_t> buffer(std::min(kIoChunk, length));
  for (uint64_t pos = offset; pos < offset + length;) {
    std::span<uint8_t> piece(buffer.data(), std::min<uint64_t>(buffer.size(), offset + length - pos));
    auto got = ReadStream(STDIN_FILENO, piece, "stdin");
    if (!got.ok()) return Fail("write", o.file, got.status());
    if (*got != piece.size()) {
      // Write what arrived? No: a short input is an error, and the image
      // keeps only the complete chunks written before it.
      return FailArgument("write", o.file,
                          "stdin ended after " + std::to_string(pos - offset + *got) + " of " +
                              std::to_string(length) + " bytes");
    }
    s = img.Write(pos, piece);
    if (!s.ok()) return Fail("write", o.file, s);
    pos += piece.size();
  }
  s = img.Close();
  if (!s.ok()) return Fail("write", o.file, s);
  return kExitOk;
}

void AddRangeArgs(CLI::App* cmd, IoOptions* o) {
  cmd->add_option("FILE", o->file, "VHDX image")->required();
  cmd->add_option("OFFSET", o->offset, "Virtual byte offset (suffixes K, M, G, T allowed)")->required();
  cmd->add_option("LENGTH", o->length, "Number of bytes (suffixes K, M, G, T allowed)")->required();
}

}  // namespace

void AddReadCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<IoOptions>();
  CLI::App* cmd = app.add_subcommand("read", "Copy LENGTH bytes of the virtual disk at OFFSET to stdout");
  AddRangeArgs(cmd, o.get());
  cmd->callback([o, &exit_code] { exit_code = RunRead(*o); });
}

void AddWriteCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<IoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "write", "Write LENGTH bytes from stdin to the virtual disk at OFFSET (sector aligned)");
  AddRangeArgs(cmd, o.get());
  cmd->callback([o, &exit_code] { exit_code = RunWrite(*o); });
}

}  // namespace vhdx::tool
