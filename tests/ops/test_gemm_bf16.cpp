// The bf16 GEMMs on the CPU (the reference the bf16 CUDA path is held to):
// ops::gemm<bf16> in every transpose combination with padded leading
// dimensions, alpha/beta (beta == 0 never reads a NaN-poisoned C, beta == 1
// accumulates), the bias and the row sums; bf16 operands into an fp32 C
// (gemm_mixed); linear_forward/backward and matmul (shared and batched right
// operand) on bf16 tensors, and their gradients through autograd against the
// library's float64 ops on the same values. Every result is
// held to the bf16 bar against a float64 reference computed from the same
// bf16 inputs (relative L2 < 1e-2, no NaN), and to "rounded once": it equals
// bf16(float32 result) bit for bit (of the vdpbf16ps kernel with AVX512-BF16,
// else of the float GEMM of the widened inputs), with the gaps of a padded C
// untouched.
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "support/check.hpp"

using namespace vit;

namespace {

/// n random bf16 values (normal, std 1), from a seed.
std::vector<bf16> random_bf16(int64_t n, uint64_t seed) {
  Generator g(seed);
  const TensorF f = TensorF::normal({n}, 0.0, 1.0, g);
  std::vector<bf16> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = bf16(f.data()[i]);
  return v;
}


/// C(M,N) = alpha·op(A)·op(B) + beta·C + bias, in double from the stored values.
std::vector<double> gemm_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                                   const std::vector<bf16>& A, int64_t lda, const std::vector<bf16>& B,
                                   int64_t ldb, double beta, const std::vector<bf16>& C, int64_t ldc,
                                   const bf16* bias) {
  std::vector<double> out(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = float(ta ? A[k * lda + i] : A[i * lda + k]);
        const double b = float(tb ? B[j * ldb + k] : B[k * ldb + j]);
        acc += a * b;
      }
      double r = alpha * acc;
      if (beta != 0) r += beta * float(C[i * ldc + j]);
      if (bias) r += float(bias[j]);
      out[i * N + j] = r;
    }
  return out;
}

/// The compact (M,N) block of a padded C as a bf16 tensor.
TensorBF16 block(const std::vector<bf16>& C, int64_t M, int64_t N, int64_t ldc) {
  TensorBF16 t = TensorBF16::empty({M, N});
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) t.data()[i * N + j] = C[i * ldc + j];
  return t;
}

void require_bits_equal(const std::vector<bf16>& got, const std::vector<bf16>& want, const char* what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].bits != want[i].bits)
      FAIL(what << ": element " << i << " has bits " << got[i].bits << ", expected " << want[i].bits << " ("
                << float(got[i]) << " vs " << float(want[i]) << ")");
  }
}

struct GemmCase {
  int64_t M, N, K;
  bool ta, tb;
  int pad;  // extra elements per row of every operand
  float alpha, beta;
  bool bias, row_sums;
};

void run_case(const GemmCase& c, uint64_t seed) {
  const int64_t lda = (c.ta ? c.M : c.K) + c.pad, ldb = (c.tb ? c.K : c.N) + c.pad, ldc = c.N + c.pad;
  const std::vector<bf16> A = random_bf16((c.ta ? c.K : c.M) * lda, seed);
  const std::vector<bf16> B = random_bf16((c.tb ? c.N : c.K) * ldb, seed + 1);
  const std::vector<bf16> bias = random_bf16(c.N, seed + 2);
  std::vector<bf16> C = random_bf16(c.M * ldc, seed + 3);
  if (c.beta == 0.f) {  // poisoned where the product goes: beta == 0 must not read it
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) C[i * ldc + j] = bf16(std::numeric_limits<float>::quiet_NaN());
  }
  const std::vector<bf16> row_sums0 = random_bf16(c.M, seed + 4);
  std::vector<bf16> row_sums = row_sums0;
  const std::vector<bf16> C0 = C;
  const std::vector<double> ref = gemm_reference(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A, lda, B, ldb, c.beta, C0,
                                                 ldc, c.bias ? bias.data() : nullptr);

  ops::gemm<bf16>(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc,
                  c.bias ? bias.data() : nullptr, c.row_sums ? row_sums.data() : nullptr);

  INFO("M=" << c.M << " N=" << c.N << " K=" << c.K << " ta=" << c.ta << " tb=" << c.tb << " pad=" << c.pad
            << " alpha=" << c.alpha << " beta=" << c.beta << " bias=" << c.bias);
  test::require_relative_l2(block(C, c.M, c.N, ldc), TensorD::from_data({c.M, c.N}, ref));

  // Rounded once from float32 sums: with AVX512-BF16, the vdpbf16ps kernel's
  // float result (its pairwise sums differ from FMAs in the last bits); else
  // the float GEMM of the widened values.
  std::vector<float> Cf(static_cast<size_t>(c.M * ldc));
  for (size_t i = 0; i < Cf.size(); ++i) Cf[i] = c.beta == 0.f ? 0.f : float(C0[i]);
  const std::vector<float> Af = test::widen(A), Bf = test::widen(B), biasf = test::widen(bias);
  std::vector<float> sumsf = test::widen(row_sums0);
