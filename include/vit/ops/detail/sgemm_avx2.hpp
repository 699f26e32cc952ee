// sgemm_avx2: the AVX2+FMA micro-kernel of the packed GEMM (packed_gemm.hpp),
// single precision:
//
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C [+ bias(N) on every row]
//   [and a_sums(M) += op(A)·1]
//
// A 6x16 FMA micro-kernel sweeps a packed A block with one B micro-panel
// (KC x 16 floats) resident in L1. 6x16 uses 12 ymm accumulators + 2 B
// vectors + 1 broadcast (15 of 16 ymm): enough independent FMA chains to cover
// Zen 3's 4-cycle FMA latency on its 2 FMA pipes. Where the build targets
// AVX-512, gemm.hpp takes the wider kernels of gemm_avx512.hpp instead; this
// one serves AVX2-only hosts (and attention's small products, through
// transpose_8x8).
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#define VIT_HAVE_SGEMM_AVX2 1

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "vit/ops/detail/packed_gemm.hpp"

namespace vit::ops::detail {

namespace sgemm_avx2_impl {

using operands = packed_gemm::operands<float>;
using aligned_buffer = packed_gemm::aligned_buffer<float>;

inline constexpr int64_t mr = 6;
inline constexpr int64_t nr = 16;
// Zen 3 per core: 32 KiB L1d, 512 KiB L2. KC x NR of B (24 KiB at KC = 384)
// stays in L1d next to the A stream; MC x KC of A (216 KiB) in L2 next to C
// lines and the B panels passing through. KC = 384 rather than BLIS's 256
// measured 5-10% faster on the ViT shapes (fewer passes over C), neutral on
// 2048^3.
inline constexpr int64_t mc_max = 144;
inline constexpr int64_t kc_max = 384;
// Up to this K, one slice even though the B micro-panel (<= 48 KiB) then
// streams from L2 (~14 B/cycle, under half of L2 bandwidth): a second pass
// over C costs more. Measured on 2 threads, K = 576: 157 vs 146 GFLOP/s,
// K = 768: 157 vs 143.
inline constexpr int64_t kc_single_max = 768;
// KC x NC packed B (at most 12 MiB, 6 MiB past kc_single_max) fits in the
// shared 32 MiB L3.
inline constexpr int64_t nc_max = 4080;
// Below this many multiply-adds the plain loop wins. It is tiny because the
// plain loop is one latency-bound FMA chain per element: the packed path is
// already faster at 4x4x4 and ~30x faster at 32x32x32 (measured).
inline constexpr int64_t small_work = 64;
// Below this an OpenMP fork/join (a few microseconds) outweighs the split.
inline constexpr int64_t thread_work = 512 * 1024;

inline void transpose_8x8(__m256& r0, __m256& r1, __m256& r2, __m256& r3, __m256& r4, __m256& r5,
                          __m256& r6, __m256& r7) {
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1);
  const __m256 t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3);
  const __m256 t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5);
  const __m256 t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7);
  const __m256 t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
  r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
  r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
  r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
  r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
  r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
  r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
  r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Packs op(A)[i0:i0+mc, p0:p0+kc] as MR-row micro-panels, k-major inside a
