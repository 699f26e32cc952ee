// The emulator itself (tests/cuda_emu/emu.hpp) as the launchers use it
// (detail::launch and VIT_CUDA_LAUNCH_CHECK of cuda/common.cuh, emulated
// branch): every block of a 3-D grid runs once with the right indices, 3-D
// blocks number their threads as CUDA does, block sums and shuffles agree
// across many rounds, dynamic shared memory is poisoned again at the start of
// every block, launches CUDA would refuse run nothing and are reported, and
// launches from two host threads both complete.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "common.cuh"
#include "kernels/device_api.cuh"

namespace k = vit::cuda::kernels;
namespace detail = vit::cuda::detail;

namespace {

VIT_KERNEL void block_index_kernel(float* out, int per_block) {
  __shared__ float scratch[32];
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  // Thread t adds t + 1: the block's sum is n(n+1)/2, plus the block number in every lane.
  const float s = k::block_sum(static_cast<float>(threadIdx.x + 1), scratch);
  if (threadIdx.x == 0) out[b * per_block] = s;
  if (threadIdx.x == 1) out[b * per_block + 1] = static_cast<float>(b);
}

VIT_KERNEL void thread_index_kernel(int* out) {
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[blockIdx.x * blockDim.x * blockDim.y * blockDim.z + t] =
      static_cast<int>(threadIdx.x + 10 * threadIdx.y + 100 * threadIdx.z + 1000 * blockIdx.x);
}

VIT_KERNEL void shuffle_rounds_kernel(int* out, int rounds) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  int v = lane;
  for (int r = 0; r < rounds; ++r) {
    v = __shfl_xor_sync(0xffffffffu, v, 1 + r % 31);  // lane l gets l ^ m's value
    v = __shfl_xor_sync(0xffffffffu, v, 1 + r % 31);  // and back: v == lane again
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

/// out[block] = 1 when the block's dynamic shared memory was all 0xff on entry.
VIT_KERNEL void smem_poison_kernel(int* out, int bytes) {
  VIT_DYNAMIC_SMEM(unsigned char, smem);
  __syncthreads();
  if (threadIdx.x == 0) {
    bool poisoned = true;
    for (int i = 0; i < bytes; ++i) poisoned = poisoned && smem[i] == 0xff;
    out[blockIdx.x] = poisoned ? 1 : 0;
  }
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < bytes; i += static_cast<int>(blockDim.x))
    smem[i] = 0;  // dirty it for the next block
}

VIT_KERNEL void write_one_kernel(int* out) { out[threadIdx.x] = 1; }

}  // namespace

TEST_CASE("emulator: every block of a 3-D grid runs once, with its block sum", "[cuda-emu]") {
  const dim3 grid(3, 2, 2);
  const unsigned threads = 96;
  std::vector<float> out(12 * 2, -1.f);
  detail::launch(block_index_kernel, grid, dim3(threads), 0, out.data(), 2);
  VIT_CUDA_LAUNCH_CHECK();
  for (unsigned b = 0; b < 12; ++b) {
    CHECK(out[2 * b] == threads * (threads + 1) / 2);
    CHECK(out[2 * b + 1] == static_cast<float>(b));
  }
}

TEST_CASE("emulator: 3-D blocks number their threads x fastest", "[cuda-emu]") {
  const dim3 block(4, 2, 4);
  std::vector<int> out(2 * 32, -1);
  detail::launch(thread_index_kernel, dim3(2), block, 0, out.data());
  VIT_CUDA_LAUNCH_CHECK();
  for (unsigned b = 0; b < 2; ++b)
    for (unsigned z = 0; z < 4; ++z)
      for (unsigned y = 0; y < 2; ++y)
        for (unsigned x = 0; x < 4; ++x)
          CHECK(out[b * 32 + x + 4 * (y + 2 * z)] == static_cast<int>(x + 10 * y + 100 * z + 1000 * b));
}

TEST_CASE("emulator: shuffles agree over many rounds and warps", "[cuda-emu]") {
  const int rounds = 200;
  std::vector<int> out(3 * 64, -1);
  detail::launch(shuffle_rounds_kernel, dim3(3), dim3(64), 0, out.data(), rounds);
  VIT_CUDA_LAUNCH_CHECK();
  for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == static_cast<int>(i % 32));
}

TEST_CASE("emulator: dynamic shared memory is poisoned at the start of every block", "[cuda-emu]") {
  const int bytes = 1000;
  std::vector<int> out(5, -1);
  detail::launch(smem_poison_kernel, dim3(5), dim3(64), bytes, out.data(), bytes);
  VIT_CUDA_LAUNCH_CHECK();
  for (int v : out) CHECK(v == 1);
}

TEST_CASE("emulator: a launch CUDA refuses runs nothing and is reported at the check",
          "[cuda-emu]") {
  std::vector<int> out(2048, 0);
  const uint64_t before = vit_emu::launch_count();
  SECTION("too many threads") { detail::launch(write_one_kernel, dim3(1), dim3(2048), 0, out.data()); }
  SECTION("empty grid") { detail::launch(write_one_kernel, dim3(0), dim3(32), 0, out.data()); }
  SECTION("too much dynamic shared memory") {
    detail::launch(write_one_kernel, dim3(1), dim3(32), 64 * 1024, out.data());
  }
  auto check = [] { VIT_CUDA_LAUNCH_CHECK(); };
  REQUIRE_THROWS_WITH(check(), Catch::Contains("invalid configuration"));
  CHECK(vit_emu::launch_count() == before);
  for (int v : out) CHECK(v == 0);
  VIT_CUDA_LAUNCH_CHECK();  // reading the error cleared it
}

TEST_CASE("emulator: launches from two host threads both complete", "[cuda-emu]") {
  std::vector<float> a(8 * 2, -1.f), b(8 * 2, -1.f);
  auto run = [](std::vector<float>* out) {
    for (int i = 0; i < 5; ++i) detail::launch(block_index_kernel, dim3(8), dim3(64), 0, out->data(), 2);
  };
  std::thread t1(run, &a), t2(run, &b);
  t1.join();
  t2.join();
  for (unsigned i = 0; i < 8; ++i) {
    CHECK(a[2 * i] == 64 * 65 / 2);
    CHECK(b[2 * i] == 64 * 65 / 2);
  }
}
