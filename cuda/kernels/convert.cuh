// dtype conversions on the GPU, the kernels of cuda/convert.cu: float -> bf16
// (round to nearest even, exactly vit::bf16's rule: the one cvt.rn.bf16.f32
// instruction on sm_80+), bf16 -> float (exact), and the fp32 master-gradient
// accumulation acc += float(g) of the mixed-precision trainer. They are maps.cuh's
// flat maps with mixed storage types: 8 elements per step when every pointer
// is 16-byte aligned (one 16-byte bf16 vector, two float4s), a scalar tail.
// Only templates: any launcher may include this.
#pragma once

#include "maps.cuh"

namespace vit::cuda::kernels {

/// x (n, TI) -> out (n, TO), each value converted (rounded once when TO is bf16).
template <class TI, class TO>
VIT_KERNEL void convert_kernel(const TI* x, TO* out, int64_t n) {
  ew_unary<EwIdentity, TI, TO>(x, out, n, EwIdentity{});
}

/// acc (n, float) += float(g) (n, bf16): exact widening, one float add.
template <class TG>
VIT_KERNEL void accumulate_widened_kernel(const TG* g, float* acc, int64_t n) {
  ew_binary<EwAdd, float, TG, float>(acc, g, acc, n, EwAdd{});
}

/// Launch geometry of both: one thread per 8 elements.
inline ElementwiseLaunch convert_launch(int64_t n, int64_t max_blocks = kElementwiseMaxBlocks) {
  return map_launch<float, bf16>(n, max_blocks);
}

}  // namespace vit::cuda::kernels
