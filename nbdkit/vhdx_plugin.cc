// nbdkit plugin serving a VHDX image, or a differencing image with its whole
// parent chain, over NBD:
//
//   nbdkit build/nbdkit-vhdx-plugin.so file=disk.vhdx [parent=base.vhdx] [-r]
//
// Usage is in README.md ("Serving images over NBD"). Built on the public
// libvhdx API only; request semantics are in disk.h, this file is the nbdkit
// glue: configuration, the life of the shared image, capabilities, errno.
//
// Design:
//  (1) One vhdx::Image serves every connection. A second writable open of the
//      file would fail (the library takes an exclusive flock), and multi-conn
//      requires that a flush on one connection covers writes made on all of
//      them, which only a shared image (one cache, one log) gives.
//  (2) .get_ready opens the image read-only and closes it again, so that a
//      missing file, a bad parameter, a corrupt header or a broken chain stops
//      nbdkit at start-up with a message the user sees. The image is opened
//      for serving by the first .open, read-only or read-write as nbdkit says
//      (only nbdkit knows about -r); not earlier, because nbdkit forks after
//      .get_ready (to daemonize, or for --run) and a forked child would keep
//      the image's flock. The shared image is replaced only while no
//      connection holds it; connections keep it alive through a shared_ptr.
//  (3) On shutdown (.cleanup, or .unload if nbdkit skips .cleanup) the image
//      is closed cleanly: metadata written back and the log marked clean, so
//      the file does not need a replay. When the last client disconnects the
//      image is flushed, so a server killed later loses nothing acknowledged.
//  (4) Requests are validated here (flags, write permission) and in Disk
//      (ranges, writability) before they reach the library. Every failure is
//      logged with nbdkit_error and reported with the matching errno
//      (NbdErrno in disk.h); nothing a client sends can reach an assert, and
//      no C++ exception escapes into nbdkit (Guard).
//
// Locks, in order: g_mu (the shared image, the connection count; held only by
// .open, .close and .cleanup), then Disk::rmw_ (see disk.h). Data callbacks
// take only the latter.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "disk.h"
#include "vhdx/image.h"
#include "vhdx/status.h"

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace {

using vhdx::ErrorCode;
using vhdx::Status;
using vhdx_nbdkit::Disk;

// Largest request the plugin advertises; nbdkit itself caps requests at
// 64 MiB.
constexpr uint32_t kMaxRequest = 32u << 20;

struct Config {
  std::string file;    // file=, absolute
  std::string parent;  // parent=, absolute, or empty
};
Config g_config;

std::mutex g_mu;
std::shared_ptr<Disk> g_disk;  // guarded by g_mu
int g_connections = 0;         // guarded by g_mu
bool g_write_denied = false;   // guarded by g_mu; the file cannot be opened read-write

// One client connection.
struct Connection {
  std::shared_ptr<Disk> disk;
  bool read_only;  // nbdkit -r, or the image could only be opened read-only
};

Connection& Conn(void* handle) { return *static_cast<Connection*>(handle); }

// Logs `s` for the server's log and sets the client's errno; returns -1.
int Fail(const char* op, const Status& s) {
  nbdkit_error("%s: %s", op, s.ToString().c_str());
  nbdkit_set_error(vhdx_nbdkit::NbdErrno(s));
  return -1;
}

int Fail(const char* op, int err, const char* message) {
  nbdkit_error("%s: %s", op, message);
  nbdkit_set_error(err);
  return -1;
}

// Runs a callback body so that no exception reaches nbdkit's C code.
template <typename Fn>
auto Guard(const char* op, Fn&& fn, decltype(fn()) on_error) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    Fail(op, ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    Fail(op, EIO, e.what());
  } catch (...) {
    Fail(op, EIO, "unknown exception");
  }
  return on_error;
}

// Rejects flags the callback does not know (nbdkit should never send them).
bool CheckFlags(const char* op, uint32_t flags, uint32_t allowed) {
  if ((flags & ~allowed) == 0) return true;
  nbdkit_error("%s: unexpected flags %#x", op, flags & ~allowed);
  nbdkit_set_error(EINVAL);
  return false;
}