#if VIT_HAVE_SBGEMM_AVX512
  ops::detail::sbgemm_avx512(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta,
                             Cf.data(), ldc, c.bias ? biasf.data() : nullptr, c.row_sums ? sumsf.data() : nullptr);
#else
  ops::gemm<float>(c.ta, c.tb, c.M, c.N, c.K, c.alpha, Af.data(), lda, Bf.data(), ldb, c.beta, Cf.data(), ldc,
                   c.bias ? biasf.data() : nullptr, c.row_sums ? sumsf.data() : nullptr);
#endif
  std::vector<bf16> want = C0;  // the gaps (j >= N) stay as they were
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) want[i * ldc + j] = bf16(Cf[i * ldc + j]);
  require_bits_equal(C, want, "C");

  if (c.row_sums) {
    std::vector<double> sums_ref(static_cast<size_t>(c.M));
    for (int64_t i = 0; i < c.M; ++i) {
      double s = float(row_sums0[i]);
      for (int64_t k = 0; k < c.K; ++k) s += float(c.ta ? A[k * lda + i] : A[i * lda + k]);
      sums_ref[i] = s;
    }
    TensorBF16 got = TensorBF16::from_data({c.M}, row_sums);
    test::require_relative_l2(got, TensorD::from_data({c.M}, sums_ref));
    std::vector<bf16> sums_want(static_cast<size_t>(c.M));
    for (int64_t i = 0; i < c.M; ++i) sums_want[i] = bf16(sumsf[i]);
    require_bits_equal(row_sums, sums_want, "row sums");
  }
}

}  // namespace

TEST_CASE("bf16 gemm: every transpose, padded operands, alpha and beta, against float64", "[bf16][gemm]") {
  uint64_t seed = 100;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const auto& [M, N, K] : std::vector<std::array<int64_t, 3>>{
               {1, 1, 1}, {1, 65, 7}, {65, 1, 13}, {13, 9, 197}, {197, 65, 64}, {7, 130, 33}})
        for (const int pad : {0, 3}) {
          run_case({M, N, K, ta, tb, pad, 1.f, 0.f, false, false}, seed++);
          run_case({M, N, K, ta, tb, pad, 0.125f, 1.f, false, false}, seed++);  // a gradient's +=
          run_case({M, N, K, ta, tb, pad, 1.5f, 0.5f, true, false}, seed++);
        }
}

TEST_CASE("bf16 gemm: bias into a poisoned C and row sums of A^T", "[bf16][gemm]") {
  run_case({197, 65, 48, false, true, 0, 1.f, 0.f, true, false}, 7);  // the Linear forward
  run_case({65, 48, 197, true, false, 0, 1.f, 1.f, false, true}, 8);  // the weight gradient + db
  run_case({9, 0, 31, true, false, 0, 1.f, 1.f, false, true}, 9);     // row sums alone (N == 0)
  run_case({33, 17, 0, false, false, 2, 1.f, 1.f, true, false}, 10);  // K == 0: beta·C + bias
}

