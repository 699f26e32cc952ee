// gemm: the one matrix-multiply entry point of the CPU backend.
//   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C [+ bias(N) on every row],
//   all row-major, op(X) = X or X^T, leading dimensions in elements; optionally
//   also a_row_sums(M) += op(A)·1 (a Linear layer's bias gradient, from the
//   weight-gradient product, where the AVX2 path gets it from its packed A).
// float goes to our packed micro-kernels (packed_gemm.hpp): AVX-512 where the
// build targets it (gemm_avx512.hpp), else AVX2+FMA (sgemm_avx2.hpp), both
// faster than Eigen's here; double and other hosts use Eigen. Call it outside
// OpenMP regions: it threads itself. Inside a parallel region it runs on the
// calling thread only (that is what attention's per-head products want).
// bf16: bf16 operands, fp32 accumulation, C rounded once, as cuBLASLt. With
// AVX512-BF16 the packed kernel multiplies bf16 pairs with vdpbf16ps and
// writes bf16 C directly where the product is one pass over C (else through a
// float C); elsewhere A, B, bias (and C when beta != 0, a_row_sums) are
// widened to float, the float GEMM runs, and C (and the row sums) are rounded
// back once (the reference). alpha and beta are compute_t<T> (float for bf16).
#pragma once

#include "vit/core/eigen.hpp"
#include <cstdint>

#include "vit/core/device.hpp"
#include "vit/cuda/elementwise.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"
#include "vit/ops/detail/gemm_avx512.hpp"
#include "vit/ops/detail/sgemm_avx2.hpp"
#include "vit/ops/dispatch.hpp"

namespace vit::ops {

/// The CPU GEMM kernels this build compiled in, chosen by the target ISA at
/// build time: "avx512-bf16", "avx512", "avx2" or "eigen".
inline constexpr const char* cpu_gemm_kernels = VIT_HAVE_SBGEMM_AVX512  ? "avx512-bf16"
                                                : VIT_HAVE_SGEMM_AVX512 ? "avx512"
                                                : VIT_HAVE_SGEMM_AVX2   ? "avx2"
                                                                        : "eigen";
/// Whether bf16 products run natively on the CPU (vdpbf16ps). Without it a
/// bf16 model computes through float32 and is no faster than fp32.
inline constexpr bool cpu_bf16_native = VIT_HAVE_SBGEMM_AVX512;

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

/// Elements a row-major (rows, cols) operand with leading dimension ld spans.
inline int64_t gemm_span(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

inline void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                      int64_t lda, const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc,
                      const bf16* bias, bf16* a_row_sums);
}  // namespace detail

/// bias: N values added to every row of C (a Linear layer's), or null.
/// a_row_sums: M values that get sum_k op(A)(i,k) added (alpha not applied), or null.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, compute_t<T> alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, compute_t<T> beta, T* C, int64_t ldc,
          const T* bias = nullptr, T* a_row_sums = nullptr) {
  if (M == 0 || (N == 0 && a_row_sums == nullptr)) return;
  if constexpr (is_bf16_v<T>) {
    detail::gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, a_row_sums);
    return;
  }
#if VIT_HAVE_SGEMM_AVX512
  if constexpr (std::is_same_v<T, float>) {
    detail::sgemm_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                         a_row_sums);
    return;
  }
#elif VIT_HAVE_SGEMM_AVX2
  if constexpr (std::is_same_v<T, float>) {
    detail::sgemm_avx2(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                       a_row_sums);
    return;
  }
#endif
  if constexpr (!is_bf16_v<T>)
    detail::gemm_eigen<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias,
                          a_row_sums);
}

/// bf16 products (threaded as gemm<float> is, or on the calling thread inside
/// a parallel region). Only the M×N elements of C are written (ldc > N
/// leaves the gaps alone).
inline void detail::gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                              const bf16* A, int64_t lda, const bf16* B, int64_t ldb, float beta,
                              bf16* C, int64_t ldc, const bf16* bias, bf16* a_row_sums) {
  const TensorF bias_f = widen(bias, bias ? N : 0);
  TensorF sums = widen(a_row_sums, a_row_sums ? M : 0);
  const float* const bias_p = bias ? bias_f.data() : nullptr;
  float* const sums_p = a_row_sums ? sums.data() : nullptr;
  const auto narrow_sums = [&] {
    if (a_row_sums)
      for (int64_t i = 0; i < M; ++i) a_row_sums[i] = bf16(sums_p[i]);
  };
#if VIT_HAVE_SBGEMM_AVX512
  if (sbgemm_writes_bf16(ta, tb, M, N, K)) {
    sbgemm_avx512_to_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias_p, sums_p);
    narrow_sums();
    return;
  }
