// The emulated backend's GEMM (include/vit/cuda/gemm.hpp; cuBLAS in
// cuda/gemm.cu): plain loops accumulating in double, in gemm.hpp's row-major
// convention, with the real launcher's argument checks and messages. With
// allow_tf32() on, A and B are first rounded to TF32 (10 mantissa bits, round
// to nearest, ties away, as cvt.rna.tf32.f32), so a test that turns TF32 on
// sees errors of TF32's size, not exact products. beta == 0 never reads C.
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_backend.hpp"
#include "vit/core/error.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/cuda/runtime.hpp"

namespace vit::cuda {
namespace {

std::atomic<uint64_t> g_calls{0};

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/// As cuda/gemm.cu's check: false when there is nothing to compute.
bool check(const char* what, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, const float* C, int64_t ldc) {
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

void gemm_one(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const bool tf32 = allow_tf32();
  auto a = [&](int64_t i, int64_t k) {
    const float v = ta ? A[k * lda + i] : A[i * lda + k];
    return static_cast<double>(tf32 ? to_tf32(v) : v);
  };
  auto b = [&](int64_t k, int64_t j) {
    const float v = tb ? B[j * ldb + k] : B[k * ldb + j];
    return static_cast<double>(tf32 ? to_tf32(v) : v);
  };
#pragma omp parallel for schedule(static) if (M * N * K > (int64_t(1) << 20))
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += a(i, k) * b(k, j);
      float& c = C[i * ldc + j];
      const double scaled = static_cast<double>(alpha) * acc;
      c = static_cast<float>(beta == 0.f ? scaled : scaled + static_cast<double>(beta) * c);
    }
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
  VIT_CHECK(fits_int(batch), "cuda::gemm_strided_batched: batch ", batch, " must be in [0, INT_MAX]");
  VIT_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0,
            "cuda::gemm_strided_batched: negative stride");
  if (!check("gemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc) || batch == 0)
    return;
  VIT_CHECK(batch == 1 || stride_c >= (M - 1) * ldc + N,
            "cuda::gemm_strided_batched: stride_c ", stride_c, " makes the ", batch,
            " outputs overlap (M=", M, " N=", N, " ldc=", ldc, ")");
  for (int64_t i = 0; i < batch; ++i)
    gemm_one(trans_a, trans_b, M, N, K, alpha, A ? A + i * stride_a : nullptr, lda,
             B ? B + i * stride_b : nullptr, ldb, beta, C + i * stride_c, ldc);
}

uint64_t emulated::gemm_calls() { return g_calls.load(); }

}  // namespace vit::cuda
