// bf16 on the CPU: bf16 storage, float32 math. An op's raw CPU function for
// T = bf16 converts its inputs to float, runs the float loops (the same code,
// so both dtypes share one definition of the op) and rounds the outputs back
// once (round to nearest even, NaN kept, denormals kept: bit for bit
// vit::bf16(float)). Row-wise and elementwise ops do this a block of rows at a
// time in thread-local scratch (for_row_blocks), so bf16 data crosses memory
// once, in bf16; the whole-buffer widen/narrow remain for small operands.
// Scratch only grows and tensors come from the CPU caching allocator, so a
// steady-state step allocates nothing. The conversions use AVX-512 or AVX2
// where the build targets them.
#pragma once

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <vector>

#include "vit/core/bf16.hpp"
#include "vit/core/tensor.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vit::ops::detail {

#if defined(__AVX512F__)
// (The maskz forms: the plain ones trip g++ 12's -Wmaybe-uninitialized on
// their _mm512_undefined_epi32 pass-through.)
inline __m512 widen_16(const bf16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, raw), 16));
}
// vit::bf16's rounding on 16 lanes: (u + 0x7fff + lsb) >> 16, NaN -> quiet NaN.
inline __m256i narrow_16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i hi = _mm512_maskz_srli_epi32(0xffff, u, 16);
  const __m512i rounded = _mm512_maskz_srli_epi32(
      0xffff, _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                               _mm512_set1_epi32(0x7f800000));
  const __m512i bits = _mm512_mask_or_epi32(rounded, nan, hi, _mm512_set1_epi32(0x40));
  return _mm512_maskz_cvtepi32_epi16(0xffff, bits);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// Rows of any length, 16 lanes at a time, for the one-pass bf16 kernels
// (GELU, LayerNorm, attention_bf16's softmax).
#define VIT_HAVE_BF16_LANES_16 1
inline __mmask16 first_lanes(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

/// f(i, mask) for i = 0, 16, ... < n; the mask covers the valid lanes of each vector.
template <class F>
inline void for_vectors16(int64_t n, F&& f) {
  for (int64_t i = 0; i < n; i += 16) f(i, n - i >= 16 ? __mmask16(0xffff) : first_lanes(n - i));
}
/// The masked lanes of p as float, 0 elsewhere (nothing is read there).
inline __m512 widen_16_masked(const bf16* p, __mmask16 m) {
  const __m256i raw = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, raw), 16));
}
/// The masked lanes of x rounded into p (vit::bf16's rounding); nothing written elsewhere.
inline void narrow_16_masked(__m512 x, bf16* p, __mmask16 m) { _mm256_mask_storeu_epi16(p, m, narrow_16(x)); }

// The maskz forms again: g++ 12 warns on the plain extract's undefined pass-through.
inline __m256 low_half(__m512 v) { return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 0)); }
inline __m256 high_half(__m512 v) { return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 1)); }
inline float hsum_16(__m512 v) {
  __m256 h = _mm256_add_ps(low_half(v), high_half(v));
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}
inline float hmax_16(__m512 v) {
  __m256 h = _mm256_max_ps(low_half(v), high_half(v));
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)));
}
#else
#define VIT_HAVE_BF16_LANES_16 0
#endif

#if defined(__AVX2__)
inline __m256 widen_8(const bf16* p) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
inline __m128i narrow_8(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i hi = _mm256_srli_epi32(u, 16);
  const __m256i rounded = _mm256_srli_epi32(
      _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1)))), 16);
  // NaN: |u| > 0x7f800000 as signed ints (both sides are non-negative).
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i bits = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
  // 8 values < 2^16 in 32-bit lanes -> 8 uint16: pack within lanes, then gather the halves.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(bits, bits), 0x08);
  return _mm256_castsi256_si128(packed);
}
#endif

/// dst[i] = float(src[i]) for n values, on the calling thread.
inline void widen_n(const bf16* src, float* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, widen_16(src + i));
#elif defined(__AVX2__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, widen_8(src + i));
#endif
  for (; i < n; ++i) dst[i] = float(src[i]);
}

/// dst[i] = bf16(src[i]) for n values (round to nearest even), on the calling thread.
inline void narrow_n(const float* src, bf16* dst, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), narrow_16(_mm512_loadu_ps(src + i)));
#elif defined(__AVX2__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), narrow_8(_mm256_loadu_ps(src + i)));
#endif
  for (; i < n; ++i) dst[i] = bf16(src[i]);
}

/// A float copy of n bf16 values (exact: every bf16 is a float). Null in, empty out.
inline TensorF widen(const bf16* p, int64_t n) {
  TensorF f = TensorF::empty({n});
  float* d = f.data();
  if (p == nullptr) return f;
  constexpr int64_t chunk = 16384;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
  for (int64_t s = 0; s < n; s += chunk) widen_n(p + s, d + s, std::min(chunk, n - s));
  return f;
}

/// dst[i] = bf16(src[i]), rounded to nearest even.
inline void narrow(const float* src, bf16* dst, int64_t n) {
  constexpr int64_t chunk = 16384;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
  for (int64_t s = 0; s < n; s += chunk) narrow_n(src + s, dst + s, std::min(chunk, n - s));
}

/// Float pointer of a widened buffer, or null for an absent (null) input.
inline const float* ptr_or_null(const TensorF& t, const void* original) {
  return original ? t.data() : nullptr;
}

/// Float scratch of the calling thread, `slot` of a few, that only grows.
inline float* row_scratch(int slot, int64_t n) {
  thread_local std::vector<float> buffers[4];
  std::vector<float>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
  return b.data();
}

/// Rows per block for rows of C values: about 16K floats (64 KiB), so a
/// block's float copies stay in L2 between conversion and use.
inline int64_t row_block(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)); }

/// f(r0, rows, thread) for consecutive blocks of row_block(C) rows covering
/// [0, R), in parallel when there is enough work (static schedule: a block's
/// thread depends on R, C and the thread count only). thread: the caller's
/// index in the team (0 when serial), for per-thread partial sums.
template <class F>
void for_row_blocks(int64_t R, int64_t C, int threads, F&& f) {
  const int64_t rb = row_block(C);
  const int64_t blocks = (R + rb - 1) / rb;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    const int64_t r0 = blk * rb;
    f(r0, std::min(rb, R - r0), t);
  }
}

/// The thread count for_row_blocks should use for R x C values: the team
/// outside a parallel region when the op is big enough, else 1.
inline int row_block_threads(int64_t R, int64_t C) {
#ifdef _OPENMP
  if (R * C > 32768 && !omp_in_parallel()) return omp_get_max_threads();
#endif
  (void)R, (void)C;
  return 1;
}

}  // namespace vit::ops::detail
