// layer_norm over the last dim, as nn.LayerNorm: biased variance, eps inside
// the square root, affine weight and bias. Two passes (mean, then centred
// variance) keep float32 accurate; mean and rstd are saved for backward.
// bf16 tensors: bf16 storage, float math (one row at a time in registers on
// AVX-512 builds, else the float loops on float copies of each block of rows),
// mean and rstd saved in float (compute_t<T>), weight/bias gradients
// accumulated in float and rounded once.
#pragma once

#include <cmath>

#include "vit/cuda/layernorm.hpp"
#include "vit/ops/common.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"

namespace vit {
namespace ops {

// x: (R,C), w,b: (C) -> out: (R,C), mean,rstd: (R)
template <class T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* out, T* mean, T* rstd, int64_t R,
                        int64_t C, T eps) {
#pragma omp parallel for schedule(static) if (R * C > 32768)
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * C;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += xr[c];
    const T m = s / static_cast<T>(C);
    T v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
    const T rs = T(1) / std::sqrt(v / static_cast<T>(C) + eps);
    T* o = out + r * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - m) * rs * w[c] + b[c];
    mean[r] = m;
    rstd[r] = rs;
  }
}

// dout: (R,C) -> dx written; dw, db accumulated (+=)
template <class T>
void layer_norm_backward(const T* dout, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                         T* dw, T* db, int64_t R, int64_t C) {
  // dw/db: per-thread partial sums over a fixed row split, added in thread order,
  // so the result is deterministic for a given thread count.
  const int nt = (R * C > 32768) ? num_threads() : 1;
  thread_local std::vector<T> part;  // reused across calls: no allocation per step
  part.assign(static_cast<size_t>(2 * C * nt), T(0));
  T* partials = part.data();  // the caller's buffer: other threads' thread_local copies are empty
#pragma omp parallel num_threads(nt)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    T* pw = partials + 2 * C * t;
    T* pb = pw + C;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const T* xr = x + r * C;
      const T* g = dout + r * C;
      const T m = mean[r], rs = rstd[r];
      T sum_dy = 0, sum_dy_xhat = 0;
#pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
      for (int64_t c = 0; c < C; ++c) {
        const T xhat = (xr[c] - m) * rs;
        const T dy = g[c] * w[c];
        sum_dy += dy;
        sum_dy_xhat += dy * xhat;
        pw[c] += g[c] * xhat;
        pb[c] += g[c];
      }
      if (dx) {
        const T a = sum_dy / static_cast<T>(C), bb = sum_dy_xhat / static_cast<T>(C);
        T* d = dx + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) d[c] = rs * (g[c] * w[c] - a - (xr[c] - m) * rs * bb);
      }
    }
  }
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) {
      if (dw) dw[c] += partials[2 * C * t + c];
      if (db) db[c] += partials[2 * C * t + C + c];
    }
}

namespace detail {
#if VIT_HAVE_BF16_LANES_16
// One row of bf16 in registers and L1, 16 lanes at a time: the float loops'
// arithmetic (two-pass variance; the same per-element expressions) with the
// conversions inside the loops, so no float copy of the row block goes through
// memory and the loads overlap the math.
inline void layer_norm_row_bf16(const bf16* x, const float* w, const float* b, bf16* out, float* mean,
                                float* rstd, int64_t C, float eps) {
  __m512 s = _mm512_setzero_ps();
  for_vectors16(C, [&](int64_t c, __mmask16 m) { s = _mm512_add_ps(s, widen_16_masked(x + c, m)); });
  const float mu = hsum_16(s) / static_cast<float>(C);
  const __m512 vm = _mm512_set1_ps(mu);
  __m512 v = _mm512_setzero_ps();
  for_vectors16(C, [&](int64_t c, __mmask16 m) {
    const __m512 d = _mm512_maskz_sub_ps(m, widen_16_masked(x + c, m), vm);
    v = _mm512_fmadd_ps(d, d, v);
  });
  const float rs = 1.0f / std::sqrt(hsum_16(v) / static_cast<float>(C) + eps);
  const __m512 vr = _mm512_set1_ps(rs);
  for_vectors16(C, [&](int64_t c, __mmask16 m) {
    const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(widen_16_masked(x + c, m), vm), vr);
    const __m512 y = _mm512_fmadd_ps(xhat, _mm512_maskz_loadu_ps(m, w + c), _mm512_maskz_loadu_ps(m, b + c));
    narrow_16_masked(y, out + c, m);
  });
  *mean = mu;
  *rstd = rs;
}