// panel (dst[k*MR + r]); short panels are zero-padded so the kernel never
// branches. Writes up to 8 floats past the last panel (caller pads).
inline void pack_a(const operands& op, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  const int64_t lda = op.lda;
  for (int64_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
    const int64_t rows = std::min(mr, mc - ir);
    const int64_t i = i0 + ir;
    if (op.trans_a) {
      // Stored K x M: each k already holds the panel's rows contiguously.
      const float* src = op.a + p0 * lda + i;
      if (rows == mr) {
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + k * lda;
          _mm_storeu_ps(dst + k * mr, _mm_loadu_ps(s));
          _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + k * mr + 4),
                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + 4)));
        }
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t r = 0; r < mr; ++r) dst[k * mr + r] = r < rows ? src[k * lda + r] : 0.0f;
      }
    } else {
      const float* src = op.a + i * lda + p0;
      if (rows == mr) {
        int64_t k = 0;
        // 8x8 transpose with two zero rows; each 8-wide store spills 2 junk
        // floats into the next k (or next panel), which later stores overwrite.
        for (; k + 8 <= kc; k += 8) {
          __m256 r0 = _mm256_loadu_ps(src + 0 * lda + k);
          __m256 r1 = _mm256_loadu_ps(src + 1 * lda + k);
          __m256 r2 = _mm256_loadu_ps(src + 2 * lda + k);
          __m256 r3 = _mm256_loadu_ps(src + 3 * lda + k);
          __m256 r4 = _mm256_loadu_ps(src + 4 * lda + k);
          __m256 r5 = _mm256_loadu_ps(src + 5 * lda + k);
          __m256 r6 = _mm256_setzero_ps();
          __m256 r7 = _mm256_setzero_ps();
          transpose_8x8(r0, r1, r2, r3, r4, r5, r6, r7);
          float* d = dst + k * mr;
          _mm256_storeu_ps(d + 0 * mr, r0);
          _mm256_storeu_ps(d + 1 * mr, r1);
          _mm256_storeu_ps(d + 2 * mr, r2);
          _mm256_storeu_ps(d + 3 * mr, r3);
          _mm256_storeu_ps(d + 4 * mr, r4);
          _mm256_storeu_ps(d + 5 * mr, r5);
          _mm256_storeu_ps(d + 6 * mr, r6);
          _mm256_storeu_ps(d + 7 * mr, r7);
        }
        for (; k < kc; ++k)
          for (int64_t r = 0; r < mr; ++r) dst[k * mr + r] = src[r * lda + k];
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t r = 0; r < mr; ++r) dst[k * mr + r] = r < rows ? src[r * lda + k] : 0.0f;
      }
    }
  }
}

// Packs op(B)[p0:p0+kc, j0:j0+nc] as NR-column micro-panels, k-major inside a
// panel (dst[k*NR + c], 64-byte aligned rows); short panels are zero-padded.
inline void pack_b(const operands& op, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  const int64_t ldb = op.ldb;
  for (int64_t jr = 0; jr < nc; jr += nr, dst += nr * kc) {
    const int64_t cols = std::min(nr, nc - jr);
    const int64_t j = j0 + jr;
    if (!op.trans_b) {
      const float* src = op.b + p0 * ldb + j;
      if (cols == nr) {
        for (int64_t k = 0; k < kc; ++k) {
          _mm256_store_ps(dst + k * nr, _mm256_loadu_ps(src + k * ldb));
          _mm256_store_ps(dst + k * nr + 8, _mm256_loadu_ps(src + k * ldb + 8));
        }
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t c = 0; c < nr; ++c) dst[k * nr + c] = c < cols ? src[k * ldb + c] : 0.0f;
      }
    } else {
      // Stored N x K: transpose 8x8 blocks so the k-major panel is written
      // with aligned full-vector stores.
      const float* src = op.b + j * ldb + p0;
      if (cols == nr) {
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
          for (int64_t half = 0; half < nr; half += 8) {
            const float* s = src + half * ldb + k;
            __m256 r0 = _mm256_loadu_ps(s + 0 * ldb);
            __m256 r1 = _mm256_loadu_ps(s + 1 * ldb);
            __m256 r2 = _mm256_loadu_ps(s + 2 * ldb);
            __m256 r3 = _mm256_loadu_ps(s + 3 * ldb);
            __m256 r4 = _mm256_loadu_ps(s + 4 * ldb);
            __m256 r5 = _mm256_loadu_ps(s + 5 * ldb);
            __m256 r6 = _mm256_loadu_ps(s + 6 * ldb);
            __m256 r7 = _mm256_loadu_ps(s + 7 * ldb);
            transpose_8x8(r0, r1, r2, r3, r4, r5, r6, r7);
            float* d = dst + k * nr + half;
            _mm256_store_ps(d + 0 * nr, r0);
            _mm256_store_ps(d + 1 * nr, r1);
            _mm256_store_ps(d + 2 * nr, r2);
            _mm256_store_ps(d + 3 * nr, r3);
            _mm256_store_ps(d + 4 * nr, r4);
            _mm256_store_ps(d + 5 * nr, r5);
            _mm256_store_ps(d + 6 * nr, r6);
            _mm256_store_ps(d + 7 * nr, r7);
          }
        }
        for (; k < kc; ++k)
          for (int64_t c = 0; c < nr; ++c) dst[k * nr + c] = src[c * ldb + k];
      } else {
        for (int64_t k = 0; k < kc; ++k)
          for (int64_t c = 0; c < nr; ++c) dst[k * nr + c] = c < cols ? src[c * ldb + k] : 0.0f;
      }
    }
  }
}

