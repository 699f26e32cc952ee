// The emulated backend's GEMM (include/vit/cuda/gemm.hpp; cuBLAS in
// cuda/gemm.cu): plain loops accumulating in double, in gemm.hpp's row-major
// convention, with the real launcher's argument checks and messages. With
// allow_tf32() on, A and B are first rounded to TF32 (10 mantissa bits, round
// to nearest, ties away, as cvt.rna.tf32.f32), so a test that turns TF32 on
// sees errors of TF32's size, not exact products. beta == 0 never reads C.
// bf16 (cuBLASLt's overloads in cuda/gemm.cu): the same double accumulation of
// the exact bf16 operands, then alpha·acc + beta·C (+ bias) in double, rounded
// to float and then to bf16 once (as the GPU's fp32 epilogue stores it); the
// mixed overload (bf16 operands, fp32 C) stops at float.
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "emu_backend.hpp"
#include "vit/core/error.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/cuda/runtime.hpp"

namespace vit::cuda {
namespace {

std::atomic<uint64_t> g_calls{0};

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/// As cuda/gemm.cu's check: false when there is nothing to compute.
template <class E>
bool check(const char* what, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const E* A,
           int64_t lda, const E* B, int64_t ldb, const void* C, int64_t ldc) {
  VIT_CHECK(fits_int(M) && fits_int(N) && fits_int(K), "cuda::", what, ": sizes M=", M, " N=", N,
            " K=", K, " must be in [0, INT_MAX]");
  const int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
  VIT_CHECK(fits_int(lda) && fits_int(ldb) && fits_int(ldc) && lda >= (a_cols > 1 ? a_cols : 1) &&
                ldb >= (b_cols > 1 ? b_cols : 1) && ldc >= (N > 1 ? N : 1),
            "cuda::", what, ": leading dimensions lda=", lda, " ldb=", ldb, " ldc=", ldc,
            " too small for ", ta ? "A^T" : "A", " * ", tb ? "B^T" : "B", " with M=", M, " N=", N,
            " K=", K);
  if (M == 0 || N == 0) return false;
  VIT_CHECK(C && ((A && B) || K == 0), "cuda::", what, ": null pointer");
  return true;
}

float to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // finite: round
  std::memcpy(&x, &u, 4);
  return x;
}

/// E: the operands' type; CE: C's (fp32 C with bf16 operands: the mixed overload).
template <class E, class CE>
void gemm_one(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const E* A,
              int64_t lda, const E* B, int64_t ldb, float beta, CE* C, int64_t ldc,
              const E* bias = nullptr) {
  const bool tf32 = std::is_same_v<E, float> && allow_tf32();  // bf16 values are TF32 values
  auto a = [&](int64_t i, int64_t k) {
    const float v = static_cast<float>(ta ? A[k * lda + i] : A[i * lda + k]);
    return static_cast<double>(tf32 ? to_tf32(v) : v);
  };
  auto b = [&](int64_t k, int64_t j) {
    const float v = static_cast<float>(tb ? B[j * ldb + k] : B[k * ldb + j]);
    return static_cast<double>(tf32 ? to_tf32(v) : v);
  };
#pragma omp parallel for schedule(static) if (M * N * K > (int64_t(1) << 20))
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += a(i, k) * b(k, j);
      CE& c = C[i * ldc + j];
      double r = static_cast<double>(alpha) * acc;
      if (beta != 0.f) r += static_cast<double>(beta) * static_cast<double>(static_cast<float>(c));
      if (bias != nullptr) r += static_cast<double>(static_cast<float>(bias[j]));
      c = CE(static_cast<float>(r));
    }
}

/// As cuda/gemm.cu's K == 0 rules for bf16: nothing to do for beta == 1
/// without a bias (true), else C = beta·C (+ bias), which needs a packed C
/// there; the loops compute it (false).
bool bf16_empty_inner(const char* what, int64_t M, int64_t N, int64_t K, float beta, int64_t ldc,
                      const vit::bf16* bias) {
  if (K != 0) return false;
  if (beta == 1.f && bias == nullptr) return true;
  VIT_CHECK(ldc == N || M == 1, "cuda::", what, " (bf16): K == 0 with beta != 1 or a bias needs ldc == N");
  return false;
}

void check_batch(int64_t stride_a, int64_t stride_b, int64_t stride_c, int64_t batch) {
  VIT_CHECK(fits_int(batch), "cuda::gemm_strided_batched: batch ", batch, " must be in [0, INT_MAX]");
  VIT_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0,
            "cuda::gemm_strided_batched: negative stride");
}

void check_no_overlap(int64_t M, int64_t N, int64_t ldc, int64_t stride_c, int64_t batch) {
  VIT_CHECK(batch == 1 || stride_c >= (M - 1) * ldc + N,
            "cuda::gemm_strided_batched: stride_c ", stride_c, " makes the ", batch,
            " outputs overlap (M=", M, " N=", N, " ldc=", ldc, ")");
}

template <class E>
void batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const E* A,
             int64_t lda, int64_t stride_a, const E* B, int64_t ldb, int64_t stride_b, float beta, E* C,
             int64_t ldc, int64_t stride_c, int64_t batch) {
  for (int64_t i = 0; i < batch; ++i)
    gemm_one(trans_a, trans_b, M, N, K, alpha, A ? A + i * stride_a : nullptr, lda,
             B ? B + i * stride_b : nullptr, ldb, beta, C + i * stride_c, ldc);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (!check("gemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  gemm_one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                          int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  check_batch(stride_a, stride_b, stride_c, batch);
  if (!check("gemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc) || batch == 0)
    return;
  check_no_overlap(M, N, ldc, stride_c, batch);
  batched(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
          batch);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
          int64_t lda, const vit::bf16* B, int64_t ldb, float beta, vit::bf16* C, int64_t ldc) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (!check("gemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (bf16_empty_inner("gemm", M, N, K, beta, ldc, nullptr)) return;
  gemm_one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
          int64_t lda, const vit::bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (!check("gemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (bf16_empty_inner("gemm", M, N, K, beta, ldc, nullptr)) return;
  gemm_one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bias(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const vit::bf16* A, int64_t lda, const vit::bf16* B, int64_t ldb, float beta,
               vit::bf16* C, int64_t ldc, const vit::bf16* bias) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  VIT_CHECK(bias != nullptr, "cuda::gemm_bias: null bias");
  if (!check("gemm_bias", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (bf16_empty_inner("gemm_bias", M, N, K, beta, ldc, bias)) return;
  gemm_one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const vit::bf16* A, int64_t lda, int64_t stride_a, const vit::bf16* B,
                          int64_t ldb, int64_t stride_b, float beta, vit::bf16* C, int64_t ldc,
                          int64_t stride_c, int64_t batch) {
  g_calls.fetch_add(1, std::memory_order_relaxed);
  check_batch(stride_a, stride_b, stride_c, batch);
  if (!check("gemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc) || batch == 0)
    return;
  check_no_overlap(M, N, ldc, stride_c, batch);
  if (K == 0 && beta == 1.f) return;
  VIT_CHECK(K > 0, "cuda::gemm_strided_batched (bf16): K == 0 is only supported with beta == 1");
  batched(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
          batch);
}

uint64_t emulated::gemm_calls() { return g_calls.load(); }

}  // namespace vit::cuda
