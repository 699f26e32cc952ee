// Elementwise launchers of the CUDA backend (cuda/elementwise.cu): maps over
// flat arrays, the row-broadcast bias add, and deterministic column and total
// sums. Each exists for float and for vit::bf16 storage (an overload with the
// same parameters; bf16 computes in float and rounds each result once, sums
// accumulate in float). Device pointers, work queued on vit::cuda::stream(),
// nothing synchronised. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"
#include "vit/core/device_runtime.hpp"  // add(a, b, out, n) is declared there

namespace vit::cuda {

/// x[i] = value (rounded to bf16 for the bf16 overload).
void fill(float* x, float value, int64_t n);
void fill(bf16* x, float value, int64_t n);
/// dst += src.
void accumulate(float* dst, const float* src, int64_t n);
void accumulate(bf16* dst, const bf16* src, int64_t n);
/// out = s · x (out may be x).
void scale(const float* x, float s, float* out, int64_t n);
void scale(const bf16* x, float s, bf16* out, int64_t n);
/// out = a - b (out may alias a or b).
void sub(const float* a, const float* b, float* out, int64_t n);
void sub(const bf16* a, const bf16* b, bf16* out, int64_t n);
/// out = a * b (out may alias a or b).
void mul(const float* a, const float* b, float* out, int64_t n);
void mul(const bf16* a, const bf16* b, bf16* out, int64_t n);
/// y = tanh(x); dx = dy · (1 - y²) from the forward's output y (written; may alias).
void tanh_forward(const float* x, float* y, int64_t n);
void tanh_forward(const bf16* x, bf16* y, int64_t n);
void tanh_backward(const float* dy, const float* y, float* dx, int64_t n);
void tanh_backward(const bf16* dy, const bf16* y, bf16* dx, int64_t n);
/// x (R,C) row r gets bias (C) added: out[r,c] = x[r,c] + bias[c] (out may alias x).
void add_row_broadcast(const float* x, const float* bias, float* out, int64_t R, int64_t C);
void add_row_broadcast(const bf16* x, const bf16* bias, bf16* out, int64_t R, int64_t C);
/// acc[c] += sum over r of x[r,c], x (R,C); deterministic: fixed partial-sum order, no atomics.
/// The sums are float; a bf16 acc gets each column's total added (and rounded) once; the
/// (bf16 x, float acc) overload is the bias gradient straight into an fp32 master gradient.
void column_sums_accumulate(const float* x, float* acc, int64_t R, int64_t C);
void column_sums_accumulate(const bf16* x, bf16* acc, int64_t R, int64_t C);
void column_sums_accumulate(const bf16* x, float* acc, int64_t R, int64_t C);
/// Sum of all n elements into out[0] (written), deterministic two-stage, float sums.
void sum_all(const float* x, float* out, int64_t n);
void sum_all(const bf16* x, bf16* out, int64_t n);

}  // namespace vit::cuda