// packed_gemm::update_scalar's C-update on 8 lanes (full and edge tiles must
// round identically).
inline __m256 update_vec(__m256 acc, const float* c, __m256 alpha, __m256 beta, bool first,
                         bool read_c, bool has_bias, __m256 bias) {
  if (!read_c) return has_bias ? _mm256_fmadd_ps(acc, alpha, bias) : _mm256_mul_ps(acc, alpha);
  const __m256 old = _mm256_loadu_ps(c);
  __m256 addend = first ? _mm256_mul_ps(beta, old) : old;
  if (has_bias) addend = _mm256_add_ps(addend, bias);
  return _mm256_fmadd_ps(acc, alpha, addend);
}

// 6x16 micro-kernel: kc rank-1 updates of 12 ymm accumulators from packed
// panels. With to_c it applies the C-update in place; otherwise it dumps raw
// sums (MR x NR, row stride NR) for the edge path to merge. c_next is the tile
// the caller will update next: fetching it now, with write intent, lets its
// cache misses overlap this tile's FMAs. bias: the tile's NR columns of the
// bias, or null (always null past the first K slice).
template <bool to_c>
inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b,
                         float* c, int64_t ldc, const float* c_next, float alpha, float beta,
                         bool first, const float* bias) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  if (c_next != nullptr) {
    for (int64_t r = 0; r < mr; ++r) {
      __builtin_prefetch(c_next + r * ldc, 1, 3);
      __builtin_prefetch(c_next + r * ldc + nr - 1, 1, 3);
    }
  }

#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += mr;
    b += nr;
  }

  if constexpr (to_c) {
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256 vb = _mm256_set1_ps(beta);
    const bool read_c = !(first && beta == 0.0f);
    const bool has_bias = bias != nullptr;
    const __m256 bias_lo = has_bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 bias_hi = has_bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    auto store_row = [&](float* row, __m256 lo, __m256 hi) {
      _mm256_storeu_ps(row, update_vec(lo, row, va, vb, first, read_c, has_bias, bias_lo));
      _mm256_storeu_ps(row + 8, update_vec(hi, row + 8, va, vb, first, read_c, has_bias, bias_hi));
    };
    store_row(c + 0 * ldc, c00, c01);
    store_row(c + 1 * ldc, c10, c11);
    store_row(c + 2 * ldc, c20, c21);
    store_row(c + 3 * ldc, c30, c31);
    store_row(c + 4 * ldc, c40, c41);
    store_row(c + 5 * ldc, c50, c51);
  } else {
    (void)ldc;
    (void)alpha;
    (void)beta;
    (void)first;
    (void)bias;
    _mm256_store_ps(c + 0 * nr, c00);
    _mm256_store_ps(c + 0 * nr + 8, c01);
    _mm256_store_ps(c + 1 * nr, c10);
    _mm256_store_ps(c + 1 * nr + 8, c11);
    _mm256_store_ps(c + 2 * nr, c20);
    _mm256_store_ps(c + 2 * nr + 8, c21);
    _mm256_store_ps(c + 3 * nr, c30);
    _mm256_store_ps(c + 3 * nr + 8, c31);
    _mm256_store_ps(c + 4 * nr, c40);
    _mm256_store_ps(c + 4 * nr + 8, c41);
    _mm256_store_ps(c + 5 * nr, c50);
    _mm256_store_ps(c + 5 * nr + 8, c51);
  }
}

