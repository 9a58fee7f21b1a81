// Locating and opening the parent of a differencing image ([MS-VHDX]
// 2.6.2.6): candidates from the locator, linkage check, cycle detection.
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <utility>

#include "format/parent_locator.h"
#include "image/image_impl.h"

namespace vhdx {

namespace {

using FileId = std::pair<uint64_t, uint64_t>;  // (st_dev, st_ino)

// The files of the chain being opened on this thread, so that a cycle is
// reported at once however long it is. Set by the outermost OpenParent.
thread_local std::set<FileId>* t_chain_files = nullptr;

// Bounds on what a hostile chain can make us do (docs/fuzzing.md). A
// candidate that opens but is not the linked parent is skipped, so stale
// paths arranged as a tree could otherwise cost exponentially many opens;
// the count covers every image opened for one outermost open.
constexpr size_t kMaxChainDepth = 64;
constexpr int kMaxChainOpens = 256;
thread_local int t_chain_opens = 0;

std::optional<FileId> IdentifyFile(const std::string& path) {
  struct stat st;
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

std::string FromWindowsPath(std::string p) {
  std::replace(p.begin(), p.end(), '\\', '/');
  return p;
}

// Candidate paths in the order [MS-VHDX] gives: relative, volume, absolute.
std::vector<std::string> Candidates(const format::ParentLocator& loc, const std::string& child_path) {
  std::vector<std::string> out;
  std::filesystem::path dir = std::filesystem::path(child_path).parent_path();
  if (auto rel = loc.Get("relative_path")) {
    std::string p = FromWindowsPath(*rel);
    out.push_back((dir / p).lexically_normal().string());
  }
  for (const char* key : {"volume_path", "absolute_win32_path"}) {
    auto v = loc.Get(key);
    if (!v) continue;
    std::string p = *v;
    // Extended-length prefix; a drive letter or volume GUID cannot be
    // resolved on this host, but a POSIX-looking remainder can.
    if (p.rfind("\\\\?\\", 0) == 0) p = p.substr(4);
    // A drive-letter path may be reachable where Windows drives are mounted
    // the WSL way: C:\dir\x.vhdx -> /mnt/c/dir/x.vhdx.
    if (p.size() >= 3 && std::isalpha(static_cast<unsigned char>(p[0])) && p[1] == ':' && p[2] == '\\') {
      p = std::string("/mnt/") + static_cast<char>(std::tolower(static_cast<unsigned char>(p[0]))) + p.substr(2);
    }
    p = FromWindowsPath(p);
    if (!p.empty() && p[0] == '/') out.push_back(p);
  }
  return out;
}

}  // namespace

Status Image::Impl::OpenParent(const OpenOptions& options) {
  std::set<FileId> local;
  const bool outermost = t_chain_files == nullptr;
  if (outermost) {
    t_chain_files = &local;
    t_chain_opens = 0;
  }
  struct Reset {
    bool active;
    ~Reset() {
      if (active) t_chain_files = nullptr;
    }
  } reset{outermost};
  // The set holds the images on the path from the image being opened down
  // to this one: each removes itself when its parent lookup ends, so a
  // candidate that failed (and the ancestors it opened) cannot later be
  // mistaken for a cycle.
  struct Leave {
    std::optional<FileId> id;
    ~Leave() {
      if (id) t_chain_files->erase(*id);
    }
  } leave;
  if (auto self = IdentifyFile(path); self && t_chain_files->insert(*self).second) leave.id = self;

  const format::ParentLocator& loc = *parent_locator;
  std::vector<std::string> candidates;
  if (!options.parent_path.empty()) {
    candidates.push_back(options.parent_path);
  } else {
    candidates = Candidates(loc, path);
  }
  auto linkage = loc.Get("parent_linkage");
  auto linkage2 = loc.Get("parent_linkage2");
  std::optional<Guid> want1, want2;
  if (linkage) {
    auto g = Guid::Parse(*linkage);
    if (g.ok()) want1 = *g;
  }
  if (linkage2) {
    auto g = Guid::Parse(*linkage2);
    if (g.ok()) want2 = *g;
  }
  // Every candidate is tried in order; one that is missing or is not the
  // linked parent (a stale relative path may reach an unrelated file) does
  // not stop the search. The error names every path tried.
  std::string tried;
  bool mismatch = false;
  for (const std::string& candidate : candidates) {
    if (!tried.empty()) tried += "; ";
    tried += candidate;
    auto id = IdentifyFile(candidate);
    if (!id) {
      tried += " (not found)";
      continue;
    }
    if (t_chain_files->count(*id)) {
      return Status::Corruption("differencing chain has a cycle: " + candidate + " (parent of " + path +
                                ") is already part of the chain");
    }
    if (t_chain_files->size() >= kMaxChainDepth) {
      return Status::NotSupported("differencing chain of " + path + " is deeper than " +
                                  std::to_string(kMaxChainDepth) + " images");
    }
    if (++t_chain_opens > kMaxChainOpens) {
      return Status::Corruption("finding the parents of " + path + " opened more than " +
                                std::to_string(kMaxChainOpens) + " images (parent locators lead to too many candidates)");
    }
    OpenOptions popts;
    popts.read_only = true;
    popts.open_parents = true;
    popts.ignore_parent_linkage = options.ignore_parent_linkage;
    auto parent_image = Image::Open(candidate, popts);
    if (!parent_image.ok()) {
      return parent_image.status().WithContext("opening parent " + candidate + " of " + path);
    }
    ImageInfo pinfo = (*parent_image)->Info();
    const Guid& dwg = pinfo.headers[pinfo.headers[0].current ? 0 : 1].data_write_guid;
    const ParentMatch match = want1 && *want1 == dwg   ? ParentMatch::kLinkage
                              : want2 && *want2 == dwg ? ParentMatch::kLinkage2
                                                       : ParentMatch::kIgnored;
    if (match == ParentMatch::kIgnored && !options.ignore_parent_linkage) {
      tried += " (DataWriteGuid " + dwg.ToString(true, true) + ")";
      mismatch = true;
      continue;
    }
    if ((*parent_image)->logical_sector_size() != geo.logical_sector_size) {
      return Status::Corruption("parent " + candidate + " has logical sector size " +
                                std::to_string((*parent_image)->logical_sector_size()) + ", the child " + path +
                                " " + std::to_string(geo.logical_sector_size));
    }
    parent_match = match;
    chain = pinfo.chain;
    if (!chain.empty()) chain[0].path = candidate;
    parent = std::move(*parent_image);
    return Status::OK();
  }
  if (mismatch) {
    return Status::Corruption("parent of " + path + " does not match its parent_linkage " +
                              linkage.value_or("(none)") +
                              (linkage2 ? " or parent_linkage2 " + *linkage2 : std::string()) +
                              " (the parent was modified after the child was created, or is the wrong file); tried: " +
                              tried);
  }
  return Status::NotFound("parent of " + path + " not found; tried: " + (tried.empty() ? "(no usable path)" : tried));
}

}  // namespace vhdx
