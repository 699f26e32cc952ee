// Distributed sampling: every sample once per epoch across ranks plus the
// documented padding (the epoch order's first ceil(n/N)·N − n samples again);
// world size 1 is the single-process order; the Loader on N ranks of batch B
// reassembles, image for image and bit for bit, the single-process batch of N·B
// (augmentation on or off); its batches follow an independent reference of the
// documented keys (position for augmentation, (epoch, batch, rank) for mixup);
// batches_per_epoch as documented; bad rank or world size refused.
#include <map>

#include "support/check.hpp"
#include "vit/data/distributed_sampler.hpp"

using namespace vit;

namespace {
// n images, label i for image i (n classes), pixels that differ between images.
data::Dataset numbered_set(int64_t n, int64_t C = 3, int64_t H = 8, int64_t W = 8) {
  data::Dataset d;
  d.channels = C, d.height = H, d.width = W;
  for (int64_t i = 0; i < n; ++i) {
    d.class_names.push_back(std::to_string(i));
    d.labels.push_back(static_cast<int32_t>(i));
    for (int64_t p = 0; p < C * H * W; ++p)
      d.pixels.push_back(static_cast<uint8_t>((i * 7 + p * 13 + i * p) % 256));
  }
  return d;
}

data::LoaderConfig config(int64_t batch, int world, int rank, bool augment, int workers = 1) {
  data::LoaderConfig c;
  c.batch_size = batch, c.world_size = world, c.rank = rank, c.workers = workers;
  c.seed = 7, c.augment = augment, c.shuffle = true;
  c.augment_config.crop_padding = 2;  // crop and flip (flip is on by default)
  c.normalization = {{0.5f, 0.4f, 0.3f}, {0.25f, 0.2f, 0.3f}};
  return c;
}

std::vector<float> row(const TensorF& images, int64_t s) {
  const int64_t img = images.numel() / images.shape()[0];
  return {images.data() + s * img, images.data() + (s + 1) * img};
}

struct Copy {  // a Batch outlives the next next() only as a copy
  std::vector<std::vector<float>> rows;
  std::vector<int64_t> labels;
  std::vector<float> soft;
  int64_t epoch = 0, index = 0;
};
Copy copy_of(const data::Batch& b) {
  Copy c;
  for (int64_t s = 0; s < b.size(); ++s) c.rows.push_back(row(b.images, s));
  c.labels = b.labels;
  if (b.soft_targets.defined())
    c.soft.assign(b.soft_targets.data(), b.soft_targets.data() + b.soft_targets.numel());
  c.epoch = b.epoch, c.index = b.index;
  return c;
}

// The next `count` batches of a loader started at (0, 0).
std::vector<Copy> stream(const data::Dataset& d, const data::LoaderConfig& c, int count) {
  data::Loader l(d, c);
  l.start(0, 0);
  std::vector<Copy> out;
  for (int k = 0; k < count; ++k) out.push_back(copy_of(l.next()));
  return out;
}

// Batch k of epoch e on rank r, written from the documented keys alone: sample j
// at position p = N·(k·B + j) + r of the epoch order padded by repetition,
// augmented from (seed, e, p, 0xA06); mixup from (seed, e, k, 0x3122 | r << 32).
Copy reference_batch(const data::Dataset& d, const data::LoaderConfig& c, int64_t e, int64_t k,
                     data::MixupParams* params = nullptr) {
  const int64_t n = d.size(), B = c.batch_size, N = c.world_size, r = c.rank;
  const std::vector<int64_t> order = data::epoch_permutation(n, c.shuffle, c.seed, e);
  const int64_t shard = (n + N - 1) / N;
  const int64_t m = std::min(B, shard - k * B);
  const int64_t C = d.channels, H = d.height, W = d.width, img = C * H * W;
  std::vector<float> images(static_cast<size_t>(m * img));
  Copy out;
  for (int64_t j = 0; j < m; ++j) {
    const int64_t p = N * (k * B + j) + r;
    const int64_t i = order[static_cast<size_t>(p % n)];
    out.labels.push_back(d.labels[static_cast<size_t>(i)]);
    float* dst = images.data() + j * img;
    if (c.augment) {
      Generator g(data::detail::mix_seed(c.seed, e, p, 0xA06));
      data::augment_and_normalize(d.image_data(i), C, H, W, c.augment_config, c.normalization, g,
                                  dst);
    } else {
      data::normalize_only(d.image_data(i), C, H, W, c.normalization, dst);
    }
  }
  if (c.mixup) {
    Generator g(data::detail::mix_seed(c.seed, e, k, 0x3122 | (static_cast<uint64_t>(r) << 32)));
    std::vector<int32_t> labels32(out.labels.begin(), out.labels.end());
    out.soft.resize(static_cast<size_t>(m * c.mixup_config.num_classes));
    const data::MixupParams p = data::mixup_batch(images.data(), m, C, H, W, labels32.data(),
                                                  c.mixup_config, g, out.soft.data());
    if (params) *params = p;
  }
  for (int64_t j = 0; j < m; ++j)
    out.rows.emplace_back(images.begin() + j * img, images.begin() + (j + 1) * img);
  out.epoch = e, out.index = k;
  return out;
}
}  // namespace

