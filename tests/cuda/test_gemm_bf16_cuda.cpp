// The bf16 GEMMs of cuda/gemm.cu (cuBLASLt) on the GPU against float64 from
// the same bf16 inputs, C poisoned (NaN) when beta == 0: every transpose,
// padded leading dimensions, operands 2 bytes off 16-byte alignment (another
// cached algorithm), beta == 1 accumulation, the bias epilogue, strided
// batches and the fp32-C overload; the same call twice is bitwise equal, and
// the public ops (linear with its bias epilogue, batched matmul) match the CPU
// bf16 reference. Then the optimizers' bf16 weight copies written by the
// update launch equal bf16(new param) bit for bit, untouched on a skipped step.
#include <catch2/catch.hpp>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>
#include <vit/cuda/gemm.hpp>
#include <vit/cuda/runtime.hpp>
#include <vit/vit.hpp>

#include "support/check.hpp"

namespace {

using namespace vit;

/// n random bf16 values placed `offset` elements into a device tensor (offset 1: 2 bytes off alignment).
struct Placed {
  TensorBF16 host, dev;
  int64_t offset;
  Placed(int64_t n, int64_t off, uint64_t seed) : offset(off) {
    Generator g(seed);
    host = TensorF::normal({n + off}, 0.0, 1.0, g).to_dtype<bf16>();
    dev = host.to(Device::CUDA);
  }
  const bf16* h() const { return host.data() + offset; }
  bf16* d() const { return dev.data() + offset; }
};

std::vector<double> reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                              int64_t lda, const bf16* B, int64_t ldb, float beta, const bf16* C, int64_t ldc,
                              const bf16* bias) {
  std::vector<double> out(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += double(float(ta ? A[k * lda + i] : A[i * lda + k])) * float(tb ? B[j * ldb + k] : B[k * ldb + j]);
      double r = alpha * acc;
      if (beta != 0.f) r += beta * double(float(C[i * ldc + j]));
      if (bias) r += float(bias[j]);
      out[i * N + j] = r;
    }
  return out;
}

TensorBF16 block(const TensorBF16& c_host, int64_t offset, int64_t M, int64_t N, int64_t ldc) {
  TensorBF16 t = TensorBF16::empty({M, N});
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) t.data()[i * N + j] = c_host.data()[offset + i * ldc + j];
  return t;
}

}  // namespace

TEST_CASE("cuda bf16 gemm and gemm_bias through cuBLASLt against float64", "[cuda][bf16][gemm]") {
  uint64_t seed = 1;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const auto& [M, N, K] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {197, 65, 64}, {13, 130, 197},
                                                                         {256, 384, 192}})
        for (const int64_t off : {0, 1})
          for (const int mode : {0, 1, 2}) {  // beta 0; beta 1 (a gradient's +=); bias with beta 0
            INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " offset=" << off
                      << " mode=" << mode);
            const int64_t pad = off, lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
            const Placed A((ta ? K : M) * lda, off, seed++), B((tb ? N : K) * ldb, off, seed++),
                bias(N, off, seed++);
            Placed C(M * ldc, off, seed++);
            const float beta = mode == 1 ? 1.f : 0.f;
            if (beta == 0.f) {
              for (int64_t i = 0; i < C.host.numel(); ++i) C.host.data()[i] = bf16(std::nanf(""));
              C.dev = C.host.to(Device::CUDA);
            }
            const TensorBF16 c_in = C.host.clone();
            const std::vector<double> ref = reference(ta, tb, M, N, K, 0.75f, A.h(), lda, B.h(), ldb, beta,
                                                      c_in.data() + off, ldc, mode == 2 ? bias.h() : nullptr);
            auto launch = [&] {
              if (mode == 2)
                cuda::gemm_bias(ta, tb, M, N, K, 0.75f, A.d(), lda, B.d(), ldb, beta, C.d(), ldc, bias.d());
              else
                cuda::gemm(ta, tb, M, N, K, 0.75f, A.d(), lda, B.d(), ldb, beta, C.d(), ldc);
            };
            launch();
            const TensorBF16 got = C.dev.to(Device::CPU);
            test::require_relative_l2(block(got, off, M, N, ldc), TensorD::from_data({M, N}, ref));
            if (beta == 0.f) {  // again on the result: bitwise the same (C is not read)
              launch();
              const TensorBF16 again = C.dev.to(Device::CPU);
              for (int64_t i = 0; i < got.numel(); ++i) REQUIRE(again.data()[i].bits == got.data()[i].bits);
            }
          }
}

