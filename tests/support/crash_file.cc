#include "support/crash_file.h"

#include <algorithm>
#include <cstring>

namespace vhdx::test {

// ---- SparseBytes ------------------------------------------------------------

const SparseBytes::Page* SparseBytes::Find(uint64_t index) const {
  const uint64_t c = index / kPagesPerChunk;
  if (c >= chunks_.size() || !chunks_[c]) return nullptr;
  return chunks_[c]->pages[index % kPagesPerChunk].get();
}

SparseBytes::Chunk& SparseBytes::MutableChunk(uint64_t c) {
  if (c >= chunks_.size()) chunks_.resize(c + 1);
  std::shared_ptr<Chunk>& p = chunks_[c];
  if (!p) {
    p = std::make_shared<Chunk>();
  } else if (p.use_count() > 1) {
    p = std::make_shared<Chunk>(*p);
  }
  return *p;
}

SparseBytes::Page& SparseBytes::Mutable(uint64_t index) {
  std::shared_ptr<Page>& p = MutableChunk(index / kPagesPerChunk).pages[index % kPagesPerChunk];
  if (!p) {
    p = std::make_shared<Page>();
    p->fill(0);
  } else if (p.use_count() > 1) {
    p = std::make_shared<Page>(*p);
  }
  return *p;
}

void SparseBytes::Erase(uint64_t index) {
  if (!Find(index)) return;
  MutableChunk(index / kPagesPerChunk).pages[index % kPagesPerChunk].reset();
}

void SparseBytes::Read(uint64_t offset, std::span<uint8_t> out) const {
  const uint64_t end = std::min<uint64_t>(offset + out.size(), size_);
  if (end < offset + out.size()) {
    const uint64_t from = std::max(offset, end);
    std::memset(out.data() + (from - offset), 0, offset + out.size() - from);
  }
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t index = pos / kPage;
    const uint64_t in_page = pos % kPage;
    const uint64_t n = std::min(kPage - in_page, end - pos);
    if (const Page* p = Find(index)) {
      std::memcpy(out.data() + (pos - offset), p->data() + in_page, n);
    } else {
      std::memset(out.data() + (pos - offset), 0, n);
    }
    pos += n;
  }
}

void SparseBytes::Write(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t end = offset + data.size();
  size_ = std::max(size_, end);
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t index = pos / kPage;
    const uint64_t in_page = pos % kPage;
    const uint64_t n = std::min(kPage - in_page, end - pos);
    const uint8_t* src = data.data() + (pos - offset);
    if (n == kPage && std::all_of(src, src + kPage, [](uint8_t b) { return b == 0; })) {
      Erase(index);  // keep zeros sparse
    } else {
      std::memcpy(Mutable(index).data() + in_page, src, n);
    }
    pos += n;
  }
}

void SparseBytes::Zero(uint64_t offset, uint64_t length, bool extend) {
  uint64_t end = offset + length;
  if (extend) {
    size_ = std::max(size_, end);
  } else {
    end = std::min(end, size_);
  }
  uint64_t pos = offset;
  while (pos < end) {
    const uint64_t index = pos / kPage;
    const uint64_t in_page = pos % kPage;
    const uint64_t n = std::min(kPage - in_page, end - pos);
    if (n == kPage) {
      Erase(index);
    } else if (Find(index)) {
      std::memset(Mutable(index).data() + in_page, 0, n);
    }
    pos += n;
  }
}

void SparseBytes::Resize(uint64_t size) {
  if (size < size_) {
    const uint64_t keep_pages = (size + kPage - 1) / kPage;
    const uint64_t keep_chunks = (keep_pages + kPagesPerChunk - 1) / kPagesPerChunk;
    if (chunks_.size() > keep_chunks) chunks_.resize(keep_chunks);
    for (uint64_t i = keep_pages; i < keep_chunks * kPagesPerChunk; ++i) Erase(i);
    if (size % kPage != 0 && Find(size / kPage)) {
      Page& p = Mutable(size / kPage);
      std::memset(p.data() + size % kPage, 0, kPage - size % kPage);
    }
  }
  size_ = size;
}

std::vector<uint8_t> SparseBytes::Flatten() const {
  std::vector<uint8_t> out(size_);
  Read(0, out);
  return out;
}

