// Shared by every launcher in cuda/*.cu: error checks, the stream, grid sizes.
// Kernel bodies live in cuda/kernels/ and include only device_api.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/cuda/runtime.hpp"

/// Throws vit::Error with the failing expression and CUDA's own message.
#define VIT_CUDA_CHECK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t vit_err_ = (expr);                                                  \
    if (vit_err_ != cudaSuccess)                                                          \
      ::vit::detail::throw_error(__FILE__, __LINE__, #expr, ": ", cudaGetErrorString(vit_err_)); \
  } while (0)

/// After every <<<...>>>: a bad configuration is reported here, at the launch.
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
/// launchers, which the emulated backend (tests/cuda_emu/backend/) defines as
/// a run of the same kernel on CPU threads.
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, dim3 block, size_t smem, Args... args) {
  kernel<<<grid, block, smem, stream()>>>(args...);
}

inline unsigned blocks_for(int64_t n, int threads_per_block, int64_t max_blocks = 1 << 20) {
  const int64_t b = (n + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

}  // namespace vit::cuda::detail
