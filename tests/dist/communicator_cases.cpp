// The communicator of the job (dist_env.hpp: SingleProcess when run plainly,
// MPI under mpirun, MPI staging device buffers in the emulated-CUDA binary,
// NCCL on a GPU) against a plain reference: what each rank contributes is a
// deterministic function of (rank, index), so every rank computes the
// expected sum or broadcast locally. The values of the exactness checks are
// small integers (quarters for floats), whose sums are exact in any order;
// the identical-bits check uses magnitudes spread over many binades, whose
// sum depends on the order, and compares a hash of the result across ranks.
//
// Every rank runs every case with the same collectives in the same order, so
// checks are CHECK (never REQUIRE: a rank leaving a case early would leave
// the others waiting in a collective).
#include <catch2/catch.hpp>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "dist/dist_env.hpp"
#include "vit/core/tensor.hpp"
#include "vit/dist/communicator.hpp"
#include "vit/dist/process_group.hpp"
#if VIT_WITH_MPI
#include "vit/dist/mpi_communicator.hpp"
#endif
#if VIT_WITH_CUDA
#include "vit/cuda/runtime.hpp"
#endif

using vit::Device;
using vit::Tensor;
using namespace vit::dist;

namespace {

constexpr DType kTypes[] = {DType::Float32, DType::Float64, DType::Int32, DType::Int64,
                            DType::UInt8};
constexpr int64_t kCounts[] = {0, 1, 7, 1000003};

template <class F>
void with_type(DType t, F&& f) {
  switch (t) {
    case DType::Float32: f.template operator()<float>(); break;
    case DType::Float64: f.template operator()<double>(); break;
    case DType::Int32: f.template operator()<int32_t>(); break;
    case DType::Int64: f.template operator()<int64_t>(); break;
    case DType::UInt8: f.template operator()<uint8_t>(); break;
  }
}

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Rank `r`'s element i: sums of these over ranks are exact in any order.
template <class T>
T exact_value(int r, int64_t i, int size, uint64_t salt = 0) {
  const uint64_t h =
      mix(static_cast<uint64_t>(i) * 1000003u + static_cast<uint64_t>(r) * 7919u + salt);
  if constexpr (std::is_floating_point_v<T>)
    return static_cast<T>(static_cast<int>(h % 2001) - 1000) * T(0.25);
  else if constexpr (std::is_same_v<T, int32_t>)
    return static_cast<int32_t>(h % 2000001) - 1000000;
  else if constexpr (std::is_same_v<T, int64_t>)
    return (static_cast<int64_t>(h % 2000001) - 1000000) * (int64_t(1) << 32) +
           static_cast<int64_t>(h >> 56);
  else
    return static_cast<uint8_t>(h % static_cast<uint64_t>(256 / size));  // no wrap-around
}

// Rank `r`'s element i for the order-sensitive sums: spread over many binades.
template <class T>
T wide_value(int r, int64_t i) {
  const uint64_t h =
      mix(static_cast<uint64_t>(i) * 31u + static_cast<uint64_t>(r) * 1000000007u + 99);
  const int span = std::is_same_v<T, float> ? 30 : 48;
  const double m = 1.0 + static_cast<double>(h % 1000000) / 1e6;
  const int e = static_cast<int>((h >> 20) % span) - span / 2;
  return static_cast<T>(((h >> 60) & 1 ? -m : m) * std::ldexp(1.0, e));
}

template <class T>
std::vector<unsigned char> bytes_of(const std::vector<T>& v) {
  std::vector<unsigned char> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// `count` elements of `type` as raw bytes on the test's device.
struct Buffer {
  DType type;
  int64_t count;
  Tensor<uint8_t> bytes;

  Buffer(DType t, const std::vector<unsigned char>& host)
      : type(t),
        count(static_cast<int64_t>(host.size() / dtype_size(t))),
        bytes(Tensor<uint8_t>::from_data({static_cast<int64_t>(host.size())}, host)
                  .to(dist_test::device())) {}
  void* data() const { return bytes.data(); }
  std::vector<unsigned char> read() const { return bytes.to_vector(); }
};

// Rank `r`'s contribution and the sum over all ranks, as bytes.
struct SumCase {
  std::vector<unsigned char> mine, expected;
};
SumCase sum_case(DType type, int64_t n, uint64_t salt = 0) {
  const int rank = dist_test::comm().rank(), size = dist_test::comm().size();
  SumCase c;
  with_type(type, [&]<class T>() {
    std::vector<T> mine(n), sum(n);
    for (int64_t i = 0; i < n; ++i) {
      mine[i] = exact_value<T>(rank, i, size, salt);
      T s = 0;
      for (int r = 0; r < size; ++r) s = static_cast<T>(s + exact_value<T>(r, i, size, salt));
      sum[i] = s;
    }
    c.mine = bytes_of(mine);
    c.expected = bytes_of(sum);
  });
  return c;
}

// Elements whose bytes differ, and the first of them (-1 when none).
std::pair<int64_t, int64_t> mismatches(const std::vector<unsigned char>& got,
                                       const std::vector<unsigned char>& want, DType type) {
  const size_t es = dtype_size(type);
  if (got.size() != want.size()) return {-1, -2};
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.size() / es; ++i)
    if (std::memcmp(got.data() + i * es, want.data() + i * es, es) != 0) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  return {bad, first};
}

int64_t fnv1a(const std::vector<unsigned char>& b) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
  return static_cast<int64_t>(h);
}

