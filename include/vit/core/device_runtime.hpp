// The one interface through which a device backend plugs into core: device
// discovery, memory, copies, fills, the gradient add autograd needs, and the
// order work runs in. core declares it and depends on nothing above it; a
// backend defines it: vit::cuda in cuda/runtime.cu, the CPU-emulated backend
// of the tests in tests/cuda_emu/backend/. Linking a backend defines
// VIT_WITH_CUDA=1; without one, core never calls these, and a CUDA tensor is
// a clear error (Storage), never a link error or a silent CPU fallback.
// Declarations only: no CUDA header, so user code compiles with any C++ compiler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "vit/core/bf16.hpp"

#ifndef VIT_WITH_CUDA
#define VIT_WITH_CUDA 0
#endif

namespace vit::cuda {

/// Number of usable CUDA devices; 0 when there is no device or no driver.
int device_count();
/// True when device_count() > 0.
inline bool available() { return device_count() > 0; }
/// "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)", or why there is none.
std::string device_description();

/// Device memory from the backend's caching allocator: freed blocks are kept
/// by size and reused, so a steady-state training step allocates nothing. Out
/// of memory throws vit::Error naming the size asked for and what is in use.
void* allocate(size_t bytes);
/// Returns a block; work already queued that uses it still runs first.
void deallocate(void* p, size_t bytes);

/// Page-locked ("pinned") host memory, which the device copies to and from
/// directly: the staging buffers of communication that must pass through the
/// host (MPI on GPU tensors). Not cached: callers keep and reuse what they get.
void* allocate_pinned(size_t bytes);
void deallocate_pinned(void* p, size_t bytes);

/// Host -> device, queued: `src` may be reused as soon as this returns.
void copy_to_device(void* dst, const void* src, size_t bytes);
/// Device -> host; waits for the work queued before it.
void copy_to_host(void* dst, const void* src, size_t bytes);
/// Device -> device, queued.
void copy_on_device(void* dst, const void* src, size_t bytes);
/// `words` consecutive 4-byte words at dst set to `pattern`, queued (a float
/// fill passes the float's bits; all-zero is a memset).
void fill32(void* dst, uint32_t pattern, size_t words);
/// out = a + b over n floats (out may alias a or b), queued: the gradient sum
/// of autograd, which lives below the op layer.
void add(const float* a, const float* b, float* out, int64_t n);
/// The same over bf16 (each sum computed in float, rounded once): bf16 gradients.
void add(const bf16* a, const bf16* b, bf16* out, int64_t n);
/// Waits for all queued work and throws on any asynchronous error.
void synchronize();

}  // namespace vit::cuda