// One row's backward: dx (if non-null) written, pw/pb (float, C) += this
// row's dw/db terms.
inline void layer_norm_row_backward_bf16(const bf16* g, const bf16* x, const float* w, float mu, float rs,
                                         bf16* dx, float* pw, float* pb, int64_t C) {
  const __m512 vm = _mm512_set1_ps(mu), vr = _mm512_set1_ps(rs);
  __m512 sum_dy = _mm512_setzero_ps(), sum_dy_xhat = _mm512_setzero_ps();
  for_vectors16(C, [&](int64_t c, __mmask16 m) {
    const __m512 gv = widen_16_masked(g + c, m);
    const __m512 xhat = _mm512_mul_ps(_mm512_maskz_sub_ps(m, widen_16_masked(x + c, m), vm), vr);
    const __m512 dy = _mm512_mul_ps(gv, _mm512_maskz_loadu_ps(m, w + c));
    sum_dy = _mm512_add_ps(sum_dy, dy);
    sum_dy_xhat = _mm512_fmadd_ps(dy, xhat, sum_dy_xhat);
    _mm512_mask_storeu_ps(pw + c, m, _mm512_fmadd_ps(gv, xhat, _mm512_maskz_loadu_ps(m, pw + c)));
    _mm512_mask_storeu_ps(pb + c, m, _mm512_add_ps(gv, _mm512_maskz_loadu_ps(m, pb + c)));
  });
  if (dx == nullptr) return;
  const __m512 a = _mm512_set1_ps(hsum_16(sum_dy) / static_cast<float>(C));
  const __m512 bb = _mm512_set1_ps(hsum_16(sum_dy_xhat) / static_cast<float>(C));
  for_vectors16(C, [&](int64_t c, __mmask16 m) {
    const __m512 gw = _mm512_mul_ps(widen_16_masked(g + c, m), _mm512_maskz_loadu_ps(m, w + c));
    const __m512 xhat = _mm512_mul_ps(_mm512_sub_ps(widen_16_masked(x + c, m), vm), vr);
    const __m512 d = _mm512_mul_ps(vr, _mm512_sub_ps(_mm512_sub_ps(gw, a), _mm512_mul_ps(xhat, bb)));
    narrow_16_masked(d, dx + c, m);
  });
}
#endif
}  // namespace detail

// bf16 storage, float math, each output rounded once; mean and rstd (R) float.
// Rows in registers where AVX-512 is built for, else the float loops on float
// copies of each block of rows.
inline void layer_norm_forward(const bf16* x, const bf16* w, const bf16* b, bf16* out, float* mean,
                               float* rstd, int64_t R, int64_t C, float eps) {
  const TensorF wf = detail::widen(w, C), bf = detail::widen(b, C);
  detail::for_row_blocks(R, C, detail::row_block_threads(R, C), [&](int64_t r0, int64_t rows, int) {
#if VIT_HAVE_BF16_LANES_16
    for (int64_t r = r0; r < r0 + rows; ++r)
      detail::layer_norm_row_bf16(x + r * C, wf.data(), bf.data(), out + r * C, mean + r, rstd + r, C, eps);
#else
    float* xs = detail::row_scratch(0, rows * C);
    float* os = detail::row_scratch(1, rows * C);
    detail::widen_n(x + r0 * C, xs, rows * C);
    layer_norm_forward(xs, wf.data(), bf.data(), os, mean + r0, rstd + r0, rows, C, eps);
    detail::narrow_n(os, out + r0 * C, rows * C);
#endif
  });
}

// bf16 storage, float math; dw/db (bf16) accumulated in float (per-thread
// partials added in thread order, as the float path) and rounded once.
inline void layer_norm_backward(const bf16* dout, const bf16* x, const bf16* w, const float* mean,
                                const float* rstd, bf16* dx, bf16* dw, bf16* db, int64_t R,
                                int64_t C) {
  const TensorF wf = detail::widen(w, C);
  const int nt = detail::row_block_threads(R, C);
  TensorF partials = TensorF::zeros({2 * C * nt});
  detail::for_row_blocks(R, C, nt, [&](int64_t r0, int64_t rows, int t) {
    float* pw = partials.data() + 2 * C * t;
#if VIT_HAVE_BF16_LANES_16
    for (int64_t r = r0; r < r0 + rows; ++r)
      detail::layer_norm_row_backward_bf16(dout + r * C, x + r * C, wf.data(), mean[r], rstd[r],
                                           dx ? dx + r * C : nullptr, pw, pw + C, C);
#else
    float* gs = detail::row_scratch(0, rows * C);
    float* xs = detail::row_scratch(1, rows * C);
    float* ds = dx ? detail::row_scratch(2, rows * C) : nullptr;
    detail::widen_n(dout + r0 * C, gs, rows * C);
    detail::widen_n(x + r0 * C, xs, rows * C);
    layer_norm_backward(gs, xs, wf.data(), mean + r0, rstd + r0, ds, pw, pw + C, rows, C);
    if (dx) detail::narrow_n(ds, dx + r0 * C, rows * C);
#endif
  });
  for (int64_t c = 0; c < C; ++c) {
    float sw = dw ? float(dw[c]) : 0.f, sb = db ? float(db[c]) : 0.f;
    for (int t = 0; t < nt; ++t) {
      sw += partials.data()[2 * C * t + c];
      sb += partials.data()[2 * C * t + C + c];
    }
    if (dw) dw[c] = bf16(sw);
    if (db) db[c] = bf16(sb);
  }
}

