// attention_bf16: the per-head products of fused attention for bf16 tensors
// on AVX512-BF16 hosts (vdpbf16ps), head dims a multiple of 16 up to 128, up
// to 256 tokens.
//
// Why not the portable bf16 path (widen a head to float, run the float
// kernels, round back): there the conversions cost more than bf16 saves and
// the products run at the fp32 rate. Here a head's six products multiply
// bf16 pairs at twice that rate, reading q, k, v and dO straight from the bf16
// tensors. Sums are float32; softmax and its backward are float32; the
// probabilities P (dropped, P') and the score gradient dS are rounded to bf16
// before they multiply V, dO, K and Q. That is FlashAttention-2's contract on
// tensor cores, which the CUDA bf16 kernels follow, so both devices round the
// same quantities. The saved P stays float (the softmax backward needs it).
//
// Operands of vdpbf16ps: a 32-bit word holds two bf16 of consecutive k, the
// low half the even one. A left operand is read in place where its rows are
// contiguous along k (q and dO in the tensors, the bf16 P' and dS rows), and
// from a row-paired copy where they are not (P'ᵀ and dSᵀ, k = token). A right
// operand is a panel of words [k pair][column]: the word transpose of K or V
// where k is the head dim (S = q·Kᵀ, dP = dO·Vᵀ), rows interleaved in pairs
// where k is the token (P'·V, P'ᵀ·dO, dS·K, dSᵀ·Q); an odd token count pads
// a zero row. Each output tile keeps MR x 16·NV float sums in zmm registers
// (up to 31 of 32 with the NV right vectors and one broadcast).
//
// Deterministic: a head is computed by one thread in a fixed order, whatever
// the thread count. Scratch is thread_local and only grows.
#pragma once

#include "vit/ops/detail/gemm_avx512.hpp"  // VIT_HAVE_SBGEMM_AVX512

#if VIT_HAVE_SBGEMM_AVX512 && VIT_HAVE_BF16_LANES_16
#define VIT_HAVE_ATTENTION_BF16 1

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "vit/core/bf16.hpp"
#include "vit/ops/detail/attention_avx2.hpp"  // prefetcher, transpose_8x8
#include "vit/ops/detail/bf16_buffers.hpp"    // narrow_16, for_vectors16

namespace vit::ops::detail::attention_bf16 {

using word = uint32_t;

inline constexpr int64_t max_tokens = 256;
inline constexpr int64_t max_head_dim = 128;

/// Shapes these kernels take (forward and backward); others take the portable path.
inline bool supported(int64_t N, int64_t D) {
  return N >= 1 && N <= max_tokens && D >= 16 && D <= max_head_dim && D % 16 == 0;
}

inline int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }
inline int64_t pairs(int64_t n) { return (n + 1) / 2; }

// A left operand: word (r, w) at base + r·row + w·k words.
struct left {
  const void* base;
  int64_t row, k;
  word at(int64_t r, int64_t w) const {
    word x;
    std::memcpy(&x, static_cast<const char*>(base) + 4 * (r * row + w * k), sizeof x);
    return x;
  }
};

// C[0:MR, 0:16·NV] = alpha · Σ_w A(r, w)·B(w, ·) over kw words, B(w, ·) the
// 16·NV words at b + w·ldb. Out float: stored as is; bf16: rounded to nearest
// even (vit::bf16's rule). Not inlined, as attention_avx2's tiles: one
// function per shape keeps its accumulators in registers.
template <int MR, int NV, class Out>
[[gnu::noinline]] void tile(int64_t kw, left a, const word* b, int64_t ldb, Out* c, int64_t ldc,
                            float alpha) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t w = 0; w < kw; ++w) {
    __m512i bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm512_loadu_si512(b + w * ldb + 16 * v);
      // In a register: otherwise GCC folds this load into each of the MR
      // products (as in attention_avx2) and the broadcasts of A cannot be.
      __asm__("" : "+v"(bv[v]));
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a.at(r, w))));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v)
        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, reinterpret_cast<__m512bh>(bv[v]));
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const __m512 y = _mm512_mul_ps(acc[r][v], va);
      if constexpr (std::is_same_v<Out, float>) {
        _mm512_storeu_ps(c + r * ldc + 16 * v, y);
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 16 * v), narrow_16(y));
      }
    }
}

