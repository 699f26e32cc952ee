// attention_avx2: the per-head products of fused attention for float on
// AVX2+FMA hosts, at ViT sizes (head dim D a multiple of 8 up to 128; N <= 256
// tokens forward, N <= 128 backward).
//
// Why not ops::gemm: a head's products are 65x65x64 at cifar-tiny, and the
// packed SGEMM packs both operands on every call. Here they are read where
// they lie: an output tile keeps its MR x (8·NV) sums in registers and, per k,
// loads NV vectors of the right operand (unit-stride rows) and broadcasts MR
// scalars of the left one from any (row, k) strides, so q, v, P, dO, dS serve
// in place, transposed or not. Only the keys (forward) and values (backward),
// needed as transposed right operands, are copied, into a zero-padded D x Np
// scratch (Np = N rounded up to 8); each element is then used N times.
// Softmax runs on the (N,Np) score scratch with a cheaper exp than Eigen's.
// At batch 128 a head's operands come from DRAM, so the next head's are
// prefetched while this one computes (that alone was ~20% of the time).
//
// Measured on one Zen 3 core, B=128, N=65, C=192, H=3 (vs ops::gemm per head):
// forward 9.9 -> 7.5 ms, backward 14.9 -> 11.7 ms.
//
// Attention dropout: the head functions take a row mask (mask(i, src, dst):
// dst[j] = src[j]·m_ij); the forward applies it to the probability scratch
// before P·v (the saved P stays undropped), the backward forms P' for dV and
// masks dP before the softmax backward. The default no_mask compiles to the
// code without dropout.
//
// Deterministic: a head is computed by one thread in a fixed order, whatever
// the thread count. Scratch is thread_local and only grows (no allocation in
// steady state).
#pragma once

#include "vit/ops/detail/sgemm_avx2.hpp"

#if VIT_HAVE_SGEMM_AVX2

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace vit::ops::detail::attention_avx2 {

inline constexpr int64_t max_tokens = 256;
// Past ~130 tokens the backward's (N,N) operands no longer sit in L1/L2 the way
// these loops want and the packed SGEMM is as fast or faster (measured at
// N = 145 and 197 on 1 and 2 threads: 1-8% slower here); the forward still wins.
inline constexpr int64_t max_tokens_backward = 128;
inline constexpr int64_t max_head_dim = 128;

/// Shapes the forward takes; others go through ops::gemm.
inline bool supported(int64_t N, int64_t D) {
  return N >= 1 && N <= max_tokens && D >= 8 && D <= max_head_dim && D % 8 == 0;
}

/// Shapes the backward takes.
inline bool supported_backward(int64_t N, int64_t D) {
  return supported(N, D) && N <= max_tokens_backward;
}

// C[0:MR, 0:8·NV] = alpha · A·B with A[r,k] = a[r·ars + k·aks], B[k,j] =
// b[k·ldb + j]. MR·NV <= 12 accumulators + NV right vectors + 1 broadcast fit
// the 16 ymm. Not inlined: inside a larger function GCC runs out of the 16 ymm
// registers for 4x3 and spills a B vector per k (measured slower).
template <int MR, int NV>
[[gnu::noinline]] void tile(int64_t K, const float* a, int64_t ars, int64_t aks, const float* b,
                            int64_t ldb, float* c, int64_t ldc, float alpha) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm256_loadu_ps(b + k * ldb + 8 * v);
      // Keeps the vector in a register: GCC would otherwise fold the load into
      // each of the MR FMAs, and MR·NV loads per k saturate the load ports.
      __asm__("" : "+x"(bv[v]));
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * ars + k * aks);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      _mm256_storeu_ps(c + r * ldc + 8 * v, _mm256_mul_ps(acc[r][v], va));
}