bool SparseBytes::operator==(const SparseBytes& other) const {
  if (size_ != other.size_) return false;
  std::array<uint8_t, kPage> a{}, b{};
  for (uint64_t pos = 0; pos < size_; pos += kPage) {
    const uint64_t index = pos / kPage;
    if (!Find(index) && !other.Find(index)) continue;
    Read(pos, a);
    other.Read(pos, b);
    if (a != b) return false;
  }
  return true;
}

// ---- power cut ------------------------------------------------------------------

namespace {

constexpr uint64_t kSector = 512;

void ApplyRange(SparseBytes& img, const PendingOp& op, uint64_t lo, uint64_t hi) {
  if (lo >= hi) return;
  if (op.kind == PendingOp::Kind::kWrite) {
    img.Write(lo, std::span<const uint8_t>(op.data.data() + (lo - op.offset), hi - lo));
  } else {
    img.Zero(lo, hi - lo, true);
  }
}

}  // namespace

SparseBytes PowerCut(const CrashPoint& point, std::mt19937_64& rng, const CutOptions& options) {
  SparseBytes img = point.durable;
  const size_t n = point.pending.size();
  CutOptions::Mode mode = options.mode;
  if (mode == CutOptions::Mode::kMixed) {
    const int r = static_cast<int>(rng() % 20);
    mode = r < 2    ? CutOptions::Mode::kNone
           : r < 6  ? CutOptions::Mode::kAll
           : r < 10 ? CutOptions::Mode::kPrefix
                    : CutOptions::Mode::kRandom;
  }
  std::vector<size_t> order;
  switch (mode) {
    case CutOptions::Mode::kNone:
    case CutOptions::Mode::kMixed:
      break;
    case CutOptions::Mode::kAll:
      for (size_t i = 0; i < n; ++i) order.push_back(i);
      std::shuffle(order.begin(), order.end(), rng);
      break;
    case CutOptions::Mode::kPrefix: {
      const size_t k = static_cast<size_t>(rng() % (n + 1));
      for (size_t i = 0; i < k; ++i) order.push_back(i);
      break;
    }
    case CutOptions::Mode::kRandom: {
      // A per-cut density, so that both sparse and dense subsets occur.
      const uint64_t density = rng() % 101;
      for (size_t i = 0; i < n; ++i) {
        if (rng() % 100 < density) order.push_back(i);
      }
      std::shuffle(order.begin(), order.end(), rng);
      break;
    }
  }
  const bool harsh = mode != CutOptions::Mode::kPrefix;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (size_t i : order) {
    const PendingOp& op = *point.pending[i];
    const bool lose_size = harsh && unit(rng) < options.lose_resize_probability;
    if (op.kind == PendingOp::Kind::kResize) {
      if (!lose_size) img.Resize(op.offset);
      continue;
    }
    const uint64_t length = op.kind == PendingOp::Kind::kWrite ? op.data.size() : op.length;
    uint64_t end = op.offset + length;
    // A punched hole never extends the file; a write whose extension of the
    // file is lost only lands inside the old size.
    if (!op.extend || (lose_size && end > img.size())) end = std::min(end, img.size());
    if (op.offset >= end) continue;
    if (!harsh || unit(rng) >= options.tear_probability) {
      ApplyRange(img, op, op.offset, end);
      continue;
    }
    // Torn: each 512-byte sector independently reaches the disk or not.
    for (uint64_t s = op.offset / kSector * kSector; s < end; s += kSector) {
      if (rng() & 1) ApplyRange(img, op, std::max(s, op.offset), std::min(s + kSector, end));
    }
  }
  return img;
}

// ---- SparseFile ---------------------------------------------------------------

namespace {

class SparseFile final : public File {
 public:
  explicit SparseFile(std::shared_ptr<SparseBytes> bytes) : bytes_(std::move(bytes)) {}

  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    std::lock_guard lock(mu_);
    bytes_->Read(offset, out);
    return Status::OK();
  }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    std::lock_guard lock(mu_);
    bytes_->Write(offset, data);
    return Status::OK();
  }
  Status Flush() override { return Status::OK(); }
  Result<uint64_t> Size() override {
    std::lock_guard lock(mu_);
    return bytes_->size();
  }
  Status Truncate(uint64_t size) override {
    std::lock_guard lock(mu_);
    bytes_->Resize(size);
    return Status::OK();
  }
  Status ZeroRange(uint64_t offset, uint64_t length) override {
    std::lock_guard lock(mu_);
    bytes_->Zero(offset, length, true);
    return Status::OK();
  }
  Status PunchHole(uint64_t offset, uint64_t length) override {
    std::lock_guard lock(mu_);
    bytes_->Zero(offset, length, false);
    return Status::OK();
  }
  Status Allocate(uint64_t offset, uint64_t length) override {
    std::lock_guard lock(mu_);
    if (offset + length > bytes_->size()) bytes_->Resize(offset + length);
    return Status::OK();
  }
  std::string Name() const override { return "<memory>"; }
  bool IsWritable() const override { return true; }

 private:
  std::mutex mu_;
  std::shared_ptr<SparseBytes> bytes_;
};

}  // namespace

