// Fixed offsets, sizes, signatures and well-known GUIDs of the VHDX format.
// See docs/format.md.
#ifndef VHDX_SRC_FORMAT_CONSTANTS_H_
#define VHDX_SRC_FORMAT_CONSTANTS_H_

#include <cstdint>

#include "util/coding.h"
#include "vhdx/guid.h"

namespace vhdx::format {

// Header section layout (docs/format.md "File layout").
constexpr uint64_t kFileIdentifierOffset = 0;
constexpr uint64_t kFileIdentifierSize = 64 * kKiB;
constexpr uint64_t kHeader1Offset = 64 * kKiB;
constexpr uint64_t kHeader2Offset = 128 * kKiB;
constexpr uint64_t kHeaderSize = 4 * kKiB;
constexpr uint64_t kRegionTable1Offset = 192 * kKiB;
constexpr uint64_t kRegionTable2Offset = 256 * kKiB;
constexpr uint64_t kRegionTableSize = 64 * kKiB;
constexpr uint64_t kHeaderSectionSize = 1 * kMiB;
// Every object after the header section is aligned to this.
constexpr uint64_t kObjectAlignment = 1 * kMiB;

constexpr uint64_t kLogSectorSize = 4 * kKiB;
constexpr uint64_t kMetadataTableSize = 64 * kKiB;
constexpr uint64_t kSectorBitmapBlockSize = 1 * kMiB;
// Sectors described by one sector-bitmap block (2^23).
constexpr uint64_t kSectorsPerChunk = uint64_t{1} << 23;

constexpr uint64_t kMaxVirtualDiskSize = 64 * kTiB;
constexpr uint32_t kMinBlockSize = 1 << 20;
constexpr uint32_t kMaxBlockSize = 256 << 20;
constexpr uint32_t kMaxRegionEntries = 2047;
constexpr uint32_t kMaxMetadataEntries = 2047;
constexpr uint32_t kMaxUserMetadataEntries = 1024;
constexpr uint32_t kMaxMetadataItemSize = 1 << 20;
// Our own sanity limits on untrusted sizes (documented in docs/format.md).
constexpr uint64_t kMaxLogLength = 1 * kGiB;
constexpr uint64_t kMaxMetadataRegionLength = 128 * kMiB;
constexpr uint32_t kMaxParentLocatorEntries = 256;
// Largest file any valid image needs: 64 TiB of payload plus BAT, sector
// bitmaps, log and metadata, with room to spare. Replay targets and
// LastFileOffset beyond this are corrupt.
constexpr uint64_t kMaxFileSize = kMaxVirtualDiskSize + 64 * kGiB;

// GUIDs, as text; the codec converts them once (docs/format.md "GUIDs").
const Guid& BatRegionGuid();            // 2DC27766-F623-4200-9D64-115E9BFD4A08
const Guid& MetadataRegionGuid();       // 8B7CA206-4790-4B9A-B8FE-575F050F886E
const Guid& FileParametersGuid();       // CAA16737-FA36-4D43-B3B6-33F0AA44E76B
const Guid& VirtualDiskSizeGuid();      // 2FA54224-CD1B-4876-B211-5DBED83BF4B8
const Guid& VirtualDiskIdGuid();        // BECA12AB-B2E6-4523-93EF-C309E000C746
const Guid& LogicalSectorSizeGuid();    // 8141BF1D-A96F-4709-BA47-F233A8FAAB5F
const Guid& PhysicalSectorSizeGuid();   // CDA348C7-445D-4471-9CC9-E9885251C556
const Guid& ParentLocatorGuid();        // A8D35F2D-B30B-454D-ABF7-D3D84834AB0C
const Guid& VhdxParentLocatorTypeGuid();  // B04AEFB7-D19E-4A81-B789-25B8E9445913
// Microsoft items outside [MS-VHDX] that we recognise by name only.
const Guid& ChsParametersGuid();        // DA02D7BC-3D3A-423C-AC88-2A36AB21479B
const Guid& IncompleteFileGuid();       // 71CC85F0-1B69-4E28-9558-C3BF83AE75D3
const Guid& PmemLabelAreaGuid();        // 10E1AE8A-4B7E-4169-A40F-CD70DE928393

}  // namespace vhdx::format

#endif  // VHDX_SRC_FORMAT_CONSTANTS_H_
