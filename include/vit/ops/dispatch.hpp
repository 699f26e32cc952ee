// The one dispatch point of the raw-kernel layer. Every op has ONE autograd
// node and ONE public wrapper, written for every device; they call raw
// functions `ops::<op>_forward(Device, ...)` / `_backward(Device, ...)` on
// buffers, and only those pick the device (and later the dtype):
//
//   if (dev == Device::CUDA) {
//     if constexpr (kCudaFloat<T>) cuda::<op>_forward(...);   // the launcher
//     else cuda_branch_missing("<op>");
//     return;
//   }
//   <op>_forward(...);                                        // the CPU loops
//
// The CUDA branch is compiled only where a backend is linked (VIT_WITH_CUDA)
// and kernels exist for T (float, bf16), so CPU-only programs need no CUDA library and
// reference no CUDA symbol.
#pragma once

#include <type_traits>

#include "vit/core/bf16.hpp"
#include "vit/core/device_runtime.hpp"
#include "vit/core/error.hpp"

namespace vit::ops::detail {

/// True where the CUDA branch is compiled in: a program linking a device
/// backend, and float tensors.
template <class T>
inline constexpr bool kCudaFloat = VIT_WITH_CUDA && std::is_same_v<T, float>;
/// The same for bf16 tensors (launchers overloaded on vit::bf16 pointers).
template <class T>
inline constexpr bool kCudaBf16 = VIT_WITH_CUDA && is_bf16_v<T>;
/// Float or bf16: an op whose launchers exist for both dtypes.
template <class T>
inline constexpr bool kCudaKernels = kCudaFloat<T> || kCudaBf16<T>;

/// Where a CUDA tensor of a type without kernels (or in a build without a
/// backend) reaches an op.
[[noreturn]] inline void cuda_branch_missing(const char* op) {
  vit::detail::throw_error(__FILE__, __LINE__, op,
                           ": no CUDA kernel for this element type in this build");
}

}  // namespace vit::ops::detail
