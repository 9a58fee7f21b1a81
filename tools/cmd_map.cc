// `vhdx map [--json] FILE`: the allocation map of the whole virtual disk.
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "vhdx/image.h"

namespace vhdx::tool {
namespace {

using Json = nlohmann::ordered_json;

struct MapOptions {
  std::string file;
  bool json = false;
};

const char* KindName(Extent::Kind kind) {
  switch (kind) {
    case Extent::Kind::kData: return "data";
    case Extent::Kind::kZero: return "zero";
    case Extent::Kind::kUnallocated: return "unallocated";
  }
  return "unknown";
}

int RunMap(const MapOptions& o) {
  OpenOptions open;
  open.read_only = true;
  auto image = Image::Open(o.file, open);
  if (!image.ok()) return Fail("map", o.file, image.status());
  const uint64_t size = (*image)->virtual_size();
  auto extents = (*image)->Map(0, size);
  if (!extents.ok()) return Fail("map", o.file, extents.status());

  if (o.json) {
    // Same shape as `qemu-img map --output=json`, one object per line.
    std::printf("[");
    for (size_t i = 0; i < extents->size(); ++i) {
      const Extent& e = (*extents)[i];
      Json j;
      j["start"] = e.offset;
      j["length"] = e.length;
      j["depth"] = e.depth;
      j["present"] = e.kind != Extent::Kind::kUnallocated;
      j["zero"] = e.kind != Extent::Kind::kData;
      j["data"] = e.kind == Extent::Kind::kData;
      if (e.kind == Extent::Kind::kData) j["offset"] = e.file_offset;
      std::printf("%s%s", i == 0 ? "" : ",\n", j.dump().c_str());
    }
    std::printf("]\n");
  } else {
    std::printf("%-18s %-18s %-12s %-18s %s\n", "Offset", "Length", "State", "File offset", "Depth");
    for (const Extent& e : *extents) {
      bool data = e.kind == Extent::Kind::kData;
      std::printf("%-18s %-18s %-12s %-18s %s\n", Hex(e.offset).c_str(), Hex(e.length).c_str(), KindName(e.kind),
                  data ? Hex(e.file_offset).c_str() : "-", data ? std::to_string(e.depth).c_str() : "-");
    }
  }
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailure;
}

}  // namespace

void AddMapCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<MapOptions>();
  CLI::App* cmd = app.add_subcommand("map", "Show which ranges of the virtual disk hold data, zeros or nothing");
  cmd->add_flag("--json", o->json, "JSON output like 'qemu-img map --output=json'");
  cmd->add_option("FILE", o->file, "VHDX image")->required();
  cmd->callback([o, &exit_code] { exit_code = RunMap(*o); });
}

}  // namespace vhdx::tool
