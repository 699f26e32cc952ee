// dist::GradientReducer on the job's communicator and device (host buffers
// over MPI; Device::CUDA buffers of the emulated backend staged through
// pinned memory; NCCL on a GPU): N ranks, each with its own slice of one
// batch, end with the gradient one process computes on the whole batch, the
// same bits on every rank; accumulation steps (no sync) stay local.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dist/dist_env.hpp"
#include "support/tiny_vit.hpp"
#include "vit/vit.hpp"

using namespace vit;

namespace {

constexpr int64_t kPerRank = 2;

// Rows [first, first + n) of one batch every rank can make: images and labels.
TensorF images(int64_t first, int64_t n) {
  std::vector<float> v;
  for (int64_t i = first; i < first + n; ++i)
    for (int64_t k = 0; k < 2 * 8 * 8; ++k) v.push_back(std::sin(0.37f * float(i * 131 + k)));
  return TensorF::from_data({n, 2, 8, 8}, v).to(dist_test::device());
}
Tensor<int32_t> labels(int64_t first, int64_t n) {
  std::vector<int32_t> v;
  for (int64_t i = first; i < first + n; ++i) v.push_back(static_cast<int32_t>((i * 7) % 3));
  return Tensor<int32_t>::from_data({n}, v).to(dist_test::device());
}
TensorF loss_on(nn::VisionTransformer<float>& m, int64_t first, int64_t n) {
  return cross_entropy(m.forward(images(first, n)), labels(first, n), 0.1);
}

// Every gradient of `params` within 1e-5 of the reference model's (relative
// to each tensor's scale); returns an FNV-1a hash of their bits.
uint64_t check_matches_whole_batch(const std::vector<TensorF>& params, nn::VisionTransformer<float>& ref) {
  const auto named = ref.named_parameters();
  uint64_t hash = 1469598103934665603ull;
  for (size_t k = 0; k < params.size(); ++k) {
    const std::vector<float> got = params[k].grad().to_vector();
    const std::vector<float> want = named[k].second.grad().to_vector();
    double diff = 0, scale = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      diff = std::max(diff, std::abs(double(got[i]) - want[i]));
      scale = std::max(scale, std::abs(double(want[i])));
      uint32_t bits;
      std::memcpy(&bits, &got[i], 4);
      hash = (hash ^ bits) * 1099511628211ull;
    }
    INFO(named[k].first << ": max difference " << diff << " at scale " << scale);
    CHECK(diff <= 1e-5 * std::max(scale, 1e-3));
  }
  return hash;
}

}  // namespace

TEST_CASE("GradientReducer: every rank ends with the whole batch's gradient", "[dist]") {
  dist::Communicator& comm = dist_test::comm();
  const int64_t N = comm.size(), r = comm.rank();
  nn::VisionTransformer<float> whole(test::tiny_vit_config(32)), mine(test::tiny_vit_config(32));
  whole.to(dist_test::device()), mine.to(dist_test::device());
  // One process, the whole batch of N·kPerRank rows.
  loss_on(whole, 0, N * kPerRank).backward();
  // This rank's rows, averaged over ranks by the reducer (small buckets: several).
  const std::vector<TensorF> params = mine.parameters();
  dist::GradientReducer<float> reducer(comm, params, 8192);
  CHECK(reducer.bucket_count() > 1);
  for (int step = 0; step < 2; ++step) {  // twice: the buffers are reused
    for (const auto& p : params) p.zero_grad();
    loss_on(mine, r * kPerRank, kPerRank).backward();
    reducer.finish();
  }
  const uint64_t hash = check_matches_whole_batch(params, whole);
  // The same bits on every rank: rank 0's hash against each rank's.
  uint64_t rank0 = hash;
  comm.broadcast(&rank0, 8, dist::DType::UInt8, 0, Device::CPU);
  int64_t differ = rank0 != hash;
  comm.allreduce_sum(&differ, 1, dist::DType::Int64, Device::CPU);
  CHECK(differ == 0);
}

TEST_CASE("GradientReducer: no sync leaves the gradients local until the synced step",
          "[dist]") {
  dist::Communicator& comm = dist_test::comm();
  const int64_t N = comm.size(), r = comm.rank();
  nn::VisionTransformer<float> whole(test::tiny_vit_config(32)), mine(test::tiny_vit_config(32));
  whole.to(dist_test::device()), mine.to(dist_test::device());
  // One process: two micro-batches of the whole batch, gradients added.
  loss_on(whole, 0, N * kPerRank).backward();
  loss_on(whole, N * kPerRank, N * kPerRank).backward();
  const std::vector<TensorF> params = mine.parameters();
  dist::GradientReducer<float> reducer(comm, params);
  reducer.set_sync(false);
  loss_on(mine, r * kPerRank, kPerRank).backward();
  reducer.finish();  // nothing to do
  reducer.set_sync(true);
  loss_on(mine, N * kPerRank + r * kPerRank, kPerRank).backward();
  reducer.finish();
  check_matches_whole_batch(params, whole);
}
