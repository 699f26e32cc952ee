// sgemm_avx2: packed, cache-blocked single-precision GEMM for AVX2+FMA hosts.
//
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C [+ bias(N) on every row],
//   row-major, op(X) = X^T when its trans flag is set, leading dimensions in
//   elements. The optional bias is added where each C tile is first written,
//   so a Linear layer needs no separate pass over its output to prefill it.
//   Optionally a_sums[i] += sum_k op(A)(i,k), taken from the packed A panels:
//   a Linear layer's bias gradient falls out of its weight-gradient product
//   (A = dout^T) without a second pass over dout.
//
// Scheme (BLIS/Goto): for each NC-wide column block of C and each KC-deep slice
// of K, op(B) is packed into NR-wide micro-panels; for each MC-tall row block,
// op(A) is packed into MR-tall micro-panels; a 6x16 FMA micro-kernel then
// sweeps the block with one B micro-panel (KC x 16 floats) resident in L1
// while A micro-panels stream from the packed A block (MC x KC) held in L2,
// and the packed B block sits in L3. Packing is what lets all
// four transpose combinations share one kernel and turns strided reads into
// unit-stride ones. 6x16 uses 12 ymm accumulators + 2 B vectors + 1 broadcast
// (15 of 16 ymm): enough independent FMA chains to cover Zen 3's 4-cycle FMA
// latency on its 2 FMA pipes.
//
// Determinism: threads split only the M/N extent of C, never K (a deep-K
// product is cut into two K halves by its shape alone, see gemm_split_k). The
// K slices depend on K alone, and every tile (full or edge) runs the same
// kernel and the same C-update arithmetic, so each C element sees the same
// operation sequence whatever the thread count, the tile position or the
// thread that computes it: results are bitwise identical run to run and
// across thread counts.
//
// Threading: outside a parallel region the OpenMP team packs each B block
// together and then takes (A block x panel group) items dynamically; inside
// one (e.g. attention's per-head products) everything stays on the calling
// thread. Packing buffers are thread_local and only grow, so steady state does
// no allocation.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#define VIT_HAVE_SGEMM_AVX2 1

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vit::ops::detail {

namespace sgemm_avx2_impl {

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

struct operands {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha, beta;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  const float* bias;  // (n), or null
  float* a_sums;      // (m), or null
};

// 64-byte aligned scratch that only grows, so repeated calls never allocate.
class aligned_buffer {
 public:
  aligned_buffer() = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { release(); }

  float* reserve(std::size_t count) {
    if (count > capacity_) {
      release();
      const std::size_t grown = std::max(count, capacity_ + capacity_ / 2);
      data_ = static_cast<float*>(::operator new(grown * sizeof(float), std::align_val_t{64}));
      capacity_ = grown;
    }
    return data_;
  }

 private:
  void release() {
    if (data_ != nullptr) ::operator delete(data_, std::align_val_t{64});
    data_ = nullptr;
    capacity_ = 0;
  }
  float* data_ = nullptr;
  std::size_t capacity_ = 0;
};

inline aligned_buffer& a_pack_buffer() {
  thread_local aligned_buffer buffer;
  return buffer;
}
inline aligned_buffer& b_pack_buffer() {
  thread_local aligned_buffer buffer;
  return buffer;
}

inline int64_t round_up(int64_t x, int64_t step) { return (x + step - 1) / step * step; }

// Equal K slices no deeper than kc_max (or one slice up to kc_single_max); a
// function of K only, which is what keeps the summation order independent of
// how threads split C.
inline int64_t k_slice(int64_t k) {
  if (k <= kc_single_max) return k;
  const int64_t slices = (k + kc_max - 1) / kc_max;
  return (k + slices - 1) / slices;
}

// A block height for a K slice: MC x KC of A kept at the 216 KiB that
// mc_max x kc_max takes, so deep single slices do not crowd C out of L2.
inline int64_t a_block_rows(int64_t kc) {
  return std::clamp(mc_max * kc_max / std::max<int64_t>(kc, 1) / mr * mr, mr, mc_max);
}

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

// C-update shared by the vector and scalar paths so that full and edge tiles
// round identically: first K slice writes alpha*acc (+ beta*C unless beta is
// 0, in which case old C is never read) (+ bias where given, first slice
// only); later slices accumulate alpha*acc. With beta 0 the bias is the FMA's
// addend: bitwise what prefilling C with it and running beta = 1 gives.
inline __m256 update_vec(__m256 acc, const float* c, __m256 alpha, __m256 beta, bool first,
                         bool read_c, bool has_bias, __m256 bias) {
  if (!read_c) return has_bias ? _mm256_fmadd_ps(acc, alpha, bias) : _mm256_mul_ps(acc, alpha);
  const __m256 old = _mm256_loadu_ps(c);
  __m256 addend = first ? _mm256_mul_ps(beta, old) : old;
  if (has_bias) addend = _mm256_add_ps(addend, bias);
  return _mm256_fmadd_ps(acc, alpha, addend);
}

inline float update_scalar(float acc, float c, float alpha, float beta, bool first, bool read_c,
                           const float* bias) {
  if (!read_c) return bias != nullptr ? std::fma(acc, alpha, *bias) : acc * alpha;
  float addend = first ? beta * c : c;
  if (bias != nullptr) addend += *bias;
  return std::fma(acc, alpha, addend);
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

inline void merge_edge(const float* acc, int64_t rows, int64_t cols, float* c, int64_t ldc,
                       float alpha, float beta, bool first, const float* bias) {
  const bool read_c = !(first && beta == 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      c[r * ldc + j] = update_scalar(acc[r * nr + j], c[r * ldc + j], alpha, beta, first, read_c,
                                     bias != nullptr ? bias + j : nullptr);
}

// Pulls the source of the next A block, op(A)[i0:i0+mc, p0:p0+kc], towards L2
// a slice at a time while the current block computes: its rows are short
// streams (kc floats each) that the hardware prefetchers pick up too late,
// and without this the next pack_a stalls on L3/DRAM.
struct a_prefetcher {
  const float* base = nullptr;
  int64_t segments = 0, segment_floats = 0, stride = 0, next = 0, per_step = 0;

  a_prefetcher(const operands& op, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int64_t steps) {
    if (mc <= 0) return;
    if (op.trans_a) {
      base = op.a + p0 * op.lda + i0;
      segments = kc;
      segment_floats = mc;
    } else {
      base = op.a + i0 * op.lda + p0;
      segments = mc;
      segment_floats = kc;
    }
    stride = op.lda;
    per_step = (segments + steps - 1) / steps;
  }

  void step() {
    const int64_t end = std::min(segments, next + per_step);
    for (; next < end; ++next) {
      const float* s = base + next * stride;
      for (int64_t f = 0; f < segment_floats; f += 16) __builtin_prefetch(s + f, 0, 2);
      __builtin_prefetch(s + segment_floats - 1, 0, 2);
    }
  }
};

// Updates C[ic:ic+mc, jc+jr0 : jc+jr1] by one K slice [pc, pc+kc): packs the A
// block, then sweeps NR panels of the already packed B block (b_pack holds
// the jc block's panels). jr0/jr1 are offsets into the jc block.
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

// add_sums: this call's A block is the first packing of its (rows, K slice),
// so its row sums go to op.a_sums.
inline void compute_block(const operands& op, int64_t ic, int64_t mc, int64_t jc, int64_t jr0,
                          int64_t jr1, int64_t pc, int64_t kc, const float* b_pack, float* a_pack,
                          a_prefetcher& prefetch, bool add_sums) {
  pack_a(op, ic, mc, pc, kc, a_pack);
  if (add_sums && op.a_sums != nullptr) add_packed_row_sums(a_pack, mc, kc, op.a_sums + ic);
  const bool first = pc == 0;
  alignas(64) float edge[mr * nr];
  for (int64_t jr = jr0; jr < jr1; jr += nr) {
    prefetch.step();
    const int64_t cols = std::min(nr, jr1 - jr);
    const float* b_panel = b_pack + jr * kc;
    const float* bias = first && op.bias != nullptr ? op.bias + jc + jr : nullptr;
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int64_t rows = std::min(mr, mc - ir);
      const float* a_panel = a_pack + ir * kc;
      float* c_tile = op.c + (ic + ir) * op.ldc + jc + jr;
      // Only full tiles inside this block: a neighbour's tile may belong to
      // another thread, and a write-intent prefetch would steal its line.
      const float* c_next = nullptr;
      if (ir + 2 * mr <= mc && cols == nr) {
        c_next = c_tile + mr * op.ldc;
      } else if (ir + mr >= mc && jr + 2 * nr <= jr1 && mc >= mr) {
        c_next = op.c + ic * op.ldc + jc + jr + nr;
      }
      if (rows == mr && cols == nr) {
        micro_kernel<true>(kc, a_panel, b_panel, c_tile, op.ldc, c_next, op.alpha, op.beta, first,
                           bias);
      } else {
        micro_kernel<false>(kc, a_panel, b_panel, edge, nr, c_next, op.alpha, op.beta, first,
                            nullptr);
        merge_edge(edge, rows, cols, c_tile, op.ldc, op.alpha, op.beta, first, bias);
      }
    }
  }
}

// The whole product on the calling thread.
inline void gemm_serial(const operands& op) {
  const int64_t kc_step = k_slice(op.k);
  const int64_t nc_span = std::min(nc_max, round_up(op.n, nr));
  const int64_t mc_step = a_block_rows(kc_step);
  const int64_t mc_span = std::min(mc_step, round_up(op.m, mr));
  float* const b_pack = b_pack_buffer().reserve(static_cast<std::size_t>(nc_span * kc_step));
  float* const a_pack = a_pack_buffer().reserve(static_cast<std::size_t>(mc_span * kc_step + 8));
  for (int64_t jc = 0; jc < op.n; jc += nc_max) {
    const int64_t nc = std::min(nc_max, op.n - jc);
    const int64_t n_panels = (nc + nr - 1) / nr;
    for (int64_t pc = 0; pc < op.k; pc += kc_step) {
      const int64_t kc = std::min(kc_step, op.k - pc);
      pack_b(op, pc, kc, jc, nc, b_pack);
      for (int64_t ic = 0; ic < op.m; ic += mc_step) {
        const int64_t mc = std::min(mc_step, op.m - ic);
        a_prefetcher prefetch(op, ic + mc, std::min(mc_step, op.m - ic - mc), pc, kc, n_panels);
        compute_block(op, ic, mc, jc, 0, nc, pc, kc, b_pack, a_pack, prefetch, jc == 0);
      }
    }
  }
}

#ifdef _OPENMP
// The team shares one packed B block per (jc, K slice), packed cooperatively,
// and then deals out (A block x panel group) items dynamically, so a thread
// that is slowed down (or preempted) does not hold the others back. Which
// thread computes an item never changes its arithmetic, so this stays
// bitwise deterministic and independent of the thread count.
inline void gemm_parallel(const operands& op, int threads) {
  const int64_t kc_step = k_slice(op.k);
  const int64_t nc_span = std::min(nc_max, round_up(op.n, nr));
  // The caller's buffer; the caller is the team's master and uses no other.
  float* const b_pack = b_pack_buffer().reserve(static_cast<std::size_t>(nc_span * kc_step));
#pragma omp parallel num_threads(threads)
  {
    const int64_t team = omp_get_num_threads();
    // A whole number of A blocks per thread, at least two, of near-equal
    // height (2048 rows as 15 blocks of 144 would leave one thread 8 blocks
    // against 7); too few rows for that, and the panels are split into groups
    // too (costs repacking A per group).
    const int64_t mc_cap = a_block_rows(kc_step);
    const int64_t per_thread = std::max<int64_t>(2, (op.m + team * mc_cap - 1) / (team * mc_cap));
    const int64_t target_blocks = per_thread * team;
    const int64_t mc = std::max(mr, round_up((op.m + target_blocks - 1) / target_blocks, mr));
    const int64_t m_blocks = (op.m + mc - 1) / mc;
    float* const a_pack = a_pack_buffer().reserve(static_cast<std::size_t>(mc * kc_step + 8));
    for (int64_t jc = 0; jc < op.n; jc += nc_max) {
      const int64_t nc = std::min(nc_max, op.n - jc);
      const int64_t n_panels = (nc + nr - 1) / nr;
      const int64_t groups = std::min(n_panels, (2 * team + m_blocks - 1) / m_blocks);
      const int64_t items = m_blocks * groups;
      for (int64_t pc = 0; pc < op.k; pc += kc_step) {
        const int64_t kc = std::min(kc_step, op.k - pc);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < n_panels; ++p)
          pack_b(op, pc, kc, jc + p * nr, std::min(nr, nc - p * nr), b_pack + p * nr * kc);
#pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < items; ++item) {
          const int64_t block = item / groups, group = item % groups;
          const int64_t ic = block * mc;
          const int64_t rows = std::min(mc, op.m - ic);
          const int64_t jr0 = group * n_panels / groups * nr;
          const int64_t jr1 = std::min(nc, (group + 1) * n_panels / groups * nr);
          // Threads take blocks roughly round-robin: warm the block this
          // thread is likely to get next, once its last group is under way.
          const int64_t next_ic = (block + team) * mc;
          const bool last_group = group == groups - 1;
          a_prefetcher prefetch(op, next_ic, last_group ? std::min(mc, op.m - next_ic) : 0, pc, kc,
                                (jr1 - jr0 + nr - 1) / nr);
          compute_block(op, ic, rows, jc, jr0, jr1, pc, kc, b_pack, a_pack, prefetch,
                        jc == 0 && group == 0);
        }
      }
    }
  }
}
#endif

// Deep K under a small C (a Linear layer's weight gradient: K is every token
// of the batch, C is out x in, e.g. 192 x 192 x 8320). Split over M/N, such a
// product gives the team a handful of thin items per K slice and two barriers
// per slice: 107 GFLOP/s (54% of peak) on 2 threads for 192 x 192 x 8320.
// Instead K is cut in two halves that run as independent serial products (no
// barrier until the end; 129 GFLOP/s on the same shape), the second into
// scratch that is then added to C. Whether and where K is cut depends on the
// shape alone, so results stay bitwise identical on any thread count.
inline constexpr int64_t split_k_min = 2048;
inline bool splits_k(const operands& op) {
  return op.k >= split_k_min && op.k >= 4 * std::max(op.m, op.n);
}

inline aligned_buffer& split_k_buffer() {
  thread_local aligned_buffer buffer;
  return buffer;
}

inline void gemm_split_k(const operands& op, int threads) {
  const int64_t k_low = op.k / 2 / nr * nr;
  // Scratch: the upper half's C (m x n), then its row sums (m) when asked for.
  const int64_t sums_at = round_up(op.m * op.n, nr);
  float* const scratch = split_k_buffer().reserve(
      static_cast<std::size_t>(sums_at + (op.a_sums != nullptr ? op.m : 0)));
  operands low = op, high = op;
  low.k = k_low;
  high.k = op.k - k_low;
  high.a = op.a + (op.trans_a ? k_low * op.lda : k_low);
  high.b = op.b + (op.trans_b ? k_low : k_low * op.ldb);
  high.beta = 0.0f;
  high.c = scratch;
  high.ldc = op.n;
  high.bias = nullptr;
  high.a_sums = op.a_sums != nullptr ? scratch + sums_at : nullptr;
  if (high.a_sums != nullptr) std::fill_n(high.a_sums, op.m, 0.0f);
  const auto add_high_row = [&](int64_t i) {
    float* row = op.c + i * op.ldc;
    const float* add = scratch + i * op.n;
    for (int64_t j = 0; j < op.n; ++j) row[j] += add[j];
  };
#ifdef _OPENMP
  if (threads >= 4) {
    // Enough threads to share each half's C after all.
    gemm_parallel(low, threads);
    gemm_parallel(high, threads);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < op.m; ++i) add_high_row(i);
  } else if (threads > 1) {
#pragma omp parallel num_threads(2)
    {
#pragma omp for schedule(static, 1)
      for (int half = 0; half < 2; ++half) gemm_serial(half == 0 ? low : high);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < op.m; ++i) add_high_row(i);
    }
  } else
