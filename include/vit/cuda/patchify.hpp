// patchify / unpatchify on the GPU (cuda/patchify.cu), the layouts of
// ops::patchify / ops::unpatchify: x (B,ch,H,W) <-> cols (B·(H/P)·(W/P), ch·P·P).
// Device pointers, work queued on vit::cuda::stream(). No CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// x: (B,ch,H,W) -> cols: (B·N, ch·P·P), N = (H/P)·(W/P); H and W divisible by P.
void patchify(const float* x, float* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P);
/// dcols: (B·N, ch·P·P) -> dx: (B,ch,H,W), written (patches do not overlap).
void unpatchify(const float* dcols, float* dx, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P);

}  // namespace vit::cuda
