// Image folders laid out as ImageNet is (dir/train/<class>, dir/val/<class>),
// the aspect-keeping storage, and data sets of mixed sizes through the loader:
// centre crop for evaluation (exactly eval_transform of the file), a
// RandomResizedCrop per sample for training.
#include <filesystem>

#include "support/check.hpp"
#include "support/noise_image.hpp"
#include "support/temp_dir.hpp"
#include "vit/data/eval_transform.hpp"
#include "vit/data/image_folder.hpp"
#include "vit/data/loader.hpp"

using namespace vit;
using namespace vit::data;
using test::noise_image;
namespace fs = std::filesystem;
using Catch::Contains;
using test::TempDir;

namespace {
void put(const fs::path& file, int64_t h, int64_t w, uint64_t seed) {
  fs::create_directories(file.parent_path());
  write_png(file.string(), noise_image(3, h, w, seed));
}
}  // namespace

TEST_CASE("an ImageNet-style folder is read as given", "[data][folder]") {
  TempDir d("layout");
  put(d.path / "train/b/1.png", 20, 30, 1);
  put(d.path / "train/b/2.png", 30, 20, 2);
  put(d.path / "train/a/1.png", 12, 12, 3);
  put(d.path / "train/c/1.png", 16, 40, 4);
  put(d.path / "val/b/9.png", 25, 15, 5);
  put(d.path / "val/a/9.png", 10, 14, 6);  // no val/c: fewer classes is fine
  ImageFolderOptions opt;
  opt.image_size = 16, opt.val_ratio = 0.5;  // the ratio does not apply
  REQUIRE(is_train_val_folder(d.path.string()));
  const ImageFolderSplit s = read_image_folder(d.path.string(), opt);
  CHECK(s.presplit);
  CHECK(s.train.class_names == std::vector<std::string>{"a", "b", "c"});
  CHECK(s.val.class_names == s.train.class_names);
  CHECK(s.train.labels == std::vector<int32_t>{0, 1, 1, 2});
  CHECK(s.val.labels == std::vector<int32_t>{0, 1});
  // Stored at shorter side floor(16 / 0.875) = 18, aspect kept.
  REQUIRE(s.val.variable_size());
  CHECK(s.val.image_height(0) == 18);
  CHECK(s.val.image_width(0) == 25);  // int(18 * 14 / 10)
  CHECK(s.val.image_height(1) == 30);  // int(18 * 25 / 15)
  CHECK(s.val.image_width(1) == 18);
  const Image direct = eval_resize(read_image((d.path / "val/b/9.png").string(), 3), 16, 0.875);
  CHECK(s.val.image(1).data == direct.data);

  SECTION("evaluation decodes only val/") {
    opt.read_train = false;
    put(d.path / "train/a/broken.png", 4, 4, 7);
    test::write_text((d.path / "train/a/broken.png").string(), "not a png");
    const ImageFolderSplit e = read_image_folder(d.path.string(), opt);
    CHECK(e.train.size() == 0);
    CHECK(e.train.class_names == s.train.class_names);
    CHECK(e.val.labels == s.val.labels);
    CHECK(e.val.pixels == s.val.pixels);
  }
  SECTION("crop_pct sets the stored size") {
    opt.crop_pct = 1.0;
    const ImageFolderSplit e = read_image_folder(d.path.string(), opt);
    CHECK(e.val.image_height(0) == 16);
    CHECK(e.val.image_width(0) == 22);  // int(16 * 14 / 10)
  }
}

TEST_CASE("an ImageNet-style folder with a mismatch is refused clearly", "[data][folder]") {
  TempDir d("layout_bad");
  ImageFolderOptions opt;
  opt.image_size = 8;
  put(d.path / "train/a/1.png", 8, 8, 1);
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains(": has train/ but no val/ (a folder laid out as ImageNet"));
  fs::create_directories(d.path / "val");
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("val: no class subfolders"));
  put(d.path / "val/z/1.png", 8, 8, 2);
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("z: class 'z' has no folder in"));
  fs::remove_all(d.path / "val/z");
  fs::create_directories(d.path / "val/a");
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("a: class folder has no .jpg, .jpeg, .png or .bmp images"));
  put(d.path / "val/a/1.png", 8, 8, 3);
  CHECK(read_image_folder(d.path.string(), opt).val.size() == 1);
  fs::remove_all(d.path / "train");
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains(": has val/ but no train/"));
  put(d.path / "x/1.png", 8, 8, 3);
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains(": has val/ but no train/"));
}