bool CheckWritable(const char* op, const Connection& c) {
  if (!c.read_only && !c.disk->read_only()) return true;
  Fail(op, EROFS, "the image is served read-only");
  return false;
}

vhdx::Result<std::shared_ptr<Disk>> OpenDisk(bool read_only) {
  vhdx::OpenOptions options;
  options.read_only = read_only;
  options.parent_path = g_config.parent;
  auto image = vhdx::Image::Open(g_config.file, options);
  if (!image.ok()) return image.status();
  return std::make_shared<Disk>(std::move(*image));
}

// Closes the shared image; caller holds g_mu and no connection uses it.
void CloseDiskLocked(const char* why) {
  if (!g_disk) return;
  if (Status s = g_disk->Close(); !s.ok()) {
    nbdkit_error("%s: closing %s: %s", why, g_config.file.c_str(), s.ToString().c_str());
  }
  g_disk.reset();
}

// ---- configuration ----------------------------------------------------------

int vhdx_config(const char* key, const char* value) {
  const std::string k = key;
  if (k != "file" && k != "parent") {
    nbdkit_error("unknown parameter '%s' (expected file= or parent=)", key);
    return -1;
  }
  std::string& slot = k == "file" ? g_config.file : g_config.parent;
  if (!slot.empty()) {
    nbdkit_error("%s= given more than once", key);
    return -1;
  }
  // nbdkit changes directory to / when it forks: keep absolute paths.
  char* abs = nbdkit_absolute_path(value);
  if (!abs) return -1;
  slot = abs;
  free(abs);
  return 0;
}

int vhdx_config_complete() {
  if (g_config.file.empty()) {
    nbdkit_error("the file= parameter is required (the VHDX image to serve)");
    return -1;
  }
  return 0;
}

int vhdx_get_ready() {
  return Guard("get_ready", [] {
    auto disk = OpenDisk(true);
    if (!disk.ok()) return Fail(g_config.file.c_str(), disk.status());
    nbdkit_debug("%s: %llu bytes, logical sector %u, block %u", g_config.file.c_str(),
                 static_cast<unsigned long long>((*disk)->size()), (*disk)->logical_sector_size(),
                 (*disk)->block_size());
    if (Status s = (*disk)->Close(); !s.ok()) return Fail(g_config.file.c_str(), s);
    return 0;
  }, -1);
}

void vhdx_cleanup() {
  Guard("cleanup", [] {
    std::lock_guard lock(g_mu);
    CloseDiskLocked("shutdown");
    return 0;
  }, 0);
}

// ---- connections ------------------------------------------------------------

void* vhdx_open(int readonly) {
  return Guard("open", [readonly]() -> void* {
    std::lock_guard lock(g_mu);
    bool conn_read_only = readonly != 0 || g_write_denied;
    if (!conn_read_only && (!g_disk || g_disk->read_only())) {
      if (g_connections > 0) {
        Fail("open", EBUSY, "the image is open read-only for other connections");
        return nullptr;
      }
      CloseDiskLocked("reopening read-write");
      auto disk = OpenDisk(false);
      if (!disk.ok()) {
        const Status& s = disk.status();
        // Like nbdkit-file-plugin: a file we may not write is served read-only.
        const bool denied = s.code() == ErrorCode::kReadOnly || s.sys_errno() == EACCES || s.sys_errno() == EPERM;
        if (!denied) {
          Fail(g_config.file.c_str(), s);
          return nullptr;
        }
        nbdkit_debug("%s: cannot open read-write (%s); serving read-only", g_config.file.c_str(),
                     s.ToString().c_str());
        g_write_denied = true;
        conn_read_only = true;
      } else {
        g_disk = std::move(*disk);
      }
    }
    if (!g_disk) {
      auto disk = OpenDisk(true);
      if (!disk.ok()) {
        Fail(g_config.file.c_str(), disk.status());
        return nullptr;
      }
      g_disk = std::move(*disk);
    }
    auto* conn = new Connection{g_disk, conn_read_only || g_disk->read_only()};
    ++g_connections;
    return conn;
  }, nullptr);
}