TEST_CASE("bf16 linear forward and backward against float64", "[bf16][gemm][linear]") {
  for (const auto& [R, Cin, Cout] : std::vector<std::array<int64_t, 3>>{{197, 65, 13}, {1, 8, 1}, {130, 33, 96}}) {
    INFO("R=" << R << " Cin=" << Cin << " Cout=" << Cout);
    const std::vector<bf16> x = random_bf16(R * Cin, 1), w = random_bf16(Cout * Cin, 2), b = random_bf16(Cout, 3),
                            dout = random_bf16(R * Cout, 4), dw0 = random_bf16(Cout * Cin, 5),
                            db0 = random_bf16(Cout, 6);
    std::vector<bf16> out(static_cast<size_t>(R * Cout), bf16(std::nanf(""))),
        dx(static_cast<size_t>(R * Cin), bf16(std::nanf(""))), dw = dw0, db = db0, db_alone = db0;
    ops::linear_forward(Device::CPU, x.data(), w.data(), b.data(), out.data(), R, Cin, Cout);
    ops::linear_backward(Device::CPU, dout.data(), x.data(), w.data(), dx.data(), dw.data(), db.data(), R, Cin,
                         Cout);
    ops::linear_backward(Device::CPU, dout.data(), x.data(), w.data(), static_cast<bf16*>(nullptr),
                         static_cast<bf16*>(nullptr), db_alone.data(), R, Cin, Cout);

    std::vector<double> out_ref(R * Cout), dx_ref(R * Cin), dw_ref(Cout * Cin), db_ref(Cout);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t o = 0; o < Cout; ++o) {
        double acc = float(b[o]);
        for (int64_t i = 0; i < Cin; ++i) acc += double(float(x[r * Cin + i])) * float(w[o * Cin + i]);
        out_ref[r * Cout + o] = acc;
      }
    for (int64_t r = 0; r < R; ++r)
      for (int64_t i = 0; i < Cin; ++i) {
        double acc = 0;
        for (int64_t o = 0; o < Cout; ++o) acc += double(float(dout[r * Cout + o])) * float(w[o * Cin + i]);
        dx_ref[r * Cin + i] = acc;
      }
    for (int64_t o = 0; o < Cout; ++o) {
      double s = float(db0[o]);
      for (int64_t r = 0; r < R; ++r) s += float(dout[r * Cout + o]);
      db_ref[o] = s;
      for (int64_t i = 0; i < Cin; ++i) {
        double acc = float(dw0[o * Cin + i]);
        for (int64_t r = 0; r < R; ++r) acc += double(float(dout[r * Cout + o])) * float(x[r * Cin + i]);
        dw_ref[o * Cin + i] = acc;
      }
    }
    test::require_relative_l2(TensorBF16::from_data({R, Cout}, out), TensorD::from_data({R, Cout}, out_ref));
    test::require_relative_l2(TensorBF16::from_data({R, Cin}, dx), TensorD::from_data({R, Cin}, dx_ref));
    test::require_relative_l2(TensorBF16::from_data({Cout, Cin}, dw), TensorD::from_data({Cout, Cin}, dw_ref));
    test::require_relative_l2(TensorBF16::from_data({Cout}, db), TensorD::from_data({Cout}, db_ref));
    test::require_relative_l2(TensorBF16::from_data({Cout}, db_alone), TensorD::from_data({Cout}, db_ref));
  }
}

TEST_CASE("bf16 matmul with a shared and a batched right operand against float64", "[bf16][gemm][matmul]") {
  const int64_t T = 3, M = 65, K = 31, N = 9;
  Generator g(42);
  const TensorBF16 a = TensorF::normal({T, M, K}, 0.0, 1.0, g).to_dtype<bf16>();
  for (const bool shared : {true, false}) {
    INFO("shared " << shared);
    const TensorBF16 b = (shared ? TensorF::normal({K, N}, 0.0, 1.0, g) : TensorF::normal({T, K, N}, 0.0, 1.0, g))
                             .to_dtype<bf16>();
    const TensorBF16 out = matmul(a, b);
    const TensorD ad = a.to_dtype<double>(), bd = b.to_dtype<double>();
    TensorD ref = TensorD::zeros({T, M, N});
    for (int64_t t = 0; t < T; ++t)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k)
            acc += ad.data()[(t * M + m) * K + k] * bd.data()[(shared ? 0 : t * K * N) + k * N + n];
          ref.data()[(t * M + m) * N + n] = acc;
        }
    test::require_relative_l2(out, ref);
  }
}

