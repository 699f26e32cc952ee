// patchify / unpatchify: the image <-> patch-row rearrangement in front of the
// patch-embedding GEMM, with exactly ops::patchify's layouts:
//   x (B,ch,H,W) <-> cols (B·gh·gw, ch·P·P), gh = H/P, gw = W/P,
//   cols[(b·gh+py)·gw+px, (c·P+ky)·P+kx] = x[b, c, py·P+ky, px·P+kx].
// One thread per *output* element, so writes are coalesced and reads come in
// contiguous runs of P. Patches do not overlap, so unpatchify writes every dx
// element exactly once: no atomics, no zero fill. Indices are 32-bit when the
// tensor allows (integer division is the kernel's main cost). A template on
// the element type (float, vit::bf16): pure data movement, elements are
// copied as they are.
#pragma once

#include <cstdint>

#include "device_api.cuh"

namespace vit::cuda::kernels {

struct PatchifyLaunch {
  dim3 grid, block;
  size_t smem;
  bool index32;  // every index and index + grid stride fits in int32
};

constexpr int kPatchifyThreads = 256;
constexpr int64_t kPatchifyMaxBlocks = 8192;  // grid-stride beyond

/// total = B·ch·H·W, the element count of x (and of cols).
inline PatchifyLaunch patchify_launch(int64_t total) {
  int64_t blocks = (total + kPatchifyThreads - 1) / kPatchifyThreads;
  blocks = blocks < 1 ? 1 : (blocks > kPatchifyMaxBlocks ? kPatchifyMaxBlocks : blocks);
  const bool index32 = total + blocks * kPatchifyThreads <= INT32_MAX;
  return {dim3(static_cast<unsigned>(blocks)), dim3(kPatchifyThreads), 0, index32};
}

// x: (B,ch,H,W) -> cols: (B·gh·gw, ch·P·P); total = B·ch·H·W.
template <class Index, class T = float>
VIT_KERNEL void patchify_kernel(const T* __restrict__ x, T* __restrict__ cols, Index total,
                                Index ch, Index H, Index W, Index P) {
  const Index gh = H / P, gw = W / P, PP = P * P, K = ch * PP, patches = gh * gw;
  const Index stride = Index(gridDim.x) * Index(blockDim.x);
  for (Index o = Index(blockIdx.x) * Index(blockDim.x) + Index(threadIdx.x); o < total; o += stride) {
    const Index row = o / K, k = o - row * K;
    const Index c = k / PP, r = k - c * PP;
    const Index ky = r / P, kx = r - ky * P;
    const Index b = row / patches, p = row - b * patches;
    const Index py = p / gw, px = p - py * gw;
    cols[o] = x[((b * ch + c) * H + py * P + ky) * W + px * P + kx];
  }
}

// dcols: (B·gh·gw, ch·P·P) -> dx: (B,ch,H,W), every element written once.
template <class Index, class T = float>
VIT_KERNEL void unpatchify_kernel(const T* __restrict__ dcols, T* __restrict__ dx, Index total,
                                  Index ch, Index H, Index W, Index P) {
  const Index gh = H / P, gw = W / P, K = ch * P * P;
  const Index stride = Index(gridDim.x) * Index(blockDim.x);
  for (Index o = Index(blockIdx.x) * Index(blockDim.x) + Index(threadIdx.x); o < total; o += stride) {
    Index t = o / W;
    const Index xx = o - t * W;
    const Index y = t - (t / H) * H;
    t /= H;
    const Index c = t - (t / ch) * ch, b = t / ch;
    const Index py = y / P, ky = y - py * P, px = xx / P, kx = xx - px * P;
    dx[o] = dcols[((b * gh + py) * gw + px) * K + (c * P + ky) * P + kx];
  }
}

}  // namespace vit::cuda::kernels
