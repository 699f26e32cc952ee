// Main of the [cuda] tests: on a machine with no usable CUDA device it says so
// and exits 77, which ctest reports as "skipped", never as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <vit/cuda/runtime.hpp>

int main(int argc, char** argv) {
  if (!vit::cuda::available()) {
    std::printf("every [cuda] test skipped: %s\n", vit::cuda::device_description().c_str());
    return 77;
  }
  std::printf("[cuda] tests on %s\n", vit::cuda::device_description().c_str());
  return Catch::Session().run(argc, argv);
}
