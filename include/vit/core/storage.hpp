// Storage<T>: one contiguous buffer, shared by a tensor and all its views.
// CPU buffers come from the caching allocator; a CUDA buffer can only be made
// by the vit::cuda backend (see include/vit/cuda/).
#pragma once

#include <cstdint>

#include "vit/core/allocator.hpp"
#include "vit/core/device.hpp"
#include "vit/core/error.hpp"

namespace vit {

template <class T>
class Storage {
 public:
  Storage(int64_t n, Device device) : n_(n), device_(device) {
    VIT_CHECK(device == Device::CPU, "Storage: device ", device_name(device),
              " is not available in this build (built without VIT_CUDA)");
    VIT_CHECK(n >= 0, "Storage: negative size ", n);
    data_ = static_cast<T*>(CpuCachingAllocator::instance().allocate(sizeof(T) * static_cast<size_t>(n)));
  }
  ~Storage() { CpuCachingAllocator::instance().deallocate(data_, sizeof(T) * static_cast<size_t>(n_)); }
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
