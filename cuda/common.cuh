// Shared by every launcher in cuda/*.cu: error checks, the stream, the launch,
// grid sizes, scratch memory. Kernel bodies live in cuda/kernels/ and include
// only device_api.cuh.
//
// Two builds read this file. nvcc (the real backend, vit::cuda): CUDA's own
// runtime, kernels queued with <<<...>>> on the library stream. g++ with
// VIT_CUDA_EMULATED (the emulated backend, vit::cuda_emu, tests/cuda_emu/
// backend/): no CUDA header; the same launchers compile as C++ and
// detail::launch runs the kernel on CPU threads (tests/cuda_emu/emu.hpp),
// synchronously, so the whole library runs on "CUDA" tensors without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/cuda/runtime.hpp"

#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#define VIT_CUDA_REAL 1
#include <cuda_runtime.h>
#else
#define VIT_CUDA_REAL 0
#include <cstring>
#include <string>

#include "emu.hpp"  // tests/cuda_emu on the include path

// The few runtime names a launcher may use, as host stand-ins. Work is never
// asynchronous here: a launch or copy has finished when it returns.
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9 };
using cudaStream_t = void*;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
namespace vit_emu {
/// The error cudaGetLastError last took from last_error(), for cudaGetErrorString.
inline std::string& reported_error() {
  static thread_local std::string e;
  return e;
}
}  // namespace vit_emu
/// The calling thread's last launch error, cleared by reading it (as CUDA's).
inline cudaError_t cudaGetLastError() {
  if (vit_emu::last_error().empty()) return cudaSuccess;
  vit_emu::reported_error() = vit_emu::last_error();
  vit_emu::last_error().clear();
  return cudaErrorInvalidConfiguration;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : vit_emu::reported_error().c_str();
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t = nullptr) {
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
#endif

/// Throws vit::Error with the failing expression and CUDA's own message.
#define VIT_CUDA_CHECK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t vit_err_ = (expr);                                                  \
    if (vit_err_ != cudaSuccess)                                                          \
      ::vit::detail::throw_error(__FILE__, __LINE__, #expr, ": ", cudaGetErrorString(vit_err_)); \
  } while (0)

/// After every launch: a bad configuration is reported here, at the launch.
#define VIT_CUDA_LAUNCH_CHECK() VIT_CUDA_CHECK(cudaGetLastError())

namespace vit::cuda::detail {

inline cudaStream_t stream() { return static_cast<cudaStream_t>(vit::cuda::stream()); }

/// Device scratch floats from the caching allocator, given back when the
/// launcher returns: safe with its kernels still queued, because whoever gets
/// the block next queues after them on the one stream.
struct Scratch {
  explicit Scratch(size_t n)
      : bytes(n * sizeof(float)), p(n ? static_cast<float*>(vit::cuda::allocate(bytes)) : nullptr) {}
  ~Scratch() {
    if (p) vit::cuda::deallocate(p, bytes);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  size_t bytes;
  float* p;
};

/// Queues kernel(args...) on the library stream: the one launch syntax of the
/// launchers. Emulated, the same kernel runs on CPU threads before this returns.
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, dim3 block, size_t smem, Args... args) {
#if VIT_CUDA_REAL
  kernel<<<grid, block, smem, stream()>>>(args...);
#else
  vit_emu::launch(grid, block, smem, kernel, args...);
#endif
}

inline unsigned blocks_for(int64_t n, int threads_per_block, int64_t max_blocks = 1 << 20) {
  const int64_t b = (n + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

}  // namespace vit::cuda::detail