// A tile of `rows` <= R rows, dispatched to its exact shape.
template <int R, int NV, class Out>
inline void tile_rows(int64_t rows, int64_t kw, left a, const word* b, int64_t ldb, Out* c,
                      int64_t ldc, float alpha) {
  if constexpr (R > 1) {
    if (rows < R) return tile_rows<R - 1, NV, Out>(rows, kw, a, b, ldb, c, ldc, alpha);
  }
  tile<R, NV, Out>(kw, a, b, ldb, c, ldc, alpha);
}

// Rows per tile for nv vectors: MR·nv accumulators + nv + 1 within 32 zmm.
inline constexpr int rows_per_tile(int64_t nv) { return nv == 1 ? 12 : nv == 2 ? 10 : nv == 3 ? 8 : nv == 4 ? 6 : 5; }

// One panel of NV vectors: its B (kw x 16·NV words) stays in L1 while the
// rows of A stream past it; `next` pulls the next head in a little per tile.
template <int NV, class Out>
inline void panel(int64_t m, int64_t kw, left a, const word* b, int64_t ldb, Out* c, int64_t ldc,
                  float alpha, attention_avx2::prefetcher& next) {
  constexpr int MR = rows_per_tile(NV);
  for (int64_t i = 0; i < m; i += MR, next.step()) {
    const left ai{static_cast<const char*>(a.base) + 4 * i * a.row, a.row, a.k};
    tile_rows<MR, NV, Out>(std::min<int64_t>(MR, m - i), kw, ai, b, ldb, c + i * ldc, ldc, alpha);
  }
}

// Tiles of one product (what the prefetcher spreads its rows over).
inline int64_t product_tiles(int64_t m, int64_t nvec) {
  const int64_t panels = (nvec + 4) / 5, nv = (nvec + panels - 1) / panels;
  return panels * ((m + rows_per_tile(nv) - 1) / rows_per_tile(nv));
}

// C (m x 16·nvec, row stride ldc) = alpha · A·B over kw words of k; the
// columns go in panels of equal width of up to 5 vectors.
template <class Out>
void product(int64_t m, int64_t nvec, int64_t kw, left a, const word* b, int64_t ldb, Out* c,
             int64_t ldc, float alpha, attention_avx2::prefetcher& next) {
  const int64_t panels = (nvec + 4) / 5, width = (nvec + panels - 1) / panels;
  for (int64_t v = 0; v < nvec; v += width) {
    const int64_t nv = std::min(width, nvec - v);
    const word* bp = b + 16 * v;
    Out* cp = c + 16 * v;
    switch (nv) {
      case 1: panel<1, Out>(m, kw, a, bp, ldb, cp, ldc, alpha, next); break;
      case 2: panel<2, Out>(m, kw, a, bp, ldb, cp, ldc, alpha, next); break;
      case 3: panel<3, Out>(m, kw, a, bp, ldb, cp, ldc, alpha, next); break;
      case 4: panel<4, Out>(m, kw, a, bp, ldb, cp, ldc, alpha, next); break;
      default: panel<5, Out>(m, kw, a, bp, ldb, cp, ldc, alpha, next); break;
    }
  }
}

// dst[w·ldd + j] = word w of row j of x (rows ld apart, d bf16 each, d % 16
// == 0) for j < n, 0 for n <= j < ldd: the right operand Xᵀ with k = head dim.
inline void words_transposed(const bf16* x, int64_t ld, int64_t n, int64_t d, word* dst, int64_t ldd) {
  const int64_t dw = d / 2;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int64_t w = 0; w < dw; w += 8) {
      __m256 r[8];
      for (int t = 0; t < 8; ++t) r[t] = _mm256_loadu_ps(reinterpret_cast<const float*>(x + (j + t) * ld + 2 * w));
      sgemm_avx2_impl::transpose_8x8(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
      for (int t = 0; t < 8; ++t) _mm256_storeu_ps(reinterpret_cast<float*>(dst + (w + t) * ldd + j), r[t]);
    }
  }
  for (int64_t w = 0; w < dw; ++w) {
    word* row = dst + w * ldd;
    for (int64_t t = j; t < n; ++t) std::memcpy(row + t, x + t * ld + 2 * w, sizeof(word));
    std::fill(row + n, row + ldd, word{0});
  }
}