TEST_CASE("shard_indices covers every sample once plus the documented padding",
          "[data][sampler]") {
  for (int64_t n : {1, 3, 7, 10, 13, 16}) {
    for (int N : {1, 2, 3, 5}) {
      for (bool shuffle : {false, true}) {
        for (int64_t epoch : {0, 1}) {
          INFO("n " << n << ", world " << N << ", shuffle " << shuffle << ", epoch " << epoch);
          const std::vector<int64_t> order = data::epoch_permutation(n, shuffle, 3, epoch);
          const int64_t m = data::shard_size(n, N), P = data::padded_size(n, N);
          REQUIRE(m == (n + N - 1) / N);
          REQUIRE(P == m * N);
          REQUIRE(P - n < N);  // padding never reaches a whole extra round
          std::map<int64_t, int> seen;
          for (int r = 0; r < N; ++r) {
            const std::vector<int64_t> shard = data::shard_indices(n, N, r, shuffle, 3, epoch);
            REQUIRE(static_cast<int64_t>(shard.size()) == m);  // equal on every rank
            for (int64_t k = 0; k < m; ++k) {
              // rank r takes positions r, r+N, ...; position p holds order[p mod n]
              CHECK(shard[k] == order[static_cast<size_t>((k * N + r) % n)]);
              ++seen[shard[k]];
            }
          }
          REQUIRE(static_cast<int64_t>(seen.size()) == n);  // every sample at least once
          // ... and exactly once, except the first P − n of the epoch order, twice (when
          // n >= P − n; a set smaller than the padding wraps again: q is seen once per
          // position p < P with p mod n == q)
          for (int64_t q = 0; q < n; ++q) {
            const int expected = P - n <= n ? (q < P - n ? 2 : 1)
                                            : static_cast<int>((P - 1 - q) / n + 1);
            CHECK(seen[order[static_cast<size_t>(q)]] == expected);
          }
        }
      }
    }
  }
}

TEST_CASE("epoch_permutation is a permutation, reshuffled per epoch, identity without shuffle",
          "[data][sampler]") {
  const int64_t n = 100;
  std::vector<int64_t> identity(n);
  std::iota(identity.begin(), identity.end(), int64_t{0});
  CHECK(data::epoch_permutation(n, false, 5, 3) == identity);
  const auto e0 = data::epoch_permutation(n, true, 5, 0), e1 = data::epoch_permutation(n, true, 5, 1);
  CHECK(e0 != identity);
  CHECK(e0 != e1);
  CHECK(e0 != data::epoch_permutation(n, true, 6, 0));  // the seed matters
  CHECK(e0 == data::epoch_permutation(n, true, 5, 0));  // and nothing else
  auto sorted = e1;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == identity);
}

TEST_CASE("shard_indices with world size 1 is the epoch order the single-process loader reads",
          "[data][sampler]") {
  const data::Dataset d = numbered_set(23);
  for (bool shuffle : {false, true}) {
    data::LoaderConfig c = config(5, 1, 0, /*augment=*/false);
    c.shuffle = shuffle, c.drop_last = false;
    const std::vector<int64_t> order = data::epoch_permutation(23, shuffle, c.seed, 1);
    CHECK(data::shard_indices(23, 1, 0, shuffle, c.seed, 1) == order);
    data::Loader l(d, c);
    REQUIRE(l.batches_per_epoch() == 5);
    l.start(1, 0);
    std::vector<int64_t> read;
    for (int k = 0; k < 5; ++k) {
      const data::Batch& b = l.next();
      read.insert(read.end(), b.labels.begin(), b.labels.end());  // label i is image i
    }
    CHECK(read == order);
  }
}