// sums[r] += sum_k of rows r < mc of the packed A block (kc deep). Per row the
// order is fixed (4 strided partials over k, combined in lane order, then the
// k % 4 tail), and a row's K slices are added in slice order, so the result
// does not depend on blocking or threads.
inline void add_packed_row_sums(const float* a_pack, int64_t mc, int64_t kc, float* sums) {
  const int64_t k4 = kc / 4 * 4;
  for (int64_t ir = 0; ir < mc; ir += mr, a_pack += mr * kc) {
    // 4 k of a panel are 24 floats: 3 vectors whose lane j of vector v is row (8v + j) % 6.
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps();
    for (int64_t k = 0; k < k4; k += 4) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a_pack + k * mr));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a_pack + k * mr + 8));
      s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a_pack + k * mr + 16));
    }
    alignas(32) float lanes[24];
    _mm256_store_ps(lanes, s0);
    _mm256_store_ps(lanes + 8, s1);
    _mm256_store_ps(lanes + 16, s2);
    const int64_t rows = std::min(mr, mc - ir);
    for (int64_t r = 0; r < rows; ++r) {
      float t = lanes[r] + lanes[r + 6];
      t += lanes[r + 12];
      t += lanes[r + 18];
      for (int64_t k = k4; k < kc; ++k) t += a_pack[k * mr + r];
      sums[ir + r] += t;
    }
  }
}

// The kernel as packed_gemm's driver takes it.
struct kernel {
  using in_t = float;
  using word_t = float;
  static constexpr int64_t mr = sgemm_avx2_impl::mr, nr = sgemm_avx2_impl::nr, k_per_word = 1;
  static constexpr int64_t mc_max = sgemm_avx2_impl::mc_max, kc_max = sgemm_avx2_impl::kc_max,
                           kc_single_max = sgemm_avx2_impl::kc_single_max,
                           nc_max = sgemm_avx2_impl::nc_max, small_work = sgemm_avx2_impl::small_work,
                           thread_work = sgemm_avx2_impl::thread_work;
  static constexpr int64_t pack_slack = 8;  // pack_a writes up to 8 floats past its last panel

  static void pack_a(const operands& op, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
    sgemm_avx2_impl::pack_a(op, i0, mc, p0, kc, dst);
  }
  static void pack_b(const operands& op, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    sgemm_avx2_impl::pack_b(op, p0, kc, j0, nc, dst);
  }
  template <bool to_c>
  static void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                           const float* c_next, float alpha, float beta, bool first,
                           const float* bias) {
    sgemm_avx2_impl::micro_kernel<to_c>(kc, a, b, c, ldc, c_next, alpha, beta, first, bias);
  }
  static void add_packed_row_sums(const float* a_pack, int64_t mc, int64_t kc, float* sums) {
    sgemm_avx2_impl::add_packed_row_sums(a_pack, mc, kc, sums);
  }
};

}  // namespace sgemm_avx2_impl

/// bias: N floats added to every row of C, or null. a_sums: M floats that
/// get the row sums of op(A) added (sum over K, alpha not applied), or null.
inline void sgemm_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                       float* C, int64_t ldc, const float* bias = nullptr,
                       float* a_sums = nullptr) {
  packed_gemm::run<sgemm_avx2_impl::kernel>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta,
                                            C, ldc, bias, a_sums);
}

}  // namespace vit::ops::detail

#else
#define VIT_HAVE_SGEMM_AVX2 0
#endif