// dst[p·ldd + c] = (x[2p][c], x[2p+1][c]) as a word for p < pairs(n), c <
// cols (a row past n reads as 0), 0 for cols <= c < ldd: rows of x (ld
// apart) interleaved in pairs, the operand layout where k is the token.
inline void rows_paired(const bf16* x, int64_t ld, int64_t n, int64_t cols, word* dst, int64_t ldd) {
  for (int64_t p = 0; p < pairs(n); ++p) {
    const bf16* lo = x + 2 * p * ld;
    const bf16* hi = 2 * p + 1 < n ? lo + ld : nullptr;
    word* out = dst + p * ldd;
    for_vectors16(cols, [&](int64_t c, __mmask16 m) {
      const __m512i l = _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(m, lo + c));
      const __m512i h = hi != nullptr ? _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(m, hi + c))
                                      : _mm512_setzero_si512();
      _mm512_mask_storeu_epi32(out + c, m, _mm512_or_si512(l, _mm512_maskz_slli_epi32(0xffff, h, 16)));
    });
    std::fill(out + cols, out + ldd, word{0});
  }
}

// exp(x) for x <= 0 on 16 lanes: attention_avx2::exp_nonpositive's polynomial
// (maskz forms: see bf16_buffers.hpp).
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_maskz_max_ps(0xffff, _mm512_set1_ps(-87.0f), x);  // NaN stays NaN (its 2nd operand)
  const __m512 m = _mm512_maskz_roundscale_ps(
      0xffff, _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF);
  __m512 r = _mm512_fmadd_ps(m, _mm512_set1_ps(-0.693359375f), x);
  r = _mm512_fmadd_ps(m, _mm512_set1_ps(2.12194440e-4f), r);
  const __m512 r2 = _mm512_mul_ps(r, r), r3 = _mm512_mul_ps(r2, r);
  __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500E-4f), r, _mm512_set1_ps(1.3981999507E-3f));
  __m512 y1 = _mm512_fmadd_ps(_mm512_set1_ps(4.1665795894E-2f), r, _mm512_set1_ps(1.6666665459E-1f));
  const __m512 y2 = _mm512_add_ps(r, _mm512_set1_ps(1.0f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073E-3f));
  y1 = _mm512_fmadd_ps(y1, r, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, r3, y1);
  y = _mm512_fmadd_ps(y, r2, y2);
  const __m512i e = _mm512_maskz_slli_epi32(
      0xffff, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xffff, m), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}


// bf16 row of n values (+ a zero pad to ne) from float.
inline void narrow_row(const float* src, int64_t n, bf16* dst, int64_t ne) {
  for_vectors16(n, [&](int64_t j, __mmask16 m) {
    narrow_16_masked(_mm512_maskz_loadu_ps(m, src + j), dst + j, m);
  });
  for (int64_t j = n; j < ne; ++j) dst[j] = bf16{};
}

// Scores s (n x lds) -> p (n x n) softmax rows (saved, undropped), s rows
// overwritten with P' = P ∘ mask, pb (n x ne bf16) P' rounded.
template <class Mask>
inline void softmax_rows(float* s, int64_t lds, int64_t n, float* p, bf16* pb, int64_t ne, const Mask& mask) {
  for (int64_t i = 0; i < n; ++i) {
    float* row = s + i * lds;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for_vectors16(n, [&](int64_t j, __mmask16 m) {
      mx = _mm512_maskz_max_ps(0xffff, mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, row + j));
    });
    const __m512 vmax = _mm512_set1_ps(hmax_16(mx));
    __m512 sum = _mm512_setzero_ps();
    for_vectors16(n, [&](int64_t j, __mmask16 m) {
      const __m512 e = _mm512_maskz_mov_ps(m, exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), vmax)));
      _mm512_storeu_ps(row + j, e);
      sum = _mm512_add_ps(sum, e);
    });
    const __m512 inv = _mm512_set1_ps(1.0f / hsum_16(sum));
    float* prow = p + i * n;
    for_vectors16(n, [&](int64_t j, __mmask16 m) {
      const __m512 y = _mm512_mul_ps(_mm512_loadu_ps(row + j), inv);
      _mm512_storeu_ps(row + j, y);
      _mm512_mask_storeu_ps(prow + j, m, y);
    });
    if constexpr (Mask::active) mask(i, row, row);
    narrow_row(row, n, pb + i * ne, ne);
  }
}

