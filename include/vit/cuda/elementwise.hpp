// Elementwise launchers of the CUDA backend (cuda/elementwise.cu): maps over
// flat float arrays, the row-broadcast bias add, and deterministic column and
// total sums. Device pointers, work queued on vit::cuda::stream(), nothing
// synchronised. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

void fill(float* x, float value, int64_t n);
/// out = a + b (out may alias a or b).
void add(const float* a, const float* b, float* out, int64_t n);
/// dst += src.
void accumulate(float* dst, const float* src, int64_t n);
/// x *= s.
void scale(float* x, float s, int64_t n);
/// out = a * b (out may alias a or b).
void mul(const float* a, const float* b, float* out, int64_t n);
/// x (R,C) row r gets bias (C) added: out[r,c] = x[r,c] + bias[c] (out may alias x).
void add_row_broadcast(const float* x, const float* bias, float* out, int64_t R, int64_t C);
/// acc[c] += sum over r of x[r,c], x (R,C); deterministic: fixed partial-sum order, no atomics.
void column_sums_accumulate(const float* x, float* acc, int64_t R, int64_t C);
/// Sum of all n elements into out[0] (written), deterministic two-stage.
void sum_all(const float* x, float* out, int64_t n);

}  // namespace vit::cuda
