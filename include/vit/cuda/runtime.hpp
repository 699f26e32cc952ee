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

/// Chooses the GPU this process computes on (a rank of a multi-GPU job picks
/// its own): every thread's CUDA work then goes there. It must come before the
/// first allocation or stream use, which bind the process to a device; after
/// that, or for an ordinal outside [0, device_count()), it throws. Asking again
/// for the device already chosen is allowed. Device 0 when never called.
void set_device(int ordinal);
/// The device chosen by set_device (0 by default).
int current_device();

/// All library work is queued on one stream (made on first use), so a step can
/// be captured as a CUDA graph. Returned as void* to keep CUDA headers out.
void* stream();
/// `rows` rows of `row_bytes` each, from src (rows src_pitch bytes apart) to dst
/// (rows dst_pitch apart), device to device, queued: concat, select and their
/// backward are such strided copies.
void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t row_bytes, size_t rows);

/// CUDA graphs of the library stream. Between begin_capture() and
/// end_capture() the work queued on the stream is recorded, not run, and the
/// device memory allocated meanwhile belongs to the graph: it is never handed
/// to other work while the graph lives, so every replay finds its buffers
/// (activations, saved tensors, scratch) where the capture put them.
/// False on the emulated backend, which runs work as it is queued.
bool graphs_supported();
void begin_capture();
/// Ends the capture; returns the instantiated graph.
void* end_capture();
/// True between begin_capture() and end_capture().
bool capturing();
/// Queues one run of the graph on the library stream (no wait).
void replay_graph(void* graph);
/// Waits for the stream, frees the graph and returns its memory to the cache.
void destroy_graph(void* graph);

/// GEMMs and the fused attention may use TF32 tensor cores (as
/// torch.backends.cuda.matmul.allow_tf32 and SDPA under it); off, float stays exact float32.
void set_allow_tf32(bool on);
bool allow_tf32();

}  // namespace vit::cuda
