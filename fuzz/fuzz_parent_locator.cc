// fuzz_parent_locator: ParentLocator::Decode of arbitrary bytes, and the
// round trip invariants of what it accepts: Encode then Decode gives the
// same locator, and Encode is a fixed point after one round.
#include <cstdint>
#include <span>
#include <vector>

#include "format/parent_locator.h"
#include "fuzz_util.h"

using namespace vhdx;
using namespace vhdx::format;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> raw(data, size);
  // The UTF-16 helpers see the same bytes.
  (void)Utf16LeToUtf8Lossy(raw);
  if (auto text = Utf16LeToUtf8(raw); text.ok()) {
    // Valid UTF-16 converts back to exactly the same bytes (minus an odd tail).
    std::vector<uint8_t> back = Utf8ToUtf16Le(*text);
    FUZZ_CHECK(back.size() <= size);
    FUZZ_CHECK(std::equal(back.begin(), back.end(), data));
  }

  auto loc = ParentLocator::Decode(raw, 0x200000);
  if (!loc.ok()) {
    FUZZ_CHECK(loc.status().code() == ErrorCode::kCorruption || loc.status().code() == ErrorCode::kNotSupported);
    return 0;
  }
  FUZZ_CHECK(!loc->entries.empty());
  FUZZ_CHECK(loc->Get("parent_linkage").has_value());
  std::vector<uint8_t> encoded = loc->Encode();
  auto again = ParentLocator::Decode(encoded, 0x200000);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(again->locator_type == loc->locator_type);
  FUZZ_CHECK(again->entries == loc->entries);
  FUZZ_CHECK(again->Encode() == encoded);
  // Edits keep it decodable.
  ParentLocator edited = *again;
  edited.Set("relative_path", "x/../parent.vhdx");
  edited.Erase("volume_path");
  auto third = ParentLocator::Decode(edited.Encode(), 0);
  FUZZ_CHECK_MSG(third.ok(), third.status().ToString());
  return 0;
}