// How many ranks hold a value other than rank 0's (the same count on every
// rank).
int ranks_differing_from_rank0(int64_t value) {
  Communicator& c = dist_test::comm();
  int64_t root = value;
  c.broadcast(&root, 1, DType::Int64, 0, Device::CPU);
  int32_t differs = root != value ? 1 : 0;
  c.allreduce_sum(&differs, 1, DType::Int32, Device::CPU);
  return differs;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("the job is the one the launcher started", "[dist]") {
  Communicator& c = dist_test::comm();
  CHECK(c.size() == launcher_world_size());
  CHECK(c.rank() >= 0);
  CHECK(c.rank() < c.size());
  CHECK(c.local_rank() >= 0);
  CHECK(c.local_rank() < c.local_size());
  CHECK(c.local_size() <= c.size());
  if (dist_test::gpu_path().rfind("NCCL", 0) != 0)
    CHECK(c.name() == (c.size() == 1 ? "single process" : "MPI"));
  // Every rank of a ctest job runs on this machine: local ranks are 0..size-1.
  int64_t local = c.local_rank(), locals = c.local_size();
  c.allreduce_sum(&local, 1, DType::Int64, Device::CPU);
  c.allreduce_sum(&locals, 1, DType::Int64, Device::CPU);
  CHECK(local == int64_t(c.size()) * (c.size() - 1) / 2);
  CHECK(locals == int64_t(c.size()) * c.size());
}

TEST_CASE(
    "allreduce_sum of every dtype and count equals the sum of what the "
    "ranks hold",
    "[dist]") {
  Communicator& c = dist_test::comm();
  for (DType type : kTypes)
    for (int64_t n : kCounts) {
      const SumCase sc = sum_case(type, n);
      Buffer buf(type, sc.mine);
      c.allreduce_sum(buf.data(), n, type, dist_test::device());
      const auto [bad, first] = mismatches(buf.read(), sc.expected, type);
      INFO(dtype_name(type) << ", " << n << " elements on rank " << c.rank() << ", first wrong at "
                            << first);
      CHECK(bad == 0);
    }
}

TEST_CASE("broadcast from every root gives every rank the root's values", "[dist]") {
  Communicator& c = dist_test::comm();
  for (int root = 0; root < c.size(); ++root)
    for (DType type : kTypes)
      for (int64_t n : kCounts) {
        std::vector<unsigned char> mine, want;
        with_type(type, [&]<class T>() {
          std::vector<T> m(n), w(n);
          for (int64_t i = 0; i < n; ++i) {
            w[i] = exact_value<T>(root, i, c.size(), 5);
            // Not the root: something else, which must be overwritten.
            m[i] = c.rank() == root ? w[i] : exact_value<T>(c.rank() + 100, i, c.size(), 6);
          }
          mine = bytes_of(m);
          want = bytes_of(w);
        });
        Buffer buf(type, mine);
        c.broadcast(buf.data(), n, type, root, dist_test::device());
        const auto [bad, first] = mismatches(buf.read(), want, type);
        INFO("root " << root << ", " << dtype_name(type) << ", " << n << " elements on rank "
                     << c.rank() << ", first wrong at " << first);
        CHECK(bad == 0);
      }
}

TEST_CASE("every rank gets the same bits of an order-sensitive sum", "[dist]") {
  Communicator& c = dist_test::comm();
  for (DType type : {DType::Float32, DType::Float64})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000003)})
      for (bool started : {false, true}) {
        std::vector<unsigned char> mine;
        std::vector<double> ref(n), bound(n);
        with_type(type, [&]<class T>() {
          if constexpr (std::is_floating_point_v<T>) {
            std::vector<T> m(n);
            for (int64_t i = 0; i < n; ++i) {
              m[i] = wide_value<T>(c.rank(), i);
              long double s = 0, a = 0;
              for (int r = 0; r < c.size(); ++r) {
                s += wide_value<T>(r, i);
                a += std::fabs(static_cast<long double>(wide_value<T>(r, i)));
              }
              ref[i] = static_cast<double>(s);
              // Any order of summation stays within (size-1)·ε·Σ|x| (+ the
              // final rounding).
              bound[i] = static_cast<double>(a) * c.size() * std::numeric_limits<T>::epsilon();
            }
            mine = bytes_of(m);
          }
        });
        Buffer buf(type, mine);
        if (started) {
          c.start_allreduce_sum(buf.data(), n, type, dist_test::device());
          c.progress();
          c.wait_all();
        } else {
          c.allreduce_sum(buf.data(), n, type, dist_test::device());
        }
        const std::vector<unsigned char> got = buf.read();
        int64_t far = 0;
        with_type(type, [&]<class T>() {
          for (int64_t i = 0; i < n; ++i) {
            T v;
            std::memcpy(&v, got.data() + i * sizeof(T), sizeof(T));
            if (!(std::fabs(static_cast<double>(v) - ref[i]) <= bound[i])) ++far;
          }
        });
        INFO(dtype_name(type) << ", " << n << " elements, " << (started ? "started" : "blocking")
                              << " sum, rank " << c.rank());
        CHECK(far == 0);
        CHECK(ranks_differing_from_rank0(fnv1a(got)) == 0);
      }
}

