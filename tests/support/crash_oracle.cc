#include "support/crash_oracle.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "image/image_impl.h"
#include "util/coding.h"

namespace vhdx::test {

namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

void Oracle::Fill(uint64_t id, uint64_t unit, uint8_t* out) {
  StoreLE64(out, id);
  StoreLE64(out + 8, unit);
  const uint64_t seed = Mix(id * 0x100000001b3ull ^ unit);
  for (uint64_t i = 2; i < kUnit / 8; ++i) StoreLE64(out + i * 8, Mix(seed + i));
}

uint64_t Oracle::Decode(uint64_t unit, const uint8_t* bytes) {
  static const uint8_t kZeros[kUnit] = {};
  const uint64_t id = LoadLE64(bytes);
  if (id == 0) return std::memcmp(bytes, kZeros, kUnit) == 0 ? 0 : kNever;
  if (id == kNever) return kNever;
  if (LoadLE64(bytes + 8) != unit) return kNever;
  // Tearing happens at 512-byte granularity, so a unit is either all one
  // write or all another; spot-check the pattern (first, middle, last words
  // catch shifted or misplaced data) rather than regenerating all of it.
  const uint64_t seed = Mix(id * 0x100000001b3ull ^ unit);
  for (uint64_t i : {uint64_t{2}, uint64_t{kUnit / 16}, uint64_t{kUnit / 8 - 1}}) {
    if (LoadLE64(bytes + i * 8) != Mix(seed + i)) return kNever;
  }
  return id;
}

uint64_t Oracle::BeginWrite(uint64_t offset, uint64_t length, bool zero, bool fua, std::span<uint8_t> buf) {
  std::lock_guard lock(mu_);
  const uint64_t id = ops_.size() + 1;
  Op op;
  op.start = Tick();
  op.zero = zero;
  op.fua = fua;
  ops_.push_back(op);
  for (uint64_t u = offset / kUnit; u < (offset + length) / kUnit; ++u) {
    history_[u].push_back(static_cast<uint32_t>(id - 1));
    blocks_.insert(u * kUnit / block_size_);
    if (!zero && !buf.empty()) Fill(id, u, buf.data() + (u * kUnit - offset));
  }
  return id;
}

uint64_t Oracle::BeginReveal(uint64_t offset, uint64_t length) {
  const uint64_t id = BeginWrite(offset, length, true, false);
  std::lock_guard lock(mu_);
  ops_[id - 1].reveal = true;
  return id;
}

uint64_t Oracle::BeginResize(uint64_t new_size) {
  std::lock_guard lock(mu_);
  const uint64_t id = ops_.size() + 1;
  Op op;
  op.start = Tick();
  op.zero = true;
  ops_.push_back(op);
  resizes_.emplace_back(static_cast<uint32_t>(id - 1), new_size);
  return id;
}

void Oracle::EndWrite(uint64_t id, bool ok) {
  const uint64_t now = Tick();
  std::lock_guard lock(mu_);
  ops_[id - 1].end = ok ? now : kNever;
}

void Oracle::EndFlush(uint64_t begin, bool ok) {
  const uint64_t now = Tick();
  if (!ok) return;
  std::lock_guard lock(mu_);
  flushes_.emplace_back(begin, now);
}

uint64_t Oracle::write_count() const {
  std::lock_guard lock(mu_);
  return ops_.size();
}

// No lock: called only once the workload has stopped, from several
// verifying threads at once.
std::string Oracle::Verify(Image& image, uint64_t cut, bool whole_blocks) const {
  uint64_t durable_bound = 0;  // D
  for (const auto& [start, end] : flushes_) {
    if (end < cut) durable_bound = std::max(durable_bound, start);
  }
  const std::set<uint64_t>& blocks = blocks_;

  std::string errors;
  int reported = 0;
  auto report = [&](const std::string& msg) {
    if (reported++ < 8) errors += msg + "\n";
  };
  // Durable and possible sizes.
  auto durable = [&](const Op& op) {
    return op.end != kNever && (op.end < durable_bound || (op.fua && op.end < cut));
  };
  ptrdiff_t last_durable = -1;
  for (size_t k = 0; k < resizes_.size(); ++k) {
    if (durable(ops_[resizes_[k].first])) last_durable = static_cast<ptrdiff_t>(k);
  }
  std::vector<uint64_t> sizes = {last_durable < 0 ? virtual_size_ : resizes_[last_durable].second};
  for (size_t k = static_cast<size_t>(last_durable + 1); k < resizes_.size(); ++k) {
    if (ops_[resizes_[k].first].start < cut) sizes.push_back(resizes_[k].second);
  }
  const uint64_t image_size = image.virtual_size();
  if (std::find(sizes.begin(), sizes.end(), image_size) == sizes.end()) {
    std::string msg = "virtual size " + std::to_string(image_size) + "; allowed:";
    for (uint64_t v : sizes) {
      msg += ' ';
      msg += std::to_string(v);
    }
    report(msg);
  }

  std::vector<uint32_t> merged;
  auto check_unit = [&](uint64_t u, const uint8_t* bytes) {
    const uint64_t got = Decode(u, bytes);
    auto it = history_.find(u);
    if (it == history_.end()) {
      if (got != initial_) {
        report("unit " + std::to_string(u) + " was never written but holds id " + std::to_string(got));
      }
      return;
    }
    const std::vector<uint32_t>* hist_ptr = &it->second;
    // Shrinks that cut this unit off act as zero writes to it.
    bool cut_off = false;
    for (const auto& [idx, size] : resizes_) cut_off |= u * kUnit >= size;
    if (cut_off) {
      merged = it->second;
      for (const auto& [idx, size] : resizes_) {
        if (u * kUnit >= size) merged.push_back(idx);
      }
      std::sort(merged.begin(), merged.end(), [&](uint32_t a, uint32_t b) { return ops_[a].start < ops_[b].start; });
      hist_ptr = &merged;
    }
    const std::vector<uint32_t>& hist = *hist_ptr;
    // The durable write: the last one completed before D, or a FUA write
    // completed before the cut.
    ptrdiff_t d = -1;
    for (size_t i = 0; i < hist.size(); ++i) {
      const Op& op = ops_[hist[i]];
      if (op.end != kNever && (op.end < durable_bound || (op.fua && op.end < cut))) d = static_cast<ptrdiff_t>(i);
    }
    auto value = [&](uint32_t idx) {
      return ops_[idx].reveal ? initial_ : ops_[idx].zero ? uint64_t{0} : uint64_t{idx} + 1;
    };
    bool ok = got == (d < 0 ? initial_ : value(hist[static_cast<size_t>(d)]));
    for (size_t i = static_cast<size_t>(d + 1); i < hist.size() && !ok; ++i) {
      ok = ops_[hist[i]].start < cut && value(hist[i]) == got;
    }
    if (ok) return;
    std::vector<uint64_t> allowed;
    allowed.push_back(d < 0 ? initial_ : value(hist[static_cast<size_t>(d)]));
    for (size_t i = static_cast<size_t>(d + 1); i < hist.size(); ++i) {
      if (ops_[hist[i]].start < cut) allowed.push_back(value(hist[i]));
    }
    std::string msg = "unit " + std::to_string(u) + " (virtual offset " + std::to_string(u * kUnit) + ") holds ";
    msg += got == kNever ? std::string("garbage") : "id " + std::to_string(got);
    msg += "; allowed:";
    for (uint64_t a : allowed) {
      msg += ' ';
      msg += std::to_string(a);
    }
    report(msg);
  };

  thread_local std::vector<uint8_t> buf;  // reused: blocks are MiBs
  if (whole_blocks) {
    for (uint64_t block : blocks) {
      const uint64_t start = block * uint64_t{block_size_};
      if (start >= image_size) continue;
      const uint64_t len = std::min<uint64_t>(block_size_, image_size - start);
      buf.resize(len);
      if (Status s = image.Read(start, buf); !s.ok()) {
        report("read of block " + std::to_string(block) + " failed: " + s.ToString());
        continue;
      }
      for (uint64_t u = start / kUnit; u < (start + len) / kUnit; ++u) check_unit(u, buf.data() + (u * kUnit - start));
    }
  } else {
    buf.resize(kUnit);
    for (const auto& [u, hist] : history_) {
      if (u * kUnit >= image_size) continue;
      if (Status s = image.Read(u * kUnit, buf); !s.ok()) {
        report("read of unit " + std::to_string(u) + " failed: " + s.ToString());
        continue;
      }
      check_unit(u, buf.data());
    }
  }
  // Blocks never written must not be allocated.
  auto map = image.Map(0, image_size);
  if (!map.ok()) {
    report("map failed: " + map.status().ToString());
  } else {
    for (const Extent& e : *map) {
      if (e.kind != Extent::Kind::kData || e.depth != 0) continue;  // the parent's data is not ours
      for (uint64_t b = e.offset / block_size_; b * uint64_t{block_size_} < e.offset + e.length; ++b) {
        if (!blocks.count(b)) report("block " + std::to_string(b) + " was never written but is allocated");
      }
    }
  }
  if (reported > 8) errors += "... " + std::to_string(reported - 8) + " more\n";
  return errors;
}

std::vector<std::string> CheckBytes(std::shared_ptr<SparseBytes> bytes, bool include_warnings, bool* log_dirty) {
  Image::Impl impl;
  impl.file = NewSparseFile(std::move(bytes));  // read-only load: a dirty log is replayed in memory
  impl.read_only = true;
  impl.stripes = std::make_unique<std::shared_mutex[]>(Image::Impl::kStripes);
  Diagnostics diag(true);
  OpenOptions opts;
  opts.open_parents = false;
  Status s = impl.Load(diag, opts);
  impl.closed = true;
  if (log_dirty) *log_dirty = impl.log_state != LogState::kClean;
  std::vector<std::string> out;
  for (const CheckProblem& p : diag.problems()) {
    if (p.severity == CheckProblem::Severity::kError || include_warnings) {
      out.push_back(p.structure + " @" + std::to_string(p.file_offset) + ": " + p.message);
    }
  }
  if (!s.ok() && out.empty()) out.push_back("load failed: " + s.ToString());
  return out;
}

}  // namespace vhdx::test
