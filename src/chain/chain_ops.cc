// Re-parenting and merging differencing chains. See docs/design.md
// ("Chains").
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "format/constants.h"
#include "chain/merge.h"
#include "format/parent_locator.h"
#include "image/image_impl.h"
#include "vhdx/chain.h"

namespace vhdx {

namespace {

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

Guid CurrentDataWriteGuid(const Image& image) {
  ImageInfo info = image.Info();
  return info.headers[info.headers[0].current ? 0 : 1].data_write_guid;
}

std::string RelativeWindowsPath(const std::string& from_file, const std::string& to_file) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::absolute(from_file, ec).parent_path();
  std::filesystem::path target = std::filesystem::absolute(to_file, ec);
  std::filesystem::path rel = std::filesystem::relative(target, dir, ec);
  if (ec || rel.empty()) rel = target.filename();
  std::string text = rel.generic_string();
  if (text.rfind("..", 0) != 0) text = "./" + text;
  std::replace(text.begin(), text.end(), '/', '\\');
  return text;
}

Status WriteLocator(Image& child, const format::ParentLocator& loc) {
  Image::Impl& impl = ImageAccess::Get(child);
  std::vector<uint8_t> bytes = loc.Encode();
  if (Status s = impl.UpdateMetadataItem(format::ParentLocatorGuid(), bytes, false, true); !s.ok()) return s;
  return impl.FlushAll();
}

}  // namespace

Status SetParent(const std::string& child_path, const std::string& new_parent, const SetParentOptions& options) {
  OpenOptions popts;
  popts.read_only = true;
  auto parent = Image::Open(new_parent, popts);
  if (!parent.ok()) return parent.status().WithContext("opening new parent " + new_parent);
  OpenOptions copts;
  copts.read_only = false;
  copts.open_parents = false;
  auto child = Image::Open(child_path, copts);
  if (!child.ok()) return child.status().WithContext("opening " + child_path);
  Image::Impl& impl = ImageAccess::Get(**child);
  if (!impl.is_differencing()) return Status::InvalidArgument(child_path + " is not a differencing image");
  if ((*parent)->logical_sector_size() != (*child)->logical_sector_size()) {
    return Status::InvalidArgument("new parent has logical sector size " +
                                   std::to_string((*parent)->logical_sector_size()) + ", the child " +
                                   std::to_string((*child)->logical_sector_size()));
  }
  for (const ChainLinkInfo& link : (*parent)->Info().chain) {
    if (SameFile(link.path, child_path)) {
      return Status::InvalidArgument("setting " + new_parent + " as parent would make a cycle");
    }
  }
  format::ParentLocator loc = *impl.parent_locator;
  const Guid id = CurrentDataWriteGuid(**parent);
  const std::string id_text = id.ToString(true, true);
  auto matches = [&](const char* key) {
    auto v = loc.Get(key);
    if (!v) return false;
    auto g = Guid::Parse(*v);
    return g.ok() && *g == id;
  };
  if (!matches("parent_linkage") && !matches("parent_linkage2")) {
    if (!options.ignore_id_mismatch) {
      return Status::InvalidArgument("the identity of " + new_parent + " (DataWriteGuid " + id_text +
                                     ") does not match the child's parent_linkage " +
                                     loc.Get("parent_linkage").value_or("(none)") +
                                     "; use --ignore-id-mismatch if it really holds the same data");
    }
  }
  loc.Set("parent_linkage", id_text);
  loc.Erase("parent_linkage2");
  loc.Set("relative_path", RelativeWindowsPath(child_path, new_parent));
  // Windows-only paths of the old parent are stale now.
  loc.Erase("absolute_win32_path");
  loc.Erase("volume_path");
  if (Status s = (*parent)->Close(); !s.ok()) return s;
  if (Status s = WriteLocator(**child, loc); !s.ok()) return s;
  return (*child)->Close();
}

