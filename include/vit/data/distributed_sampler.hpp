// Distributed sampling: which samples each of N data-parallel ranks reads in an
// epoch, as PyTorch's DistributedSampler(shuffle, seed, drop_last=False) splits
// them, written as pure functions of (n, N, rank, shuffle, seed, epoch).
//
// An epoch has one order for the whole job, the same on every rank without any
// communication: epoch_permutation(n, shuffle, seed, epoch), the one definition
// the Loader also uses (identity, or a Fisher-Yates shuffle seeded from
// (seed, epoch)). That order is padded to a multiple of N, P = ceil(n/N)·N
// positions, by repeating it from its start: position p holds sample
// order[p mod n] (PyTorch's `indices += indices[:padding_size]`, repeated when
// the padding exceeds n). The padding is P - n <= N-1 positions: with n a
// multiple of N there is none; otherwise the first P - n samples of the epoch
// order are seen twice (and, only when n < P - n, a set smaller than the padding,
// the order wraps again). Rank r
// owns positions r, r+N, r+2N, ...: ceil(n/N) samples, the same count on every
// rank, so collectives never wait on a rank that ran out of data.
//
// Deliberately avoids: PyTorch's seed + epoch torch.Generator (the permutation
// is ours, not bit-compatible with torch.randperm) and its drop_last=True mode
// (the Loader drops the last partial *global* batch instead, so padding never
// enters training; see LoaderConfig::world_size).
#pragma once

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"

namespace vit::data {

namespace detail {
/// A 64-bit mix of several integers (splitmix64 steps), for derived seeds.
inline uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  uint64_t h = 0x243F6A8885A308D3ull;
  for (uint64_t v : {a, b, c, d}) {
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
  }
  return h;
}
}  // namespace detail

/// Throws vit::Error unless world_size >= 1 and 0 <= rank < world_size.
inline void check_rank(int rank, int world_size, const char* who = "distributed sampler") {
  VIT_CHECK(world_size >= 1, who, ": world size must be >= 1, got ", world_size);
  VIT_CHECK(rank >= 0 && rank < world_size, who, ": rank ", rank, " is outside world size ",
            world_size, " (need 0 <= rank < world_size)");
}

/// The sample order of epoch `epoch` for the whole job, written to `out` (size n):
/// identity without shuffle, else a Fisher-Yates shuffle seeded by (seed, epoch).
inline void epoch_permutation(int64_t n, bool shuffle, uint64_t seed, int64_t epoch,
                              std::vector<int64_t>& out) {
  VIT_CHECK(n >= 0 && epoch >= 0, "epoch_permutation: n ", n, ", epoch ", epoch);
  out.resize(static_cast<size_t>(n));
  std::iota(out.begin(), out.end(), int64_t{0});
  if (!shuffle) return;
  Generator g(detail::mix_seed(seed, 0x5EED, static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(g.next_u64() % static_cast<uint64_t>(i + 1));
    std::swap(out[static_cast<size_t>(i)], out[static_cast<size_t>(j)]);
  }
}

/// epoch_permutation, returned.
inline std::vector<int64_t> epoch_permutation(int64_t n, bool shuffle, uint64_t seed,
                                              int64_t epoch) {
  std::vector<int64_t> out;
  epoch_permutation(n, shuffle, seed, epoch, out);
  return out;
}

/// Samples each rank reads per epoch: ceil(n / world_size) (padding included).
inline int64_t shard_size(int64_t n, int world_size) {
  VIT_CHECK(n >= 0 && world_size >= 1, "shard_size: n ", n, ", world size ", world_size);
  return (n + world_size - 1) / world_size;
}

/// Length of the padded epoch order: shard_size(n, world_size) * world_size.
inline int64_t padded_size(int64_t n, int world_size) {
  return shard_size(n, world_size) * world_size;
}

/// Position, in the padded epoch order, of sample j of rank `rank`'s batch `batch`
/// (batch size per rank B): world_size·(batch·B + j) + rank. The N ranks' batch k
/// together cover positions [k·N·B, (k+1)·N·B), the single-process batch k of size N·B.
inline int64_t sample_position(int64_t batch_size, int world_size, int rank, int64_t batch,
                               int64_t j) {
  return static_cast<int64_t>(world_size) * (batch * batch_size + j) + rank;
}

/// Rank `rank`'s samples of epoch `epoch`, in the order it reads them: positions
/// rank, rank+N, rank+2N, ... of the epoch order padded to ceil(n/N)·N by
/// repeating it from its start (position p holds epoch_permutation(...)[p mod n]).
/// Size shard_size(n, world_size). n must be positive.
inline std::vector<int64_t> shard_indices(int64_t n, int world_size, int rank, bool shuffle,
                                          uint64_t seed, int64_t epoch) {
  check_rank(rank, world_size, "shard_indices");
  VIT_CHECK(n > 0, "shard_indices: the data set is empty");
  const std::vector<int64_t> order = epoch_permutation(n, shuffle, seed, epoch);
  const int64_t m = shard_size(n, world_size);
  std::vector<int64_t> out(static_cast<size_t>(m));
  for (int64_t k = 0; k < m; ++k)
    out[static_cast<size_t>(k)] =
        order[static_cast<size_t>(sample_position(1, world_size, rank, k, 0) % n)];
  return out;
}

}  // namespace vit::data
