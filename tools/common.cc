#include "common.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace vhdx::tool {

namespace {

// Multiplier for a suffix letter, 0 when the letter is not a suffix.
uint64_t SuffixMultiplier(char c) {
  switch (c) {
    case 'b': case 'B': return 1;
    case 'k': case 'K': return uint64_t{1} << 10;
    case 'm': case 'M': return uint64_t{1} << 20;
    case 'g': case 'G': return uint64_t{1} << 30;
    case 't': case 'T': return uint64_t{1} << 40;
    case 'p': case 'P': return uint64_t{1} << 50;
    case 'e': case 'E': return uint64_t{1} << 60;
    default: return 0;
  }
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  const std::string quoted = "invalid size '" + std::string(text) + "'";
  size_t i = 0;
  uint64_t whole = 0;
  size_t whole_digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++whole_digits) {
    if (__builtin_mul_overflow(whole, 10u, &whole) ||
        __builtin_add_overflow(whole, static_cast<uint64_t>(text[i] - '0'), &whole)) {
      return Status::InvalidArgument(quoted + ": value too large");
    }
  }
  // Optional fraction, kept as numerator / 10^digits.
  uint64_t frac = 0;
  size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++frac_digits) {
      if (frac_digits >= 18) return Status::InvalidArgument(quoted + ": too many decimal places");
      frac = frac * 10 + static_cast<uint64_t>(text[i] - '0');
    }
  }
  if (whole_digits == 0 && frac_digits == 0) {
    return Status::InvalidArgument(quoted + ": expected a number of bytes, optionally with a suffix K, M, G or T");
  }
  uint64_t multiplier = 1;
  std::string_view suffix = text.substr(i);
  if (!suffix.empty()) {
    multiplier = SuffixMultiplier(suffix[0]);
    std::string_view rest = suffix.substr(1);
    bool ok = multiplier != 0 && (rest.empty() || (multiplier > 1 && (IEquals(rest, "ib") || IEquals(rest, "b"))));
    if (!ok) {
      return Status::InvalidArgument(quoted + ": unknown suffix '" + std::string(suffix) +
                                     "' (use K, M, G, T, P or E)");
    }
  }
  uint64_t value;
  if (__builtin_mul_overflow(whole, multiplier, &value)) {
    return Status::InvalidArgument(quoted + ": value too large");
  }
  if (frac != 0) {
    // frac / 10^d of a power-of-two multiplier 2^k must be a whole number:
    // frac must be divisible by 5^d, and the rest by 2^(d-k) when d > k.
    // frac < 10^d, so frac / 5^d < 2^d and the result stays below 2^k.
    uint64_t pow5 = 1;
    for (size_t d = 0; d < frac_digits; ++d) pow5 *= 5;
    const int k = __builtin_ctzll(multiplier);
    const int d = static_cast<int>(frac_digits);
    uint64_t f = frac / pow5;
    bool whole_bytes = frac % pow5 == 0 && (k >= d || f % (uint64_t{1} << (d - k)) == 0);
    if (!whole_bytes) return Status::InvalidArgument(quoted + ": not a whole number of bytes");
    uint64_t extra = k >= d ? f << (k - d) : f >> (d - k);
    if (__builtin_add_overflow(value, extra, &value)) {
      return Status::InvalidArgument(quoted + ": value too large");
    }
  }
  return value;
}

std::string HumanSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  size_t unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g %s", value, kUnits[unit]);
  return buf;
}

std::string HumanSizeWithBytes(uint64_t bytes) {
  return HumanSize(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

std::string Hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, value);
  return buf;
}

int Fail(std::string_view command, std::string_view file, const Status& status) {
  std::string line = "vhdx: ";
  line.append(command).append(": ");
  if (!file.empty()) line.append(file).append(": ");
  line.append(status.ToString()).append("\n");
  std::fputs(line.c_str(), stderr);
  return kExitFailure;
}

int FailArgument(std::string_view command, std::string_view file, std::string message) {
  return Fail(command, file, Status::InvalidArgument(std::move(message)));
}

bool IsAllZero(std::span<const uint8_t> data) {
  // Compare 8 bytes at a time; memcmp against the shifted buffer would be
  // shorter but reads every byte twice.
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, data.data() + i, 8);
    if (word != 0) return false;
  }
  for (; i < data.size(); ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

bool AlignUp(uint64_t value, uint64_t align, uint64_t* out) {
  uint64_t sum;
  if (__builtin_add_overflow(value, align - 1, &sum)) return false;
  *out = sum & ~(align - 1);
  return true;
}

Progress::Progress(bool enabled, uint64_t total) : active_(enabled && isatty(STDERR_FILENO) == 1), total_(total) {
  Update(0);
}

Progress::~Progress() {
  if (active_ && !finished_) std::fputs("\n", stderr);
}

void Progress::Update(uint64_t done) {
  if (!active_ || finished_) return;
  const uint64_t clamped = done > total_ ? total_ : done;
  const int permyriad =
      total_ == 0 ? 10000 : static_cast<int>(static_cast<double>(clamped) * 10000.0 / static_cast<double>(total_));
  if (permyriad == last_permyriad_) return;
  last_permyriad_ = permyriad;
  std::fprintf(stderr, "\r    (%d.%02d/100%%)", permyriad / 100, permyriad % 100);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!active_ || finished_) return;
  Update(total_);
  std::fputs("\n", stderr);
  finished_ = true;
}

}  // namespace vhdx::tool
