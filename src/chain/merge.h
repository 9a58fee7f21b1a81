// The copy step of a merge, on images that are already open. Merge (in
// chain_ops.cc) opens the files; the power-cut harness calls this directly
// on an ancestor that lives on a CrashFile.
#ifndef VHDX_SRC_CHAIN_MERGE_H_
#define VHDX_SRC_CHAIN_MERGE_H_

#include <cstdint>
#include <functional>
#include <span>

#include "vhdx/image.h"

namespace vhdx::chain {

// Writes into `dst` every sector of [0, size) that one of `layers` defines
// (data or zero), taking each sector from the topmost layer that defines
// it; `layers` are ordered topmost first and opened alone (without their
// parents), so whatever they leave unallocated is left untouched in `dst`.
// Returns the number of bytes written. Does not flush or close `dst`.
Result<uint64_t> CopyLayers(std::span<Image* const> layers, Image& dst, uint64_t size,
                            const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace vhdx::chain

#endif  // VHDX_SRC_CHAIN_MERGE_H_
