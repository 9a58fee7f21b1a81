// Well-known GUIDs. Each is parsed from its canonical text once, on first
// use; the text is the authority (docs/format.md "GUIDs").
#include "format/constants.h"

#include <cstdlib>

namespace vhdx::format {
namespace {

// The texts below are compile-time constants that are known to parse; a
// failure here is a programming error, not a property of any file.
Guid ParseKnown(const char* text) {
  Result<Guid> g = Guid::Parse(text);
  if (!g.ok()) std::abort();
  return *g;
}

}  // namespace

#define VHDX_KNOWN_GUID(name, text)      \
  const Guid& name() {                   \
    static const Guid g = ParseKnown(text); \
    return g;                            \
  }

VHDX_KNOWN_GUID(BatRegionGuid, "2DC27766-F623-4200-9D64-115E9BFD4A08")
VHDX_KNOWN_GUID(MetadataRegionGuid, "8B7CA206-4790-4B9A-B8FE-575F050F886E")
VHDX_KNOWN_GUID(FileParametersGuid, "CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VHDX_KNOWN_GUID(VirtualDiskSizeGuid, "2FA54224-CD1B-4876-B211-5DBED83BF4B8")
VHDX_KNOWN_GUID(VirtualDiskIdGuid, "BECA12AB-B2E6-4523-93EF-C309E000C746")
VHDX_KNOWN_GUID(LogicalSectorSizeGuid, "8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
VHDX_KNOWN_GUID(PhysicalSectorSizeGuid, "CDA348C7-445D-4471-9CC9-E9885251C556")
VHDX_KNOWN_GUID(ParentLocatorGuid, "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
VHDX_KNOWN_GUID(VhdxParentLocatorTypeGuid, "B04AEFB7-D19E-4A81-B789-25B8E9445913")
VHDX_KNOWN_GUID(ChsParametersGuid, "DA02D7BC-3D3A-423C-AC88-2A36AB21479B")
VHDX_KNOWN_GUID(IncompleteFileGuid, "71CC85F0-1B69-4E28-9558-C3BF83AE75D3")
VHDX_KNOWN_GUID(PmemLabelAreaGuid, "10E1AE8A-4B7E-4169-A40F-CD70DE928393")

#undef VHDX_KNOWN_GUID

}  // namespace vhdx::format
