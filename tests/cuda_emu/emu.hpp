// A CPU stand-in for the part of CUDA that cuda/kernels/*.cuh use, so their
// logic (indexing, reductions, barriers, warp shuffles, online softmax) is
// tested by g++ on machines with no GPU. Each block runs as blockDim real
// threads; __syncthreads and warp shuffles are real barriers, so a missing
// barrier or a lane reading a value never written shows up as a wrong answer,
// not as a lucky pass. Blocks run one after another, which is why `static`
// serves as block-shared memory. It checks logic, not speed and not the GPU
// memory model: compute-sanitizer on a real device remains the race check.
#pragma once

#include <barrier>
#include <cmath>
#include <math.h>
#include <memory>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

#define VIT_KERNEL inline
#define VIT_DEVICE inline
#define __shared__ static
#define __restrict__
#define VIT_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(::vit_emu::dynamic_smem())

namespace vit_emu {

struct BlockState {
  std::barrier<>* block = nullptr;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<uint64_t> lanes;  // one 8-byte slot per thread for shuffles
  std::vector<unsigned char> smem;
};
inline BlockState& state() {
  static BlockState s;
  return s;
}
inline void* dynamic_smem() { return state().smem.data(); }
inline unsigned flat_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

/// Runs kernel(args...) over the grid, blocks in order, each block's threads
/// concurrently. Threads per block must be a multiple of 32 if the kernel
/// shuffles (as on the GPU, where a partial warp's shuffle is undefined).
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, size_t smem_bytes, Kernel&& kernel, Args... args) {
  const unsigned nthreads = block.x * block.y * block.z;
  gridDim = grid;
  blockDim = block;
  BlockState& s = state();
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bar(nthreads);
        s.block = &bar;
        s.warps.clear();
        for (unsigned w = 0; w < (nthreads + 31) / 32; ++w)
          s.warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, nthreads - 32 * w)));
        s.lanes.assign(nthreads, 0);
        // Poisoned, as uninitialised shared memory would be on a GPU.
        s.smem.assign(smem_bytes + 16, 0xff);
        std::vector<std::thread> threads;
        threads.reserve(nthreads);
        for (unsigned t = 0; t < nthreads; ++t)
          threads.emplace_back([&, t] {
            threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            blockIdx = dim3(bx, by, bz);
            kernel(args...);
          });
        for (auto& th : threads) th.join();
      }
}

inline std::mutex& atomic_mutex() {
  static std::mutex m;
  return m;
}

template <class V>
V shuffle(V v, unsigned src_lane) {
  static_assert(sizeof(V) <= 8);
  BlockState& s = state();
  const unsigned t = flat_thread(), warp = t / 32, lane = t % 32;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(V));
  s.lanes[t] = bits;
  s.warps[warp]->arrive_and_wait();  // every lane has published
  const uint64_t got = s.lanes[warp * 32 + (src_lane % 32)];
  s.warps[warp]->arrive_and_wait();  // every lane has read before anyone republishes
  (void)lane;
  V r;
  std::memcpy(&r, &got, sizeof(V));
  return r;
}

}  // namespace vit_emu

inline void __syncthreads() { vit_emu::state().block->arrive_and_wait(); }
template <class V>
V __shfl_xor_sync(unsigned, V v, int mask) {
  return vit_emu::shuffle(v, (vit_emu::flat_thread() % 32) ^ static_cast<unsigned>(mask));
}
template <class V>
V __shfl_sync(unsigned, V v, int src_lane) {
  return vit_emu::shuffle(v, static_cast<unsigned>(src_lane));
}
inline float atomicAdd(float* p, float v) {
  std::lock_guard<std::mutex> lock(vit_emu::atomic_mutex());
  const float old = *p;
  *p = old + v;
  return old;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
// expf, logf, erff, tanhf, sqrtf, fmaxf, fminf, fabsf: <math.h>'s global float functions.
