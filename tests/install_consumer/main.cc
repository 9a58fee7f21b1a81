// Creates an in-memory image, writes and reads it back through the
// installed public headers and library.
#include <cstdio>
#include <vector>

#include "vhdx/image.h"

int main() {
  vhdx::CreateOptions o;
  o.virtual_size = 8 << 20;
  o.block_size = 1 << 20;
  auto img = vhdx::Image::Create(vhdx::NewMemoryFile(), o);
  if (!img.ok()) {
    std::fprintf(stderr, "%s\n", img.status().ToString().c_str());
    return 1;
  }
  std::vector<uint8_t> data(4096, 0x5a), back(4096);
  if (!(*img)->Write(4096, data).ok() || !(*img)->Read(4096, back).ok() || back != data) return 1;
  if (!(*img)->Close().ok()) return 1;
  std::puts("consumer ok");
  return 0;
}
