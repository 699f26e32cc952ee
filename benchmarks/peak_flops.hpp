// Ceilings measured on the machine the benchmarks run on, so every GFLOP/s and
// GB/s figure can be read as a fraction of what this CPU actually sustains
// (not a datasheet number that assumes a clock we may not get on a shared VM).
//
//   measure_peak_gflops(t): FP32 FMA throughput on t OpenMP threads. Each thread
//     runs kAccumulators independent 8-wide FMA chains (AVX2 _mm256_fmadd_ps);
//     ten chains cover Zen 3's 4-cycle FMA latency on its 2 FMA pipes. An empty
//     asm statement per iteration pins the accumulators in ymm registers, so the
//     compiler can neither fold the loop nor spill. Best of 3 timed runs.
//     Without AVX2+FMA at compile time: the same loop on scalars, a lower bound.
//   measure_copy_gbs(t): large-buffer copy bandwidth (memcpy of 2×128 MiB split
//     across t threads), counted STREAM-style as bytes read + bytes written.
//     Best of 5. This is the DRAM ceiling; kernels whose working set fits in
//     L2/L3 can exceed it.
//
// Deliberately avoids any library (no BLAS, no hwloc): a benchmark ceiling must
// not depend on the code it judges.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace vit_bench {

inline double wall_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// How measure_peak_gflops measures, for the benchmark's header line.
inline std::string peak_method() {
#if defined(__AVX2__) && defined(__FMA__)
  return "AVX2 _mm256_fmadd_ps, 10 independent accumulators per thread, best of 3";
#else
  return "scalar a*b+c, 10 independent accumulators per thread (no AVX2+FMA in this build: "
         "a lower bound of the vector peak), best of 3";
#endif
}

namespace detail {

inline constexpr int kAccumulators = 10;

// Runs `iters` iterations of kAccumulators FMA chains on the calling thread;
// returns a value derived from every accumulator so none is dead code.
inline float fma_chains(int64_t iters, float seed) {
#if defined(__AVX2__) && defined(__FMA__)
  // acc = acc·m + c converges to c/(1−m) ≈ 1: no overflow, no denormals.
  const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  __m256 a0 = _mm256_set1_ps(seed + 0.0f), a1 = _mm256_set1_ps(seed + 0.1f);
  __m256 a2 = _mm256_set1_ps(seed + 0.2f), a3 = _mm256_set1_ps(seed + 0.3f);
  __m256 a4 = _mm256_set1_ps(seed + 0.4f), a5 = _mm256_set1_ps(seed + 0.5f);
  __m256 a6 = _mm256_set1_ps(seed + 0.6f), a7 = _mm256_set1_ps(seed + 0.7f);
  __m256 a8 = _mm256_set1_ps(seed + 0.8f), a9 = _mm256_set1_ps(seed + 0.9f);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = _mm256_fmadd_ps(a0, m, c);
    a1 = _mm256_fmadd_ps(a1, m, c);
    a2 = _mm256_fmadd_ps(a2, m, c);
    a3 = _mm256_fmadd_ps(a3, m, c);
    a4 = _mm256_fmadd_ps(a4, m, c);
    a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c);
    a7 = _mm256_fmadd_ps(a7, m, c);
    a8 = _mm256_fmadd_ps(a8, m, c);
    a9 = _mm256_fmadd_ps(a9, m, c);
    asm volatile(""
                 : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7),
                   "+x"(a8), "+x"(a9));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(a8, a9));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float r = 0;
  for (float v : lanes) r += v;
  return r;
#else
  // Named scalars, not an array: an array would live in memory and time the stores.
  const float m = 0.999f, c = 0.001f;
  float a0 = seed + 0.0f, a1 = seed + 0.1f, a2 = seed + 0.2f, a3 = seed + 0.3f, a4 = seed + 0.4f;
  float a5 = seed + 0.5f, a6 = seed + 0.6f, a7 = seed + 0.7f, a8 = seed + 0.8f, a9 = seed + 0.9f;
  for (int64_t i = 0; i < iters; ++i) {
    a0 = a0 * m + c, a1 = a1 * m + c, a2 = a2 * m + c, a3 = a3 * m + c, a4 = a4 * m + c;
    a5 = a5 * m + c, a6 = a6 * m + c, a7 = a7 * m + c, a8 = a8 * m + c, a9 = a9 * m + c;
#if defined(__x86_64__) || defined(__i386__)
    asm volatile(""
                 : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7),
                   "+x"(a8), "+x"(a9));
#elif defined(__aarch64__)
    asm volatile(""
                 : "+w"(a0), "+w"(a1), "+w"(a2), "+w"(a3), "+w"(a4), "+w"(a5), "+w"(a6), "+w"(a7),
                   "+w"(a8), "+w"(a9));
#endif
  }
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9;
#endif
}

inline constexpr double kFlopsPerIteration =
#if defined(__AVX2__) && defined(__FMA__)
    kAccumulators * 8 * 2.0;  // 10 FMAs × 8 lanes × (mul + add)
#else
    kAccumulators * 2.0;
#endif

inline volatile float g_sink = 0;  // keeps results observable

}  // namespace detail

