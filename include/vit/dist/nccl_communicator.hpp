// NcclCommunicator: the fast path of a multi-GPU job. Sums and broadcasts of
// GPU buffers run as NCCL collectives on the library's stream
// (vit::cuda::stream()), GPU to GPU over NVLink or the network, with no copy
// through the host. Host buffers and barriers go to the communicator it is
// built on (MPI), which also carries NCCL's unique id from rank 0 to the rest.
//
// A GPU collective is queued, not run: allreduce_sum and broadcast return as
// soon as the work is on the stream, and everything queued after it (the
// optimizer step, a copy to the host) runs after it. So a result is read by
// device work directly, and by the host only after a synchronisation
// (copy_to_host and cuda::synchronize() do it). For the same reason
// start_allreduce_sum just queues and wait_all() has nothing to wait for.
// NCCL's ring and tree algorithms compute each sum once and send it to every
// rank, so every rank gets the same bits.
//
// Declarations only, no NCCL or CUDA header: the definition is in
// cuda/nccl/nccl_communicator.cpp, built as vit::nccl where CMake finds NCCL
// (it defines VIT_WITH_NCCL=1). One GPU per rank: NCCL refuses two ranks on
// one device, so gpu_communicator() (process_group.hpp) picks this only when
// every rank of the node has a GPU of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "vit/dist/communicator.hpp"

#ifndef VIT_WITH_NCCL
#define VIT_WITH_NCCL 0
#endif

namespace vit::dist {

class NcclCommunicator final : public Communicator {
 public:
  /// Collective over `base`: every rank of it constructs one. This rank's GPU
  /// must be chosen before (cuda::set_device), as NCCL binds to it.
  explicit NcclCommunicator(std::unique_ptr<Communicator> base);
  /// Waits for the queued collectives, then frees NCCL's communicator.
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  using Communicator::allreduce_sum;  // the typed Tensor helpers, hidden by the
                                      // overrides otherwise
  using Communicator::broadcast;

  int rank() const override { return base_->rank(); }
  int size() const override { return base_->size(); }
  int local_rank() const override { return base_->local_rank(); }
  int local_size() const override { return base_->local_size(); }
  /// "NCCL 2.28.9 (host buffers: MPI)".
  std::string name() const override;
  /// Aborts NCCL's communicator (in-flight kernels return), then the base's
  /// job.
  [[noreturn]] void abort(int exit_code) override;

  /// A GPU buffer: ncclAllReduce in place, queued on the library stream.
  void allreduce_sum(void* buf, int64_t count, DType type, Device dev) override;
  /// A GPU buffer: ncclBroadcast in place, queued on the library stream.
  void broadcast(void* buf, int64_t count, DType type, int root, Device dev) override;
  void barrier() override { base_->barrier(); }

  /// A GPU buffer: the same as allreduce_sum (queued); a host one: the base's.
  void start_allreduce_sum(void* buf, int64_t count, DType type, Device dev) override;
  void progress() override { base_->progress(); }
  /// Completes the base's started sums and reports an asynchronous NCCL
  /// error (a peer gone, a network failure) as vit::Error.
  void wait_all() override;

  /// The communicator host buffers go to.
  Communicator& base() { return *base_; }
  /// NCCL's version, "2.28.9".
  static std::string version();

 private:
  struct Impl;
  std::unique_ptr<Communicator> base_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vit::dist