TEST_CASE("loader with world size 1 follows the single-process keys bit for bit",
          "[data][sampler]") {
  // The reference is the pre-distributed loader's formula: position k·B + j,
  // augmentation from (seed, e, k·B + j), mixup from (seed, e, k).
  const data::Dataset d = numbered_set(29);
  for (bool augment : {false, true}) {
    for (bool mixup : {false, true}) {
      for (bool drop_last : {true, false}) {
        INFO("augment " << augment << ", mixup " << mixup << ", drop_last " << drop_last);
        data::LoaderConfig c = config(6, 1, 0, augment, /*workers=*/2);
        c.drop_last = drop_last, c.mixup = mixup;
        c.mixup_config.num_classes = d.num_classes();
        c.augment_config.randaugment_n = 2, c.augment_config.erasing_prob = 0.5;
        const int64_t bpe = drop_last ? 4 : 5;
        const std::vector<Copy> got = stream(d, c, static_cast<int>(2 * bpe + 1));
        for (size_t t = 0; t < got.size(); ++t) {
          const Copy want = reference_batch(d, c, t / bpe, t % bpe);
          REQUIRE(got[t].epoch == want.epoch);
          REQUIRE(got[t].index == want.index);
          REQUIRE(got[t].labels == want.labels);
          REQUIRE(got[t].rows == want.rows);  // bitwise
          REQUIRE(got[t].soft == want.soft);
        }
      }
    }
  }
}

TEST_CASE("two ranks of batch B reassemble the single-process batch of 2B bit for bit",
          "[data][sampler]") {
  const data::Dataset d = numbered_set(53);
  for (int N : {2, 3}) {
    for (bool augment : {false, true}) {
      INFO("world " << N << ", augment " << augment);
      const int64_t B = 4;
      const data::LoaderConfig single = config(N * B, 1, 0, augment, 2);
      const int64_t bpe = 53 / (N * B);  // 6 for N = 2, 4 for N = 3
      const int count = static_cast<int>(2 * bpe + 1);  // crosses two epoch boundaries
      const std::vector<Copy> whole = stream(d, single, count);
      std::vector<std::vector<Copy>> ranks;
      for (int r = 0; r < N; ++r) ranks.push_back(stream(d, config(B, N, r, augment, 1 + r), count));
      for (int t = 0; t < count; ++t) {
        REQUIRE(whole[t].labels.size() == static_cast<size_t>(N * B));
        for (int r = 0; r < N; ++r) {
          REQUIRE(ranks[r][t].epoch == whole[t].epoch);
          REQUIRE(ranks[r][t].index == whole[t].index);
          REQUIRE(ranks[r][t].labels.size() == static_cast<size_t>(B));
          for (int64_t j = 0; j < B; ++j) {
            const size_t g = static_cast<size_t>(N * j + r);  // its row in the global batch
            CHECK(ranks[r][t].labels[j] == whole[t].labels[g]);
            REQUIRE(ranks[r][t].rows[j] == whole[t].rows[g]);  // bitwise, augmented or not
          }
        }
      }
      CHECK(whole[0].rows != whole[bpe].rows);  // a new epoch reshuffles and re-augments
    }
  }
}

TEST_CASE("without drop_last the ranks read their padded shards, rows keyed by position",
          "[data][sampler]") {
  const data::Dataset d = numbered_set(13);
  const int N = 3;
  const int64_t B = 2;
  for (bool augment : {false, true}) {
    data::LoaderConfig one = config(N * B, 1, 0, augment);
    one.drop_last = false;
    const std::vector<Copy> whole = stream(d, one, 3);  // 13 samples in batches 6, 6, 1
    const std::vector<int64_t> order = data::epoch_permutation(13, true, one.seed, 0);
    for (int r = 0; r < N; ++r) {
      data::LoaderConfig c = config(B, N, r, augment);
      c.drop_last = false;
      data::Loader l(d, c);
      REQUIRE(l.batches_per_epoch() == 3);  // ceil(ceil(13/3) / 2) = ceil(5/2)
      const std::vector<Copy> mine = stream(d, c, 3);
      const std::vector<int64_t> shard = data::shard_indices(13, N, r, true, c.seed, 0);
      std::vector<int64_t> read;
      for (int k = 0; k < 3; ++k) {
        REQUIRE(mine[k].labels.size() == static_cast<size_t>(k < 2 ? 2 : 1));  // short last
        for (size_t j = 0; j < mine[k].labels.size(); ++j) {
          read.push_back(mine[k].labels[j]);
          const int64_t p = N * (k * B + static_cast<int64_t>(j)) + r;
          if (p < 13) {  // a real position: the single-process row at p
            REQUIRE(mine[k].rows[j] == whole[p / (N * B)].rows[p % (N * B)]);
          } else {  // padding: the epoch order's start again
            CHECK(mine[k].labels[j] == order[static_cast<size_t>(p % 13)]);
          }
        }
      }
      CHECK(read == shard);
    }
  }
}

