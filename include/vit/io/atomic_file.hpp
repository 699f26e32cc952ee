// AtomicFile: writes a file so that readers see either the old contents or the
// complete new ones, never a prefix. Bytes go to a temp file in the target's
// directory (same filesystem, so rename is atomic), which is fsynced, renamed
// over the target, and then the directory is fsynced so the rename survives a
// crash. Plain POSIX calls, because std::ofstream can neither fsync nor report
// errno; no buffering of its own (callers write large blocks).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "vit/core/error.hpp"

namespace vit {
namespace detail {
/// One line naming what failed, the file and the system's reason:
/// "cannot write 'run/last.safetensors': No space left on device".
[[noreturn]] inline void throw_errno(const char* what, const std::string& path, int err) {
  throw Error(std::string("cannot ") + what + " '" + path + "': " + std::strerror(err));
}
}  // namespace detail
}  // namespace vit

namespace vit::io {

/// The temp file through which AtomicFile writes `path` in process `pid`:
/// `<dir>/.<name>.tmp.<pid>`.
inline std::string atomic_temp_path(const std::string& path, long pid) {
  const size_t slash = path.rfind('/');
  const size_t name_at = slash == std::string::npos ? 0 : slash + 1;
  return path.substr(0, name_at) + "." + path.substr(name_at) + ".tmp." + std::to_string(pid);
}

/// Removes from `dir` the temp files AtomicFile left for any of `names` (by a
/// process killed mid-write). Only for directories no other process is
/// writing in: a live writer's temp file looks the same.
inline void remove_stale_temp_files(const std::string& dir, std::span<const char* const> names) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string file = entry.path().filename().string();
    for (const char* name : names) {
      const std::string prefix = std::string(".") + name + ".tmp.";
      if (file.size() > prefix.size() && file.compare(0, prefix.size(), prefix) == 0 &&
          file.find_first_not_of("0123456789", prefix.size()) == std::string::npos)
        std::filesystem::remove(entry.path(), ec);
    }
  }
}

/// Writes `path` atomically: write(), then commit(). Until commit() returns,
/// the target is untouched; if the object dies uncommitted (an exception on
/// the way), its temp file is removed. Every failure throws vit::Error naming
/// the target path and strerror(errno).
class AtomicFile {
 public:
  /// Creates the temp file `<dir>/.<name>.tmp.<pid>`; throws if the directory
  /// does not exist or cannot be written.
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    const size_t slash = path_.rfind('/');
    const std::string name = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    if (name.empty() || name == "." || name == "..")
      throw Error("cannot create '" + path_ + "': not a file name");
    dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    // The pid keeps two processes writing the same target apart; a stale temp
    // left by a crash under a reused pid is simply truncated.
    temp_ = atomic_temp_path(path_, static_cast<long>(::getpid()));
    do fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) vit::detail::throw_errno("create", path_, errno);
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Removes the temp file unless commit() renamed it; never throws.
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(temp_.c_str());
  }

  /// The target path.
  const std::string& path() const { return path_; }
  /// The temp file being written (for diagnostics and tests).
  const std::string& temp_path() const { return temp_; }

  /// Appends n bytes; loops over partial writes and EINTR.
  void write(const void* data, size_t n) {
    if (fd_ < 0) throw Error("cannot write '" + path_ + "': file already committed or failed");
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      // Linux moves at most ~2 GiB per call; asking for less keeps the
      // partial-write loop the only path for big buffers.
      const size_t chunk = n < (size_t{1} << 30) ? n : (size_t{1} << 30);
      const ssize_t w = ::write(fd_, p, chunk);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("write", errno);
      }
      if (w == 0) fail("write", EIO);  // no progress and no errno: do not spin
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

  /// Makes the new contents durable and visible: fsync, close, rename over the
  /// target, fsync the directory.
  void commit() {
    if (fd_ < 0) throw Error("cannot commit '" + path_ + "': file already committed or failed");
    int rc;
    do rc = ::fsync(fd_);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) fail("write", errno);
    // close() can report a deferred write error (NFS); it is not retried on
    // EINTR because Linux has released the descriptor either way.
    rc = ::close(fd_);
    fd_ = -1;
    if (rc < 0 && errno != EINTR) vit::detail::throw_errno("write", path_, errno);
    if (::rename(temp_.c_str(), path_.c_str()) < 0)
      vit::detail::throw_errno("replace", path_, errno);
    renamed_ = true;
    sync_directory();
  }

 private:
  [[noreturn]] void fail(const char* what, int err) {
    ::close(fd_);
    fd_ = -1;
    vit::detail::throw_errno(what, path_, err);
  }

  void sync_directory() const {
    int dfd;
    do dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (dfd < 0 && errno == EINTR);
    if (dfd < 0) vit::detail::throw_errno("sync the directory of", path_, errno);
    int rc;
    do rc = ::fsync(dfd);
    while (rc < 0 && errno == EINTR);
    const int err = errno;
    ::close(dfd);
    // Some filesystems cannot fsync a directory (EINVAL); the rename is then
    // as durable as that filesystem makes it, which is not ours to fix.
    if (rc < 0 && err != EINVAL) vit::detail::throw_errno("sync the directory of", path_, err);
  }

  std::string path_, dir_, temp_;
  int fd_ = -1;
  bool renamed_ = false;
};

/// Replaces `path` with `bytes` atomically (small files such as config.json).
inline void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

}  // namespace vit::io