// rows x nv tile (rows <= R, nv <= NV) dispatched to its exact shape.
template <int R, int NV>
inline void tile_any(int64_t rows, int64_t nv, int64_t K, const float* a, int64_t ars, int64_t aks,
                     const float* b, int64_t ldb, float* c, int64_t ldc, float alpha) {
  if (rows < R) {
    if constexpr (R > 1) tile_any<R - 1, NV>(rows, nv, K, a, ars, aks, b, ldb, c, ldc, alpha);
  } else if (nv < NV) {
    if constexpr (NV > 1) tile_any<R, NV - 1>(rows, nv, K, a, ars, aks, b, ldb, c, ldc, alpha);
  } else {
    tile<R, NV>(K, a, ars, aks, b, ldb, c, ldc, alpha);
  }
}

inline int64_t padded(int64_t n) { return (n + 7) / 8 * 8; }

// x (N,D) with row stride ld -> xt (D,Np), columns N..Np-1 zero; D % 8 == 0.
inline void transpose_into(const float* x, int64_t ld, int64_t N, int64_t D, float* xt) {
  const int64_t np = padded(N);
  int64_t n = 0;
  for (; n + 8 <= N; n += 8) {
    for (int64_t d = 0; d < D; d += 8) {
      const float* s = x + n * ld + d;
      __m256 r0 = _mm256_loadu_ps(s + 0 * ld), r1 = _mm256_loadu_ps(s + 1 * ld);
      __m256 r2 = _mm256_loadu_ps(s + 2 * ld), r3 = _mm256_loadu_ps(s + 3 * ld);
      __m256 r4 = _mm256_loadu_ps(s + 4 * ld), r5 = _mm256_loadu_ps(s + 5 * ld);
      __m256 r6 = _mm256_loadu_ps(s + 6 * ld), r7 = _mm256_loadu_ps(s + 7 * ld);
      sgemm_avx2_impl::transpose_8x8(r0, r1, r2, r3, r4, r5, r6, r7);
      float* t = xt + d * np + n;
      _mm256_storeu_ps(t + 0 * np, r0);
      _mm256_storeu_ps(t + 1 * np, r1);
      _mm256_storeu_ps(t + 2 * np, r2);
      _mm256_storeu_ps(t + 3 * np, r3);
      _mm256_storeu_ps(t + 4 * np, r4);
      _mm256_storeu_ps(t + 5 * np, r5);
      _mm256_storeu_ps(t + 6 * np, r6);
      _mm256_storeu_ps(t + 7 * np, r7);
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    float* t = xt + d * np;
    for (int64_t m = n; m < N; ++m) t[m] = x[m * ld + d];
    std::fill(t + N, t + np, 0.0f);
  }
}

// exp(x) for x <= 0: Cephes' polynomial as in Eigen's pexp, but 2^m built
// from its exponent bits (x is clamped at -87, where exp is still a normal
// float, so m >= -126). With Eigen's general pldexp, softmax_row plus a copy
// took ~1.5x as long per head.
inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);  // NaN stays NaN (maxps returns its 2nd operand)
  const __m256 m = _mm256_floor_ps(
      _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fmadd_ps(m, _mm256_set1_ps(-0.693359375f), x);
  r = _mm256_fmadd_ps(m, _mm256_set1_ps(2.12194440e-4f), r);
  const __m256 r2 = _mm256_mul_ps(r, r), r3 = _mm256_mul_ps(r2, r);
  __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500E-4f), r, _mm256_set1_ps(1.3981999507E-3f));
  __m256 y1 =
      _mm256_fmadd_ps(_mm256_set1_ps(4.1665795894E-2f), r, _mm256_set1_ps(1.6666665459E-1f));
  const __m256 y2 = _mm256_add_ps(r, _mm256_set1_ps(1.0f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
  y1 = _mm256_fmadd_ps(y1, r, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, r3, y1);
  y = _mm256_fmadd_ps(y, r2, y2);
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

inline float hmax(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)));
}

inline float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  return _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)));
}

