// The tensor-core attention (cuda/kernels/attention_mma.cuh) on the GPU: the
// public op on Device::CUDA tensors in bf16, and in float with TF32 allowed,
// against the float64 CPU op on the same (bf16-rounded) inputs, forward and
// backward, at the head dims of ViT-S/B/L (64), ViT-H (80), 32 and 128, N = 65
// and 197 (patch grids plus the class token), with and without attention
// dropout. The emulated tests check the same kernels' tiling without a GPU;
// this checks the inline PTX on the hardware. Backward twice: bitwise equal.
#include <catch2/catch.hpp>

#include <vit/vit.hpp>

#include "support/check.hpp"

using namespace vit;

namespace {

struct Result {
  TensorD out, grad;
};

template <class T>
Result run(const TensorD& qkv, const TensorD& w, int64_t H, double drop, Device d) {
  Tensor<T> x = qkv.to_dtype<T>().to(d);
  x.set_requires_grad(true);
  Generator g(31);
  Tensor<T> out = attention(x, H, drop, drop > 0, g);
  sum(mul(out, w.to_dtype<T>().to(d))).backward();
  return {out.detach().to(Device::CPU).template to_dtype<double>(),
          x.grad().to(Device::CPU).template to_dtype<double>()};
}

/// Restores the TF32 switch however the test ends.
struct Tf32Scope {
  bool prev = cuda::allow_tf32();
  explicit Tf32Scope(bool on) { cuda::set_allow_tf32(on); }
  ~Tf32Scope() { cuda::set_allow_tf32(prev); }
};

}  // namespace

TEST_CASE("cuda tensor-core attention in bf16 and TF32 matches float64 at D 32 64 80 128",
          "[cuda][attention][bf16]") {
  const int64_t B = 2, H = 3;
  for (const int64_t D : {32, 64, 80, 128})
    for (const int64_t N : {65, 197})
      for (const double drop : {0.0, 0.1}) {
        INFO("D " << D << ", N " << N << ", attn_drop " << drop);
        const TensorD qkv = test::randn<double>({B, N, 3 * H * D}, 7 + D + N)
                                .to_dtype<bf16>()
                                .to_dtype<double>();
        const TensorD w = test::randn<double>({B, N, H * D}, 11).to_dtype<bf16>().to_dtype<double>();
        const Result ref = run<double>(qkv, w, H, drop, Device::CPU);
        {
          INFO("bf16");
          const Result a = run<bf16>(qkv, w, H, drop, Device::CUDA);
          test::require_relative_l2(a.out, ref.out, 1e-2);
          test::require_relative_l2(a.grad, ref.grad, 1e-2);
          const Result b = run<bf16>(qkv, w, H, drop, Device::CUDA);
          REQUIRE(b.grad.to_vector() == a.grad.to_vector());  // no atomics: bitwise repeatable
        }
        {
          INFO("TF32");
          Tf32Scope tf32(true);
          const Result a = run<float>(qkv, w, H, drop, Device::CUDA);
          test::require_relative_l2(a.out, ref.out, 4e-3);
          test::require_relative_l2(a.grad, ref.grad, 4e-3);
        }
      }
}
