// The narrow positional file interface everything in libvhdx does I/O through.
//
// Implementations: a POSIX file (OpenPosixFile), an in-memory file
// (NewMemoryFile) and FileWrapper, a forwarding base from which tests build
// fault-injecting and power-cut-simulating files.
//
// Rules every implementation follows:
//  * ReadAt fills the whole buffer; bytes at or beyond the end of file read
//    as zero (a file's tail is treated like a sparse extension).
//  * WriteAt writes the whole buffer, extending the file when needed.
//  * Flush makes every write and size change that completed before it
//    durable (fdatasync semantics).
//  * All methods are safe to call from several threads at once.
#ifndef VHDX_FILE_H_
#define VHDX_FILE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vhdx/export.h"
#include "vhdx/status.h"

namespace vhdx {

class VHDX_EXPORT File {
 public:
  virtual ~File();

  virtual Status ReadAt(uint64_t offset, std::span<uint8_t> out) = 0;
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual Status Flush() = 0;
  virtual Result<uint64_t> Size() = 0;
  // Sets the file size; growing adds bytes that read as zero.
  virtual Status Truncate(uint64_t size) = 0;
  // Makes [offset, offset+length) read as zero. Default: writes zeros.
  virtual Status ZeroRange(uint64_t offset, uint64_t length);
  // Like ZeroRange, and gives the space back to the host file system where it
  // can. Default: ZeroRange.
  virtual Status PunchHole(uint64_t offset, uint64_t length);
  // Reserves real storage for [offset, offset+length) (fixed images must not
  // be sparse), extending the file if needed; new bytes read as zero.
  // Default: ZeroRange.
  virtual Status Allocate(uint64_t offset, uint64_t length);
  // Name for messages (the path, or "<memory>").
  virtual std::string Name() const = 0;
  virtual bool IsWritable() const = 0;
};

// Forwards every call to another File; override what a test needs to change.
class VHDX_EXPORT FileWrapper : public File {
 public:
  explicit FileWrapper(std::unique_ptr<File> target) : owned_(std::move(target)), target_(owned_.get()) {}
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override { return target_->ReadAt(offset, out); }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    return target_->WriteAt(offset, data);
  }
  Status Flush() override { return target_->Flush(); }
  Result<uint64_t> Size() override { return target_->Size(); }
  Status Truncate(uint64_t size) override { return target_->Truncate(size); }
  Status ZeroRange(uint64_t offset, uint64_t length) override { return target_->ZeroRange(offset, length); }
  Status PunchHole(uint64_t offset, uint64_t length) override { return target_->PunchHole(offset, length); }
  Status Allocate(uint64_t offset, uint64_t length) override { return target_->Allocate(offset, length); }
  std::string Name() const override { return target_->Name(); }
  bool IsWritable() const override { return target_->IsWritable(); }

  File* target() const { return target_; }

 protected:
  // Forwards to a File owned elsewhere, which must outlive this one
  // (BorrowFile).
  explicit FileWrapper(File* borrowed) : target_(borrowed) {}

 private:
  std::unique_ptr<File> owned_;  // null when borrowed
  File* target_;
};

enum class FileMode {
  kReadOnly,
  kReadWrite,
  kCreateExclusive,  // create; fail with kAlreadyExists if the path exists
  kCreateTruncate,   // create or truncate to zero
};

VHDX_EXPORT Result<std::unique_ptr<File>> OpenPosixFile(const std::string& path, FileMode mode);

// Forwards every call to `file`, which the caller keeps owning and must keep
// alive longer than the returned File. Image::Open and Image::Create take
// ownership of their file; with this, a caller can close an image and
// reopen it on the same file, or look at the file after the image is gone.
VHDX_EXPORT std::unique_ptr<File> BorrowFile(File* file);

// An empty growable in-memory file, or one holding `contents`.
VHDX_EXPORT std::unique_ptr<File> NewMemoryFile(std::vector<uint8_t> contents = {});

}  // namespace vhdx

#endif  // VHDX_FILE_H_
