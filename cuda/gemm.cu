// Row-major GEMM through column-major cuBLAS (declared in include/vit/cuda/gemm.hpp).
// A row-major (r,c) matrix with leading dimension ld is the column-major (c,r)
// matrix with the same ld, its transpose. So C = op(A)·op(B) row-major is
// C^T = op(B)^T·op(A)^T column-major: cuBLAS gets (B, A) swapped and (N, M)
// swapped, with the same transpose flags; no data moves.
// One handle, made on first use, bound to the library stream and given a
// workspace from the caching allocator (so no cudaMalloc happens inside a
// captured graph). Its math mode follows vit::cuda::allow_tf32() at every call.
// Split-K atomics stay off (cuBLAS's default), so results are repeatable.
#include <cublas_v2.h>

#include <climits>

#include "common.cuh"
#include "vit/cuda/gemm.hpp"

#define VIT_CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                           \
    const cublasStatus_t vit_st_ = (expr);                                                       \
    if (vit_st_ != CUBLAS_STATUS_SUCCESS)                                                        \
      ::vit::detail::throw_error(__FILE__, __LINE__, #expr, ": ", cublasGetStatusString(vit_st_)); \
  } while (0)

namespace vit::cuda {

namespace {

// 32 MiB, NVIDIA's recommendation for Hopper.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

struct Blas {
  cublasHandle_t handle = nullptr;
  Blas() {
    VIT_CUBLAS_CHECK(cublasCreate(&handle));
    VIT_CUBLAS_CHECK(cublasSetStream(handle, detail::stream()));
    // After cublasSetStream, which resets the workspace to cuBLAS's own pool.
    VIT_CUBLAS_CHECK(cublasSetWorkspace(handle, allocate(kWorkspaceBytes), kWorkspaceBytes));
  }
  // Never destroyed: a static destructor could run after the CUDA context is gone.
};

cublasHandle_t handle() {
  static Blas* blas = new Blas();
  VIT_CUBLAS_CHECK(cublasSetMathMode(blas->handle,
                                     allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return blas->handle;
}

cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

/// Shapes and leading dimensions as ops::gemm reads them (row-major, ld >= the
/// stored row length); false when there is nothing to compute.
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

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!check("gemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  VIT_CUBLAS_CHECK(cublasSgemm(handle(), op(trans_b), op(trans_a), static_cast<int>(N),
                               static_cast<int>(M), static_cast<int>(K), &alpha, B,
                               static_cast<int>(ldb), A, static_cast<int>(lda), &beta, C,
                               static_cast<int>(ldc)));
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                          int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  VIT_CHECK(fits_int(batch), "cuda::gemm_strided_batched: batch ", batch, " must be in [0, INT_MAX]");
  VIT_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0,
            "cuda::gemm_strided_batched: negative stride");
  if (!check("gemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc) || batch == 0)
    return;
  // Outputs must not overlap, or the batch's results would depend on order.
  VIT_CHECK(batch == 1 || stride_c >= (M - 1) * ldc + N,
            "cuda::gemm_strided_batched: stride_c ", stride_c, " makes the ", batch,
            " outputs overlap (M=", M, " N=", N, " ldc=", ldc, ")");
  VIT_CUBLAS_CHECK(cublasSgemmStridedBatched(
      handle(), op(trans_b), op(trans_a), static_cast<int>(N), static_cast<int>(M), static_cast<int>(K),
      &alpha, B, static_cast<int>(ldb), stride_b, A, static_cast<int>(lda), stride_a, &beta, C,
      static_cast<int>(ldc), stride_c, static_cast<int>(batch)));
}

}  // namespace vit::cuda
