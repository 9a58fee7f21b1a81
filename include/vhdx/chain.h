// Operations on differencing chains: re-parenting and merging.
#ifndef VHDX_CHAIN_H_
#define VHDX_CHAIN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vhdx/export.h"
#include "vhdx/status.h"

namespace vhdx {

struct SetParentOptions {
  // Accept a new parent whose DataWriteGuid matches neither parent_linkage
  // nor parent_linkage2, and record its identity as the new linkage. Only
  // safe when the new parent really holds the content the child was made on.
  bool ignore_id_mismatch = false;
};

// Points the differencing image `child` at `new_parent`: rewrites the parent
// locator (relative_path from the child's directory, parent_linkage) through
// the log. Refuses a parent with another logical sector size, one that would
// make a cycle, and (unless ignore_id_mismatch) one whose identity differs.
VHDX_EXPORT Status SetParent(const std::string& child, const std::string& new_parent,
                             const SetParentOptions& options = {});

struct MergeOptions {
  // The ancestor to merge into; empty means the child's direct parent. Must
  // be in the child's chain (compared as files, not as strings).
  std::string into;
  // Called with (bytes done, bytes total) as the merge progresses.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct MergeResult {
  std::string ancestor;                     // the image that received the data
  std::vector<std::string> merged_images;   // the images folded into it (now redundant)
  uint64_t bytes_written = 0;
};

// Folds `child` (and every image between it and the ancestor) into the
// ancestor. The ancestor is written through its log, so a crash leaves it
// valid; the next DataWriteGuid of the ancestor is first recorded in the
// parent_linkage2 of its direct child in the chain, so the chain stays
// openable (with unchanged content) if the merge is interrupted, and can be
// merged again. Other children of the ancestor become unlinked (their
// linkage no longer matches), never silently corrupted.
VHDX_EXPORT Result<MergeResult> Merge(const std::string& child, const MergeOptions& options = {});

}  // namespace vhdx

#endif  // VHDX_CHAIN_H_
