// GEMM on the GPU through cuBLAS (cuda/gemm.cu), ops::gemm's convention:
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, all row-major,
//   op(X) = X or X^T, leading dimensions in elements.
// TF32 tensor cores are used when vit::cuda::allow_tf32() is on. Device
// pointers, work queued on vit::cuda::stream(). No CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// beta == 0: C is not read (NaN/garbage in C does not propagate), as BLAS.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/// `batch` independent products, matrices `stride_*` elements apart (cublasSgemmStridedBatched).
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                          int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                          int64_t batch);

}  // namespace vit::cuda