void vhdx_close(void* handle) {
  Guard("close", [handle] {
    std::unique_ptr<Connection> conn(&Conn(handle));
    std::lock_guard lock(g_mu);
    if (--g_connections == 0 && !conn->disk->read_only()) {
      if (Status s = conn->disk->Flush(); !s.ok()) {
        nbdkit_error("flush after the last client left: %s", s.ToString().c_str());
      }
    }
    return 0;
  }, 0);
}

const char* vhdx_export_description(void* handle) {
  const Disk& d = *Conn(handle).disk;
  const char* type = d.type() == vhdx::DiskType::kFixed     ? "fixed"
                     : d.type() == vhdx::DiskType::kDynamic ? "dynamic"
                                                            : "differencing";
  return nbdkit_printf_intern("%s VHDX image %s", type, g_config.file.c_str());
}

// ---- capabilities -------------------------------------------------------------

int64_t vhdx_get_size(void* handle) { return static_cast<int64_t>(Conn(handle).disk->size()); }
int vhdx_can_write(void* handle) { return Conn(handle).read_only ? 0 : 1; }
int vhdx_can_flush(void*) { return 1; }
int vhdx_is_rotational(void*) { return 0; }
int vhdx_can_trim(void* handle) { return vhdx_can_write(handle); }
int vhdx_can_zero(void*) { return 1; }
int vhdx_can_fua(void*) { return NBDKIT_FUA_NATIVE; }
// Flush is global (one shared image), so clients may spread I/O over
// several connections.
int vhdx_can_multi_conn(void*) { return 1; }
int vhdx_can_extents(void*) { return 1; }
// Fixed images have no metadata-only way to zero: every zero writes the file.
int vhdx_can_fast_zero(void* handle) { return Conn(handle).disk->type() != vhdx::DiskType::kFixed; }

int vhdx_block_size(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  const Disk& d = *Conn(handle).disk;
  *minimum = d.logical_sector_size();
  *preferred = std::max({d.logical_sector_size(), d.physical_sector_size(), 4096u});
  *maximum = kMaxRequest;
  return 0;
}

// ---- data -------------------------------------------------------------------

int vhdx_pread(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("pread", [&] {
    if (!CheckFlags("pread", flags, 0)) return -1;
    Status s = Conn(handle).disk->Read(offset, {static_cast<uint8_t*>(buf), count});
    return s.ok() ? 0 : Fail("pread", s);
  }, -1);
}

int vhdx_pwrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("pwrite", [&] {
    if (!CheckFlags("pwrite", flags, NBDKIT_FLAG_FUA) || !CheckWritable("pwrite", Conn(handle))) return -1;
    Status s = Conn(handle).disk->Write(offset, {static_cast<const uint8_t*>(buf), count},
                                        (flags & NBDKIT_FLAG_FUA) != 0);
    return s.ok() ? 0 : Fail("pwrite", s);
  }, -1);
}

int vhdx_zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("zero", [&] {
    if (!CheckFlags("zero", flags, NBDKIT_FLAG_FUA | NBDKIT_FLAG_MAY_TRIM | NBDKIT_FLAG_FAST_ZERO) ||
        !CheckWritable("zero", Conn(handle))) {
      return -1;
    }
    Disk& d = *Conn(handle).disk;
    const bool fua = (flags & NBDKIT_FLAG_FUA) != 0;
    // MAY_TRIM needs nothing special: whole blocks are freed either way.
    if (flags & NBDKIT_FLAG_FAST_ZERO) {
      auto done = d.ZeroFast(offset, count, fua);
      if (!done.ok()) return Fail("zero", done.status());
      if (!*done) {
        // Not an error worth a log line: the client falls back to writing.
        nbdkit_set_error(ENOTSUP);
        return -1;
      }
      return 0;
    }
    Status s = d.Zero(offset, count, fua);
    return s.ok() ? 0 : Fail("zero", s);
  }, -1);
}

