// A CPU stand-in for the part of CUDA that cuda/kernels/*.cuh use, so their
// logic (indexing, reductions, barriers, warp shuffles, online softmax) is
// tested by g++ on machines with no GPU, and so the emulated backend
// (tests/cuda_emu/backend/) runs the launchers of cuda/*.cu unchanged.
// Each block runs as blockDim real threads; __syncthreads and warp shuffles
// are real barriers, so a missing barrier or a lane reading a value never
// written shows up as a wrong answer, not as a lucky pass. Blocks run one
// after another, which is why `static` serves as block-shared memory, and
// launches run one at a time (one stream). The threads are a persistent pool,
// started once and reused by every launch: a launch wakes blockDim workers
// once, and each walks the whole grid, block after block, with a barrier
// between blocks. It checks logic, not speed and not the GPU memory model:
// compute-sanitizer on a real device remains the race check.
// No atomics are offered: kernels keep the project's no-float-atomics rule.
#pragma once

#include <math.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
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

/// CUDA's limits on a launch configuration (any device of compute capability
/// 7.0 or newer); dynamic shared memory beyond 48 KiB needs an opt-in no
/// launcher makes.
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kMaxDynamicSmem = 48 * 1024;

/// Re-poisons the dynamic shared memory between two blocks: it runs once all
/// threads of a block have finished, before any starts the next.
struct NextBlock {
  std::vector<unsigned char>* smem;
  void operator()() noexcept { std::memset(smem->data(), 0xff, smem->size()); }
};

struct BlockState {
  std::unique_ptr<std::barrier<>> block;                  // __syncthreads
  std::unique_ptr<std::barrier<NextBlock>> block_end;     // between two blocks
  std::vector<std::unique_ptr<std::barrier<>>> warps;     // shuffles
  std::vector<uint64_t> lanes[2];  // one 8-byte slot per thread for shuffles, two rounds
  std::vector<unsigned char> smem;
};
inline BlockState& state() {
  static BlockState s;
  return s;
}
/// Which of the two shuffle slot arrays this thread uses next.
inline unsigned& shuffle_round() {
  static thread_local unsigned r = 0;
  return r;
}
inline void* dynamic_smem() { return state().smem.data(); }
inline unsigned flat_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

/// The calling thread's last launch error, as cudaGetLastError reports it
/// (empty: none); a launch with a bad configuration records one and runs
/// nothing, as on a GPU.
inline std::string& last_error() {
  static thread_local std::string e;
  return e;
}

/// Workers that stay alive between launches: run(n, f) calls f(t) on workers
/// 0..n-1 concurrently and returns when all have returned. Never destroyed
/// (workers blocked on their semaphore end with the process), so a launch
/// from a static destructor still finds it.
class ThreadPool {
 public:
  static ThreadPool& get() {
    static ThreadPool* p = new ThreadPool();
    return *p;
  }

  template <class F>
  void run(unsigned n, F& f) {
    while (workers_.size() < n) {
      auto w = std::make_unique<Worker>();
      w->index = static_cast<unsigned>(workers_.size());
      Worker* raw = w.get();
      w->thread = std::thread([this, raw] { loop(*raw); });
      workers_.push_back(std::move(w));
    }
    job_ = &f;
    call_ = [](void* job, unsigned t) { (*static_cast<F*>(job))(t); };
    remaining_.store(n, std::memory_order_relaxed);
    for (unsigned t = 0; t < n; ++t) workers_[t]->go.release();
    // A kernel whose threads do not all reach the same barriers (a
    // __syncthreads or shuffle behind a divergent branch, or after an early
    // return) leaves the others waiting forever: undefined on a GPU, a hang
    // here. Fail with a message instead of hanging the test run.
    if (!done_.try_acquire_for(std::chrono::seconds(timeout_seconds()))) {
      std::fprintf(stderr,
                   "vit_emu: an emulated launch did not finish in %d s (VIT_EMU_TIMEOUT_S): some "
                   "threads of a block wait at a __syncthreads or shuffle that others never "
                   "reach\n",
                   timeout_seconds());
      std::abort();
    }
  }

 private:
  struct Worker {
    std::binary_semaphore go{0};
    unsigned index = 0;
    std::thread thread;
  };

  void loop(Worker& w) {
    for (;;) {
      w.go.acquire();  // index, job_ and call_ are published before the release
      call_(job_, w.index);
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.release();
    }
  }

