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

/// Fresh N(0, std) values from a seed.
inline std::vector<float> random_vector(size_t n, uint64_t seed, double std = 1.0) {
  Generator g(seed);
  TensorF t = TensorF::normal({static_cast<int64_t>(n)}, 0.0, std, g);
  return t.to_vector();
}

/// |got − ref| <= atol + rtol·|ref| for every element (NaN fails), naming the worst.
inline void require_close(const std::vector<float>& got, const std::vector<float>& ref, double atol,
                          double rtol, const char* what) {
  REQUIRE(got.size() == ref.size());
  size_t worst = got.size();
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double excess = std::abs(double(got[i]) - ref[i]) - (atol + rtol * std::abs(double(ref[i])));
    if (!(excess <= 0) && (worst == got.size() || !(excess <= worst_excess))) worst = i, worst_excess = excess;
  }
  if (worst != got.size()) {
    std::ostringstream os;
    os << what << ": element " << worst << " of " << got.size() << ": got " << got[worst]
       << ", expected " << ref[worst] << " (atol " << atol << ", rtol " << rtol << ")";
    FAIL(os.str());
  }
}

}  // namespace vit::test