TEST_CASE(
    "started sums: several in flight, progress between, wait_all "
    "completes them",
    "[dist]") {
  Communicator& c = dist_test::comm();
  struct Item {
    DType type;
    int64_t n;
  };
  const std::vector<Item> items = {
      {DType::Float32, 1000003}, {DType::Float64, 7}, {DType::Int32, 1},   {DType::Int64, 0},
      {DType::UInt8, 1000},      {DType::Float32, 7}, {DType::Int64, 4099}};
#if VIT_WITH_MPI
  auto* mpi = dynamic_cast<MpiCommunicator*>(&c);
#endif
  int64_t allocations_after_first = -1;
  // Cycle 2 repeats cycle 1 (the staging buffers are reused); cycle 3 needs
  // larger ones.
  for (int cycle = 0; cycle < 3; ++cycle) {
    std::vector<SumCase> cases;
    std::vector<Buffer> bufs;
    for (size_t k = 0; k < items.size(); ++k) {
      const int64_t n = cycle == 2 ? items[k].n * 2 + 1 : items[k].n;
      cases.push_back(sum_case(items[k].type, n, 1000 * cycle + k));
      bufs.emplace_back(items[k].type, cases.back().mine);
    }
    for (size_t k = 0; k < items.size(); ++k) {
      c.start_allreduce_sum(bufs[k].data(), bufs[k].count, bufs[k].type, dist_test::device());
      c.progress();
      c.progress();
    }
    // A blocking sum while the started ones are in flight.
    SumCase blocking = sum_case(DType::Float64, 1001, 77 + cycle);
    Buffer bb(DType::Float64, blocking.mine);
    c.allreduce_sum(bb.data(), bb.count, bb.type, dist_test::device());
    c.progress();
    c.wait_all();
    c.wait_all();  // nothing left: returns at once
    for (size_t k = 0; k < items.size(); ++k) {
      const auto [bad, first] = mismatches(bufs[k].read(), cases[k].expected, bufs[k].type);
      INFO("cycle " << cycle << ", sum " << k << ": " << dtype_name(bufs[k].type) << ", "
                    << bufs[k].count << " elements on rank " << c.rank() << ", first wrong at "
                    << first);
      CHECK(bad == 0);
    }
    CHECK(mismatches(bb.read(), blocking.expected, DType::Float64).first == 0);
#if VIT_WITH_MPI
    if (mpi && cycle == 0) allocations_after_first = mpi->staging_allocations();
    if (mpi && cycle == 1) {
      INFO("a repeated cycle allocates no staging buffer");
      CHECK(mpi->staging_allocations() == allocations_after_first);
      if (dist_test::device() == Device::CPU) CHECK(allocations_after_first == 0);
    }
#endif
  }
  (void)allocations_after_first;
}

TEST_CASE("barrier: no rank leaves before the last one has entered", "[dist]") {
  Communicator& c = dist_test::comm();
  for (int round = 0; round < 2; ++round) {
    // Rank r enters r·30 ms late (round 0) or (size-1-r)·30 ms late (round 1).
    const int delay = round == 0 ? c.rank() : c.size() - 1 - c.rank();
    std::this_thread::sleep_for(std::chrono::milliseconds(30 * delay));
    const int64_t entered = now_ns();
    c.barrier();
    const int64_t left = now_ns();
    int64_t last_entry = 0;
    for (int r = 0; r < c.size(); ++r) {
      int64_t e = entered;
      c.broadcast(&e, 1, DType::Int64, r, Device::CPU);
      last_entry = std::max(last_entry, e);
    }
    // steady_clock is the machine's monotonic clock: comparable between the
    // processes of one machine, which is where ctest runs its jobs.
    if (c.local_size() == c.size()) CHECK(left >= last_entry);
  }
}