#endif
  {
    (void)threads;
    gemm_serial(low);
    gemm_serial(high);
    for (int64_t i = 0; i < op.m; ++i) add_high_row(i);
  }
  if (op.a_sums != nullptr)
    for (int64_t i = 0; i < op.m; ++i) op.a_sums[i] += high.a_sums[i];
}

// a_sums[i] += sum_k op(A)(i,k) by plain loops (where nothing is packed).
inline void add_row_sums_plain(const operands& op) {
  if (op.a_sums == nullptr) return;
  for (int64_t i = 0; i < op.m; ++i) {
    float t = 0.0f;
    for (int64_t k = 0; k < op.k; ++k) t += op.trans_a ? op.a[k * op.lda + i] : op.a[i * op.lda + k];
    op.a_sums[i] += t;
  }
}

// Plain loop for trivial sizes (see small_work).
inline void gemm_small(const operands& op) {
  add_row_sums_plain(op);
  for (int64_t i = 0; i < op.m; ++i) {
    for (int64_t j = 0; j < op.n; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < op.k; ++k) {
        const float a = op.trans_a ? op.a[k * op.lda + i] : op.a[i * op.lda + k];
        const float b = op.trans_b ? op.b[j * op.ldb + k] : op.b[k * op.ldb + j];
        acc = std::fma(a, b, acc);
      }
      float& c = op.c[i * op.ldc + j];
      c = update_scalar(acc, c, op.alpha, op.beta, true, op.beta != 0.0f,
                        op.bias != nullptr ? op.bias + j : nullptr);
    }
  }
}

