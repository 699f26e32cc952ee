// What the emulated CUDA backend (vit::cuda_emu, tests/cuda_emu/backend/)
// tells its tests beyond the runtime interface. No CUDA or emulator header.
#pragma once

#include <cstdint>

namespace vit::cuda::emulated {

/// Kernels the emulator has run in this process: a test of an op on
/// Device::CUDA checks that it went through the kernels of cuda/kernels/.
uint64_t kernel_launches();
/// Calls of cuda::gemm and cuda::gemm_strided_batched (host loops here, no kernel).
uint64_t gemm_calls();

}  // namespace vit::cuda::emulated