// On `dev`. mean, rstd: compute_t<T> (float for bf16), eps too.
template <class T>
void layer_norm_forward(Device dev, const T* x, const T* w, const T* b, T* out, compute_t<T>* mean,
                        compute_t<T>* rstd, int64_t R, int64_t C, compute_t<T> eps) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::layer_norm_forward(x, w, b, out, mean, rstd, R, C, eps);
    else
      detail::cuda_branch_missing("layer_norm");
    return;
  }
  layer_norm_forward(x, w, b, out, mean, rstd, R, C, eps);
}

template <class T>
void layer_norm_backward(Device dev, const T* dout, const T* x, const T* w,
                         const compute_t<T>* mean, const compute_t<T>* rstd, T* dx, T* dw, T* db,
                         int64_t R, int64_t C) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::layer_norm_backward(dout, x, w, mean, rstd, dx, dw, db, R, C);
    else
      detail::cuda_branch_missing("layer_norm");
    return;
  }
  layer_norm_backward(dout, x, w, mean, rstd, dx, dw, db, R, C);
}

}  // namespace ops

namespace detail {
template <class T>
struct LayerNormNode : Node<T> {
  Tensor<T> x, w;
  Tensor<compute_t<T>> mean, rstd;  // float for bf16
  const char* name() const override { return "layer_norm"; }
  void backward(const Tensor<T>& dout) override {
    const int64_t C = w.numel(), R = x.numel() / std::max<int64_t>(C, 1);
    Tensor<T> dx;
    if (this->needs_grad(0)) dx = Tensor<T>::empty(x.shape(), x.device());
    T* dw = this->needs_grad(1) ? this->grad_buffer(1).data() : nullptr;
    T* db = this->needs_grad(2) ? this->grad_buffer(2).data() : nullptr;
    ops::layer_norm_backward(x.device(), dout.data(), x.data(), w.data(), mean.data(), rstd.data(),
                             dx.defined() ? dx.data() : nullptr, dw, db, R, C);
    if (dx.defined()) this->accumulate(0, dx);
  }
};
}  // namespace detail

/// nn.LayerNorm over the last dim: (x - mean) / sqrt(var + eps) * weight + bias.
template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                     double eps = 1e-6) {
  const Device dev = ops::detail::same_device("layer_norm", x, weight, bias);
  VIT_CHECK(x.dim() >= 1 && weight.shape() == Shape{x.shape().back()} &&
                bias.shape() == Shape{x.shape().back()},
            "layer_norm: x ", x.shape(), " vs weight ", weight.shape(), " and bias ", bias.shape());
  VIT_CHECK(eps > 0, "layer_norm: eps must be positive, got ", eps);
  const int64_t C = x.shape().back(), R = ops::detail::rows_of(x);
  Tensor<T> out = Tensor<T>::empty(x.shape(), dev);
  using S = compute_t<T>;  // the saved statistics' type: float for bf16
  Tensor<S> mean = Tensor<S>::empty({R}, dev), rstd = Tensor<S>::empty({R}, dev);
  ops::layer_norm_forward(dev, x.data(), weight.data(), bias.data(), out.data(), mean.data(), rstd.data(),
                          R, C, static_cast<S>(eps));
  if (autograd::needs_grad(x, weight, bias)) {
    auto node = std::make_shared<detail::LayerNormNode<T>>();
    node->x = x.detach();
    node->w = weight.detach();
    node->mean = mean;
    node->rstd = rstd;
    autograd::attach(out, node, {&x, &weight, &bias});
  }
  return out;
}

}  // namespace vit
