// bench_launchers.hpp: which vit::cuda launchers exist for a storage type T
// (float or vit::bf16), as concepts, so benchmarks/cuda/bench_kernels.cu
// measures every launcher this tree declares and prints a "missing launcher"
// row for each one it does not, instead of failing to compile.
//
// The bf16 launchers are OVERLOADS of the float ones (include/vit/cuda/<op>.hpp):
// the same parameter list with every tensor data pointer `T*` -> `vit::bf16*`,
// saved statistics (LayerNorm mean/rstd, attention lse) staying float*. Each
// concept below is that call with T's pointers; a bf16 overload declared with
// another parameter list reads as missing (the row names the call it expected).
//
// No CUDA header: g++ can check these too, e.g.
//   g++ -std=c++20 -Iinclude -fsyntax-only -x c++ benchmarks/cuda/bench_launchers.hpp
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"
#include "vit/cuda/attention.hpp"
#include "vit/cuda/convert.hpp"
#include "vit/cuda/gelu.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/cuda/layernorm.hpp"
#include "vit/cuda/softmax.hpp"

namespace vit_bench {

using I = int64_t;

template <class T>
concept HasLayerNormForward = requires(const T* x, T* y, float* s) {
  vit::cuda::layer_norm_forward(x, x, x, y, s, s, I{}, I{}, 0.f);
};
template <class T>
concept HasLayerNormBackward = requires(const T* c, T* g, const float* s) {
  vit::cuda::layer_norm_backward(c, c, c, s, s, g, g, g, I{}, I{});
};
template <class T>
concept HasGeluForward = requires(const T* x, T* y) { vit::cuda::gelu_forward(x, y, I{}, false); };
template <class T>
concept HasGeluBackward = requires(const T* c, T* g) { vit::cuda::gelu_backward(c, c, g, I{}, false); };
/// The fused bias+GELU of the MLP (dbias of the storage type: T*).
template <class T>
concept HasBiasGeluForward = requires(const T* x, T* y) { vit::cuda::bias_gelu_forward(x, x, y, I{}, I{}, false); };
template <class T>
concept HasBiasGeluBackward = requires(const T* c, T* g) {
  vit::cuda::bias_gelu_backward(c, c, c, g, g, I{}, I{}, false);
};
template <class T>
concept HasSoftmaxForward = requires(const T* x, T* y) { vit::cuda::softmax_forward(x, y, I{}, I{}); };
template <class T>
concept HasSoftmaxBackward = requires(const T* c, T* g) { vit::cuda::softmax_backward(c, c, g, I{}, I{}); };
template <class T>
concept HasAttentionForward = requires(const T* qkv, T* out, float* lse) {
  vit::cuda::attention_forward(qkv, out, lse, I{}, I{}, I{}, I{});
};
template <class T>
concept HasAttentionBackward = requires(const T* c, const float* lse, T* g) {
  vit::cuda::attention_backward(c, c, c, lse, g, I{}, I{}, I{}, I{});
};
/// Whether the attention launchers of a storage type take head dim D (true where
/// this tree has no vit::cuda::attention_head_dim_supported: the launcher then says).
template <class Int = I>
bool attention_supports(Int D, bool bf16, bool tf32) {
  if constexpr (requires { vit::cuda::attention_head_dim_supported(D, bf16, tf32); })
    return vit::cuda::attention_head_dim_supported(D, bf16, tf32);
  else
    return true;
}
template <class T>
concept HasGemm = requires(const T* a, T* c) {
  vit::cuda::gemm(false, true, I{}, I{}, I{}, 1.f, a, I{}, a, I{}, 0.f, c, I{});
};
/// The bf16 GEMM with the bias added in cuBLASLt's epilogue.
template <class T>
concept HasGemmBias = requires(const T* a, T* c) {
  vit::cuda::gemm_bias(false, true, I{}, I{}, I{}, 1.f, a, I{}, a, I{}, 0.f, c, I{}, a);
};

/// float <-> bf16 conversions and the bf16 gradient added into its fp32 master
/// (vit/cuda/convert.hpp): mixed precision's per-step traffic.
template <class T>
concept HasConvert = requires(const float* f, T* h, const T* ch, float* acc) {
  vit::cuda::convert(f, h, I{});
  vit::cuda::convert(ch, acc, I{});
  vit::cuda::accumulate_widened(ch, acc, I{});
};

/// The call a missing row expected, for its note.
template <class T>
constexpr const char* ptr_name() {
  return vit::is_bf16_v<T> ? "bf16*" : "float*";
}

}  // namespace vit_bench