/// Measured FP32 peak in GFLOP/s of `threads` OpenMP threads running together.
inline double measure_peak_gflops(int threads) {
  threads = std::max(1, threads);
  // ~2e8 FMA instructions per thread on AVX2: ~30-60 ms at 3-4 GHz, long
  // enough to amortise the fork and to let the clock settle.
#if defined(__AVX2__) && defined(__FMA__)
  const int64_t iters = 20'000'000;
#else
  const int64_t iters = 10'000'000;
#endif
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {  // rep 0 warms threads and clocks, untimed
    float sink = 0;
    const double t0 = wall_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
#ifdef _OPENMP
      const float seed = static_cast<float>(omp_get_thread_num()) * 1e-3f;
#else
      const float seed = 0.0f;
#endif
      sink += detail::fma_chains(iters, seed);
    }
    const double dt = wall_seconds() - t0;
    detail::g_sink = detail::g_sink + sink;
    if (rep == 0) continue;
    best = std::max(best,
                    detail::kFlopsPerIteration * static_cast<double>(iters) * threads / dt * 1e-9);
  }
  return best;
}

namespace detail {
#if defined(__AVX512BF16__)
// kAccumulators chains of vdpbf16ps (16 lanes × 2 products, added into float32):
// the bf16 GEMM kernel's instruction. acc += m·m with m = 2^-20 stays finite.
inline float bf16_dot_chains(int64_t iters, float seed) {
  const __m512bh m = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x35803580));  // bf16 2^-20, twice
  // Named accumulators, not an array: an array is stored back every iteration.
  __m512 a0 = _mm512_set1_ps(seed + 0.0f), a1 = _mm512_set1_ps(seed + 0.1f);
  __m512 a2 = _mm512_set1_ps(seed + 0.2f), a3 = _mm512_set1_ps(seed + 0.3f);
  __m512 a4 = _mm512_set1_ps(seed + 0.4f), a5 = _mm512_set1_ps(seed + 0.5f);
  __m512 a6 = _mm512_set1_ps(seed + 0.6f), a7 = _mm512_set1_ps(seed + 0.7f);
  __m512 a8 = _mm512_set1_ps(seed + 0.8f), a9 = _mm512_set1_ps(seed + 0.9f);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = _mm512_dpbf16_ps(a0, m, m);
    a1 = _mm512_dpbf16_ps(a1, m, m);
    a2 = _mm512_dpbf16_ps(a2, m, m);
    a3 = _mm512_dpbf16_ps(a3, m, m);
    a4 = _mm512_dpbf16_ps(a4, m, m);
    a5 = _mm512_dpbf16_ps(a5, m, m);
    a6 = _mm512_dpbf16_ps(a6, m, m);
    a7 = _mm512_dpbf16_ps(a7, m, m);
    a8 = _mm512_dpbf16_ps(a8, m, m);
    a9 = _mm512_dpbf16_ps(a9, m, m);
    asm volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7),
                      "+v"(a8), "+v"(a9));
  }
  const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                 _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)),
                                               _mm512_add_ps(a8, a9)));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float r = 0;
  for (float v : lanes) r += v;
  return r;
}
#endif
}  // namespace detail

/// Measured bf16 dot-product peak in GFLOP/s (vdpbf16ps: 64 FLOP each) of
/// `threads` threads, the ceiling of the bf16 GEMM; 0 where the build has no
/// AVX512-BF16.
inline double measure_peak_bf16_gflops(int threads) {
#if defined(__AVX512BF16__)
  threads = std::max(1, threads);
  const int64_t iters = 10'000'000;
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {  // rep 0 warms threads and clocks, untimed
    float sink = 0;
    const double t0 = wall_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    { sink += detail::bf16_dot_chains(iters, 0.5f); }
    const double dt = wall_seconds() - t0;
    detail::g_sink = detail::g_sink + sink;
    if (rep > 0) best = std::max(best, detail::kAccumulators * 64.0 * static_cast<double>(iters) * threads / dt * 1e-9);
  }
  return best;
#else
  (void)threads;
  return 0;
#endif
}

/// Measured copy bandwidth in GB/s (1e9 bytes/s, read + written) on `threads` threads.
inline double measure_copy_gbs(int threads, size_t bytes = size_t(128) << 20) {
  threads = std::max(1, threads);
  bytes = (bytes + 4095) / 4096 * 4096;
  auto* src = static_cast<char*>(std::aligned_alloc(4096, bytes));
  auto* dst = static_cast<char*>(std::aligned_alloc(4096, bytes));
  if (!src || !dst) {
    std::free(src);
    std::free(dst);
    return 0;
  }
  // First touch from the same threads and split that copy later, so pages are
  // faulted in (and on NUMA placed) before timing.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < static_cast<int64_t>(bytes); i += 4096) {
    std::memset(src + i, static_cast<int>(i >> 12), 4096);
    std::memset(dst + i, 0, 4096);
  }
  double best = 0;
  for (int rep = 0; rep < 6; ++rep) {  // rep 0 untimed
    const double t0 = wall_seconds();
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
      const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
#else
      const int64_t t = 0, n = 1;
#endif
      const int64_t pages = static_cast<int64_t>(bytes / 4096);
      const int64_t p0 = pages * t / n, p1 = pages * (t + 1) / n;
      std::memcpy(dst + p0 * 4096, src + p0 * 4096, static_cast<size_t>(p1 - p0) * 4096);
    }
    const double dt = wall_seconds() - t0;
    if (rep > 0) best = std::max(best, 2.0 * static_cast<double>(bytes) / dt * 1e-9);
  }
  detail::g_sink = detail::g_sink + static_cast<float>(dst[bytes / 2]);
  std::free(src);
  std::free(dst);
  return best;
}

}  // namespace vit_bench
