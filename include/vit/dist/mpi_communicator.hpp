// MpiCommunicator: the Communicator of a job launched by mpirun or srun, on
// MPI. Host buffers go to MPI as they are (in place); buffers on the GPU are
// staged through page-locked host buffers: copied to the host, reduced or
// sent by MPI, copied back. That path needs no CUDA-aware MPI and no NCCL, so
// a multi-GPU job runs on any MPI; NcclCommunicator is the fast path beside it.
//
// Started sums are MPI_Iallreduce requests, advanced by progress() (MPI moves
// non-blocking collectives only inside MPI calls) and completed by
// wait_all(). The staging buffers are kept from one start...wait_all cycle to
// the next and taken by position within a cycle, so a training step that
// issues the same sums every time allocates nothing once the first step has
// grown them.
//
// Identical bits on every rank: MPI does not promise that an allreduce hands
// every rank the same floating-point sum, but Open MPI's algorithms (its
// tuned and libnbc collectives: recursive doubling, ring, reduce+broadcast)
// combine the same partial sums in the same order on every rank, and
// floating-point addition of two operands is commutative. The tests check it
// on 2 and 3 ranks for the blocking and the started sums; another MPI must
// pass them too before a job relies on bitwise-equal replicas.
//
// Only compiled with MPI (VIT_WITH_MPI=1: link vit::mpi). Every MPI error is
// returned, not fatal (MPI_ERRORS_RETURN), and thrown as vit::Error naming
// the call.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "vit/core/device_runtime.hpp"
#include "vit/core/error.hpp"
#include "vit/dist/communicator.hpp"

namespace vit::dist {

namespace detail {

/// Throws vit::Error naming the MPI call and MPI's own message.
inline void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  VIT_CHECK(false, call,
            " failed: ", len ? std::string(text, len) : "MPI error " + std::to_string(rc));
}

inline MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::Float32: return MPI_FLOAT;
    case DType::Float64: return MPI_DOUBLE;
    case DType::Int32: return MPI_INT32_T;
    case DType::Int64: return MPI_INT64_T;
    case DType::UInt8: return MPI_UINT8_T;
  }
  VIT_CHECK(false, "vit::dist: unknown DType ", static_cast<int>(t));
  return MPI_DATATYPE_NULL;
}

}  // namespace detail

#define VIT_MPI_CHECK(call) ::vit::dist::detail::mpi_check((call), #call)

class MpiCommunicator final : public Communicator {
 public:
  /// Initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED: only the thread
  /// that called this makes MPI calls) unless it already is, and returns the
  /// communicator of MPI_COMM_WORLD. The one that initialised MPI finalises it
  /// when destroyed, so it must outlive every other MPI user of the process.
  static std::unique_ptr<MpiCommunicator> init(int& argc, char**& argv) {
    int initialised = 0;
    VIT_MPI_CHECK(MPI_Initialized(&initialised));
    bool owns = false;
    if (!initialised) {
      int provided = 0;
      VIT_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
      owns = true;
      // Errors of the world communicator come back as codes too.
      VIT_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
      VIT_CHECK(provided >= MPI_THREAD_FUNNELED, "MPI_Init_thread: this MPI provides thread level ",
                provided, ", vit needs MPI_THREAD_FUNNELED");
    }
    auto comm = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
    comm->finalize_ = owns;
    return comm;
  }

