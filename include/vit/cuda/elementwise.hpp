// Elementwise launchers of the CUDA backend (cuda/elementwise.cu): maps over
// flat float arrays, the row-broadcast bias add, and deterministic column and
// total sums. Device pointers, work queued on vit::cuda::stream(), nothing
// synchronised. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/device_runtime.hpp"  // add(a, b, out, n) is declared there

namespace vit::cuda {

void fill(float* x, float value, int64_t n);
/// dst += src.
void accumulate(float* dst, const float* src, int64_t n);
/// out = s · x (out may be x).
void scale(const float* x, float s, float* out, int64_t n);
/// out = a - b (out may alias a or b).
void sub(const float* a, const float* b, float* out, int64_t n);
/// out = a * b (out may alias a or b).
void mul(const float* a, const float* b, float* out, int64_t n);
/// y = tanh(x); dx = dy · (1 - y²) from the forward's output y (written; may alias).
void tanh_forward(const float* x, float* y, int64_t n);
void tanh_backward(const float* dy, const float* y, float* dx, int64_t n);
/// x (R,C) row r gets bias (C) added: out[r,c] = x[r,c] + bias[c] (out may alias x).
void add_row_broadcast(const float* x, const float* bias, float* out, int64_t R, int64_t C);
/// acc[c] += sum over r of x[r,c], x (R,C); deterministic: fixed partial-sum order, no atomics.
void column_sums_accumulate(const float* x, float* acc, int64_t R, int64_t C);
/// Sum of all n elements into out[0] (written), deterministic two-stage.
void sum_all(const float* x, float* out, int64_t n);

}  // namespace vit::cuda
