// gemm_avx512: the AVX-512 micro-kernels of the packed GEMM (packed_gemm.hpp).
//
//   sgemm_avx512:      float A, B -> float C, 512-bit FMAs.
//   sbgemm_avx512:     bf16 A, B -> float or bf16 C, vdpbf16ps (AVX512-BF16):
//                      each instruction multiplies 16 pairs of bf16 and adds
//                      both products into float32 lanes, so sums accumulate in
//                      float32 as in cuBLASLt and oneDNN (the instruction
//                      treats denormal inputs and results as zero, below
//                      1.2e-38 where no ViT activation lives).
//
// Both use an 8 x 48 tile: 24 zmm accumulators + 3 B vectors + 1 broadcast
// (28 of 32 zmm), 11 loads per 24 FMAs, enough independent chains to cover the
// FMA latency on two 512-bit pipes. A packed element is a 32-bit word: one
// float, or two bf16 of consecutive k (low half the even k), the operand
// layout of vdpbf16ps; an odd K is padded with a zero. Packing moves 8x8 word
// blocks with ymm transposes where the source is contiguous along k, and
// interleaves two k rows where it is contiguous along M/N.
//
// Chosen at build time: the project's -march=native binaries get these where
// the host has AVX-512 (and AVX512-BF16); a header-only user gets them only by
// compiling for such a target. VIT_NO_AVX512_GEMM keeps the AVX2 kernel (for
// measuring one against the other on one machine).
#pragma once

#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__) && !defined(VIT_NO_AVX512_GEMM)
#define VIT_HAVE_SGEMM_AVX512 1
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define VIT_HAVE_SBGEMM_AVX512 1
#else
#define VIT_HAVE_SBGEMM_AVX512 0
#endif

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "vit/core/bf16.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"
#include "vit/ops/detail/packed_gemm.hpp"
#include "vit/ops/detail/sgemm_avx2.hpp"

