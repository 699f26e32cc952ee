// patchify / unpatchify on the GPU (cuda/patchify.cu), the layouts of
// ops::patchify / ops::unpatchify: x (B,ch,H,W) <-> cols (B·(H/P)·(W/P), ch·P·P).
// Device pointers, work queued on vit::cuda::stream(). float and vit::bf16
// overloads (elements copied unchanged). No CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// x: (B,ch,H,W) -> cols: (B·N, ch·P·P), N = (H/P)·(W/P); H and W divisible by P.
void patchify(const float* x, float* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P);
void patchify(const bf16* x, bf16* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P);
/// dcols: (B·N, ch·P·P) -> dx: (B,ch,H,W), written (patches do not overlap).
void unpatchify(const float* dcols, float* dx, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P);
void unpatchify(const bf16* dcols, bf16* dx, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P);

}  // namespace vit::cuda