namespace chain {

Result<uint64_t> CopyLayers(std::span<Image* const> layers, Image& dst, uint64_t size,
                            const std::function<void(uint64_t, uint64_t)>& progress) {
  const uint64_t lss = dst.logical_sector_size();
  const uint64_t window = std::max<uint64_t>(dst.block_size(), 1 << 20);
  if (size > dst.virtual_size() || size % lss != 0) {
    return Status::InvalidArgument("merge size " + std::to_string(size) + " does not fit the target");
  }
  constexpr int kFallThrough = -1, kZero = -2;
  std::vector<int> source;  // per sector of the window: layer index, kFallThrough or kZero
  std::vector<uint8_t> buf;
  uint64_t written = 0;
  for (uint64_t off = 0; off < size; off += window) {
    const uint64_t len = std::min(window, size - off);
    source.assign(len / lss, kFallThrough);
    for (size_t li = 0; li < layers.size(); ++li) {
      const uint64_t lsize = layers[li]->virtual_size();
      if (off >= lsize) continue;
      auto map = layers[li]->Map(off, std::min(len, lsize - off));
      if (!map.ok()) return map.status();
      for (const Extent& e : *map) {
        if (e.kind == Extent::Kind::kUnallocated) continue;
        for (uint64_t s = (e.offset - off) / lss; s < (e.offset - off + e.length) / lss; ++s) {
          if (source[s] == kFallThrough) source[s] = e.kind == Extent::Kind::kZero ? kZero : static_cast<int>(li);
        }
      }
    }
    for (size_t i = 0; i < source.size();) {
      size_t j = i + 1;
      while (j < source.size() && source[j] == source[i]) ++j;
      const uint64_t voff = off + i * lss, n = (j - i) * lss;
      if (source[i] == kZero) {
        if (Status s = dst.WriteZeroes(voff, n); !s.ok()) return s;
        written += n;
      } else if (source[i] >= 0) {
        buf.resize(n);
        if (Status s = layers[source[i]]->Read(voff, buf); !s.ok()) return s;
        if (Status s = dst.Write(voff, buf); !s.ok()) return s;
        written += n;
      }
      i = j;
    }
    if (progress) progress(off + len, size);
  }
  return written;
}

}  // namespace chain

Result<MergeResult> Merge(const std::string& child_path, const MergeOptions& options) {
  // Discover the chain with a read-only open, then release it.
  std::vector<ChainLinkInfo> chain;
  uint64_t child_size = 0;
  {
    auto child = Image::Open(child_path);
    if (!child.ok()) return child.status().WithContext("opening " + child_path);
    if ((*child)->type() != DiskType::kDifferencing) {
      return Status::InvalidArgument(child_path + " is not a differencing image");
    }
    chain = (*child)->Info().chain;
    chain[0].path = child_path;
    child_size = (*child)->virtual_size();
    if (Status s = (*child)->Close(); !s.ok()) return s;
  }
  size_t target = 1;
  if (!options.into.empty()) {
    target = 0;
    for (size_t i = 1; i < chain.size(); ++i) {
      if (SameFile(chain[i].path, options.into)) target = i;
    }
    if (target == 0) return Status::InvalidArgument(options.into + " is not an ancestor of " + child_path);
  }
  const std::string ancestor_path = chain[target].path;
  // Refuse before anything is written.
  if (child_size > chain[target].virtual_size) {
    return Status::NotSupported("the child is larger than " + ancestor_path + "; resize the ancestor first");
  }
  MergeResult result;
  result.ancestor = ancestor_path;

  // 1. Record the ancestor's next DataWriteGuid in its direct child's
  //    parent_linkage2, durably, before the ancestor changes.
  const Guid next_id = Guid::Random();
  {
    OpenOptions o;
    o.read_only = false;
    o.open_parents = false;
    auto direct = Image::Open(chain[target - 1].path, o);
    if (!direct.ok()) return direct.status();
    Image::Impl& impl = ImageAccess::Get(**direct);
    format::ParentLocator loc = *impl.parent_locator;
    loc.Set("parent_linkage2", next_id.ToString(true, true));
    if (Status s = WriteLocator(**direct, loc); !s.ok()) return s;
    if (Status s = (*direct)->Close(); !s.ok()) return s;
  }

  // 2. Open the layers to merge (alone, read-only) and the ancestor writable.
  std::vector<std::unique_ptr<Image>> layers;
  for (size_t i = 0; i < target; ++i) {
    OpenOptions o;
    o.open_parents = false;
    auto layer = Image::Open(chain[i].path, o);
    if (!layer.ok()) return layer.status();
    layers.push_back(std::move(*layer));
    result.merged_images.push_back(chain[i].path);
  }
  OpenOptions ao;
  ao.read_only = false;
  ao.next_data_write_guid = next_id;
  auto ancestor = Image::Open(ancestor_path, ao);
  if (!ancestor.ok()) return ancestor.status().WithContext("opening " + ancestor_path + " for writing");
  Image& dst = **ancestor;

  // 3. Copy every sector that some merged layer defines, topmost first.
  std::vector<Image*> sources;
  for (auto& layer : layers) sources.push_back(layer.get());
  auto written = chain::CopyLayers(sources, dst, child_size, options.progress);
  if (!written.ok()) return written.status();
  result.bytes_written = *written;
  for (auto& layer : layers) {
    if (Status s = layer->Close(); !s.ok()) return s;
  }
  if (Status s = dst.Close(); !s.ok()) return s;
  return result;
}

}  // namespace vhdx
