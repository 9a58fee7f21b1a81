// `vhdx info [--json] [--chain] FILE`: everything ImageInfo describes.
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include "raw_io.h"
#include "vhdx/image.h"
#include "vhdx/info.h"

namespace vhdx::tool {
namespace {

using Json = nlohmann::ordered_json;

struct InfoOptions {
  std::string file;
  bool json = false;
  bool chain = false;
};

const char* LogStateName(LogState state) {
  switch (state) {
    case LogState::kClean: return "clean";
    case LogState::kReplayed: return "replayed";
    case LogState::kReplayedInMemory: return "replayed_in_memory";
  }
  return "unknown";
}

// How a link's parent was accepted, for JSON and for people.
const char* ParentMatchName(ParentMatch match) {
  switch (match) {
    case ParentMatch::kNone: return "none";
    case ParentMatch::kLinkage: return "parent_linkage";
    case ParentMatch::kLinkage2: return "parent_linkage2";
    case ParentMatch::kIgnored: return "ignored";
  }
  return "?";
}

std::string ChainLinkText(const ChainLinkInfo& c) {
  std::string text = c.differencing ? "differencing" : "base";
  text += ", " + std::to_string(c.virtual_size) + " bytes, log " + LogStateName(c.log_state);
  switch (c.parent_match) {
    case ParentMatch::kNone: break;
    case ParentMatch::kLinkage: text += ", parent matches parent_linkage"; break;
    case ParentMatch::kLinkage2: text += ", parent matches parent_linkage2 (an interrupted merge?)"; break;
    case ParentMatch::kIgnored: text += ", parent linkage NOT checked"; break;
  }
  return text + ", data write guid " + c.data_write_guid.ToString();
}

std::string LogStateText(const ImageInfo& info) {
  switch (info.log_state) {
    case LogState::kClean: return "clean";
    case LogState::kReplayed:
      return "dirty (replayed to the file, " + std::to_string(info.log_entries_replayed) + " entries)";
    case LogState::kReplayedInMemory:
      return "dirty (replayed in memory, " + std::to_string(info.log_entries_replayed) + " entries)";
  }
  return "unknown";
}

// Host disk space used by the file (allocated blocks), or 0 when unknown.
uint64_t DiskUsage(const std::string& path) {
  auto st = StatPath(path);
  return st.ok() ? static_cast<uint64_t>(st->st_blocks) * 512 : 0;
}

Json ToJson(const ImageInfo& info) {
  Json j;
  j["path"] = info.path;
  j["format"] = "vhdx";
  j["virtual_size"] = info.virtual_size;
  j["file_size"] = info.file_size;
  j["disk_size"] = DiskUsage(info.path);
  j["type"] = info.type;
  j["block_size"] = info.block_size;
  j["logical_sector_size"] = info.logical_sector_size;
  j["physical_sector_size"] = info.physical_sector_size;
  j["disk_id"] = info.disk_id.ToString();
  j["creator"] = info.creator;
  j["leave_block_allocated"] = info.leave_block_allocated;
  j["has_parent"] = info.has_parent;
  j["chunk_ratio"] = info.chunk_ratio;
  j["payload_blocks"] = info.payload_blocks;
  j["bat_entries"] = info.bat_entries;
  j["minimum_size"] = info.minimum_size;
  j["log"] = Json{{"state", LogStateName(info.log_state)},
                  {"dirty", info.log_state != LogState::kClean},
                  {"entries_replayed", info.log_entries_replayed}};
  Json headers = Json::array();
  for (size_t i = 0; i < info.headers.size(); ++i) {
    const HeaderInfo& h = info.headers[i];
    headers.push_back(Json{{"index", i + 1},
                           {"file_offset", h.file_offset},
                           {"valid", h.valid},
                           {"current", h.current},
                           {"sequence_number", h.sequence_number},
                           {"file_write_guid", h.file_write_guid.ToString()},
                           {"data_write_guid", h.data_write_guid.ToString()},
                           {"log_guid", h.log_guid.ToString()},
                           {"version", h.version},
                           {"log_version", h.log_version},
                           {"log_offset", h.log_offset},
                           {"log_length", h.log_length}});
  }
  j["headers"] = std::move(headers);
  Json regions = Json::array();
  for (const RegionInfo& r : info.regions) {
    regions.push_back(Json{{"name", r.name},
                           {"guid", r.guid.ToString()},
                           {"file_offset", r.file_offset},
                           {"length", r.length},
                           {"required", r.required}});
  }
  j["regions"] = std::move(regions);
  Json items = Json::array();
  for (const MetadataItemInfo& m : info.metadata_items) {
    items.push_back(Json{{"name", m.name},
                         {"item_id", m.item_id.ToString()},
                         {"offset", m.offset},
                         {"length", m.length},
                         {"is_user", m.is_user},
                         {"is_virtual_disk", m.is_virtual_disk},
                         {"is_required", m.is_required}});
  }
  j["metadata_items"] = std::move(items);
  const BlockCounts& b = info.blocks;
  j["blocks"] = Json{{"not_present", b.not_present},
                     {"undefined", b.undefined},
                     {"zero", b.zero},
                     {"unmapped", b.unmapped},
                     {"fully_present", b.fully_present},
                     {"partially_present", b.partially_present},
                     {"sector_bitmaps_present", b.sector_bitmaps_present}};
  Json locator = Json::array();
  for (const auto& [key, value] : info.parent_locator) locator.push_back(Json{{"key", key}, {"value", value}});
  j["parent_locator"] = std::move(locator);
  Json chain = Json::array();
  for (size_t i = 0; i < info.chain.size(); ++i) {
    const ChainLinkInfo& c = info.chain[i];
    chain.push_back(Json{{"depth", i},
                         {"path", c.path},
                         {"differencing", c.differencing},
                         {"virtual_size", c.virtual_size},
                         {"log", LogStateName(c.log_state)},
                         {"parent_match", ParentMatchName(c.parent_match)},
                         {"data_write_guid", c.data_write_guid.ToString()}});
  }
  j["chain"] = std::move(chain);
  return j;
}

void PrintHuman(const ImageInfo& info) {
  std::printf("image: %s\n", info.path.c_str());
  std::printf("file format: vhdx\n");
  std::printf("virtual size: %s\n", HumanSizeWithBytes(info.virtual_size).c_str());
  std::printf("disk size: %s\n", HumanSize(DiskUsage(info.path)).c_str());
  std::printf("file size: %s\n", HumanSizeWithBytes(info.file_size).c_str());
  std::printf("type: %s\n", info.type.c_str());
  std::printf("block size: %s\n", HumanSizeWithBytes(info.block_size).c_str());
  std::printf("logical sector size: %u\n", info.logical_sector_size);
  std::printf("physical sector size: %u\n", info.physical_sector_size);
  std::printf("disk id: %s\n", info.disk_id.ToString().c_str());
  std::printf("creator: %s\n", info.creator.c_str());
  std::printf("leave block allocated: %s\n", info.leave_block_allocated ? "yes" : "no");
  std::printf("has parent: %s\n", info.has_parent ? "yes" : "no");
  std::printf("chunk ratio: %u\n", info.chunk_ratio);
  std::printf("payload blocks: %llu\n", static_cast<unsigned long long>(info.payload_blocks));
  std::printf("BAT entries: %llu\n", static_cast<unsigned long long>(info.bat_entries));
  std::printf("minimum size: %s\n", HumanSizeWithBytes(info.minimum_size).c_str());
  std::printf("log: %s\n", LogStateText(info).c_str());

  std::printf("headers:\n");
  for (size_t i = 0; i < info.headers.size(); ++i) {
    const HeaderInfo& h = info.headers[i];
    std::printf("    header %zu at %s: %s%s\n", i + 1, Hex(h.file_offset).c_str(), h.valid ? "valid" : "INVALID",
                h.current ? ", current" : "");
    if (!h.valid) continue;
    std::printf("        sequence number: %llu\n", static_cast<unsigned long long>(h.sequence_number));
    std::printf("        file write guid: %s\n", h.file_write_guid.ToString().c_str());
    std::printf("        data write guid: %s\n", h.data_write_guid.ToString().c_str());
    std::printf("        log guid: %s\n", h.log_guid.ToString().c_str());
    std::printf("        version: %u, log version: %u\n", h.version, h.log_version);
    std::printf("        log: offset %s, length %s\n", Hex(h.log_offset).c_str(), HumanSize(h.log_length).c_str());
  }

  std::printf("regions:\n");
  for (const RegionInfo& r : info.regions) {
    std::printf("    %-9s offset %-10s length %-9s %s%s\n", r.name.c_str(), Hex(r.file_offset).c_str(),
                HumanSize(r.length).c_str(), r.guid.ToString().c_str(), r.required ? " required" : "");
  }

  std::printf("metadata items:\n");
  for (const MetadataItemInfo& m : info.metadata_items) {
    std::string flags;
    if (m.is_user) flags += " user";
    if (m.is_virtual_disk) flags += " virtual-disk";
    if (m.is_required) flags += " required";
    std::printf("    %-22s offset %-8s length %-5u %s%s\n", m.name.c_str(), Hex(m.offset).c_str(), m.length,
                m.item_id.ToString().c_str(), flags.c_str());
  }

  const BlockCounts& b = info.blocks;
  std::printf("blocks:\n");
  std::printf("    fully present: %llu\n", static_cast<unsigned long long>(b.fully_present));
  std::printf("    partially present: %llu\n", static_cast<unsigned long long>(b.partially_present));
  std::printf("    zero: %llu\n", static_cast<unsigned long long>(b.zero));
  std::printf("    not present: %llu\n", static_cast<unsigned long long>(b.not_present));
  std::printf("    unmapped: %llu\n", static_cast<unsigned long long>(b.unmapped));
  std::printf("    undefined: %llu\n", static_cast<unsigned long long>(b.undefined));
  std::printf("    sector bitmaps present: %llu\n", static_cast<unsigned long long>(b.sector_bitmaps_present));

  if (!info.parent_locator.empty()) {
    std::printf("parent locator:\n");
    for (const auto& [key, value] : info.parent_locator) std::printf("    %s: %s\n", key.c_str(), value.c_str());
  }
  if (info.chain.size() > 1 || info.has_parent) {
    std::printf("chain:\n");
    for (size_t i = 0; i < info.chain.size(); ++i) {
      const ChainLinkInfo& c = info.chain[i];
      std::printf("    %zu: %s (%s)\n", i, c.path.c_str(), ChainLinkText(c).c_str());
    }
  }
}

int RunInfo(const InfoOptions& o) {
  OpenOptions open;
  open.read_only = true;
  open.open_parents = o.chain;
  auto image = Image::Open(o.file, open);
  if (!image.ok()) return Fail("info", o.file, image.status());
  ImageInfo info = (*image)->Info();

  // With --chain, also describe every ancestor on its own.
  std::vector<ImageInfo> ancestors;
  if (o.chain) {
    OpenOptions alone;
    alone.read_only = true;
    alone.open_parents = false;
    for (size_t i = 1; i < info.chain.size(); ++i) {
      auto parent = Image::Open(info.chain[i].path, alone);
      if (!parent.ok()) return Fail("info", info.chain[i].path, parent.status());
      ancestors.push_back((*parent)->Info());
    }
  }

  if (o.json) {
    Json j = ToJson(info);
    if (o.chain) {
      Json list = Json::array();
      for (const ImageInfo& a : ancestors) list.push_back(ToJson(a));
      j["ancestors"] = std::move(list);
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    PrintHuman(info);
    for (const ImageInfo& a : ancestors) {
      std::printf("\n");
      PrintHuman(a);
    }
  }
  return std::fflush(stdout) == 0 ? kExitOk : kExitFailure;
}

}  // namespace

void AddInfoCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Show everything about a VHDX image (read-only; a dirty log is "
                                             "replayed in memory only)");
  cmd->add_flag("--json", o->json, "Machine-readable output (keys in docs/cli.md)");
  cmd->add_flag("--chain", o->chain, "Open the parent chain and describe every image in it");
  cmd->add_option("FILE", o->file, "VHDX image")->required();
  cmd->callback([o, &exit_code] { exit_code = RunInfo(*o); });
}

}  // namespace vhdx::tool
