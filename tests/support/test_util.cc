#include "support/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <stdexcept>

namespace vhdx::test {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vhdx-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string SamplesDir() {
  const char* env = getenv("VHDX_SAMPLES_DIR");
  if (env && *env) return env;
#ifdef VHDX_SAMPLES_DIR
  return VHDX_SAMPLES_DIR;
#else
  return "../shared/samples";
#endif
}

bool SamplesAvailable() { return std::filesystem::exists(SamplesDir() + "/iotest-dynamic-1G.vhdx.bz2"); }

std::string DecompressSample(const std::string& name, const std::string& dir) {
  std::string out = dir + "/" + name;
  std::string cmd = "bzip2 -dc '" + SamplesDir() + "/" + name + ".bz2' > '" + out + "'";
  if (Run(cmd) != 0) throw std::runtime_error("cannot decompress " + name);
  return out;
}

int Run(const std::string& command) {
  int rc = system(command.c_str());
  if (rc == -1 || !WIFEXITED(rc)) return -1;
  return WEXITSTATUS(rc);
}

std::string RunCapture(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (!p) return {};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

bool HaveCommand(const std::string& name) { return Run("command -v " + name + " >/dev/null 2>&1") == 0; }

// openssl's SHA-256 is several times faster than coreutils' where present.
std::string HashCommand() {
  static const std::string cmd = HaveCommand("openssl") ? "openssl dgst -sha256 -r" : "sha256sum";
  return cmd;
}

std::string Sha256OfFile(const std::string& path) {
  std::string out = RunCapture(HashCommand() + " < '" + path + "'");
  return out.substr(0, 64);
}

std::string Sha256OfImage(Image& image) {
  TempDir dir;
  std::string sum_file = dir.Join("sum");
  FILE* p = popen((HashCommand() + " > '" + sum_file + "'").c_str(), "w");
  if (!p) return {};
  std::vector<uint8_t> buf(8 << 20);
  for (uint64_t off = 0; off < image.virtual_size(); off += buf.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), image.virtual_size() - off));
    if (!image.Read(off, std::span<uint8_t>(buf.data(), n)).ok()) {
      pclose(p);
      return "read-error";
    }
    fwrite(buf.data(), 1, n, p);
  }
  pclose(p);
  return RunCapture("cat '" + sum_file + "'").substr(0, 64);
}

std::vector<uint8_t> Pattern(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return out;
}

}  // namespace vhdx::test
