// The CUDA runtime as the header-only library sees it: device discovery, the
// caching device allocator, copies, the library's stream, and the TF32 and
// deterministic switches. Declarations only, no CUDA header: user code
// compiles with a plain C++ compiler and links vit::cuda (cuda/runtime.cu).
#pragma once

#include <cstddef>
#include <string>

#include "vit/core/allocator.hpp"

namespace vit::cuda {

/// Number of usable CUDA devices; 0 when there is no device or no driver.
int device_count();
/// True when device_count() > 0.
inline bool available() { return device_count() > 0; }
/// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)", or why there is none.
std::string device_description();

/// Device memory from the caching allocator: freed blocks are kept by size
/// and reused, so a steady-state training step calls cudaMalloc never. Out of
/// memory throws vit::Error naming the size asked for and what is in use.
void* allocate(size_t bytes);
void deallocate(void* p, size_t bytes);
AllocatorStats allocator_stats();
/// Returns every cached block to the driver (cudaFree).
void release_cached();

/// All library work is queued on one stream (made on first use), so a step can
/// be captured as a CUDA graph. Returned as void* to keep CUDA headers out.
void* stream();
/// Host -> device, queued: `src` is staged in pinned memory, so it may be
/// reused as soon as this returns while the copy itself runs asynchronously.
void copy_to_device(void* dst, const void* src, size_t bytes);
/// Device -> host; waits for the work queued before it.
void copy_to_host(void* dst, const void* src, size_t bytes);
/// Device -> device, queued on the stream.
void copy_on_device(void* dst, const void* src, size_t bytes);
/// `rows` rows of `row_bytes` each, from src (rows src_pitch bytes apart) to dst
/// (rows dst_pitch apart), device to device, queued: concat, select and their
/// backward are such strided copies.
void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t row_bytes, size_t rows);
void fill_zero(void* dst, size_t bytes);
/// Waits for all queued work and throws on any asynchronous kernel error.
void synchronize();

/// GEMMs may use TF32 tensor cores (as torch.backends.cuda.matmul.allow_tf32).
void set_allow_tf32(bool on);
bool allow_tf32();
/// Deterministic mode: no floating-point atomics anywhere (bitwise repeatable).
void set_deterministic(bool on);
bool deterministic();

}  // namespace vit::cuda
