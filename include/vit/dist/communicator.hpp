// The communicator of data-parallel training: what one process of a job of
// `size()` processes ("ranks") needs to agree with the others, as PyTorch's
// ProcessGroup offers it: a sum over ranks in place (allreduce), a copy from
// one rank to all (broadcast) and a barrier. Buffers live on the CPU or the
// GPU; an implementation moves them with whatever engine it wraps (MPI for
// the CPU and for GPU buffers staged through pinned host memory, NCCL for GPU
// buffers). Nothing here is a transport of its own.
//
// Every rank must issue the same calls in the same order (as with MPI and
// NCCL). Results are the same bits on every rank, so ranks that apply the
// same update stay bitwise equal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "vit/core/device.hpp"
#include "vit/core/error.hpp"
#include "vit/core/tensor.hpp"

namespace vit::dist {

/// Element types a communicator reduces and sends.
enum class DType { Float32, Float64, Int32, Int64, UInt8 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float64: case DType::Int64: return 8;
    case DType::UInt8: return 1;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
  }
  return "?";
}

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  else if constexpr (std::is_same_v<T, double>) return DType::Float64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::Int32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::Int64;
  else if constexpr (std::is_same_v<T, uint8_t>) return DType::UInt8;
  else static_assert(sizeof(T) == 0, "vit::dist: no communicator dtype for this element type");
}

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// This rank's number among the ranks on its own machine (picks its GPU),
  /// and how many ranks that machine runs.
  virtual int local_rank() const { return rank(); }
  virtual int local_size() const { return size(); }
  /// "single process", "MPI", "NCCL", ... for logs.
  virtual std::string name() const = 0;
  /// Ends every rank of the job with `exit_code` (MPI_Abort): what a rank
  /// that failed calls after printing why, so no rank waits forever.
  [[noreturn]] virtual void abort(int exit_code) { std::_Exit(exit_code); }

  /// buf[i] = Σ over ranks of buf[i], in place; `count` elements on `dev`.
  /// Blocks until the host may read the result (for a GPU buffer, until it is
  /// queued before later work on the library stream).
  virtual void allreduce_sum(void* buf, int64_t count, DType type, Device dev) = 0;
  /// Rank `root`'s `count` elements into every rank's buf.
  virtual void broadcast(void* buf, int64_t count, DType type, int root, Device dev) = 0;
  /// Returns on every rank once all ranks have entered it.
  virtual void barrier() = 0;

  /// Starts allreduce_sum(buf, ...) and returns at once: the sum may still be
  /// running while the caller goes on (overlapping communication with
  /// backward). buf must stay untouched until wait_all(). The default runs it now.
  virtual void start_allreduce_sum(void* buf, int64_t count, DType type, Device dev) {
    allreduce_sum(buf, count, type, dev);
  }
  /// Lets started sums advance: MPI moves non-blocking collectives only
  /// inside MPI calls, so a caller with other work calls this now and then.
  virtual void progress() {}
  /// Returns when every started sum is complete (as allreduce_sum would).
  virtual void wait_all() {}

  // Typed conveniences on whole tensors (always contiguous).
  template <class T>
  void allreduce_sum(Tensor<T>& t) {
    allreduce_sum(t.data(), t.numel(), dtype_of<T>(), t.device());
  }
  template <class T>
  void broadcast(Tensor<T>& t, int root) {
    broadcast(t.data(), t.numel(), dtype_of<T>(), root, t.device());
  }
};

/// The job of one process: every call is an identity.
class SingleProcess final : public Communicator {
 public:
  using Communicator::allreduce_sum;  // the typed Tensor helpers, hidden by the overrides otherwise
  using Communicator::broadcast;
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single process"; }
  void allreduce_sum(void*, int64_t count, DType, Device) override {
    VIT_CHECK(count >= 0, "allreduce_sum: negative count ", count);
  }
  void broadcast(void*, int64_t count, DType, int root, Device) override {
    VIT_CHECK(count >= 0 && root == 0, "broadcast: count ", count, ", root ", root,
              " in a job of one rank");
  }
  void barrier() override {}
};

}  // namespace vit::dist
