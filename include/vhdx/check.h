// Consistency check and repair: what `vhdx check` runs.
#ifndef VHDX_CHECK_H_
#define VHDX_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "vhdx/export.h"
#include "vhdx/status.h"

namespace vhdx {

struct CheckProblem {
  enum class Severity : uint8_t {
    kWarning,   // legal but unusual, or tolerated deviation from the spec
    kError,     // the image is corrupt
  };
  Severity severity = Severity::kError;
  std::string structure;  // e.g. "header 1", "BAT entry 17", "log"
  uint64_t file_offset = 0;
  std::string message;
  bool repaired = false;  // set by a repair run when it was fixed
};

struct CheckOptions {
  // Fix what can be fixed without guessing.
  bool repair = false;
};

struct CheckReport {
  std::vector<CheckProblem> problems;
  // Virtual byte ranges whose data was lost by a repair.
  std::vector<std::pair<uint64_t, uint64_t>> lost_ranges;
  bool log_was_dirty = false;
  uint64_t errors() const;
  uint64_t warnings() const;
  bool clean() const { return errors() == 0; }
};

// Checks the image at `path` (opening it read-only unless repairing).
// Returns an error only when the check itself could not run (the file could
// not be opened or read); corruption is reported in the CheckReport.
VHDX_EXPORT Result<CheckReport> CheckImage(const std::string& path, const CheckOptions& options = {});

}  // namespace vhdx

#endif  // VHDX_CHECK_H_
