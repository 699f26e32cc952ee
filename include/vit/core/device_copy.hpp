// Byte copies, fills and the gradient add between host and device memory, for
// Tensor's own methods (clone, to, copy_from, fill_, item) and autograd. The
// device half goes through core/device_runtime.hpp and exists only when the
// program links a device backend (VIT_WITH_CUDA=1); without one a device
// pointer cannot exist, so reaching that half is an error with a clear message.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "vit/core/bf16.hpp"
#include "vit/core/device.hpp"
#include "vit/core/device_runtime.hpp"
#include "vit/core/error.hpp"

namespace vit::detail {

[[noreturn]] inline void no_cuda_in_build(const char* what) {
  throw_error(__FILE__, __LINE__, what, ": device cuda is not available in this build "
              "(link vit::cuda, built when CMake finds nvcc, to use it)");
}

/// Copies `bytes` from src (on device `from`) to dst (on device `to`).
inline void copy_bytes(void* dst, Device to, const void* src, Device from, size_t bytes) {
  if (bytes == 0) return;  // an empty tensor's or vector's pointer may be null
  if (to == Device::CPU && from == Device::CPU) {
    std::memmove(dst, src, bytes);
    return;
  }
#if VIT_WITH_CUDA
  if (to == Device::CUDA && from == Device::CUDA) cuda::copy_on_device(dst, src, bytes);
  else if (to == Device::CUDA) cuda::copy_to_device(dst, src, bytes);
  else cuda::copy_to_host(dst, src, bytes);
#else
  no_cuda_in_build("copy");
#endif
}

/// p[0..n) = v on its device.
template <class T>
void fill_values(T* p, Device d, T v, int64_t n) {
  if (d == Device::CPU) {
    std::fill_n(p, n, v);
    return;
  }
#if VIT_WITH_CUDA
  static_assert(sizeof(T) % 4 == 0 || sizeof(T) == 2, "device fills work in 4-byte words");
  if constexpr (sizeof(T) == 2) {
    // Pairs of the 16-bit pattern as 4-byte words, then the odd last element.
    uint16_t half;
    std::memcpy(&half, &v, 2);
    cuda::fill32(p, static_cast<uint32_t>(half) * 0x10001u, static_cast<size_t>(n / 2));
    if (n % 2) copy_bytes(p + (n - 1), Device::CUDA, &v, Device::CPU, 2);
  } else if constexpr (sizeof(T) == 4) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    cuda::fill32(p, bits, static_cast<size_t>(n));
  } else {
    VIT_CHECK(v == T(0), "fill: a ", sizeof(T), "-byte element type on cuda can only be zero-filled");
    cuda::fill32(p, 0u, static_cast<size_t>(n) * sizeof(T) / 4);
  }
#else
  no_cuda_in_build("fill");
#endif
}

/// out[i] = a[i] + b[i] (out may alias a): gradient accumulation in autograd.
template <class T>
void add_values(const T* a, const T* b, T* out, Device d, int64_t n) {
  if (d == Device::CPU) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t k = 0; k < n; ++k) {
      if constexpr (is_bf16_v<T>) out[k] = T(float(a[k]) + float(b[k]));  // float math, one rounding
      else out[k] = a[k] + b[k];
    }
    return;
  }
#if VIT_WITH_CUDA
  if constexpr (std::is_same_v<T, float> || is_bf16_v<T>) cuda::add(a, b, out, n);
  else throw_error(__FILE__, __LINE__, "add: gradients on cuda are float32 or bf16 only");
#else
  no_cuda_in_build("add");
#endif
}

}  // namespace vit::detail