TEST_CASE("cuda bf16 strided-batched gemm and the fp32-C overload", "[cuda][bf16][gemm]") {
  const int64_t batch = 6, M = 65, N = 64, K = 65;  // attention-shaped: P·V per head
  const Placed A(batch * M * K, 0, 11), B(batch * K * N, 0, 12);
  TensorBF16 C = TensorBF16::full({batch * M * N}, bf16(std::nanf("")), Device::CUDA);
  cuda::gemm_strided_batched(false, false, M, N, K, 1.f, A.d(), K, M * K, B.d(), N, K * N, 0.f, C.data(), N, M * N,
                             batch);
  const TensorBF16 got = C.to(Device::CPU);
  for (int64_t b = 0; b < batch; ++b) {
    INFO("batch " << b);
    const std::vector<double> ref = reference(false, false, M, N, K, 1.f, A.h() + b * M * K, K, B.h() + b * K * N,
                                              N, 0.f, nullptr, N, nullptr);
    TensorBF16 one = TensorBF16::empty({M, N});
    for (int64_t i = 0; i < M * N; ++i) one.data()[i] = got.data()[b * M * N + i];
    test::require_relative_l2(one, TensorD::from_data({M, N}, ref));
  }
  // fp32 C += bf16ᵀ·bf16 (a weight gradient into its fp32 master gradient).
  const int64_t R = 197, Cin = 48, Cout = 33;
  const Placed dout(R * Cout, 0, 13), x(R * Cin, 0, 14);
  Generator g(15);
  const TensorF w0 = TensorF::normal({Cout, Cin}, 0.0, 1.0, g);
  TensorF w = w0.to(Device::CUDA);
  cuda::gemm(true, false, Cout, Cin, R, 1.f, dout.d(), Cout, x.d(), Cin, 1.f, w.data(), Cin);
  std::vector<bf16> c_b(static_cast<size_t>(Cout * Cin));
  std::vector<double> ref = reference(true, false, Cout, Cin, R, 1.f, dout.h(), Cout, x.h(), Cin, 0.f, nullptr, Cin,
                                      nullptr);
  for (int64_t i = 0; i < Cout * Cin; ++i) ref[i] += w0.data()[i];
  test::require_relative_l2(w.to(Device::CPU), TensorD::from_data({Cout, Cin}, ref), 1e-5);
}

TEST_CASE("cuda bf16 gemm with K == 0: C = beta·C + bias", "[cuda][bf16][gemm]") {
  const int64_t M = 5, N = 7;
  const Placed bias(N, 0, 31), C0(M * N, 0, 32);
  for (const float beta : {0.f, 0.5f, 1.f}) {
    INFO("beta " << beta);
    TensorBF16 C = C0.host.to(Device::CUDA);
    if (beta == 0.f) C.fill_(bf16(std::nanf("")));
    cuda::gemm_bias(false, false, M, N, 0, 1.f, static_cast<const bf16*>(nullptr), 1,
                    static_cast<const bf16*>(nullptr), N, beta, C.data(), N, bias.d());
    const TensorBF16 got = C.to(Device::CPU);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        const float c = beta == 0.f ? 0.f : float(bf16(beta * float(C0.h()[i * N + j])));
        REQUIRE(float(got.data()[i * N + j]) == float(bf16(c + float(bias.h()[j]))));
      }
  }
}

TEST_CASE("cuda bf16 linear (bias epilogue) and batched matmul match the CPU bf16 reference", "[cuda][bf16][gemm]") {
  Generator g(21);
  for (const auto& [R, Cin, Cout] : std::vector<std::array<int64_t, 3>>{{197 * 4, 384, 1152}, {65, 7, 13}}) {
    INFO("R=" << R << " Cin=" << Cin << " Cout=" << Cout);
    const TensorBF16 x = TensorF::normal({R, Cin}, 0, 1, g).to_dtype<bf16>(),
                     w = TensorF::normal({Cout, Cin}, 0, 0.05, g).to_dtype<bf16>(),
                     b = TensorF::normal({Cout}, 0, 1, g).to_dtype<bf16>();
    const TensorBF16 ref = linear(x, w, b);
    const TensorBF16 got = linear(x.to(Device::CUDA), w.to(Device::CUDA), b.to(Device::CUDA)).to(Device::CPU);
    test::require_relative_l2(got, ref.to_dtype<double>());
  }
  const TensorBF16 a = TensorF::normal({4, 65, 64}, 0, 1, g).to_dtype<bf16>(),
                   bb = TensorF::normal({4, 64, 65}, 0, 1, g).to_dtype<bf16>();
  test::require_relative_l2(matmul(a.to(Device::CUDA), bb.to(Device::CUDA)).to(Device::CPU),
                            matmul(a, bb).to_dtype<double>());
}

TEST_CASE("cuda AdamW writes the bf16 weight copies in its launch, none on a skipped step", "[cuda][bf16][optim]") {
  std::vector<TensorF> params;
  std::vector<TensorBF16> copies;
  optim::ParamGroup<float> group{{}, 0.05};
  int i = 0;
  for (const int64_t n : {5000, 1027, 1, 4101}) {
    TensorF p = test::randn<float>({n}, 30 + i).to(Device::CUDA);
    p.set_requires_grad(true);
    params.push_back(p);
    copies.push_back(TensorBF16::full({n}, bf16::from_bits(0x7fa5), Device::CUDA));
    std::string name(1, 'p');  // appended, not "p" + ...: a g++ 12 -Wrestrict false positive
    name += std::to_string(i++);
    group.params.emplace_back(name, p);
  }
  optim::AdamW<float> opt({group}, optim::AdamOptions{});
  opt.set_low_precision_copies(copies);
  const TensorF skip = TensorF::zeros({1}, Device::CUDA);
  opt.set_skip_flag(skip);
  for (int t = 1; t <= 3; ++t) {
    INFO("step " << t);
    std::vector<TensorBF16> before;
    for (const TensorBF16& c : copies) before.push_back(c.to(Device::CPU));
    skip.fill_(t == 2 ? 1.f : 0.f);
    for (size_t k = 0; k < params.size(); ++k)
      params[k].set_grad(test::randn<float>(params[k].shape(), 100 * t + k, 0.5).to(Device::CUDA));
    opt.step();
    for (size_t k = 0; k < params.size(); ++k) {
      const TensorBF16 want = t == 2 ? before[k] : params[k].to(Device::CPU).to_dtype<bf16>();
      const TensorBF16 got = copies[k].to(Device::CPU);
      for (int64_t j = 0; j < got.numel(); ++j) REQUIRE(got.data()[j].bits == want.data()[j].bits);
    }
  }
}