namespace vit::ops::detail::gemm_avx512 {

inline constexpr int64_t mr = 8;
inline constexpr int64_t nr = 48;

template <class In>
inline constexpr int64_t k_per_word = std::is_same_v<In, bf16> ? 2 : 1;

template <class In>
using word_of = std::conditional_t<std::is_same_v<In, bf16>, uint32_t, float>;

// Word w of a row contiguous along k (row points at k = p0), kc elements deep:
// the bf16 pair (2w, 2w+1), a zero in the high half past the end.
inline float word_at(const float* row, int64_t w, int64_t) { return row[w]; }
inline uint32_t word_at(const bf16* row, int64_t w, int64_t kc) {
  const uint32_t hi = 2 * w + 1 < kc ? row[2 * w + 1].bits : 0u;
  return row[2 * w].bits | (hi << 16);
}

inline __m256 load_8_words(const float* row, int64_t w) { return _mm256_loadu_ps(row + w); }
inline __m256 load_8_words(const bf16* row, int64_t w) {
  return _mm256_loadu_ps(reinterpret_cast<const float*>(row + 2 * w));
}

// dst[w * stride + r] = word w of row r (src + r * ld) for the 8 rows r,
// rows >= `rows` zero: a panel of op(X) where X is stored contiguous along k.
template <class In>
inline void pack_k_contiguous(const In* src, int64_t ld, int64_t rows, int64_t kc,
                              word_of<In>* dst, int64_t stride) {
  using word = word_of<In>;
  const int64_t kw = (kc + k_per_word<In> - 1) / k_per_word<In>;
  const int64_t whole = kc / k_per_word<In>;  // words with no padding
  int64_t w = 0;
  if (rows == 8) {
    for (; w + 8 <= whole; w += 8) {
      __m256 r0 = load_8_words(src + 0 * ld, w), r1 = load_8_words(src + 1 * ld, w);
      __m256 r2 = load_8_words(src + 2 * ld, w), r3 = load_8_words(src + 3 * ld, w);
      __m256 r4 = load_8_words(src + 4 * ld, w), r5 = load_8_words(src + 5 * ld, w);
      __m256 r6 = load_8_words(src + 6 * ld, w), r7 = load_8_words(src + 7 * ld, w);
      sgemm_avx2_impl::transpose_8x8(r0, r1, r2, r3, r4, r5, r6, r7);
      float* d = reinterpret_cast<float*>(dst + w * stride);
      _mm256_storeu_ps(d + 0 * stride, r0);
      _mm256_storeu_ps(d + 1 * stride, r1);
      _mm256_storeu_ps(d + 2 * stride, r2);
      _mm256_storeu_ps(d + 3 * stride, r3);
      _mm256_storeu_ps(d + 4 * stride, r4);
      _mm256_storeu_ps(d + 5 * stride, r5);
      _mm256_storeu_ps(d + 6 * stride, r6);
      _mm256_storeu_ps(d + 7 * stride, r7);
    }
  }
  for (; w < kw; ++w)
    for (int64_t r = 0; r < 8; ++r) dst[w * stride + r] = r < rows ? word_at(src + r * ld, w, kc) : word(0);
}

// dst[w * width + c] = word w of column c for c < width, where element (k, c)
// is src[k * ld + c] (stored contiguous along M/N); columns >= cols zero.
template <class In>
inline void pack_mn_contiguous(const In* src, int64_t ld, int64_t cols, int64_t width, int64_t kc,
                               word_of<In>* dst) {
  const int64_t kw = (kc + k_per_word<In> - 1) / k_per_word<In>;
  if (cols == width) {
    for (int64_t w = 0; w < kw; ++w) {
      float* d = reinterpret_cast<float*>(dst + w * width);
      if constexpr (std::is_same_v<In, float>) {
        const float* s = src + w * ld;
        for (int64_t c = 0; c < width; c += 8) _mm256_storeu_ps(d + c, _mm256_loadu_ps(s + c));
      } else {
        // Interleave row 2w (low halves) with row 2w+1 (high halves, zero past kc).
        const bf16* s0 = src + 2 * w * ld;
        const bool odd_tail = 2 * w + 1 >= kc;
        for (int64_t c = 0; c < width; c += 8) {
          const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s0 + c));
          const __m128i hi = odd_tail ? _mm_setzero_si128()
                                      : _mm_loadu_si128(reinterpret_cast<const __m128i*>(s0 + ld + c));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(d + c), _mm_unpacklo_epi16(lo, hi));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(d + c + 4), _mm_unpackhi_epi16(lo, hi));
        }
      }
    }
    return;
  }
  for (int64_t w = 0; w < kw; ++w)
    for (int64_t c = 0; c < width; ++c) {
      if constexpr (std::is_same_v<In, float>) {
        dst[w * width + c] = c < cols ? src[w * ld + c] : 0.0f;
      } else {
        const uint32_t lo = c < cols ? src[2 * w * ld + c].bits : 0u;
        const uint32_t hi = c < cols && 2 * w + 1 < kc ? src[(2 * w + 1) * ld + c].bits : 0u;
        dst[w * width + c] = lo | (hi << 16);
      }
    }
}

inline __m512 load_16(const float* c) { return _mm512_loadu_ps(c); }
inline void store_16(float* c, __m512 v) { _mm512_storeu_ps(c, v); }
#if VIT_HAVE_SBGEMM_AVX512
inline __m512 load_16(const bf16* c) { return widen_16(c); }
// Rounded as vit::bf16(float) rounds (bf16_buffers.hpp), denormals kept.
inline void store_16(bf16* c, __m512 v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), narrow_16(v)); }
#endif

// The C-update of packed_gemm::update_scalar on 16 lanes.
template <class Out>
inline void update_store(__m512 acc, Out* c, __m512 alpha, __m512 beta, bool first, bool read_c,
                         bool has_bias, __m512 bias) {
  if (!read_c) {
    store_16(c, has_bias ? _mm512_fmadd_ps(acc, alpha, bias) : _mm512_mul_ps(acc, alpha));
    return;
  }
  const __m512 old = load_16(c);
  __m512 addend = first ? _mm512_mul_ps(beta, old) : old;
  if (has_bias) addend = _mm512_add_ps(addend, bias);
  store_16(c, _mm512_fmadd_ps(acc, alpha, addend));
}

