// Commands that change an image in place: resize, compact, discard, merge,
// set-parent (docs/cli.md).
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "common.h"
#include "vhdx/chain.h"
#include "vhdx/image.h"

namespace vhdx::tool {
namespace {

Result<std::unique_ptr<Image>> OpenWritable(const std::string& path) {
  OpenOptions o;
  o.read_only = false;
  return Image::Open(path, o);
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

}  // namespace

void AddResizeCommand(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string file, size;
    bool allow_data_loss = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("resize", "Grow or shrink the virtual disk size");
  cmd->add_option("FILE", opts->file, "Image to resize")->required();
  cmd->add_option("SIZE", opts->size, "New virtual size (K/M/G/T suffixes), or +SIZE / -SIZE")->required();
  cmd->add_flag("--allow-data-loss", opts->allow_data_loss,
                "Shrink even below the end of allocated data (that data is discarded)");
  cmd->callback([opts, &exit_code] {
    auto image = OpenWritable(opts->file);
    if (!image.ok()) {
      exit_code = Fail("resize", opts->file, image.status());
      return;
    }
    std::string text = opts->size;
    int sign = 0;
    if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
      sign = text[0] == '+' ? 1 : -1;
      text = text.substr(1);
    }
    auto size = ParseSize(text);
    if (!size.ok()) {
      exit_code = Fail("resize", opts->file, size.status());
      return;
    }
    uint64_t current = (*image)->virtual_size();
    uint64_t target = *size;
    if (sign > 0) target = current + *size;
    if (sign < 0) {
      if (*size >= current) {
        exit_code = FailArgument("resize", opts->file, "cannot shrink by more than the disk size");
        return;
      }
      target = current - *size;
    }
    ResizeOptions ro;
    ro.allow_data_loss = opts->allow_data_loss;
    Status s = (*image)->Resize(target, ro);
    if (s.ok()) s = (*image)->Close();
    if (!s.ok()) {
      exit_code = Fail("resize", opts->file, s);
      return;
    }
    std::printf("Image resized from %s to %s.\n", HumanSizeWithBytes(current).c_str(),
                HumanSizeWithBytes(target).c_str());
    exit_code = kExitOk;
  });
}

void AddCompactCommand(CLI::App& app, int& exit_code) {
  auto file = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "compact", "Give unused space back: zero blocks are released, blocks move into holes, the file shrinks");
  cmd->add_option("FILE", *file, "Image to compact")->required();
  cmd->callback([file, &exit_code] {
    const uint64_t allocated_before = AllocatedBytes(*file);
    auto image = OpenWritable(*file);
    if (!image.ok()) {
      exit_code = Fail("compact", *file, image.status());
      return;
    }
    auto result = (*image)->Compact();
    Status s = result.ok() ? (*image)->Close() : result.status();
    if (!s.ok()) {
      exit_code = Fail("compact", *file, s);
      return;
    }
    const uint64_t allocated_after = AllocatedBytes(*file);
    std::printf("%llu all-zero blocks released, %llu blocks moved.\n",
                static_cast<unsigned long long>(result->blocks_zeroed),
                static_cast<unsigned long long>(result->blocks_moved));
    std::printf("File size %s -> %s; allocated %s -> %s (%s given back).\n",
                HumanSize(result->file_size_before).c_str(), HumanSize(result->file_size_after).c_str(),
                HumanSize(allocated_before).c_str(), HumanSize(allocated_after).c_str(),
                HumanSize(allocated_before > allocated_after ? allocated_before - allocated_after : 0).c_str());
    exit_code = kExitOk;
  });
}

void AddDiscardCommand(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string file, offset, length;
    bool zero = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("discard", "Trim a range (it reads back as zeros, or the parent's data)");
  cmd->add_option("FILE", opts->file, "Image")->required();
  cmd->add_option("OFFSET", opts->offset, "Byte offset (sector aligned)")->required();
  cmd->add_option("LENGTH", opts->length, "Byte count (sector aligned)")->required();
  cmd->add_flag("--zero", opts->zero, "Read back zeros also in a differencing image");
  cmd->callback([opts, &exit_code] {
    auto offset = ParseSize(opts->offset);
    auto length = ParseSize(opts->length);
    if (!offset.ok() || !length.ok()) {
      exit_code = Fail("discard", opts->file, offset.ok() ? length.status() : offset.status());
      return;
    }
    auto image = OpenWritable(opts->file);
    if (!image.ok()) {
      exit_code = Fail("discard", opts->file, image.status());
      return;
    }
    Status s = (*image)->Trim(*offset, *length, opts->zero ? TrimMode::kZero : TrimMode::kDefault);
    if (s.ok()) s = (*image)->Close();
    exit_code = s.ok() ? kExitOk : Fail("discard", opts->file, s);
  });
}

void AddMergeCommand(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string child, into;
    bool progress = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("merge", "Fold a differencing image (and those between) into an ancestor");
  cmd->add_option("CHILD", opts->child, "Differencing image to merge")->required();
  cmd->add_option("--into", opts->into, "Ancestor to merge into (default: the direct parent)");
  cmd->add_flag("-p,--progress", opts->progress, "Show progress on a terminal");
  cmd->callback([opts, &exit_code] {
    MergeOptions mo;
    mo.into = opts->into;
    auto progress = std::make_shared<Progress>(opts->progress, 1);
    uint64_t total_seen = 0;
    mo.progress = [&](uint64_t done, uint64_t total) {
      if (total != total_seen) {
        progress = std::make_shared<Progress>(opts->progress, total);
        total_seen = total;
      }
      progress->Update(done);
    };
    auto result = Merge(opts->child, mo);
    progress->Finish();
    if (!result.ok()) {
      exit_code = Fail("merge", opts->child, result.status());
      return;
    }
    std::printf("Merged %s into %s (%s written).\n", opts->child.c_str(), result->ancestor.c_str(),
                HumanSize(result->bytes_written).c_str());
    std::printf("Now redundant (delete them when nothing else uses them):");
    for (const auto& m : result->merged_images) std::printf(" %s", m.c_str());
    std::printf("\nOther differencing images based on %s no longer match it.\n", result->ancestor.c_str());
    exit_code = kExitOk;
  });
}

void AddSetParentCommand(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string child, parent;
    bool ignore = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("set-parent", "Point a differencing image at another (moved or copied) parent");
  cmd->add_option("CHILD", opts->child, "Differencing image")->required();
  cmd->add_option("NEWPARENT", opts->parent, "The parent image to use from now on")->required();
  cmd->add_flag("--ignore-id-mismatch", opts->ignore,
                "Accept a parent whose identity differs from the recorded one (dangerous)");
  cmd->callback([opts, &exit_code] {
    SetParentOptions so;
    so.ignore_id_mismatch = opts->ignore;
    Status s = SetParent(opts->child, opts->parent, so);
    exit_code = s.ok() ? kExitOk : Fail("set-parent", opts->child, s);
  });
}

}  // namespace vhdx::tool