std::unique_ptr<File> NewSparseFile(std::shared_ptr<SparseBytes> bytes) {
  return std::make_unique<SparseFile>(std::move(bytes));
}

// ---- CrashFile ----------------------------------------------------------------

CrashFile::CrashFile(SparseBytes initial) : durable_(initial), current_(std::move(initial)) {}

void CrashFile::SetFlushHook(FlushHook hook) {
  std::lock_guard lock(mu_);
  hook_ = std::move(hook);
}

void CrashFile::SetClock(std::function<uint64_t()> clock) {
  std::lock_guard lock(mu_);
  clock_ = std::move(clock);
}

void CrashFile::StopAtFlush(uint64_t n, CrashPoint* out, bool abort) {
  SetFlushHook([n, out, abort](const CrashPoint& point) {
    if (point.flush_number != n) return Status::OK();
    *out = point;
    return abort ? Status::IOError("power cut simulated at flush " + std::to_string(n)) : Status::OK();
  });
}

void CrashFile::SetPunchHoleSupported(bool supported) {
  std::lock_guard lock(mu_);
  punch_hole_ = supported;
}

uint64_t CrashFile::flush_count() const {
  std::lock_guard lock(mu_);
  return flushes_;
}

SparseBytes CrashFile::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

SparseBytes CrashFile::Durable() const {
  std::lock_guard lock(mu_);
  return durable_;
}

CrashPoint CrashFile::Snapshot() const {
  std::lock_guard lock(mu_);
  return SnapshotLocked();
}

CrashPoint CrashFile::SnapshotLocked() const {
  CrashPoint p;
  p.flush_number = flushes_ + 1;
  p.clock = clock_ ? clock_() : 0;
  p.durable = durable_;
  p.pending = pending_;
  return p;
}

void CrashFile::Push(PendingOp op) { pending_.push_back(std::make_shared<const PendingOp>(std::move(op))); }

Status CrashFile::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  std::lock_guard lock(mu_);
  current_.Read(offset, out);
  return Status::OK();
}

Status CrashFile::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  current_.Write(offset, data);
  PendingOp op;
  op.kind = PendingOp::Kind::kWrite;
  op.offset = offset;
  op.length = data.size();
  op.data.assign(data.begin(), data.end());
  Push(std::move(op));
  return Status::OK();
}

Status CrashFile::Flush() {
  std::lock_guard lock(mu_);
  if (hook_) {
    CrashPoint point = SnapshotLocked();
    if (Status s = hook_(point); !s.ok()) return s;
  }
  ++flushes_;
  durable_ = current_;
  pending_.clear();
  return Status::OK();
}

Result<uint64_t> CrashFile::Size() {
  std::lock_guard lock(mu_);
  return current_.size();
}

Status CrashFile::Truncate(uint64_t size) {
  std::lock_guard lock(mu_);
  current_.Resize(size);
  PendingOp op;
  op.kind = PendingOp::Kind::kResize;
  op.offset = size;
  Push(std::move(op));
  return Status::OK();
}

Status CrashFile::ZeroRange(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  current_.Zero(offset, length, true);
  PendingOp op;
  op.kind = PendingOp::Kind::kZero;
  op.offset = offset;
  op.length = length;
  op.extend = true;
  Push(std::move(op));
  return Status::OK();
}

Status CrashFile::PunchHole(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  if (!punch_hole_) return Status::NotSupported("<memory>: hole punching disabled by the test");
  current_.Zero(offset, length, false);
  PendingOp op;
  op.kind = PendingOp::Kind::kZero;
  op.offset = offset;
  op.length = length;
  op.extend = false;
  Push(std::move(op));
  return Status::OK();
}

Status CrashFile::Allocate(uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  if (offset + length <= current_.size()) return Status::OK();
  current_.Resize(offset + length);
  PendingOp op;
  op.kind = PendingOp::Kind::kResize;
  op.offset = offset + length;
  Push(std::move(op));
  return Status::OK();
}

}  // namespace vhdx::test
