// `vhdx check [--repair]`: load the image in collect-all mode and report
// every problem; a repair run fixes what can be fixed without guessing.
#include <algorithm>
#include <mutex>

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
  for (const auto& p : problems) n += p.severity == CheckProblem::Severity::kWarning && !p.repaired;
  return n;
}

namespace {

struct LoadOutcome {
  Status status;
  std::vector<CheckProblem> problems;
  bool log_dirty = false;
};

// Loads `impl` in collect-all mode; a fatal problem is listed once.
LoadOutcome CollectProblems(Image::Impl& impl) {
  impl.stripes = std::make_unique<std::shared_mutex[]>(Image::Impl::kStripes);
  Diagnostics diag(true);
  OpenOptions opts;
  opts.open_parents = false;
  LoadOutcome out;
  out.status = impl.Load(diag, opts);
  out.problems = std::move(diag.problems());
  out.log_dirty = impl.log_state != LogState::kClean;
  if (!out.status.ok()) {
    bool listed = false;
    for (const auto& p : out.problems) listed |= p.message == out.status.message();
    if (!listed) {
      out.problems.push_back({CheckProblem::Severity::kError, "image", 0, out.status.ToString(), false});
    }
  }
  return out;
}

}  // namespace

// Fixes what the collect-all load found. Called on a writable image whose
// Load already replayed the log. Every change goes through the log or the
// header update protocol.
Status Image::Impl::Repair(CheckReport* report) {
  if (Status s = BeginWrite(false); !s.ok()) return s;  // rewrites both headers
  if (region_tables_need_rewrite) {
    std::lock_guard lock(meta_mu_);
    LogRegionTablesLocked(regions);
  }
  for (uint64_t idx : invalid_bat_entries) {
    if (geo.IsSectorBitmapIndex(idx)) {
      SetBatEntry(idx, {format::kSbNotPresent, 0});
      continue;
    }
    // The block's data is gone: say so, and make it read as zeros rather
    // than exposing whatever the parent or the file holds.
    uint64_t block = idx - idx / (geo.chunk_ratio + 1);
    uint64_t start = block * uint64_t{geo.block_size};
    uint64_t len = std::min<uint64_t>(geo.block_size, geo.virtual_size - start);
    report->lost_ranges.emplace_back(start, len);
    if (!data_guid_updated.load()) {
      if (Status s = BeginWrite(true); !s.ok()) return s;
    }
    SetBatEntry(idx, {format::kPayloadZero, 0});
  }
  return CommitMetadata();
}

Result<CheckReport> CheckImage(const std::string& path, const CheckOptions& options) {
  CheckReport report;
  {
    auto file = OpenPosixFile(path, FileMode::kReadOnly);
    if (!file.ok()) return file.status();
    Image::Impl impl;
    impl.file = std::move(*file);
    impl.path = path;
    impl.read_only = true;
    LoadOutcome first = CollectProblems(impl);
    impl.closed = true;
    if (!first.status.ok() && first.status.code() == ErrorCode::kIOError) return first.status;
    report.problems = std::move(first.problems);
    report.log_was_dirty = first.log_dirty;
    if (first.log_dirty) {
      report.problems.push_back({CheckProblem::Severity::kError, "log", 0,
                                 "the log holds updates that were never applied (image not closed cleanly)",
                                 false});
    }
  }
  if (!options.repair || report.problems.empty()) return report;

  {
    auto file = OpenPosixFile(path, FileMode::kReadWrite);
    if (!file.ok()) return file.status();
    Image::Impl impl;
    impl.file = std::move(*file);
    impl.path = path;
    impl.read_only = false;
    LoadOutcome load = CollectProblems(impl);
    if (load.status.ok()) {
      Status s = impl.Repair(&report);
      if (s.ok()) s = impl.CloseClean();
      if (!s.ok()) {
        report.problems.push_back({CheckProblem::Severity::kError, "repair", 0, "repair failed: " + s.ToString(),
                                   false});
        impl.closed = true;
        return report;
      }
    }
    impl.closed = true;
  }
  // What is still wrong after the repair was not repaired.
  auto file = OpenPosixFile(path, FileMode::kReadOnly);
  if (!file.ok()) return file.status();
  Image::Impl after;
  after.file = std::move(*file);
  after.path = path;
  after.read_only = true;
  LoadOutcome final_state = CollectProblems(after);
  after.closed = true;
  for (auto& p : report.problems) {
    bool still = p.structure == "log" ? final_state.log_dirty : false;
    for (const auto& q : final_state.problems) still |= q.structure == p.structure && q.message == p.message;
    p.repaired = !still;
  }
  return report;
}

}  // namespace vhdx
