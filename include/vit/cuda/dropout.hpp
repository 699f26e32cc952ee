// Dropout and drop-path masks on the GPU (cuda/dropout.cu), the twin of
// vit/ops/dropout.hpp. The mask is a pure function of (seed, counter, element),
// the same hash as vit::Generator: the GPU draws exactly the CPU's mask, run
// to run and across a resume. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// mask[i] = keep_scale if Generator(seed).uniform(c + i) >= p, else 0, for
/// i < groups, with c = counter0 + *counter_shift (counter_shift: a device
/// uint64, or null for 0). Device pointers, queued on vit::cuda::stream().
/// The shift is how a captured CUDA graph draws fresh masks on each replay:
/// counter0 is baked in at capture, the shift is written before each replay.
void dropout_mask(float* mask, int64_t groups, uint64_t seed, uint64_t counter0, double p,
                  float keep_scale, const uint64_t* counter_shift = nullptr);
/// The same mask rounded to bf16 (ops keep float masks for bf16 tensors; this is for callers
/// that want a bf16 one).
void dropout_mask(bf16* mask, int64_t groups, uint64_t seed, uint64_t counter0, double p,
                  float keep_scale, const uint64_t* counter_shift = nullptr);
/// out[i] = x[i] * mask[i / inner] for i < n (forward and backward alike; out may be x).
void apply_group_mask(const float* x, const float* mask, float* out, int64_t n, int64_t inner);
/// bf16 x and out, the float mask of dropout_mask: out = bf16(float(x)·mask), one rounding.
void apply_group_mask(const bf16* x, const float* mask, bf16* out, int64_t n, int64_t inner);

}  // namespace vit::cuda