  static int timeout_seconds() {
    static const int t = [] {
      const char* env = std::getenv("VIT_EMU_TIMEOUT_S");
      const int v = env ? std::atoi(env) : 0;
      return v > 0 ? v : 600;
    }();
    return t;
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  void* job_ = nullptr;
  void (*call_)(void*, unsigned) = nullptr;
  std::atomic<unsigned> remaining_{0};
  std::binary_semaphore done_{0};
};

/// Kernels run so far (launches CUDA would refuse not counted): lets a test
/// see that work really went through the kernels.
inline std::atomic<uint64_t>& launch_count() {
  static std::atomic<uint64_t> n{0};
  return n;
}

/// One launch at a time, as kernels queued on one stream run.
inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

/// Runs kernel(args...) over the grid, blocks in order, each block's threads
/// concurrently; returns when the grid is done. Threads per block must be a
/// multiple of 32 if the kernel shuffles (as on the GPU, where a partial
/// warp's shuffle is undefined). A configuration CUDA would refuse (empty or
/// too large grid or block, too much dynamic shared memory) runs nothing and
/// is recorded in last_error().
template <class Kernel, class... Args>
void launch(dim3 grid, dim3 block, size_t smem_bytes, Kernel&& kernel, Args... args) {
  std::lock_guard<std::mutex> lock(launch_mutex());
  const uint64_t nthreads64 = uint64_t(block.x) * block.y * block.z;
  const char* bad = nullptr;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) bad = "empty grid";
  else if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) bad = "grid too large";
  else if (nthreads64 == 0) bad = "empty block";
  else if (block.x > 1024 || block.y > 1024 || block.z > 64 || nthreads64 > kMaxThreadsPerBlock)
    bad = "more than 1024 threads per block";
  else if (smem_bytes > kMaxDynamicSmem) bad = "more than 48 KiB of dynamic shared memory";
  if (bad) {
    last_error() = std::string("invalid configuration argument (emulated launch: ") + bad + ")";
    return;
  }
  const unsigned nthreads = static_cast<unsigned>(nthreads64);
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  gridDim = grid;
  blockDim = block;
  BlockState& s = state();
  s.block = std::make_unique<std::barrier<>>(nthreads);
  s.warps.clear();
  for (unsigned w = 0; w < (nthreads + 31) / 32; ++w)
    s.warps.push_back(std::make_unique<std::barrier<>>(std::min(32u, nthreads - 32 * w)));
  for (auto& l : s.lanes) l.assign((nthreads + 31) / 32 * 32, 0);
  // Poisoned, as uninitialised shared memory would be on a GPU.
  s.smem.assign(smem_bytes + 16, 0xff);
  s.block_end = std::make_unique<std::barrier<NextBlock>>(nthreads, NextBlock{&s.smem});
  auto body = [&](unsigned t) {
    threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
    shuffle_round() = 0;
    for (uint64_t b = 0; b < nblocks; ++b) {
      blockIdx = dim3(static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                      static_cast<unsigned>(b / (uint64_t(grid.x) * grid.y)));
      kernel(args...);
      s.block_end->arrive_and_wait();
    }
  };
  ThreadPool::get().run(nthreads, body);
  launch_count().fetch_add(1, std::memory_order_relaxed);
}

/// Shuffles alternate between two slot arrays, so one barrier per shuffle
/// suffices: a lane can write this round's array again only two shuffles on,
/// after a barrier every lane reaches only once it has read this round.
template <class V>
V shuffle(V v, unsigned src_lane) {
  static_assert(sizeof(V) <= 8);
  BlockState& s = state();
  const unsigned t = flat_thread(), warp = t / 32;
  std::vector<uint64_t>& lanes = s.lanes[shuffle_round()];
  shuffle_round() ^= 1u;
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(V));
  lanes[t] = bits;
  s.warps[warp]->arrive_and_wait();  // every lane has published
  const uint64_t got = lanes[warp * 32 + (src_lane % 32)];
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
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
/// CUDA's __fmul_rn: the product rounded on its own, never contracted into an
/// FMA (g++ contracts a·b + c by default where the target has FMA, as nvcc does).
inline float __fmul_rn(float a, float b) {
  volatile float p = a * b;
  return p;
}
inline float __expf(float x) { return std::exp(x); }
// expf, logf, erff, tanhf, sqrtf, fmaxf, fminf, fabsf: <math.h>'s global float functions.

// --- Warp-wide all-gather, for the emulated twins of warp matrix instructions
// (cuda/kernels/mma.cuh: mma.sync and ldmatrix, whose operands are spread over
// the 32 lanes by the fragment layouts of the PTX ISA). An addition: nothing
// above uses it. Every lane of the warp must call it (warp-uniform control
// flow, as a full-warp shuffle), with the same W.
namespace vit_emu {

constexpr int kGatherMaxWords = 16;  // 32-bit words a lane may publish per call

/// Which of the two gather slot arrays this thread uses next; reset at the
/// first call of each launch (launch_count is constant during a launch), so
/// the lanes of one warp always agree on it, whatever earlier launches did.
inline unsigned gather_round() {
  static thread_local uint64_t launch_seen = ~uint64_t(0);
  static thread_local unsigned round = 0;
  const uint64_t now = launch_count().load(std::memory_order_relaxed);
  if (now != launch_seen) launch_seen = now, round = 0;
  const unsigned r = round;
  round ^= 1u;
  return r;
}

/// Lane l publishes mine[0..W) and receives all[s·W + w] = word w of lane s,
/// for every lane s of its warp: one warp barrier per call. Double-buffered
/// like shuffle(): a lane writes the same slot array again only two gathers
/// on, after a barrier every lane reaches only once it has read this one.
template <int W>
void warp_all_gather(const uint32_t* mine, uint32_t* all) {
  static_assert(W >= 1 && W <= kGatherMaxWords);
  static uint32_t slots[2][kMaxThreadsPerBlock][kGatherMaxWords];
  BlockState& s = state();
  const unsigned t = flat_thread(), warp = t / 32;
  uint32_t (*lanes)[kGatherMaxWords] = slots[gather_round()];
  for (int w = 0; w < W; ++w) lanes[t][w] = mine[w];
  s.warps[warp]->arrive_and_wait();  // every lane has published
  for (unsigned l = 0; l < 32; ++l)
    for (int w = 0; w < W; ++w) all[l * W + w] = lanes[warp * 32 + l][w];
}

}  // namespace vit_emu
