// GEMM on the GPU through cuBLAS (cuda/gemm.cu), ops::gemm's convention:
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, all row-major,
//   op(X) = X or X^T, leading dimensions in elements.
// float: cublasSgemm; TF32 tensor cores are used when vit::cuda::allow_tf32()
// is on. bf16: cuBLASLt with bf16 A, B and C, fp32 accumulation
// (CUBLAS_COMPUTE_32F) and fp32 alpha/beta, C rounded once (to nearest even);
// one cached handle and workspace, matmul descriptors and the chosen algorithm
// cached by shape and operand alignment, so a steady-state call allocates
// nothing. bf16 with K == 0 (C = beta·C, + bias) needs ldc == N unless beta
// == 1 without a bias. Device pointers, work queued on vit::cuda::stream().
// No CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// beta == 0: C is not read (NaN/garbage in C does not propagate), as BLAS.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

/// `batch` independent products, matrices `stride_*` elements apart (cublasSgemmStridedBatched).
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                          int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                          int64_t batch);

/// bf16 operands and result, fp32 accumulation and fp32 alpha/beta (beta == 1
/// reads C in bf16, adds in fp32, rounds once: a weight gradient's +=).
/// beta == 0: C is not read.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
          int64_t lda, const vit::bf16* B, int64_t ldb, float beta, vit::bf16* C, int64_t ldc);

/// The bf16 product with a bias of N bf16 values added to every row of C in
/// cuBLASLt's epilogue (CUBLASLT_EPILOGUE_BIAS): C = alpha·op(A)·op(B) + beta·C + bias,
/// rounded once; no separate pass over C. bias must not be null.
void gemm_bias(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const vit::bf16* A, int64_t lda, const vit::bf16* B, int64_t ldb, float beta,
               vit::bf16* C, int64_t ldc, const vit::bf16* bias);

/// bf16 operands into an fp32 C (cuBLASLt, bf16 A/B, fp32 C/D, fp32
/// accumulation): a weight gradient accumulated straight into its fp32
/// master gradient (beta == 1), with no bf16 rounding of C at all.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
          int64_t lda, const vit::bf16* B, int64_t ldb, float beta, float* C, int64_t ldc);

/// `batch` independent bf16 products (strided-batched cuBLASLt layouts), fp32 accumulation.
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const vit::bf16* A, int64_t lda, int64_t stride_a, const vit::bf16* B,
                          int64_t ldb, int64_t stride_b, float beta, vit::bf16* C, int64_t ldc,
                          int64_t stride_c, int64_t batch);

}  // namespace vit::cuda
