// Row-major GEMM through column-major cuBLAS (declared in include/vit/cuda/gemm.hpp).
// A row-major (r,c) matrix with leading dimension ld is the column-major (c,r)
// matrix with the same ld, its transpose. So C = op(A)·op(B) row-major is
// C^T = op(B)^T·op(A)^T column-major: cuBLAS gets (B, A) swapped and (N, M)
// swapped, with the same transpose flags; no data moves.
// One handle, made on first use, bound to the library stream and given a
// workspace from the caching allocator (so no cudaMalloc happens inside a
// captured graph). Its math mode follows vit::cuda::allow_tf32() at every call.
// Split-K atomics stay off (cuBLAS's default), so results are repeatable.
//
// bf16 goes through cuBLASLt (the same row-major-as-transposed-column-major
// swap): bf16 A and B, C and D bf16 (rounded once) or fp32 (the mixed
// overload), CUBLAS_COMPUTE_32F with fp32 alpha/beta; gemm_bias adds the bias
// in the epilogue (CUBLASLT_EPILOGUE_BIAS), or, where cuBLASLt offers no
// algorithm with it, by the row-broadcast kernel after the product. One Lt
// handle and the same workspace as the cuBLAS handle (both run in order on
// the one stream). Each distinct problem (transposes, sizes, leading
// dimensions, batch strides, epilogue, C's type and the operands' alignment,
// which limits the algorithms cuBLASLt may pick) gets its matmul descriptor,
// layouts and heuristic algorithm once, cached for the process: a
// steady-state call allocates nothing, only sets the bias pointer and queues
// the matmul. The algorithm of a problem is fixed once chosen, so a run is
// repeatable (cuBLAS's run-to-run reproducibility on one GPU model).
// K == 0 (C = beta·C + bias) uses the elementwise kernels, not cuBLASLt.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <climits>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

#include "common.cuh"
#include "vit/cuda/elementwise.hpp"
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

/// The one workspace of both handles, from the caching allocator, never freed.
void* workspace() {
  static void* w = allocate(kWorkspaceBytes);
  return w;
}

struct Blas {
  cublasHandle_t handle = nullptr;
  Blas() {
    VIT_CUBLAS_CHECK(cublasCreate(&handle));
    VIT_CUBLAS_CHECK(cublasSetStream(handle, detail::stream()));
    // After cublasSetStream, which resets the workspace to cuBLAS's own pool.
    VIT_CUBLAS_CHECK(cublasSetWorkspace(handle, workspace(), kWorkspaceBytes));
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

void check_batch(int64_t stride_a, int64_t stride_b, int64_t stride_c, int64_t batch) {
  VIT_CHECK(fits_int(batch), "cuda::gemm_strided_batched: batch ", batch, " must be in [0, INT_MAX]");
  VIT_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0,
            "cuda::gemm_strided_batched: negative stride");
}

void check_no_overlap(int64_t M, int64_t N, int64_t ldc, int64_t stride_c, int64_t batch) {
  // Outputs must not overlap, or the batch's results would depend on order.
  VIT_CHECK(batch == 1 || stride_c >= (M - 1) * ldc + N,
            "cuda::gemm_strided_batched: stride_c ", stride_c, " makes the ", batch,
            " outputs overlap (M=", M, " N=", N, " ldc=", ldc, ")");
}

// ---- cuBLASLt (bf16) ----------------------------------------------------------------

/// A problem as the cache tells problems apart.
struct LtKey {
  bool ta, tb, bias, c_f32;  // c_f32: C and D are fp32 (A and B bf16)
  int64_t M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, batch;
  uint32_t align_a, align_b, align_c;
  auto tie() const {
    return std::tie(ta, tb, bias, c_f32, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, batch, align_a,
                    align_b, align_c);
  }
  bool operator<(const LtKey& o) const { return tie() < o.tie(); }
};

/// What cublasLtMatmul needs for one problem; made once, never destroyed.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace_bytes = 0;
  bool ok = false;  // false: cuBLASLt offered no algorithm (a bias epilogue falls back, see gemm_bias)
};

