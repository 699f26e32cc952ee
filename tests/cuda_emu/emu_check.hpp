// Test-side helpers for the emulated kernel tests: poisoned outputs, random
// inputs and the closeness check (support/vector_check.hpp, shared with the
// [cuda] tests), the row kernels' alignment condition and the attention
// kernels' dropout arguments.
#pragma once

#include "kernels/attention.cuh"
#include "kernels/rng.cuh"
#include "kernels/rows.cuh"
#include "support/vector_check.hpp"

namespace vit::test {

/// True when every pointer given is null or 16-byte aligned: the row kernels'
/// condition for their 16-byte vector path.
template <class... P>
bool all_aligned16(const P*... p) {
  return ((p == nullptr || vit::cuda::kernels::rows::aligned16(p)) && ...);
}

/// The attention kernels' dropout arguments as cuda/attention.cu computes them.
inline vit::cuda::kernels::AttentionDrop drop_args(const vit::ops::AttentionDropout& d) {
  namespace kn = vit::cuda::kernels;
  if (!d.active()) return {};
  return {d.seed, d.counter0, kn::keep_threshold(d.p), static_cast<float>(1.0 / (1.0 - d.p))};
}

}  // namespace vit::test
