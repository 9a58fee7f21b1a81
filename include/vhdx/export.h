#ifndef VHDX_EXPORT_H_
#define VHDX_EXPORT_H_

// The library is built with -fvisibility=hidden; the public API is marked.
#define VHDX_EXPORT [[gnu::visibility("default")]]

#endif  // VHDX_EXPORT_H_
