// Storage<T>: one contiguous buffer, shared by a tensor and all its views.
// CPU buffers come from the CPU caching allocator; device buffers from the
// device backend's (core/device_runtime.hpp), which exists only when the
// program links one (that defines VIT_WITH_CUDA=1). Without it a CUDA storage
// is a clear error, never a silent CPU fallback. Any element type may live on
// the device (float activations, int32 labels, double metric sums); which ops
// have kernels for which type is the op layer's business.
#pragma once

#include <cstdint>
#include <type_traits>

#include "vit/core/allocator.hpp"
#include "vit/core/device.hpp"
#include "vit/core/error.hpp"
#include "vit/core/device_runtime.hpp"

namespace vit {

template <class T>
class Storage {
 public:
  Storage(int64_t n, Device device) : n_(n), device_(device) {
    VIT_CHECK(n >= 0, "Storage: negative size ", n);
    const size_t bytes = sizeof(T) * static_cast<size_t>(n);
    if (device == Device::CUDA) {
#if VIT_WITH_CUDA
      VIT_CHECK(cuda::available(), "Storage: no CUDA device: ", cuda::device_description());
      data_ = static_cast<T*>(cuda::allocate(bytes));
      return;
#else
      VIT_CHECK(false, "Storage: device cuda is not available in this build "
                "(link vit::cuda, built when CMake finds nvcc, to use it)");
#endif
    }
    data_ = static_cast<T*>(CpuCachingAllocator::instance().allocate(bytes));
  }
  ~Storage() {
    const size_t bytes = sizeof(T) * static_cast<size_t>(n_);
#if VIT_WITH_CUDA
    if (device_ == Device::CUDA) {
      cuda::deallocate(data_, bytes);
      return;
    }
#endif
    CpuCachingAllocator::instance().deallocate(data_, bytes);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return n_; }
  Device device() const { return device_; }

 private:
  T* data_ = nullptr;
  int64_t n_ = 0;
  Device device_ = Device::CPU;
};

}  // namespace vit
