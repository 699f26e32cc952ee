// gemm: the one matrix-multiply entry point of the CPU backend.
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C [+ bias(N) on every row],
//   all row-major, op(X) = X or X^T, leading dimensions in elements; optionally
//   also a_row_sums(M) += op(A)·1 (a Linear layer's bias gradient, from the
//   weight-gradient product, where the AVX2 path gets it from its packed A).
// float on an AVX2+FMA host goes to our packed micro-kernel (sgemm_avx2.hpp),
// which beats Eigen's here; double and other hosts use Eigen. Call it outside
// OpenMP regions: it threads itself. Inside a parallel region it runs on the
// calling thread only (that is what attention's per-head products want).
#pragma once

#include "vit/core/eigen.hpp"
#include <cstdint>

#include "vit/core/device.hpp"
#include "vit/cuda/elementwise.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/ops/detail/sgemm_avx2.hpp"
#include "vit/ops/dispatch.hpp"

namespace vit::ops {

namespace detail {
template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const RowMajor<T>, 0, Eigen::OuterStride<>>;
template <class T>
using MutMap = Eigen::Map<RowMajor<T>, 0, Eigen::OuterStride<>>;

template <class T>
void gemm_eigen(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
                const T* bias = nullptr, T* a_row_sums = nullptr) {
  ConstMap<T> a(A, ta ? K : M, ta ? M : K, Eigen::OuterStride<>(lda));
  ConstMap<T> b(B, tb ? N : K, tb ? K : N, Eigen::OuterStride<>(ldb));
  MutMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (a_row_sums != nullptr) {
    for (int64_t i = 0; i < M; ++i) {
      T t = 0;
      for (int64_t k = 0; k < K; ++k) t += ta ? A[k * lda + i] : A[i * lda + k];
      a_row_sums[i] += t;
    }
  }
  if (N == 0) return;
  if (bias != nullptr) {
    // A pass over C before the product; plain loops, so it may thread.
#pragma omp parallel for schedule(static) if (M * N > 65536)
    for (int64_t i = 0; i < M; ++i) {
      T* row = C + i * ldc;
      for (int64_t j = 0; j < N; ++j) row[j] = (beta == T(0) ? T(0) : beta * row[j]) + bias[j];
    }
  } else if (beta == T(0)) {
    c.setZero();
  } else if (beta != T(1)) {
    c *= beta;
  }
  if (!ta && !tb) c.noalias() += alpha * a * b;
  else if (!ta && tb) c.noalias() += alpha * a * b.transpose();
  else if (ta && !tb) c.noalias() += alpha * a.transpose() * b;
  else c.noalias() += alpha * a.transpose() * b.transpose();
}
}  // namespace detail

/// bias: N values added to every row of C (a Linear layer's), or null.
/// a_row_sums: M values that get sum_k op(A)(i,k) added (alpha not applied), or null.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
          const T* bias = nullptr, T* a_row_sums = nullptr) {
  if (M == 0 || (N == 0 && a_row_sums == nullptr)) return;
#if VIT_HAVE_SGEMM_AVX2
  if constexpr (std::is_same_v<T, float>) {
    detail::sgemm_avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                       a_row_sums);
    return;
  }
#endif
  detail::gemm_eigen<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                        a_row_sums);
}

/// The same product on `dev`: cuBLAS on CUDA, with the bias added by a
/// row-broadcast kernel and a_row_sums (only for op(A) = Aᵀ with lda == M, the
/// Linear weight-gradient case) by the column-sum kernel.
template <class T>
void gemm(Device dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc,
          const T* bias = nullptr, T* a_row_sums = nullptr) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaFloat<T>) {
      VIT_CHECK(!bias || ldc == N, "gemm (cuda): a bias needs ldc == N");
      VIT_CHECK(!a_row_sums || (trans_a && lda == M), "gemm (cuda): row sums need op(A) = A^T, lda == M");
      if (M == 0) return;
      if (N > 0) cuda::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      if (bias && N > 0) cuda::add_row_broadcast(C, bias, C, M, N);
      if (a_row_sums) cuda::column_sums_accumulate(A, a_row_sums, K, M);
    } else {
      detail::cuda_branch_missing("gemm");
    }
    return;
  }
  gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, a_row_sums);
}

}  // namespace vit::ops
