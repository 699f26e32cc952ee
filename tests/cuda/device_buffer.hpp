// Test-side helpers for the [cuda] tests: a device buffer that is filled from,
// and read back into, host vectors, and poisoned (all bytes 0xFF, a NaN in
// float) before a kernel runs so an element the kernel never wrote fails.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <vector>
#include <vit/cuda/runtime.hpp>
#include <vit/vit.hpp>

#include "support/vector_check.hpp"

namespace vit::test {

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n), p_(static_cast<float*>(cuda::allocate(n * sizeof(float)))) {
    poison();
  }
  explicit DeviceBuffer(const std::vector<float>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cuda::deallocate(p_, n_ * sizeof(float)); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  float* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<float>& host) {
    REQUIRE(host.size() == n_);
    cuda::copy_to_device(p_, host.data(), n_ * sizeof(float));
  }
  std::vector<float> download() const {
    std::vector<float> h(n_);
    cuda::copy_to_host(h.data(), p_, n_ * sizeof(float));  // synchronizes: kernel errors surface here
    cuda::synchronize();
    return h;
  }
  void poison() {
    std::vector<unsigned char> nan_bytes(n_ * sizeof(float), 0xFF);
    cuda::copy_to_device(p_, nan_bytes.data(), nan_bytes.size());
  }

 private:
  size_t n_;
  float* p_;
};

}  // namespace vit::test