// kw words of rank-1 (float) or rank-2 (bf16 pair) updates of the 8 x 48 tile.
// to_c: apply the C-update in place; otherwise dump the raw sums (row stride
// 48) for the edge path. c_next: the tile the caller updates next, fetched
// with write intent so its misses overlap this tile's FMAs.
template <bool to_c, class Word, class Out, class Next>
inline void micro_kernel(int64_t kw, const Word* __restrict a, const Word* __restrict b, Out* c,
                         int64_t ldc, const Next* c_next, float alpha, float beta, bool first,
                         const float* bias) {
  __m512 acc[mr][3];
#pragma GCC unroll 8
  for (int r = 0; r < mr; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_setzero_ps();
  if (c_next != nullptr) {
    for (int64_t r = 0; r < mr; ++r) {
      const Next* row = c_next + r * ldc;
      for (int64_t j = 0; j < nr; j += 64 / int64_t(sizeof(Next))) __builtin_prefetch(row + j, 1, 3);
      __builtin_prefetch(row + nr - 1, 1, 3);
    }
  }
#pragma GCC unroll 2
  for (int64_t w = 0; w < kw; ++w) {
    __m512 bv[3];
#pragma GCC unroll 3
    for (int v = 0; v < 3; ++v) bv[v] = _mm512_load_ps(reinterpret_cast<const float*>(b) + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < mr; ++r) {
      if constexpr (std::is_same_v<Word, float>) {
        const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      } else {
#if VIT_HAVE_SBGEMM_AVX512
        const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[r])));
#pragma GCC unroll 3
        for (int v = 0; v < 3; ++v)
          acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, reinterpret_cast<__m512bh>(bv[v]));
#else
        static_assert(!std::is_same_v<Word, Word>, "bf16 words need AVX512-BF16");
#endif
      }
    }
    a += mr;
    b += nr;
  }
  if constexpr (to_c) {
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const bool read_c = !(first && beta == 0.0f);
    const bool has_bias = bias != nullptr;
    __m512 bias_v[3];
#pragma GCC unroll 3
    for (int v = 0; v < 3; ++v) bias_v[v] = has_bias ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 3
      for (int v = 0; v < 3; ++v)
        update_store(acc[r][v], c + r * ldc + 16 * v, va, vb, first, read_c, has_bias, bias_v[v]);
  } else {
    static_assert(std::is_same_v<Out, float>, "raw sums are float");
    (void)ldc, (void)alpha, (void)beta, (void)first, (void)bias;
#pragma GCC unroll 8
    for (int r = 0; r < mr; ++r)
#pragma GCC unroll 3
      for (int v = 0; v < 3; ++v) _mm512_store_ps(c + r * nr + 16 * v, acc[r][v]);
  }
}

// sums[r] += sum over the words of row r of each 8-row panel of a packed A
// block (a bf16 word adds its low then its high half). Lanes are rows, so
// each row is summed in k order whatever the blocking.
template <class Word>
inline void add_packed_row_sums(const Word* a_pack, int64_t mc, int64_t kw, float* sums) {
  for (int64_t ir = 0; ir < mc; ir += mr, a_pack += mr * kw) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t w = 0; w < kw; ++w) {
      if constexpr (std::is_same_v<Word, float>) {
        s = _mm256_add_ps(s, _mm256_loadu_ps(a_pack + w * mr));
      } else {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a_pack + w * mr));
        s = _mm256_add_ps(s, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        s = _mm256_add_ps(s, _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xffff0000u)))));
      }
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, s);
    const int64_t rows = std::min(mr, mc - ir);
    for (int64_t r = 0; r < rows; ++r) sums[ir + r] += lanes[r];
  }
}

// The kernel as packed_gemm's driver takes it, for In = float or bf16.
// Zen 5 per core: 48 KiB L1d, 1 MiB L2. A block of mc_max x kc_max words
// (288 KiB) stays in L2 beside C; the B micro-panel (kc x 48 words) streams
// from L1/L2 at 192 bytes per 24 FMAs, within L2's bandwidth. A bf16 word
// holds two k, so bf16 slices are twice as deep in elements.
template <class In>
struct kernel {
  using in_t = In;
  using word_t = word_of<In>;
  static constexpr int64_t mr = gemm_avx512::mr, nr = gemm_avx512::nr;
  static constexpr int64_t k_per_word = gemm_avx512::k_per_word<In>;
  static constexpr int64_t mc_max = 192, kc_max = 384 * k_per_word,
                           kc_single_max = 768 * k_per_word, nc_max = 85 * nr;
  static constexpr int64_t small_work = 64, thread_work = 512 * 1024, pack_slack = 0;

