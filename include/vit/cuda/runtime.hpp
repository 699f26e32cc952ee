// The CUDA-only part of the runtime: allocator statistics, the library's
// stream, strided copies and the TF32 switch (what core itself needs is in
// core/device_runtime.hpp). There is no deterministic switch: no kernel uses
// floating-point atomics, so every run is bitwise repeatable. Declarations only, no CUDA header: user code
// compiles with a plain C++ compiler and links vit::cuda (cuda/runtime.cu).
#pragma once

#include <cstddef>
#include <string>

#include "vit/core/allocator.hpp"
#include "vit/core/device_runtime.hpp"

namespace vit::cuda {

/// Statistics of the caching device allocator (allocate/deallocate are in
/// core/device_runtime.hpp, the interface core declares).
AllocatorStats allocator_stats();
/// Returns every cached block to the driver (cudaFree).
void release_cached();

/// All library work is queued on one stream (made on first use), so a step can
/// be captured as a CUDA graph. Returned as void* to keep CUDA headers out.
void* stream();
/// `rows` rows of `row_bytes` each, from src (rows src_pitch bytes apart) to dst
/// (rows dst_pitch apart), device to device, queued: concat, select and their
/// backward are such strided copies.
void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t row_bytes, size_t rows);

/// GEMMs may use TF32 tensor cores (as torch.backends.cuda.matmul.allow_tf32).
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace vit::cuda