TEST_CASE("loader mixup is per rank: rank 0 keeps the single-process seed, others differ",
          "[data][sampler]") {
  const data::Dataset d = numbered_set(40);
  std::vector<double> lam0, lam1;
  for (int r = 0; r < 2; ++r) {
    data::LoaderConfig c = config(4, 2, r, /*augment=*/true);
    c.mixup = true;
    c.mixup_config.num_classes = d.num_classes();
    const std::vector<Copy> got = stream(d, c, 7);  // 5 batches per epoch: crosses one
    for (size_t t = 0; t < got.size(); ++t) {
      data::MixupParams p;
      const Copy want = reference_batch(d, c, t / 5, t % 5, &p);
      REQUIRE(got[t].labels == want.labels);
      REQUIRE(got[t].rows == want.rows);
      REQUIRE(got[t].soft == want.soft);
      (r == 0 ? lam0 : lam1).push_back(p.lam);
    }
  }
  CHECK(lam0 != lam1);  // ranks draw different lambdas
}

TEST_CASE("loader batches_per_epoch drops the last global batch in training",
          "[data][sampler]") {
  struct Case {
    int64_t n, B;
    int N;
    bool drop_last;
    int64_t want;
  };
  for (const Case& k : {Case{53, 4, 2, true, 6}, Case{53, 4, 2, false, 7},
                        Case{53, 4, 3, true, 4}, Case{53, 4, 3, false, 5},
                        Case{53, 4, 1, true, 13}, Case{53, 4, 1, false, 14},
                        Case{10, 1, 3, true, 3}, Case{10, 1, 3, false, 4},
                        Case{3, 1, 5, false, 1}, Case{16, 8, 2, true, 1}}) {
    INFO("n " << k.n << ", B " << k.B << ", world " << k.N << ", drop_last " << k.drop_last);
    const data::Dataset d = numbered_set(k.n);
    for (int r = 0; r < k.N; ++r) {
      data::LoaderConfig c = config(k.B, k.N, r, false);
      c.drop_last = k.drop_last;
      CHECK(data::Loader(d, c).batches_per_epoch() == k.want);
    }
  }
}

TEST_CASE("loader and sampler refuse a bad rank or world size with a clear error",
          "[data][sampler]") {
  const data::Dataset d = numbered_set(20);
  const auto refused = [&](int world, int rank) {
    data::LoaderConfig c = config(2, world, rank, false);
    return data::Loader(d, c);
  };
  REQUIRE_THROWS_AS(refused(2, 2), Error);
  REQUIRE_THROWS_WITH(refused(2, 2), Catch::Contains("loader: rank 2 is outside world size 2"));
  REQUIRE_THROWS_WITH(refused(4, -1), Catch::Contains("loader: rank -1 is outside world size 4"));
  REQUIRE_THROWS_WITH(refused(0, 0), Catch::Contains("loader: world size must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(refused(11, 0), Catch::Contains("global batch 11 ranks x 2 = 22 is larger "
                                                      "than the data set (20 images)"));
  REQUIRE_NOTHROW(refused(10, 9));
  REQUIRE_THROWS_WITH(data::shard_indices(20, 3, 3, true, 0, 0),
                      Catch::Contains("shard_indices: rank 3 is outside world size 3"));
  REQUIRE_THROWS_WITH(data::shard_indices(0, 1, 0, true, 0, 0),
                      Catch::Contains("shard_indices: the data set is empty"));
  REQUIRE_THROWS_AS(data::shard_size(5, 0), Error);
}