  /// The ranks of `comm` (MPI must be initialised). The communicator is
  /// duplicated, so this object's traffic never meets the caller's own.
  /// Collective: every rank of `comm` constructs it.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD) {
    VIT_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
    VIT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    VIT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    VIT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    // The ranks sharing this machine's memory: the ones that share its GPUs.
    VIT_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_));
    VIT_MPI_CHECK(MPI_Comm_rank(node_, &local_rank_));
    VIT_MPI_CHECK(MPI_Comm_size(node_, &local_size_));
  }

  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      // Started sums still write into their buffers: let them land, unless an
      // exception is unwinding (the other ranks may never join them).
      if (!requests_.empty() && std::uncaught_exceptions() == 0)
        MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
      if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
      if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    }
    for (Staging& s : staging_) release(s);
    if (finalize_ && !finalized) MPI_Finalize();
  }

  using Communicator::allreduce_sum;  // the typed Tensor helpers, hidden by the
                                      // overrides otherwise
  using Communicator::broadcast;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string name() const override { return "MPI"; }
  /// The duplicated communicator every call of this object goes through.
  MPI_Comm comm() const { return comm_; }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; if it did, end this rank anyway
  }

  void allreduce_sum(void* buf, int64_t count, DType type, Device dev) override {
    check_count("allreduce_sum", count);
    if (count == 0) return;
    const size_t bytes = static_cast<size_t>(count) * dtype_size(type);
    void* host = dev == Device::CPU ? buf : stage_in(next_staging_, buf, bytes);
    for_chunks(host, count, type, [&](void* p, int n, MPI_Datatype t) {
      VIT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, n, t, MPI_SUM, comm_));
    });
    if (dev != Device::CPU) stage_out(buf, host, bytes);
  }

  void broadcast(void* buf, int64_t count, DType type, int root, Device dev) override {
    check_count("broadcast", count);
    VIT_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " in a job of ", size_,
              " ranks");
    if (count == 0) return;
    const size_t bytes = static_cast<size_t>(count) * dtype_size(type);
    // Only the root's bytes matter on the way in; every rank's on the way out.
    void* host = buf;
    if (dev != Device::CPU)
      host = rank_ == root ? stage_in(next_staging_, buf, bytes) : staging(next_staging_, bytes);
    for_chunks(host, count, type, [&](void* p, int n, MPI_Datatype t) {
      VIT_MPI_CHECK(MPI_Bcast(p, n, t, root, comm_));
    });
    if (dev != Device::CPU && rank_ != root) stage_out(buf, host, bytes);
  }

  void barrier() override { VIT_MPI_CHECK(MPI_Barrier(comm_)); }

  /// MPI_Iallreduce in place. A GPU buffer is copied to its staging buffer
  /// now (waiting for the work queued before) and back in wait_all().
  void start_allreduce_sum(void* buf, int64_t count, DType type, Device dev) override {
    check_count("start_allreduce_sum", count);
    if (count == 0) return;
    const size_t bytes = static_cast<size_t>(count) * dtype_size(type);
    Pending pending{buf, bytes, -1};
    void* host = buf;
    if (dev != Device::CPU) {
      pending.staged = next_staging_;
      host = stage_in(next_staging_++, buf, bytes);
    }
    pending_.push_back(pending);
    for_chunks(host, count, type, [&](void* p, int n, MPI_Datatype t) {
      requests_.push_back(MPI_REQUEST_NULL);
      VIT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p, n, t, MPI_SUM, comm_, &requests_.back()));
    });
  }

  void progress() override {
    if (requests_.empty()) return;
    int done = 0;
    VIT_MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done,
                              MPI_STATUSES_IGNORE));
  }

  void wait_all() override {
    if (!requests_.empty())
      VIT_MPI_CHECK(
          MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    requests_.clear();
    for (const Pending& p : pending_)
      if (p.staged >= 0) stage_out(p.buf, staging_[p.staged].host, p.bytes);
    pending_.clear();
    next_staging_ = 0;  // the next cycle reuses the buffers from the first
  }

  /// Largest number of elements one MPI call is given: MPI counts are int, so
  /// longer buffers go in pieces of INT_MAX. Tests lower it to cover the split.
  void set_max_chunk(int64_t elements) {
    VIT_CHECK(elements >= 1 && elements <= INT_MAX, "set_max_chunk: ", elements, " elements");
    max_chunk_ = elements;
  }
  /// Page-locked staging buffers allocated so far (GPU buffers only): stops
  /// growing once every cycle finds buffers large enough.
  int64_t staging_allocations() const { return staging_allocations_; }

 private:
  struct Staging {
    void* host = nullptr;
    size_t capacity = 0;
  };
  struct Pending {
    void* buf;  // the caller's buffer
    size_t bytes;
    int staged;  // its staging buffer, or -1 for a host buffer
  };

  static void check_count(const char* what, int64_t count) {
    VIT_CHECK(count >= 0, what, ": negative count ", count);
  }

  template <class F>
  void for_chunks(void* host, int64_t count, DType type, F&& f) const {
    const MPI_Datatype t = detail::mpi_type(type);
    auto* p = static_cast<unsigned char*>(host);
    for (int64_t at = 0; at < count; at += max_chunk_) {
      const int64_t n = std::min<int64_t>(max_chunk_, count - at);
      f(p + static_cast<size_t>(at) * dtype_size(type), static_cast<int>(n), t);
    }
  }

  // Staging buffer `i` of this cycle, at least `bytes` long.
  void* staging(int i, size_t bytes) {
#if VIT_WITH_CUDA
    if (static_cast<size_t>(i) >= staging_.size()) staging_.resize(i + 1);
    Staging& s = staging_[i];
    if (s.capacity < bytes) {
      release(s);
      s.host = cuda::allocate_pinned(bytes);
      s.capacity = bytes;
      ++staging_allocations_;
    }
    return s.host;
#else
    (void)i;
    (void)bytes;
    VIT_CHECK(false,
              "MpiCommunicator: a cuda buffer in a build without a CUDA "
              "backend (link vit::cuda)");
    return nullptr;
#endif
  }
  void* stage_in(int i, const void* dev_buf, size_t bytes) {
    void* host = staging(i, bytes);
#if VIT_WITH_CUDA
    cuda::copy_to_host(host, dev_buf,
                       bytes);  // waits for the work that produced it
#else
    (void)dev_buf;
#endif
    return host;
  }
  void stage_out(void* dev_buf, const void* host, size_t bytes) {
#if VIT_WITH_CUDA
    cuda::copy_to_device(dev_buf, host, bytes);
#else
    (void)dev_buf;
    (void)host;
    (void)bytes;
#endif
  }
  static void release(Staging& s) {
#if VIT_WITH_CUDA
    if (s.host) cuda::deallocate_pinned(s.host, s.capacity);
#endif
    s.host = nullptr;
    s.capacity = 0;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm node_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool finalize_ = false;
  int64_t max_chunk_ = INT_MAX;
  std::vector<MPI_Request> requests_;
  std::vector<Pending> pending_;
  std::vector<Staging> staging_;
  int next_staging_ = 0;
  int64_t staging_allocations_ = 0;
};

}  // namespace vit::dist