TEST_CASE("typed tensor helpers sum and broadcast whole tensors", "[dist]") {
  Communicator& c = dist_test::comm();
  // Filled on the host: a device fill of 8-byte elements takes zero only.
  Tensor<float> t = Tensor<float>::full({3, 5}, float(c.rank() + 1)).to(dist_test::device());
  c.allreduce_sum(t);
  const float want = float(c.size() * (c.size() + 1) / 2);
  for (float v : t.to_vector()) CHECK(v == want);
  Tensor<double> d = Tensor<double>::full({4}, double(c.rank())).to(dist_test::device());
  c.broadcast(d, c.size() - 1);
  for (double v : d.to_vector()) CHECK(v == double(c.size() - 1));
}

#if VIT_WITH_MPI
TEST_CASE("MPI: counts beyond one MPI call go in pieces", "[dist]") {
  Communicator& c = dist_test::comm();
  auto* mpi = dynamic_cast<MpiCommunicator*>(&c);
  if (!mpi) return;          // the same on every rank
  mpi->set_max_chunk(1000);  // INT_MAX is what a real call allows; 1000 covers the same code
  for (DType type : {DType::Float32, DType::UInt8, DType::Int64}) {
    const SumCase sc = sum_case(type, 1000003, 31);
    Buffer sum(type, sc.mine), started(type, sc.mine);
    c.allreduce_sum(sum.data(), sum.count, type, dist_test::device());
    c.start_allreduce_sum(started.data(), started.count, type, dist_test::device());
    c.progress();
    c.wait_all();
    INFO(dtype_name(type) << " on rank " << c.rank());
    CHECK(mismatches(sum.read(), sc.expected, type).first == 0);
    CHECK(mismatches(started.read(), sc.expected, type).first == 0);

    const int root = c.size() - 1;
    std::vector<unsigned char> mine, want;
    with_type(type, [&]<class T>() {
      std::vector<T> m(2001), w(2001);
      for (int64_t i = 0; i < 2001; ++i) {
        w[i] = exact_value<T>(root, i, c.size(), 8);
        m[i] = c.rank() == root ? w[i] : T(0);
      }
      mine = bytes_of(m);
      want = bytes_of(w);
    });
    Buffer b(type, mine);
    c.broadcast(b.data(), b.count, type, root, dist_test::device());
    CHECK(mismatches(b.read(), want, type).first == 0);
  }
  mpi->set_max_chunk(INT_MAX);
  CHECK_THROWS_AS(mpi->set_max_chunk(0), vit::Error);
}
#endif

TEST_CASE("misuse is an error before any communication", "[dist]") {
  Communicator& c = dist_test::comm();
  float x = 1;
  CHECK_THROWS_AS(c.allreduce_sum(&x, -1, DType::Float32, Device::CPU), vit::Error);
  CHECK_THROWS_AS(c.broadcast(&x, 1, DType::Float32, c.size(), Device::CPU), vit::Error);
  CHECK_THROWS_AS(c.broadcast(&x, 1, DType::Float32, -1, Device::CPU), vit::Error);
  CHECK(x == 1);
}

#if VIT_WITH_CUDA
TEST_CASE("gpu_communicator says which path GPU buffers take", "[dist]") {
  Communicator& c = dist_test::comm();
  const std::string& why = dist_test::gpu_path();
  INFO(why);
  CHECK(vit::cuda::current_device() == c.local_rank() % vit::cuda::device_count());
  if (why.rfind("NCCL", 0) == 0) return;  // vit_dist_gpu_tests makes its NcclCommunicator itself
  if (c.size() == 1)
    CHECK(why.find("one rank") != std::string::npos);
  else
    CHECK(why.find("staged through pinned host memory") != std::string::npos);
  // set_device: the device in use may be asked for again, no other.
  CHECK_NOTHROW(vit::cuda::set_device(vit::cuda::current_device()));
  CHECK_THROWS_AS(vit::cuda::set_device(vit::cuda::device_count()), vit::Error);
  CHECK_THROWS_AS(vit::cuda::set_device(-1), vit::Error);
}
#endif

// Hidden (run by name only, by the ctest test "dist: a failure on one rank
// fails every rank"): the main must turn one rank's failure into every rank's.
TEST_CASE("a check that fails on the last rank only", "[.dist-self-test]") {
  Communicator& c = dist_test::comm();
  c.barrier();
  CHECK(c.rank() != c.size() - 1);
  c.barrier();
}