TEST_CASE("an elongated image is refused naming the file", "[data][folder]") {
  TempDir d("elongated");
  put(d.path / "a/thin.png", 1, 600, 1);
  ImageFolderOptions opt;
  opt.image_size = 224, opt.val_ratio = 0;
  REQUIRE_THROWS_WITH(read_image_folder(d.path.string(), opt),
                      Contains("thin.png: a 600x1 image is too elongated"));
}

TEST_CASE("loader crops images of mixed sizes", "[data][folder][loader]") {
  // Three stored images of different sizes, as read_image_folder keeps them.
  Dataset ds;
  ds.channels = 3;
  ds.class_names = {"a", "b"};
  std::vector<Image> images = {noise_image(3, 18, 25, 1), noise_image(3, 30, 18, 2),
                               noise_image(3, 18, 18, 3), noise_image(3, 20, 40, 4)};
  for (size_t i = 0; i < images.size(); ++i) {
    ds.extents.push_back({int64_t(ds.pixels.size()), images[i].height, images[i].width});
    ds.pixels.insert(ds.pixels.end(), images[i].data.begin(), images[i].data.end());
    ds.labels.push_back(int32_t(i % 2));
  }
  const Normalization norm{{0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f}};
  LoaderConfig c;
  c.batch_size = 2, c.shuffle = false, c.drop_last = false, c.augment = false;
  c.normalization = norm, c.image_size = 16, c.seed = 7;

  SECTION("evaluation: the centre crop of each stored image") {
    Loader l(ds, c);
    l.start();
    for (int b = 0; b < 2; ++b) {
      const Batch& batch = l.next();
      REQUIRE(batch.images.shape() == Shape{2, 3, 16, 16});
      for (int s = 0; s < 2; ++s) {
        const Image want = center_crop(images[size_t(2 * b + s)], 16);
        std::vector<float> ref(3 * 16 * 16);
        to_normalized_float(want, norm, ref.data());
        REQUIRE(std::vector<float>(batch.images.data() + s * 768,
                                   batch.images.data() + (s + 1) * 768) == ref);
      }
    }
  }
  SECTION("training: RandomResizedCrop per sample, the same on any worker count") {
    c.augment = true, c.shuffle = true, c.drop_last = true;
    c.augment_config.random_resized_crop = true;
    c.augment_config.color_jitter = 0.4;
    c.augment_config.erasing_prob = 0.5;
    c.augment_config.erasing_min_area = 0.1, c.augment_config.erasing_max_area = 0.4;
    Loader one(ds, c), three(ds, (c.workers = 3, c));
    one.start();
    three.start();
    std::vector<float> first;
    for (int k = 0; k < 4; ++k) {
      const Batch& a = one.next();
      const Batch& b = three.next();
      REQUIRE(a.images.shape() == Shape{2, 3, 16, 16});
      REQUIRE(a.images.to_vector() == b.images.to_vector());
      if (k == 0) first = a.images.to_vector();
      if (k == 2) CHECK(a.images.to_vector() != first);  // a new epoch, new crops
    }
  }
  SECTION("without RandomResizedCrop training starts from the centre crop") {
    c.augment = true;
    c.augment_config.crop_padding = 0, c.augment_config.hflip = false;
    Loader l(ds, c);
    l.start();
    const Batch& batch = l.next();
    std::vector<float> ref(3 * 16 * 16);
    to_normalized_float(center_crop(images[0], 16), norm, ref.data());
    CHECK(std::vector<float>(batch.images.data(), batch.images.data() + 768) == ref);
  }
  SECTION("grey images become RGB, small ones are resized up first") {
    Dataset g;
    g.channels = 1, g.class_names = {"a"};
    const Image small = noise_image(1, 10, 14, 9);
    g.extents.push_back({0, 10, 14});
    g.pixels = small.data;
    g.labels = {0};
    c.channels = 3, c.batch_size = 1;
    Loader l(g, c);
    l.start();
    const Batch& batch = l.next();
    const Image want = center_crop(resize_shorter_side(small, 16), 16);
    Image rgb(3, 16, 16);
    for (int64_t ch = 0; ch < 3; ++ch)
      std::copy(want.data.begin(), want.data.end(), rgb.data.begin() + ch * 256);
    std::vector<float> ref(3 * 256);
    to_normalized_float(rgb, norm, ref.data());
    CHECK(batch.images.to_vector() == ref);
  }
  SECTION("an output size is required") {
    c.image_size = 0;
    REQUIRE_THROWS_WITH(Loader(ds, c),
                        Contains("images of different sizes need an output image_size"));
  }
}