int vhdx_trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("trim", [&] {
    if (!CheckFlags("trim", flags, NBDKIT_FLAG_FUA) || !CheckWritable("trim", Conn(handle))) return -1;
    Status s = Conn(handle).disk->Trim(offset, count, (flags & NBDKIT_FLAG_FUA) != 0);
    return s.ok() ? 0 : Fail("trim", s);
  }, -1);
}

int vhdx_flush(void* handle, uint32_t flags) {
  return Guard("flush", [&] {
    if (!CheckFlags("flush", flags, 0)) return -1;
    Status s = Conn(handle).disk->Flush();
    return s.ok() ? 0 : Fail("flush", s);
  }, -1);
}

uint32_t ExtentType(vhdx::Extent::Kind kind) {
  switch (kind) {
    case vhdx::Extent::Kind::kData: return 0;
    case vhdx::Extent::Kind::kZero: return NBDKIT_EXTENT_ZERO;
    case vhdx::Extent::Kind::kUnallocated: return NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
  }
  return 0;
}

int vhdx_extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags, struct nbdkit_extents* extents) {
  return Guard("extents", [&] {
    if (!CheckFlags("extents", flags, NBDKIT_FLAG_REQ_ONE)) return -1;
    auto map = Conn(handle).disk->Map(offset, count);
    if (!map.ok()) return Fail("extents", map.status());
    // The library splits data runs where their file offsets do; NBD only
    // cares about the type, so merge those again.
    uint64_t run_start = 0, run_length = 0;
    uint32_t run_type = 0;
    for (const vhdx::Extent& e : *map) {
      const uint32_t type = ExtentType(e.kind);
      if (run_length > 0 && type == run_type && run_start + run_length == e.offset) {
        run_length += e.length;
        continue;
      }
      if (run_length > 0) {
        if (nbdkit_add_extent(extents, run_start, run_length, run_type) == -1) return -1;
        // REQ_ONE: the client wants only the extent at `offset`.
        if (flags & NBDKIT_FLAG_REQ_ONE) return 0;
      }
      run_start = e.offset;
      run_length = e.length;
      run_type = type;
    }
    if (run_length > 0 && nbdkit_add_extent(extents, run_start, run_length, run_type) == -1) return -1;
    return 0;
  }, -1);
}

struct nbdkit_plugin MakePlugin() {
  struct nbdkit_plugin p = nbdkit_plugin();
  p.name = "vhdx";
  p.longname = "nbdkit VHDX plugin (libvhdx)";
  p.version = VHDX_PLUGIN_VERSION;
  p.description = "Serve a Microsoft VHDX virtual disk (or a differencing chain) over NBD";
  p.config = vhdx_config;
  p.config_complete = vhdx_config_complete;
  p.config_help =
      "file=<FILENAME>    (required) The VHDX image to serve (.vhdx or .avhdx).\n"
      "parent=<FILENAME>  The parent of a differencing image, overriding its stored locator.";
  p.magic_config_key = "file";
  p.get_ready = vhdx_get_ready;
  p.cleanup = vhdx_cleanup;
  p.unload = vhdx_cleanup;
  p.open = vhdx_open;
  p.close = vhdx_close;
  p.export_description = vhdx_export_description;
  p.get_size = vhdx_get_size;
  p.block_size = vhdx_block_size;
  p.can_write = vhdx_can_write;
  p.can_flush = vhdx_can_flush;
  p.is_rotational = vhdx_is_rotational;
  p.can_trim = vhdx_can_trim;
  p.can_zero = vhdx_can_zero;
  p.can_fast_zero = vhdx_can_fast_zero;
  p.can_fua = vhdx_can_fua;
  p.can_multi_conn = vhdx_can_multi_conn;
  p.can_extents = vhdx_can_extents;
  p.pread = vhdx_pread;
  p.pwrite = vhdx_pwrite;
  p.zero = vhdx_zero;
  p.trim = vhdx_trim;
  p.flush = vhdx_flush;
  p.extents = vhdx_extents;
  p.errno_is_preserved = 0;
  return p;
}

struct nbdkit_plugin plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