// Row softmax over s: (N,Np) scores with N valid columns, in place (padding
// left 0), also written to p: (N,N). Passes over all rows rather than over
// one row at a time: each row's max and sum end in a horizontal reduction,
// and only independent rows let those latencies overlap.
inline void softmax_rows(float* s, int64_t np, int64_t N, float* p) {
  const int64_t last = np - 8;  // the one vector that may hold padding
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(N - last)), lanes);
  const __m256 keep = _mm256_castsi256_ps(valid);
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  float stat[max_tokens];  // row max, then 1 / row sum
  for (int64_t i = 0; i < N; ++i) {
    const float* row = s + i * np;
    __m256 mx = _mm256_blendv_ps(ninf, _mm256_load_ps(row + last), keep);
    for (int64_t j = 0; j < last; j += 8) mx = _mm256_max_ps(mx, _mm256_load_ps(row + j));
    stat[i] = hmax(mx);
  }
  for (int64_t i = 0; i < N; ++i) {
    float* row = s + i * np;
    const __m256 m = _mm256_set1_ps(stat[i]);
    for (int64_t j = 0; j < last; j += 8)
      _mm256_store_ps(row + j, exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(row + j), m)));
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(row + last), m));
    _mm256_store_ps(row + last, _mm256_and_ps(e, keep));
  }
  for (int64_t i = 0; i < N; ++i) {
    const float* row = s + i * np;
    __m256 sum = _mm256_load_ps(row + last);
    for (int64_t j = 0; j < last; j += 8) sum = _mm256_add_ps(sum, _mm256_load_ps(row + j));
    stat[i] = 1.0f / hsum(sum);
  }
  for (int64_t i = 0; i < N; ++i) {
    float* row = s + i * np;
    float* out = p + i * N;
    const __m256 inv = _mm256_set1_ps(stat[i]);
    for (int64_t j = 0; j <= last; j += 8) {
      const __m256 y = _mm256_mul_ps(_mm256_load_ps(row + j), inv);
      _mm256_store_ps(row + j, y);
      // A full store at `last` spills into the following rows of p, which
      // later i overwrite; only where it would leave this head's p is the
      // tail stored exactly.
      if (j < last || i * N + np <= N * N) {
        _mm256_storeu_ps(out + j, y);
      } else {
        for (int64_t t = j; t < N; ++t) out[t] = row[t];
      }
    }
  }
}

/// The row mask of a head without dropout: the head functions skip every mask step.
struct no_mask {
  static constexpr bool active = false;
  void operator()(int64_t, const float*, float*) const {}
};

inline sgemm_avx2_impl::aligned_buffer& scratch() {
  thread_local sgemm_avx2_impl::aligned_buffer buffer;
  return buffer;
}

// Pulls the next head's operands towards L2 a few rows at a time while this
// head computes. At batch 128 qkv alone is ~19 MB: a head's 65 short strided
// rows per operand come from DRAM, and without this the products wait on
// them.
class prefetcher {
 public:
  // rows of `count` elements each, `stride` elements apart (float or bf16)
  template <class T>
  void add(const T* base, int64_t rows, int64_t stride, int64_t count) {
    const int64_t size = static_cast<int64_t>(sizeof(T));
    if (count_ < max_streams)
      streams_[count_++] = {reinterpret_cast<const char*>(base), rows, stride * size, count * size};
    total_ += rows;
  }
  // Spreads the rows evenly over `steps` calls of step().
  void plan(int64_t steps) { per_step_ = (total_ + steps - 1) / std::max<int64_t>(steps, 1); }
  void step() {
    for (int64_t left = per_step_; left > 0 && cur_ < count_; --left) {
      const stream& st = streams_[cur_];
      const char* row = st.base + row_ * st.stride;
      for (int64_t byte = 0; byte < st.bytes; byte += 64) _mm_prefetch(row + byte, _MM_HINT_T1);
      _mm_prefetch(row + st.bytes - 1, _MM_HINT_T1);
      if (++row_ == st.rows) row_ = 0, ++cur_;
    }
  }

 private:
  struct stream {
    const char* base;
    int64_t rows, stride, bytes;  // stride and row length in bytes
  };
  static constexpr int max_streams = 8;
  stream streams_[max_streams] = {};
  int count_ = 0, cur_ = 0;
  int64_t row_ = 0, total_ = 0, per_step_ = 0;
};