// dP (n x lds, dP' with a mask) and P (n x n) -> dS = P ⊙ (dP − Σ_j dP·P)·scale
// rounded into dsb (n x ne bf16).
template <class Mask>
inline void softmax_backward_rows(float* dp, int64_t lds, const float* p, int64_t n, bf16* dsb, int64_t ne,
                                  float scale, const Mask& mask) {
  const __m512 vs = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; ++i) {
    float* row = dp + i * lds;
    const float* prow = p + i * n;
    if constexpr (Mask::active) mask(i, row, row);  // dP = dP' ∘ mask
    __m512 dot = _mm512_setzero_ps();
    for_vectors16(n, [&](int64_t j, __mmask16 m) {
      dot = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, row + j), _mm512_maskz_loadu_ps(m, prow + j), dot);
    });
    const __m512 vdot = _mm512_set1_ps(hsum_16(dot));
    bf16* out = dsb + i * ne;
    for_vectors16(n, [&](int64_t j, __mmask16 m) {
      const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, row + j), vdot);
      const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, prow + j), d), vs);
      narrow_16_masked(y, out + j, m);
    });
    for (int64_t j = n; j < ne; ++j) out[j] = bf16{};
  }
}

inline packed_gemm::aligned_buffer<word>& scratch() {
  thread_local packed_gemm::aligned_buffer<word> buffer;
  return buffer;
}

// Carves 64-byte aligned regions of words out of the thread's scratch.
class regions {
 public:
  explicit regions(int64_t total_words) : next_(scratch().reserve(static_cast<std::size_t>(total_words))) {}
  word* take(int64_t words) {
    word* r = next_;
    next_ += round16(words);
    return r;
  }
  static int64_t size(std::initializer_list<int64_t> words) {
    int64_t t = 0;
    for (int64_t w : words) t += round16(w);
    return t;
  }

 private:
  word* next_;
};

// One head. q, k, v: (N, D) rows ld apart -> p: (N, N) float probabilities
// (undropped), o: (N, D) rows ldo apart, o = bf16(P')·V.
template <class Mask>
void head_forward(const bf16* q, const bf16* k, const bf16* v, int64_t ld, float* p, bf16* o, int64_t ldo,
                  int64_t N, int64_t D, float scale, attention_avx2::prefetcher& next, const Mask& mask) {
  const int64_t L = round16(N), kwn = pairs(N), kwd = D / 2;
  regions mem(regions::size({kwd * L, N * L, N * kwn, kwn * D}));
  word* kt = mem.take(kwd * L);                             // Kᵀ panel
  float* s = reinterpret_cast<float*>(mem.take(N * L));    // scores, then P'
  bf16* pb = reinterpret_cast<bf16*>(mem.take(N * kwn));   // bf16(P'), rows of 2·kwn
  word* vp = mem.take(kwn * D);                             // V in row pairs
  next.plan(product_tiles(N, L / 16) + product_tiles(N, D / 16));
  words_transposed(k, ld, N, D, kt, L);
  product<float>(N, L / 16, kwd, left{q, ld / 2, 1}, kt, L, s, L, scale, next);
  softmax_rows(s, L, N, p, pb, 2 * kwn, mask);
  rows_paired(v, ld, N, D, vp, D);
  product<bf16>(N, D / 16, kwn, left{pb, kwn, 1}, vp, D, o, ldo, 1.0f, next);
}

