// Loader: batch contents are a pure function of (seed, epoch, batch index),
// whatever the worker count or the starting cursor; file order without shuffle;
// short last batch for evaluation; resizing and grey-to-RGB on the fly.
#include "support/check.hpp"

using namespace vit;

namespace {
data::Dataset make_set(int64_t n, int64_t C = 3, int64_t H = 8, int64_t W = 8) {
  data::Dataset d;
  d.channels = C, d.height = H, d.width = W;
  d.class_names = {"a", "b", "c"};
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % 3));
    for (int64_t p = 0; p < C * H * W; ++p) d.pixels.push_back(static_cast<uint8_t>((i * 7 + p) % 256));
  }
  return d;
}
data::LoaderConfig config(int64_t batch, int workers, bool augment = true) {
  data::LoaderConfig c;
  c.batch_size = batch, c.workers = workers, c.seed = 42, c.augment = augment;
  c.augment_config.crop_padding = 2;
  c.normalization = {{0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  return c;
}
}  // namespace

TEST_CASE("loader batches depend only on their cursor", "[data][loader]") {
  const data::Dataset d = make_set(50);
  data::Loader one(d, config(8, 1)), three(d, config(8, 3)), resumed(d, config(8, 2));
  REQUIRE(one.batches_per_epoch() == 6);
  std::vector<std::vector<float>> seq;
  std::vector<std::vector<int64_t>> labels;
  one.start(0, 0);
  three.start(0, 0);
  for (int k = 0; k < 14; ++k) {  // crosses two epoch boundaries
    const data::Batch& a = one.next();
    const data::Batch& b = three.next();
    CHECK(a.epoch == k / 6);
    CHECK(a.index == k % 6);
    REQUIRE(a.images.to_vector() == b.images.to_vector());
    REQUIRE(a.labels == b.labels);
    seq.push_back(a.images.to_vector());
    labels.push_back(a.labels);
  }
  CHECK(seq[0] != seq[6]);  // a new epoch reshuffles and re-augments
  resumed.start(1, 3);      // as after a checkpoint at step 9
  for (int k = 9; k < 14; ++k) {
    const data::Batch& r = resumed.next();
    REQUIRE(r.images.to_vector() == seq[static_cast<size_t>(k)]);
    REQUIRE(r.labels == labels[static_cast<size_t>(k)]);
  }
  CHECK(one.wait_seconds() >= 0);
}

TEST_CASE("loader without shuffle and augmentation is file order, normalised", "[data][loader]") {
  const data::Dataset d = make_set(10);
  data::LoaderConfig c = config(4, 1, /*augment=*/false);
  c.shuffle = false, c.drop_last = false;
  data::Loader l(d, c);
  REQUIRE(l.batches_per_epoch() == 3);
  l.start();
  std::vector<int64_t> seen;
  for (int b = 0; b < 3; ++b) {
    const data::Batch& batch = l.next();
    REQUIRE(batch.images.shape()[0] == (b < 2 ? 4 : 2));  // short last batch
    for (int64_t s = 0; s < batch.size(); ++s) {
      const int64_t i = b * 4 + s;
      seen.push_back(i);
      CHECK(batch.labels[s] == i % 3);
      const float px = batch.images.data()[s * 192 + 5];
      CHECK(px == Approx((((i * 7 + 5) % 256) / 255.0f - 0.5f) / 0.25f));
    }
  }
  CHECK(seen.size() == 10);
}

TEST_CASE("loader resizes and turns grey into RGB on the fly", "[data][loader]") {
  const data::Dataset d = make_set(4, 1, 8, 8);
  data::LoaderConfig c = config(2, 1, false);
  c.image_size = 16, c.channels = 3;
  data::Loader l(d, c);
  l.start();
  const data::Batch& b = l.next();
  REQUIRE(b.images.shape() == Shape{2, 3, 16, 16});
  for (int64_t p = 0; p < 256; ++p) {  // the three planes are copies
    CHECK(b.images.data()[p] == b.images.data()[256 + p]);
    CHECK(b.images.data()[p] == b.images.data()[512 + p]);
  }
}

TEST_CASE("loader with mixup gives soft targets per batch", "[data][loader]") {
  const data::Dataset d = make_set(16);
  data::LoaderConfig c = config(8, 2);
  c.mixup = true;
  c.mixup_config.num_classes = 3;
  data::Loader l(d, c);
  l.start();
  const data::Batch& b = l.next();
  REQUIRE(b.soft_targets.shape() == Shape{8, 3});
  for (int64_t r = 0; r < 8; ++r) {
    double s = 0;
    for (int k = 0; k < 3; ++k) s += b.soft_targets.data()[r * 3 + k];
    CHECK(s == Approx(1.0).margin(1e-5));
  }
}

TEST_CASE("loader rejects bad configurations with a message", "[data][loader]") {
  const data::Dataset d = make_set(5);
  REQUIRE_THROWS_WITH(data::Loader(d, config(8, 1)), Catch::Contains("batch size 8 is larger than the data set (5 images)"));
  data::LoaderConfig c = config(2, 1);
  c.normalization = {{0.5f}, {0.5f}};
  REQUIRE_THROWS_WITH(data::Loader(d, c), Catch::Contains("normalisation has 1 channels, images 3"));
  data::Loader l(d, config(2, 1));
  REQUIRE_THROWS_WITH(l.start(0, 2), Catch::Contains("outside the 2 batches"));
}