// C[0:m, 0:8·nvec] = alpha · A·B (A, B as in tile), one 8·NV-wide panel of B
// at a time so that it stays in L1 while the rows of A stream past it.
template <int MR, int NV>
inline void gemm_panels(int64_t m, int64_t nvec, int64_t K, const float* a, int64_t ars,
                        int64_t aks, const float* b, int64_t ldb, float* c, int64_t ldc,
                        float alpha, prefetcher& next) {
  for (int64_t v = 0; v < nvec; v += NV) {
    const int64_t nv = std::min<int64_t>(NV, nvec - v);
    for (int64_t i = 0; i < m; i += MR, next.step())
      tile_any<MR, NV>(std::min<int64_t>(MR, m - i), nv, K, a + i * ars, ars, aks, b + 8 * v, ldb,
                       c + i * ldc + 8 * v, ldc, alpha);
  }
}

// Tile shapes (rows x vectors): S and dP are Np wide with K = D; the rest D
// wide with K = N. 4x3 covers Np = 72 (N = 65) in whole tiles; 6x2 covers D =
// 16/32/64 and leaves a 5-row tail at N = 65. Both keep 12 accumulators in
// registers.
inline constexpr int score_rows = 4, score_vecs = 3;
inline constexpr int out_rows = 6, out_vecs = 2;

// Tiles gemm_panels runs for m rows and nvec vectors: the prefetcher's steps.
inline int64_t tiles(int64_t m, int64_t mr, int64_t nvec, int64_t nv) {
  return (m + mr - 1) / mr * ((nvec + nv - 1) / nv);
}

// One head. q,k,v: (N,D) rows of stride ld -> p: (N,N) probabilities, o: (N,D)
// rows of stride ldo (o = P'·v, P' = P ∘ mask).
template <class Mask>
inline void head_forward(const float* q, const float* k, const float* v, int64_t ld, float* p,
                         float* o, int64_t ldo, int64_t N, int64_t D, float scale,
                         prefetcher& next, const Mask& mask) {
  const int64_t np = padded(N);
  float* kt = scratch().reserve(static_cast<std::size_t>((D + N) * np));
  float* s = kt + D * np;  // (N,Np) scores, then probabilities
  next.plan(tiles(N, score_rows, np / 8, score_vecs) + tiles(N, out_rows, D / 8, out_vecs));
  transpose_into(k, ld, N, D, kt);
  gemm_panels<score_rows, score_vecs>(N, np / 8, D, q, ld, 1, kt, np, s, np, scale, next);
  softmax_rows(s, np, N, p);
  if constexpr (Mask::active)
    for (int64_t i = 0; i < N; ++i) mask(i, s + i * np, s + i * np);  // padding stays 0
  gemm_panels<out_rows, out_vecs>(N, D / 8, N, s, np, 1, v, ld, o, ldo, 1.0f, next);
}

// One head. g: (N,D) rows of stride ldg (dO); p: (N,N) undropped -> dq, dk, dv:
// (N,D) rows of stride ld.
template <class Mask>
inline void head_backward(const float* q, const float* k, const float* v, int64_t ld,
                          const float* p, const float* g, int64_t ldg, float* dq, float* dk,
                          float* dv, int64_t N, int64_t D, float scale, prefetcher& next,
                          const Mask& mask) {
  const int64_t np = padded(N);
  float* vt = scratch().reserve(static_cast<std::size_t>((D + N) * np));
  float* ds = vt + D * np;  // (N,Np): dP, then dS·scale (with a mask: P' first)
  next.plan(3 * tiles(N, out_rows, D / 8, out_vecs) + tiles(N, score_rows, np / 8, score_vecs));
  if constexpr (Mask::active) {
    // dV = P'ᵀ·dO, P' = P ∘ mask formed in the dP scratch
    for (int64_t i = 0; i < N; ++i) mask(i, p + i * N, ds + i * np);
    gemm_panels<out_rows, out_vecs>(N, D / 8, N, ds, 1, np, g, ldg, dv, ld, 1.0f, next);
  } else {
    // dV = Pᵀ·dO
    gemm_panels<out_rows, out_vecs>(N, D / 8, N, p, 1, N, g, ldg, dv, ld, 1.0f, next);
  }
  // dP = dO·Vᵀ
  transpose_into(v, ld, N, D, vt);
  gemm_panels<score_rows, score_vecs>(N, np / 8, D, g, ldg, 1, vt, np, ds, np, 1.0f, next);
  // dS = P ⊙ (dP − Σ dP·P), times the score scale so dQ and dK need no alpha
  for (int64_t i = 0; i < N; ++i) {
    const float* pr = p + i * N;
    float* dr = ds + i * np;
    if constexpr (Mask::active) mask(i, dr, dr);  // dP = dP' ∘ mask
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < N; ++j) dot += dr[j] * pr[j];
#pragma omp simd
    for (int64_t j = 0; j < N; ++j) dr[j] = pr[j] * (dr[j] - dot) * scale;
  }
  // dQ = dS·K
  gemm_panels<out_rows, out_vecs>(N, D / 8, N, ds, np, 1, k, ld, dq, ld, 1.0f, next);
  // dK = dSᵀ·Q
  gemm_panels<out_rows, out_vecs>(N, D / 8, N, ds, 1, np, q, ld, dk, ld, 1.0f, next);
}