  template <class Out>
  static void pack_a(const packed_gemm::operands<In, Out>& op, int64_t i0, int64_t mc, int64_t p0,
                     int64_t kc, word_t* dst) {
    const int64_t kw = (kc + k_per_word - 1) / k_per_word;
    for (int64_t ir = 0; ir < mc; ir += mr, dst += mr * kw) {
      const int64_t rows = std::min(mr, mc - ir);
      if (op.trans_a) pack_mn_contiguous(op.a + p0 * op.lda + i0 + ir, op.lda, rows, mr, kc, dst);
      else pack_k_contiguous(op.a + (i0 + ir) * op.lda + p0, op.lda, rows, kc, dst, mr);
    }
  }
  template <class Out>
  static void pack_b(const packed_gemm::operands<In, Out>& op, int64_t p0, int64_t kc, int64_t j0,
                     int64_t nc, word_t* dst) {
    const int64_t kw = (kc + k_per_word - 1) / k_per_word;
    for (int64_t jr = 0; jr < nc; jr += nr, dst += nr * kw) {
      const int64_t cols = std::min(nr, nc - jr);
      if (!op.trans_b) {
        pack_mn_contiguous(op.b + p0 * op.ldb + j0 + jr, op.ldb, cols, nr, kc, dst);
      } else {
        for (int64_t g = 0; g < nr; g += 8)
          pack_k_contiguous(op.b + (j0 + jr + std::min(g, cols)) * op.ldb + p0, op.ldb,
                            std::max<int64_t>(0, std::min<int64_t>(8, cols - g)), kc, dst + g, nr);
      }
    }
  }
  template <bool to_c, class Out, class Next>
  static void micro_kernel(int64_t kw, const word_t* a, const word_t* b, Out* c, int64_t ldc,
                           const Next* c_next, float alpha, float beta, bool first, const float* bias) {
    gemm_avx512::micro_kernel<to_c>(kw, a, b, c, ldc, c_next, alpha, beta, first, bias);
  }
  static void add_packed_row_sums(const word_t* a_pack, int64_t mc, int64_t kw, float* sums) {
    gemm_avx512::add_packed_row_sums(a_pack, mc, kw, sums);
  }
};

}  // namespace vit::ops::detail::gemm_avx512

namespace vit::ops::detail {

/// float GEMM on AVX-512; the arguments of sgemm_avx2.
inline void sgemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                         float* C, int64_t ldc, const float* bias = nullptr,
                         float* a_sums = nullptr) {
  packed_gemm::run<gemm_avx512::kernel<float>>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                                               beta, C, ldc, bias, a_sums);
}

#if VIT_HAVE_SBGEMM_AVX512
/// bf16 A and B, float32 accumulation, into a float C: the arguments of
/// sgemm_avx2 otherwise.
inline void sbgemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta,
                          float* C, int64_t ldc, const float* bias = nullptr,
                          float* a_sums = nullptr) {
  packed_gemm::run<gemm_avx512::kernel<bf16>>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                                              beta, C, ldc, bias, a_sums);
}

/// Whether sbgemm_avx512_to_bf16 can take this product: one pass over C.
inline bool sbgemm_writes_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  const packed_gemm::operands<bf16, bf16> op{trans_a, trans_b, M, N, K, 1.f, 0.f, nullptr, 0,
                                             nullptr, 0,       nullptr, 0, nullptr, nullptr};
  return packed_gemm::single_pass<gemm_avx512::kernel<bf16>>(op);
}

/// The same product with C in bf16, each element rounded once from its
/// float32 result (beta reads the old C widened). Only where
/// sbgemm_writes_bf16: a product in several K passes would round in between.
inline void sbgemm_avx512_to_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                                  float alpha, const bf16* A, int64_t lda, const bf16* B,
                                  int64_t ldb, float beta, bf16* C, int64_t ldc,
                                  const float* bias = nullptr, float* a_sums = nullptr) {
  packed_gemm::run<gemm_avx512::kernel<bf16>, bf16>(trans_a, trans_b, M, N, K, alpha, A, lda, B,
                                                    ldb, beta, C, ldc, bias, a_sums);
}
#endif

}  // namespace vit::ops::detail

#else
#define VIT_HAVE_SGEMM_AVX512 0
#define VIT_HAVE_SBGEMM_AVX512 0
#endif
