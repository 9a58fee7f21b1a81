// `vhdx create [options] FILE [SIZE]`: a new dynamic, fixed or differencing image.
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "common.h"
#include "create_args.h"
#include "vhdx/image.h"

namespace vhdx::tool {
namespace {

struct CreateCmdOptions {
  std::string file;
  std::string size;
  std::string parent;
  CreateArgs create;
  bool force = false;
};

int RunCreate(const CreateCmdOptions& o, bool type_given) {
  CreateOptions create;
  create.creator = CreatorString();
  create.overwrite = o.force;
  Status s = ApplyCreateArgs(o.create, &create);
  if (!s.ok()) return Fail("create", o.file, s);

  if (!o.parent.empty()) {
    if (type_given) return FailArgument("create", o.file, "-t cannot be combined with --parent (the image is differencing)");
    create.type = DiskType::kDifferencing;
    create.parent_path = o.parent;
  } else if (o.size.empty()) {
    return FailArgument("create", o.file, "SIZE is required (unless --parent is given)");
  }

  if (!o.size.empty()) {
    auto size = ParseSize(o.size);
    if (!size.ok()) return Fail("create", o.file, size.status());
    s = ValidateVirtualSize(*size, o.parent.empty() ? create.logical_sector_size : 0);
    if (!s.ok()) return Fail("create", o.file, s);
    create.virtual_size = *size;
  }

  auto image = Image::Create(o.file, create);
  if (!image.ok()) return Fail("create", o.file, image.status());
  const uint64_t virtual_size = (*image)->virtual_size();
  const uint32_t block_size = (*image)->block_size();
  s = (*image)->Close();
  if (!s.ok()) return Fail("create", o.file, s);

  std::printf("Formatting '%s', fmt=vhdx size=%llu type=%s block_size=%u log_size=%u%s%s\n", o.file.c_str(),
              static_cast<unsigned long long>(virtual_size),
              create.type == DiskType::kDifferencing ? "differencing"
              : create.type == DiskType::kFixed      ? "fixed"
                                                     : "dynamic",
              block_size, create.log_size, o.parent.empty() ? "" : " parent=", o.parent.c_str());
  return kExitOk;
}

}  // namespace

void AddCreateCommand(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<CreateCmdOptions>();
  CLI::App* cmd = app.add_subcommand("create", "Create a new VHDX image");
  AddCreateArgs(cmd, &o->create, /*with_log_size=*/true);
  cmd->add_option("--parent", o->parent, "Create a differencing image on top of this parent VHDX");
  cmd->add_flag("-f,--force", o->force, "Replace FILE if it exists");
  cmd->add_option("FILE", o->file, "Image to create")->required();
  cmd->add_option("SIZE", o->size, "Virtual size, e.g. 10G (default with --parent: the parent's size)");
  cmd->callback([o, cmd, &exit_code] { exit_code = RunCreate(*o, cmd->count("--type") > 0); });
}

}  // namespace vhdx::tool
