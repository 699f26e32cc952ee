// The CPU reference of every op on bf16 tensors: bf16 storage, float32 math.
// An op's raw CPU function for T = bf16 widens its inputs into float buffers,
// runs the float loops (the same code, so both dtypes share one definition of
// the op) and rounds the outputs back once (round to nearest even). Buffers
// come from the CPU caching allocator, so a steady-state step allocates nothing.
// This is the specification the bf16 CUDA kernels are checked against, and
// what `--precision bf16` runs on a CPU; it is not a fast CPU bf16 path.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"
#include "vit/core/tensor.hpp"

namespace vit::ops::detail {

/// A float copy of n bf16 values (exact: every bf16 is a float). Null in, empty out.
inline TensorF widen(const bf16* p, int64_t n) {
  TensorF f = TensorF::empty({n});
  float* d = f.data();
  if (p == nullptr) return f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] = float(p[i]);
  return f;
}

/// dst[i] = bf16(src[i]), rounded to nearest even.
inline void narrow(const float* src, bf16* dst, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16(src[i]);
}

/// Float pointer of a widened buffer, or null for an absent (null) input.
inline const float* ptr_or_null(const TensorF& t, const void* original) {
  return original ? t.data() : nullptr;
}

}  // namespace vit::ops::detail
