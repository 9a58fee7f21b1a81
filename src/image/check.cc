// `vhdx check`: load the image in collect-all mode and report every problem.
#include "format/constants.h"
#include "image/image_impl.h"
#include "vhdx/check.h"

namespace vhdx {

uint64_t CheckReport::errors() const {
  uint64_t n = 0;
  for (const auto& p : problems) n += p.severity == CheckProblem::Severity::kError && !p.repaired;
  return n;
}

uint64_t CheckReport::warnings() const {
  uint64_t n = 0;
  for (const auto& p : problems) n += p.severity == CheckProblem::Severity::kWarning;
  return n;
}

Result<CheckReport> CheckImage(const std::string& path, const CheckOptions& options) {
  if (options.repair) {
    return Status::NotSupported("check --repair is not implemented yet");
  }
  auto file = OpenPosixFile(path, FileMode::kReadOnly);
  if (!file.ok()) return file.status();
  Image::Impl impl;
  impl.file = std::move(*file);
  impl.path = path;
  impl.read_only = true;
  impl.stripes = std::make_unique<std::shared_mutex[]>(Image::Impl::kStripes);
  Diagnostics diag(true);
  OpenOptions opts;
  opts.open_parents = false;
  Status s = impl.Load(diag, opts);
  CheckReport report;
  report.problems = std::move(diag.problems());
  report.log_was_dirty = impl.log_state != LogState::kClean;
  if (!s.ok()) {
    // A fatal problem stopped the load; make sure it is reported.
    bool listed = false;
    for (const auto& p : report.problems) listed |= p.message == s.message();
    if (!listed) {
      if (s.code() == ErrorCode::kIOError) return s;
      report.problems.push_back({CheckProblem::Severity::kError, "image", 0, s.ToString(), false});
    }
  }
  impl.closed = true;
  return report;
}

}  // namespace vhdx