// One head. g: (N, D) rows ldg apart (dO); p: (N, N) undropped -> dq, dk, dv:
// (N, D) rows ld apart.
template <class Mask>
void head_backward(const bf16* q, const bf16* k, const bf16* v, int64_t ld, const float* p, const bf16* g,
                   int64_t ldg, bf16* dq, bf16* dk, bf16* dv, int64_t N, int64_t D, float scale,
                   attention_avx2::prefetcher& next, const Mask& mask) {
  const int64_t L = round16(N), kwn = pairs(N), kwd = D / 2, ne = 2 * kwn;
  regions mem(regions::size({N * kwn, kwn * L, kwn * D, kwd * L, N * L, N * kwn, kwn * L, kwn * D}));
  bf16* pb = reinterpret_cast<bf16*>(mem.take(N * kwn));   // bf16(P'), then bf16(dS·scale)
  word* pairs_l = mem.take(kwn * L);                       // P'ᵀ, then dSᵀ, in row pairs
  word* pairs_r = mem.take(kwn * D);                       // dO, then K, then Q, in row pairs
  word* vt = mem.take(kwd * L);                            // Vᵀ panel
  float* dp = reinterpret_cast<float*>(mem.take(N * L));  // dP
  next.plan(3 * product_tiles(N, D / 16) + product_tiles(N, L / 16));

  // dV = P'ᵀ·dO, with P' rounded as the forward rounded it
  float* row = dp;  // a row of scratch until dP is formed
  for (int64_t i = 0; i < N; ++i) {
    const float* pi = p + i * N;
    if constexpr (Mask::active) mask(i, pi, row), pi = row;
    narrow_row(pi, N, pb + i * ne, ne);
  }
  rows_paired(pb, ne, N, N, pairs_l, L);
  rows_paired(g, ldg, N, D, pairs_r, D);
  product<bf16>(N, D / 16, kwn, left{pairs_l, 1, L}, pairs_r, D, dv, ld, 1.0f, next);
  // dP = dO·Vᵀ
  words_transposed(v, ld, N, D, vt, L);
  product<float>(N, L / 16, kwd, left{g, ldg / 2, 1}, vt, L, dp, L, 1.0f, next);
  // dS = P ⊙ (dP − Σ dP·P), times the score scale so dQ and dK need no alpha
  softmax_backward_rows(dp, L, p, N, pb, ne, scale, mask);
  // dQ = dS·K
  rows_paired(k, ld, N, D, pairs_r, D);
  product<bf16>(N, D / 16, kwn, left{pb, kwn, 1}, pairs_r, D, dq, ld, 1.0f, next);
  // dK = dSᵀ·Q
  rows_paired(pb, ne, N, N, pairs_l, L);
  rows_paired(q, ld, N, D, pairs_r, D);
  product<bf16>(N, D / 16, kwn, left{pairs_l, 1, L}, pairs_r, D, dk, ld, 1.0f, next);
}

// Head bh of qkv: (B, N, 3C) -> out: (B, N, C), probs: (B, H, N, N); pulls
// head bh+1 towards L2 meanwhile.
template <class Mask = attention_avx2::no_mask>
[[gnu::noinline]] void forward_head(const bf16* qkv, bf16* out, float* probs, int64_t bh, int64_t B, int64_t N,
                                    int64_t C, int64_t H, float scale, const Mask& mask = {}) {
  const int64_t D = C / H, ld = 3 * C;
  auto q_of = [&](int64_t i) { return qkv + (i / H) * N * ld + (i % H) * D; };
  auto out_of = [&](int64_t i) { return out + (i / H) * N * C + (i % H) * D; };
  attention_avx2::prefetcher next;
  if (bh + 1 < B * H) {
    for (int s = 0; s < 3; ++s) next.add(q_of(bh + 1) + s * C, N, ld, D);
    next.add(probs + (bh + 1) * N * N, N, N, N);
    next.add(out_of(bh + 1), N, C, D);
  }
  const bf16* q = q_of(bh);
  head_forward(q, q + C, q + 2 * C, ld, probs + bh * N * N, out_of(bh), C, N, D, scale, next, mask);
}

// Head bh: dout (B, N, C), qkv (B, N, 3C), probs (B, H, N, N) -> dqkv (B, N, 3C);
// pulls head bh+1 towards L2 meanwhile.
template <class Mask = attention_avx2::no_mask>
[[gnu::noinline]] void backward_head(const bf16* dout, const bf16* qkv, const float* probs, bf16* dqkv, int64_t bh,
                                     int64_t B, int64_t N, int64_t C, int64_t H, float scale,
                                     const Mask& mask = {}) {
  const int64_t D = C / H, ld = 3 * C;
  auto row0 = [&](int64_t i) { return (i / H) * N * ld + (i % H) * D; };
  auto g_of = [&](int64_t i) { return dout + (i / H) * N * C + (i % H) * D; };
  attention_avx2::prefetcher next;
  if (bh + 1 < B * H) {
    next.add(probs + (bh + 1) * N * N, N, N, N);
    next.add(g_of(bh + 1), N, C, D);
    for (int s = 0; s < 3; ++s) next.add(qkv + row0(bh + 1) + (2 - s) * C, N, ld, D);
    for (int s = 0; s < 3; ++s) next.add(dqkv + row0(bh + 1) + (2 - s) * C, N, ld, D);
  }
  const bf16* q = qkv + row0(bh);
  bf16* dq = dqkv + row0(bh);
  head_backward(q, q + C, q + 2 * C, ld, probs + bh * N * N, g_of(bh), C, dq, dq + C, dq + 2 * C, N, D, scale,
                next, mask);
}

}  // namespace vit::ops::detail::attention_bf16

#else
#define VIT_HAVE_ATTENTION_BF16 0
#endif
