// NcclCommunicator (include/vit/dist/nccl_communicator.hpp) on NCCL: GPU
// buffers as NCCL collectives queued on the library stream, everything else
// handed to the base communicator. Host code only (no kernel of its own), so
// g++ compiles it against the CUDA and NCCL headers.
#include "vit/dist/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <string>

#include "vit/core/error.hpp"
#include "vit/cuda/runtime.hpp"

namespace vit::dist {

namespace {

#define VIT_NCCL_CHECK(expr, comm)                                                                \
  do {                                                                                            \
    const ncclResult_t vit_nccl_rc_ = (expr);                                                     \
    if (vit_nccl_rc_ != ncclSuccess) throw_nccl(#expr, vit_nccl_rc_, (comm), __FILE__, __LINE__); \
  } while (0)

[[noreturn]] void throw_nccl(const char* call, ncclResult_t rc, ncclComm_t comm, const char* file,
                             int line) {
  const char* last = comm ? ncclGetLastError(comm) : nullptr;
  ::vit::detail::throw_error(file, line, call, " failed: ", ncclGetErrorString(rc),
                             last && *last ? std::string(" (") + last + ")" : std::string());
}

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::Float32: return ncclFloat32;
    case DType::Float64: return ncclFloat64;
    case DType::Int32: return ncclInt32;
    case DType::Int64: return ncclInt64;
    case DType::UInt8: return ncclUint8;
  }
  VIT_CHECK(false, "NcclCommunicator: unknown DType ", static_cast<int>(t));
  return ncclUint8;
}

cudaStream_t library_stream() { return static_cast<cudaStream_t>(cuda::stream()); }

}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
};

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> base)
    : base_(std::move(base)), impl_(std::make_unique<Impl>()) {
  VIT_CHECK(base_, "NcclCommunicator: no base communicator");
  ncclUniqueId id{};
  if (base_->rank() == 0) VIT_NCCL_CHECK(ncclGetUniqueId(&id), nullptr);
  base_->broadcast(&id, static_cast<int64_t>(sizeof id), DType::UInt8, 0, Device::CPU);
  library_stream();  // binds this thread to the device chosen by
                     // cuda::set_device
  VIT_NCCL_CHECK(ncclCommInitRank(&impl_->comm, base_->size(), id, base_->rank()), nullptr);
}

NcclCommunicator::~NcclCommunicator() {
  if (!impl_ || !impl_->comm) return;
  // Collectives still queued use the communicator: let them finish first.
  cudaStreamSynchronize(library_stream());
  ncclCommDestroy(impl_->comm);
}

std::string NcclCommunicator::version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "?";
  // NCCL_VERSION(X,Y,Z): X*10000 + Y*100 + Z since 2.9.
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

std::string NcclCommunicator::name() const {
  return "NCCL " + version() + " (host buffers: " + base_->name() + ")";
}

void NcclCommunicator::abort(int exit_code) {
  if (impl_ && impl_->comm) ncclCommAbort(impl_->comm);
  base_->abort(exit_code);
  std::_Exit(exit_code);  // abort() does not return; the compiler cannot see
                          // that through the call
}

void NcclCommunicator::allreduce_sum(void* buf, int64_t count, DType type, Device dev) {
  VIT_CHECK(count >= 0, "allreduce_sum: negative count ", count);
  if (dev == Device::CPU) return base_->allreduce_sum(buf, count, type, dev);
  if (count == 0) return;
  VIT_NCCL_CHECK(ncclAllReduce(buf, buf, static_cast<size_t>(count), nccl_type(type), ncclSum,
                               impl_->comm, library_stream()),
                 impl_->comm);
}

void NcclCommunicator::broadcast(void* buf, int64_t count, DType type, int root, Device dev) {
  VIT_CHECK(count >= 0 && root >= 0 && root < size(), "broadcast: count ", count, ", root ", root,
            " in a job of ", size(), " ranks");
  if (dev == Device::CPU) return base_->broadcast(buf, count, type, root, dev);
  if (count == 0) return;
  VIT_NCCL_CHECK(ncclBroadcast(buf, buf, static_cast<size_t>(count), nccl_type(type), root,
                               impl_->comm, library_stream()),
                 impl_->comm);
}

void NcclCommunicator::start_allreduce_sum(void* buf, int64_t count, DType type, Device dev) {
  // A GPU sum is queued either way: the stream orders later work after it.
  if (dev == Device::CPU) return base_->start_allreduce_sum(buf, count, type, dev);
  allreduce_sum(buf, count, type, dev);
}

void NcclCommunicator::wait_all() {
  base_->wait_all();
  ncclResult_t async = ncclSuccess;
  VIT_NCCL_CHECK(ncclCommGetAsyncError(impl_->comm, &async), impl_->comm);
  if (async != ncclSuccess && async != ncclInProgress)
    throw_nccl("ncclCommGetAsyncError", async, impl_->comm, __FILE__, __LINE__);
}

}  // namespace vit::dist