TEST_CASE("bf16 operands into an fp32 C (gemm_mixed) against float64", "[bf16][gemm]") {
  uint64_t seed = 500;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const auto& [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {65, 13, 197}, {7, 130, 33}})
        for (const float beta : {0.f, 1.f}) {
          INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " beta=" << beta);
          const int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 1, ldc = N + 2;
          const std::vector<bf16> A = random_bf16((ta ? K : M) * lda, seed++), B = random_bf16((tb ? N : K) * ldb, seed++);
          Generator g(seed++);
          const TensorF c0 = TensorF::normal({M * ldc}, 0.0, 1.0, g);
          std::vector<float> C = c0.to_vector();
          if (beta == 0.f)
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = std::nanf("");
          const std::vector<float> C_in = C;
          ops::gemm_mixed<bf16>(Device::CPU, ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          TensorD ref = TensorD::empty({M, N});
          TensorF got = TensorF::empty({M, N});
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double acc = 0;
              for (int64_t k = 0; k < K; ++k)
                acc += double(float(ta ? A[k * lda + i] : A[i * lda + k])) * float(tb ? B[j * ldb + k] : B[k * ldb + j]);
              ref.data()[i * N + j] = 0.5 * acc + (beta == 0.f ? 0.0 : double(C_in[i * ldc + j]));
              got.data()[i * N + j] = C[i * ldc + j];
            }
          test::require_relative_l2(got, ref, 1e-5);  // no bf16 rounding of C: float accuracy
          for (int64_t i = 0; i < M; ++i)  // the gaps of C untouched
            for (int64_t j = N; j < ldc; ++j) REQUIRE(C[i * ldc + j] == C_in[i * ldc + j]);
        }
}

TEST_CASE("bf16 linear and batched matmul gradients through autograd against float64", "[bf16][gemm][autograd]") {
  Generator g(77);
  auto leaf = [](const TensorBF16& t) {
    TensorBF16 c = t.clone();
    c.set_requires_grad(true);
    return c;
  };
  auto leaf_d = [](const TensorBF16& t) {
    TensorD c = t.to_dtype<double>();
    c.set_requires_grad(true);
    return c;
  };
  {
    const TensorBF16 x0 = TensorF::normal({2, 65, 33}, 0, 1, g).to_dtype<bf16>(),
                     w0 = TensorF::normal({17, 33}, 0, 1, g).to_dtype<bf16>(),
                     b0 = TensorF::normal({17}, 0, 1, g).to_dtype<bf16>(),
                     g0 = TensorF::normal({2, 65, 17}, 0, 1, g).to_dtype<bf16>();
    TensorBF16 x = leaf(x0), w = leaf(w0), b = leaf(b0);
    TensorD xd = leaf_d(x0), wd = leaf_d(w0), bd = leaf_d(b0);
    const TensorBF16 y = linear(x, w, b);
    const TensorD yd = linear(xd, wd, bd);
    test::require_relative_l2(y, yd);
    y.backward(g0);
    yd.backward(g0.to_dtype<double>());
    test::require_relative_l2(x.grad(), xd.grad());
    test::require_relative_l2(w.grad(), wd.grad());
    test::require_relative_l2(b.grad(), bd.grad());
  }
  for (const bool shared : {true, false}) {
    INFO("shared " << shared);
    const TensorBF16 a0 = TensorF::normal({3, 65, 31}, 0, 1, g).to_dtype<bf16>(),
                     c0 = (shared ? TensorF::normal({31, 9}, 0, 1, g) : TensorF::normal({3, 31, 9}, 0, 1, g))
                              .to_dtype<bf16>(),
                     g0 = TensorF::normal({3, 65, 9}, 0, 1, g).to_dtype<bf16>();
    TensorBF16 a = leaf(a0), c = leaf(c0);
    TensorD ad = leaf_d(a0), cd = leaf_d(c0);
    const TensorBF16 y = matmul(a, c);
    const TensorD yd = matmul(ad, cd);
    y.backward(g0);
    yd.backward(g0.to_dtype<double>());
    test::require_relative_l2(a.grad(), ad.grad());
    test::require_relative_l2(c.grad(), cd.grad());
  }
}