// Head bh of qkv: (B,N,3C) -> out: (B,N,C), probs: (B,H,N,N); warms head bh+1.
// Both head functions stay out of line, as GCC compiled them before they took
// a mask: inlined (with and without a mask) into the OpenMP body, they ran
// slower at p = 0.
template <class Mask = no_mask>
[[gnu::noinline]] void forward_head(const float* qkv, float* out, float* probs, int64_t bh, int64_t B,
                         int64_t N, int64_t C, int64_t H, float scale, const Mask& mask = {}) {
  const int64_t D = C / H, ld = 3 * C;
  auto q_of = [&](int64_t i) { return qkv + (i / H) * N * ld + (i % H) * D; };
  prefetcher next;
  if (bh + 1 < B * H) {
    const float* nq = q_of(bh + 1);
    for (int s = 0; s < 3; ++s) next.add(nq + s * C, N, ld, D);
    // Outputs too: a store to a line in no cache waits for it to be read from
    // DRAM.
    next.add(probs + (bh + 1) * N * N, N, N, N);
    next.add(out + ((bh + 1) / H) * N * C + ((bh + 1) % H) * D, N, C, D);
  }
  const float* q = q_of(bh);
  head_forward(q, q + C, q + 2 * C, ld, probs + bh * N * N, out + (bh / H) * N * C + (bh % H) * D,
               C, N, D, scale, next, mask);
}

// Head bh: dout (B,N,C), qkv (B,N,3C), probs (B,H,N,N) -> dqkv (B,N,3C); warms
// head bh+1.
template <class Mask = no_mask>
[[gnu::noinline]] void backward_head(const float* dout, const float* qkv, const float* probs, float* dqkv,
                          int64_t bh, int64_t B, int64_t N, int64_t C, int64_t H, float scale,
                          const Mask& mask = {}) {
  const int64_t D = C / H, ld = 3 * C;
  auto row0 = [&](int64_t i) { return (i / H) * N * ld + (i % H) * D; };
  auto g_of = [&](int64_t i) { return dout + (i / H) * N * C + (i % H) * D; };
  prefetcher next;
  if (bh + 1 < B * H) {
    next.add(probs + (bh + 1) * N * N, N, N, N);
    next.add(g_of(bh + 1), N, C, D);
    const float* nq = qkv + row0(bh + 1);
    for (int s = 0; s < 3; ++s) next.add(nq + (2 - s) * C, N, ld, D);
    float* ndq = dqkv + row0(bh + 1);
    for (int s = 0; s < 3; ++s) next.add(ndq + (2 - s) * C, N, ld, D);
  }
  const float* q = qkv + row0(bh);
  float* dq = dqkv + row0(bh);
  head_backward(q, q + C, q + 2 * C, ld, probs + bh * N * N, g_of(bh), C, dq, dq + C, dq + 2 * C, N,
                D, scale, next, mask);
}

}  // namespace vit::ops::detail::attention_avx2

#endif