struct Lt {
  cublasLtHandle_t handle = nullptr;
  std::mutex mutex;  // the plan cache and the cached descriptors' bias pointer
  std::map<LtKey, LtPlan> plans;
  Lt() { VIT_CUBLAS_CHECK(cublasLtCreate(&handle)); }
  // Never destroyed, as Blas.
};

Lt& lt() {
  static Lt* l = new Lt();
  return *l;
}

/// The largest power of two (at most 256, cuBLASLt's default assumption)
/// that divides the address: what the algorithm may assume about the operand.
uint32_t alignment(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 2 && (u & (a - 1)) != 0) a /= 2;
  return a;
}

/// A column-major layout of `type` (rows, cols, ld), `batch` matrices `stride` apart.
cublasLtMatrixLayout_t lt_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                 int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  VIT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, static_cast<uint64_t>(rows),
                                              static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    VIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                      sizeof count));
    VIT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                      &stride, sizeof stride));
  }
  return l;
}

/// The plan of `k`, made on first use (also when it finds no algorithm, so
/// the heuristic is asked once per problem): row-major C = op(A)·op(B) is the
/// column-major C^T (N×M) = op(B)^T·op(A)^T, so cuBLASLt's A is our B.
const LtPlan& lt_plan(Lt& l, const LtKey& k) {
  auto it = l.plans.find(k);
  if (it != l.plans.end()) return it->second;
  LtPlan p;
  VIT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t opa = op(k.tb), opb = op(k.ta);
  VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
  VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
  if (k.bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    const cudaDataType_t bias_type = CUDA_R_16BF;
    VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                    sizeof bias_type));
  }
  // Stored shapes (column-major): cuBLASLt's A is our B, (N,K) or (K,N) when
  // transposed; its B is our A, (K,M) or (M,K); C and D are (N,M).
  p.a = lt_layout(CUDA_R_16BF, k.tb ? k.K : k.N, k.tb ? k.N : k.K, k.ldb, k.batch, k.stride_b);
  p.b = lt_layout(CUDA_R_16BF, k.ta ? k.M : k.K, k.ta ? k.K : k.M, k.lda, k.batch, k.stride_a);
  p.c = lt_layout(k.c_f32 ? CUDA_R_32F : CUDA_R_16BF, k.N, k.M, k.ldc, k.batch, k.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t max_ws = kWorkspaceBytes;
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &max_ws, sizeof max_ws));
  // Our B is cuBLASLt's A and the other way round.
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                        &k.align_b, sizeof k.align_b));
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                        &k.align_a, sizeof k.align_a));
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                        &k.align_c, sizeof k.align_c));
  VIT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                        &k.align_c, sizeof k.align_c));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(l.handle, p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  p.ok = st == CUBLAS_STATUS_SUCCESS && found > 0;
  p.algo = result.algo;
  p.workspace_bytes = result.workspaceSize;
  return l.plans.emplace(k, p).first->second;
}

