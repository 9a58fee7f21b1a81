// Shared helpers for the test suite.
#ifndef VHDX_TESTS_SUPPORT_TEST_UTIL_H_
#define VHDX_TESTS_SUPPORT_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "vhdx/image.h"

namespace vhdx::test {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Path of the shared samples directory (../shared/samples beside the checkout).
std::string SamplesDir();
bool SamplesAvailable();
// Decompresses samples/<name>.bz2 into `dir`; returns the new path.
std::string DecompressSample(const std::string& name, const std::string& dir);

// SHA-256 (hex) of a file's bytes, and of an image's whole virtual content.
std::string Sha256OfFile(const std::string& path);
std::string Sha256OfImage(Image& image);

// Runs a shell command; returns its exit status (or -1).
int Run(const std::string& command);
// Runs a shell command and returns its standard output.
std::string RunCapture(const std::string& command);
bool HaveCommand(const std::string& name);

// Deterministic pseudo-random bytes.
std::vector<uint8_t> Pattern(uint64_t seed, size_t n);

}  // namespace vhdx::test

#endif  // VHDX_TESTS_SUPPORT_TEST_UTIL_H_