// C = beta*C (+ bias): the whole result when K is 0 or alpha is 0.
inline void scale_c(const operands& op) {
  for (int64_t i = 0; i < op.m; ++i) {
    float* row = op.c + i * op.ldc;
    for (int64_t j = 0; j < op.n; ++j) {
      const float scaled = op.beta == 0.0f ? 0.0f : op.beta * row[j];
      row[j] = op.bias != nullptr ? scaled + op.bias[j] : scaled;
    }
  }
}

}  // namespace sgemm_avx2_impl

/// bias: N floats added to every row of C, or null. a_sums: M floats that
/// get the row sums of op(A) added (sum over K, alpha not applied), or null.
inline void sgemm_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                       float* C, int64_t ldc, const float* bias = nullptr,
                       float* a_sums = nullptr) {
  namespace impl = sgemm_avx2_impl;
  if (M <= 0) return;
  const impl::operands op{trans_a, trans_b, M, N, K, alpha, beta, A, lda, B, ldb, C, ldc,
                          bias,    a_sums};
  if (N <= 0 || K <= 0 || alpha == 0.0f) {
    impl::add_row_sums_plain(op);
    if (N > 0) impl::scale_c(op);
    return;
  }
  const int64_t work = M * N * K;
  if (work < impl::small_work) {
    impl::gemm_small(op);
    return;
  }
  int threads = 1;
#ifdef _OPENMP
  if (work >= impl::thread_work && !omp_in_parallel()) threads = omp_get_max_threads();
#endif
  if (impl::splits_k(op)) {
    impl::gemm_split_k(op, threads);
    return;
  }
#ifdef _OPENMP
  if (threads > 1) {
    impl::gemm_parallel(op, threads);
    return;
  }
#endif
  impl::gemm_serial(op);
}

}  // namespace vit::ops::detail

#else
#define VIT_HAVE_SGEMM_AVX2 0
#endif