/// D = C = alpha·op(A)·op(B) + beta·C (+ bias), bf16 A and B, C bf16 or
/// fp32 (CE), in place on C. With a bias and no algorithm for its epilogue it
/// queues nothing and returns false; without a bias that is an error.
template <class CE>
bool lt_matmul(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
               int64_t lda, int64_t stride_a, const vit::bf16* B, int64_t ldb, int64_t stride_b, float beta,
               CE* C, int64_t ldc, int64_t stride_c, int64_t batch, const vit::bf16* bias) {
  Lt& l = lt();
  LtKey key{};
  key.ta = ta, key.tb = tb, key.bias = bias != nullptr, key.c_f32 = std::is_same_v<CE, float>;
  key.M = M, key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
  key.stride_a = stride_a, key.stride_b = stride_b, key.stride_c = stride_c, key.batch = batch;
  key.align_a = alignment(A), key.align_b = alignment(B), key.align_c = alignment(C);
  std::lock_guard<std::mutex> lock(l.mutex);
  const LtPlan& p = lt_plan(l, key);
  if (!p.ok && bias) return false;
  VIT_CHECK(p.ok, "cuda::gemm (bf16): cuBLASLt has no algorithm for ", ta ? "A^T" : "A", " * ",
            tb ? "B^T" : "B", " M=", M, " N=", N, " K=", K, " lda=", lda, " ldb=", ldb, " ldc=", ldc,
            " batch=", batch);
  if (bias)
    VIT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                    sizeof bias));
  VIT_CUBLAS_CHECK(cublasLtMatmul(l.handle, p.op, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo,
                                  workspace(), p.workspace_bytes, detail::stream()));
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
  check_batch(stride_a, stride_b, stride_c, batch);
  if (!check("gemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc) || batch == 0)
    return;
  check_no_overlap(M, N, ldc, stride_c, batch);
  VIT_CUBLAS_CHECK(cublasSgemmStridedBatched(
      handle(), op(trans_b), op(trans_a), static_cast<int>(N), static_cast<int>(M), static_cast<int>(K),
      &alpha, B, static_cast<int>(ldb), stride_b, A, static_cast<int>(lda), stride_a, &beta, C,
      static_cast<int>(ldc), stride_c, static_cast<int>(batch)));
}

// ---- bf16 ------------------------------------------------------------------------------

namespace {
/// K == 0 leaves C = beta·C (+ bias), which cuBLASLt (no empty inner
/// dimension) is not asked for: nothing to do for beta == 1 without a bias,
/// else the elementwise kernels on a packed C (ldc == N, or one row).
bool bf16_empty_inner(const char* what, int64_t M, int64_t N, int64_t K, float beta, vit::bf16* C, int64_t ldc,
                      const vit::bf16* bias) {
  if (K != 0) return false;
  if (beta == 1.f && bias == nullptr) return true;
  VIT_CHECK(ldc == N || M == 1, "cuda::", what, " (bf16): K == 0 with beta != 1 or a bias needs ldc == N");
  if (beta == 0.f) fill(C, 0.f, M * N);
  else if (beta != 1.f) scale(C, beta, C, M * N);
  if (bias) add_row_broadcast(C, bias, C, M, N);
  return true;
}
}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
          int64_t lda, const vit::bf16* B, int64_t ldb, float beta, vit::bf16* C, int64_t ldc) {
  if (!check("gemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (bf16_empty_inner("gemm", M, N, K, beta, C, ldc, nullptr)) return;
  lt_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, nullptr);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const vit::bf16* A,
          int64_t lda, const vit::bf16* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!check("gemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (K == 0) {  // C = beta·C in fp32
    if (beta == 1.f) return;
    VIT_CHECK(ldc == N || M == 1, "cuda::gemm (bf16, fp32 C): K == 0 with beta != 1 needs ldc == N");
    if (beta == 0.f) fill(C, 0.f, M * N);
    else scale(C, beta, C, M * N);
    return;
  }
  lt_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, nullptr);
}

void gemm_bias(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const vit::bf16* A, int64_t lda, const vit::bf16* B, int64_t ldb, float beta,
               vit::bf16* C, int64_t ldc, const vit::bf16* bias) {
  VIT_CHECK(bias != nullptr, "cuda::gemm_bias: null bias");
  if (!check("gemm_bias", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (bf16_empty_inner("gemm_bias", M, N, K, beta, C, ldc, bias)) return;
  if (lt_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1, bias)) return;
  // No algorithm with the bias epilogue for this problem: the product, then the row-broadcast kernel.
  VIT_CHECK(ldc == N || M == 1, "cuda::gemm_bias: cuBLASLt has no bias epilogue for this problem and the "
            "fallback needs ldc == N (M=", M, " N=", N, " K=", K, " ldc=", ldc, ")");
  lt_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1,
            static_cast<const vit::bf16*>(nullptr));
  add_row_broadcast(C, bias, C, M, N);
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                          const vit::bf16* A, int64_t lda, int64_t stride_a, const vit::bf16* B,
                          int64_t ldb, int64_t stride_b, float beta, vit::bf16* C, int64_t ldc,
                          int64_t stride_c, int64_t batch) {
  check_batch(stride_a, stride_b, stride_c, batch);
  if (!check("gemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc) || batch == 0)
    return;
  check_no_overlap(M, N, ldc, stride_c, batch);
  if (K == 0 && beta == 1.f) return;
  VIT_CHECK(K > 0, "cuda::gemm_strided_batched (bf16): K == 0 is only supported with beta == 1");
  lt_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c,
            batch, nullptr);
}

}  // namespace vit::cuda