#endif
  TensorF c = TensorF::empty({M * N});
  float* cf = c.data();
  const bool big = M * N > 65536;
  if (beta != 0.f) {  // beta == 0: C is not read
#pragma omp parallel for schedule(static) if (big)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) cf[i * N + j] = float(C[i * ldc + j]);
  }
#if VIT_HAVE_SBGEMM_AVX512
  sbgemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, cf, N, bias_p, sums_p);
#else
  const TensorF a = widen(A, gemm_span(ta ? K : M, ta ? M : K, lda));
  const TensorF b = widen(B, gemm_span(tb ? N : K, tb ? K : N, ldb));
  gemm<float>(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, cf, N, bias_p, sums_p);
#endif
#pragma omp parallel for schedule(static) if (big)
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = bf16(cf[i * N + j]);
  narrow_sums();
}

/// The same product on `dev`: cuBLAS on CUDA, with the bias added by a
/// row-broadcast kernel and a_row_sums (only for op(A) = Aᵀ with lda == M, the
/// Linear weight-gradient case) by the column-sum kernel. bf16: cuBLASLt
/// (fp32 accumulation) with the bias in its epilogue (cuda::gemm_bias, any
/// beta: no pass over C), a_row_sums by the column-sum kernel (float sums).
template <class T>
void gemm(Device dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, compute_t<T> alpha,
          const T* A, int64_t lda, const T* B, int64_t ldb, compute_t<T> beta, T* C, int64_t ldc,
          const T* bias = nullptr, T* a_row_sums = nullptr) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaFloat<T>) {
      VIT_CHECK(!bias || ldc == N, "gemm (cuda): a bias needs ldc == N");
      VIT_CHECK(!a_row_sums || (trans_a && lda == M), "gemm (cuda): row sums need op(A) = A^T, lda == M");
      if (M == 0) return;
      if (N > 0) cuda::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      if (bias && N > 0) cuda::add_row_broadcast(C, bias, C, M, N);
      if (a_row_sums) cuda::column_sums_accumulate(A, a_row_sums, K, M);
    } else if constexpr (detail::kCudaBf16<T>) {
      VIT_CHECK(!a_row_sums || (trans_a && lda == M), "gemm (cuda): row sums need op(A) = A^T, lda == M");
      if (M == 0) return;
      if (N > 0 && bias) cuda::gemm_bias(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
      else if (N > 0) cuda::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      if (a_row_sums) cuda::column_sums_accumulate(A, a_row_sums, K, M);
    } else {
      detail::cuda_branch_missing("gemm");
    }
    return;
  }
  gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, a_row_sums);
}

/// bf16 operands into an fp32 C: C = alpha·op(A)·op(B) + beta·C with fp32
/// accumulation and no rounding of C (a weight gradient accumulated straight
/// into an fp32 master gradient, beta = 1). CPU: the vdpbf16ps kernel, or the
/// float GEMM of the widened operands without AVX512-BF16; CUDA: cuBLASLt with bf16 A/B and fp32 C. T must be bf16.
template <class T>
void gemm_mixed(Device dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const T* A, int64_t lda, const T* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static_assert(is_bf16_v<T>, "gemm_mixed: bf16 operands");
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaBf16<T>) {
      if (M == 0 || N == 0) return;
      cuda::gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
      detail::cuda_branch_missing("gemm");
    }
    return;
  }
  if (M == 0 || N == 0) return;
#if VIT_HAVE_SBGEMM_AVX512
  detail::sbgemm_avx512(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  const TensorF a = detail::widen(A, detail::gemm_span(trans_a ? K : M, trans_a ? M : K, lda));
  const TensorF b = detail::widen(B, detail::gemm_span(trans_b ? N : K, trans_b ? K : N, ldb));
  gemm<float>(trans_a, trans_b, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, C, ldc);
#endif
}

/// `batch` independent products whose matrices lie stride_* elements apart
/// (torch.matmul over batch dims): one strided-batched cuBLAS / cuBLASLt call
/// on CUDA (float and bf16), a loop of gemm on the CPU.
template <class T>
void gemm_batched(Device dev, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  compute_t<T> alpha, const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
                  int64_t stride_b, compute_t<T> beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) {
      if (batch == 0 || M == 0 || N == 0) return;
      cuda::gemm_strided_batched(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta,
                                 C, ldc, stride_c, batch);
    } else {
      detail::cuda_branch_missing("gemm");
    }
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    gemm<T>(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
            C + i * stride_c, ldc);
}

}  // namespace vit::ops
