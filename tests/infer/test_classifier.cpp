// vit::Classifier: top-k against the model's own forward, one forward for a
// batch, the evaluation transform and channel conversion with their note,
// what it reads from a checkpoint, and one-line errors for bad input.
#include <vit/infer/classifier.hpp>

#include <cmath>
#include <numeric>

#include "support/check.hpp"
#include "support/temp_dir.hpp"

using namespace vit;

namespace {

nn::VitConfig small_config(int64_t channels) {
  nn::VitConfig c;
  c.name = "tiny", c.image_size = 8, c.patch_size = 4, c.in_chans = channels;
  c.dim = 8, c.depth = 2, c.heads = 2, c.mlp_dim = 12, c.num_classes = 5, c.seed = 21;
  return c;
}

data::Image byte_pattern(int64_t channels, int64_t h, int64_t w, int salt = 0) {
  data::Image img(channels, h, w);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>((i * 37 + salt * 101) % 251);
  return img;
}

Classifier make_classifier(int64_t channels, ClassifierOptions o = {}) {
  return Classifier(std::make_unique<nn::VisionTransformer<float>>(small_config(channels)),
                    {"ant", "bee", "cat", "dog", "eel"}, data::folder_normalization(channels),
                    std::move(o));
}

// Softmax in double of the model's own forward on the prepared image.
std::vector<double> reference_probabilities(Classifier& clf, const data::Image& prepared) {
  NoGradGuard ng;
  const TensorF logits = clf.model().forward(clf.input({prepared}));
  const int64_t K = logits.shape()[1];
  std::vector<double> p(static_cast<size_t>(K));
  double mx = -INFINITY, z = 0;
  for (int64_t k = 0; k < K; ++k) mx = std::max(mx, double(logits.data()[k]));
  for (int64_t k = 0; k < K; ++k) z += p[k] = std::exp(double(logits.data()[k]) - mx);
  for (double& v : p) v /= z;
  return p;
}

}  // namespace

TEST_CASE("classifier: top-k is the model's softmax, most probable first", "[infer][classifier]") {
  Classifier clf = make_classifier(3);
  const data::Image img = byte_pattern(3, 8, 8);
  const auto top = clf.classify(img, 5);
  REQUIRE(top.size() == 5);
  const auto expect = reference_probabilities(clf, clf.prepare(img));
  double sum = 0;
  for (size_t r = 0; r < top.size(); ++r) {
    sum += top[r].probability;
    CHECK(top[r].probability == Approx(expect[top[r].index]).epsilon(1e-12));
    CHECK(top[r].name == clf.class_names()[top[r].index]);
    if (r > 0) CHECK(top[r - 1].probability >= top[r].probability);
  }
  CHECK(sum == Approx(1.0).epsilon(1e-12));
  const auto top2 = clf.classify(img, 2);  // k below K: the first two of the full ranking
  REQUIRE(top2.size() == 2);
  CHECK(top2[0].index == top[0].index);
  CHECK(top2[1].index == top[1].index);
  CHECK(clf.classify(img, 50).size() == 5);  // k above K: every class
}

TEST_CASE("classifier: top_k ranks ties by index and needs a batch of rows", "[infer][classifier]") {
  TensorF logits = TensorF::empty({2, 3});
  const float v[] = {1, 3, 3, 0, 0, 0};
  std::copy(v, v + 6, logits.data());
  const auto r = infer::top_k(logits, 3, {"a", "b", "c"});
  CHECK(r[0][0].name == "b");
  CHECK(r[0][1].name == "c");
  CHECK(r[0][2].name == "a");
  CHECK(r[1][0].index == 0);
  CHECK(r[1][0].probability == Approx(1.0 / 3).epsilon(1e-15));
  CHECK(infer::top_k(logits, 1)[1][0].name == "class_0");
  CHECK_THROWS_WITH(infer::top_k(logits, 0), Catch::Contains("k must be >= 1"));
}

TEST_CASE("classifier: a batch gives what each image gives alone", "[infer][classifier]") {
  Classifier clf = make_classifier(3);
  const std::vector<data::Image> images = {byte_pattern(3, 8, 8, 1), byte_pattern(3, 8, 8, 2), byte_pattern(3, 20, 12, 3)};
  const auto batch = clf.classify(images, 3);
  REQUIRE(batch.size() == 3);
  for (size_t i = 0; i < images.size(); ++i) {
    const auto one = clf.classify(images[i], 3);
    for (size_t r = 0; r < 3; ++r) {
      CHECK(batch[i][r].index == one[r].index);
      CHECK(batch[i][r].probability == Approx(one[r].probability).epsilon(1e-5));
    }
  }
}

TEST_CASE("classifier: the evaluation transform", "[infer][classifier]") {
  SECTION("an image at the model's size is used as is, others get timm's 0.875 crop") {
    Classifier clf = make_classifier(3);
    const data::Image same = byte_pattern(3, 8, 8);
    CHECK(clf.prepare(same).data == same.data);
    const data::Image big = byte_pattern(3, 30, 20);
    CHECK(clf.prepare(big).data == data::eval_transform(big, 8, 0.875).data);
  }
  SECTION("a given crop_pct applies to every image") {
    ClassifierOptions o;
    o.crop_pct = 0.5;
    Classifier clf = make_classifier(3, o);
    const data::Image same = byte_pattern(3, 8, 8);
    const data::Image p = clf.prepare(same);
    CHECK(p.height == 8);
    CHECK(p.data == data::eval_transform(same, 8, 0.5).data);
  }
}

TEST_CASE("classifier: channels are converted and said once", "[infer][classifier]") {
  std::vector<std::string> heard;
  ClassifierOptions o;
  o.on_note = [&](const std::string& s) { heard.push_back(s); };
  Classifier grey = make_classifier(1, o);
  const data::Image rgb = byte_pattern(3, 16, 16);
  const data::Image p = grey.prepare(rgb, "photo.png");
  REQUIRE(p.channels == 1);
  // stb_image's luma, then the 0.875 crop.
  const data::Image luma = infer::convert_channels(rgb, 1);
  const int64_t i = 5 * 16 + 7;
  CHECK(luma.data[i] == ((rgb.data[i] * 77 + rgb.data[256 + i] * 150 + rgb.data[512 + i] * 29) >> 8));
  CHECK(p.data == data::eval_transform(luma, 8, 0.875).data);
  grey.classify(std::vector<data::Image>{rgb, byte_pattern(3, 8, 8, 4)}, 1);  // the same kind again
  grey.classify(byte_pattern(1, 8, 8), 1);                                    // nothing to convert
  REQUIRE(heard.size() == 1);
  CHECK(heard[0] == "photo.png: RGB 16x16 image converted to the model's grey 8x8 input");
  CHECK(grey.notes() == heard);

  Classifier colour = make_classifier(3);  // grey into RGB: the plane three times
  const data::Image g = byte_pattern(1, 8, 8);
  const data::Image q = colour.prepare(g);
  REQUIRE(q.channels == 3);
  for (int64_t c = 0; c < 3; ++c)
    CHECK(std::equal(g.data.begin(), g.data.end(), q.data.begin() + c * 64));
  REQUIRE(colour.notes().size() == 1);
  CHECK(colour.notes()[0].find("grey 8x8 image converted to the model's RGB 8x8 input") !=
        std::string::npos);
}

TEST_CASE("classifier: loads config, class names, normalisation and crop from a checkpoint",
          "[infer][classifier]") {
  test::TempDir dir("classifier");
  nn::VisionTransformer<float> model(small_config(3));
  const std::vector<std::string> names = {"ant", "bee", "cat", "dog", "eel"};
  io::save_checkpoint<float>(dir / "w.safetensors", model, names, nullptr,
                      {{"vit.normalization", R"({"mean":[0.1,0.2,0.3],"std":[0.5,0.6,0.7]})"},
                       {"vit.crop_pct", "0.9"}});
  const data::Image img = byte_pattern(3, 40, 24);
  data::write_png(dir / "img.png", img);
  Classifier clf(dir / "w.safetensors");
  CHECK(clf.class_names() == names);
  CHECK(clf.normalization().mean == std::vector<float>{0.1f, 0.2f, 0.3f});
  REQUIRE(clf.crop_pct());
  CHECK(*clf.crop_pct() == 0.9);
  CHECK(clf.device() == Device::CPU);
  // The file gives what the decoded image gives; both equal the model on the same input.
  const auto from_file = clf.classify(dir / "img.png", 5);
  const auto from_image = clf.classify(img, 5);
  const auto expect = reference_probabilities(clf, data::eval_transform(img, 8, 0.9));
  for (size_t r = 0; r < 5; ++r) {
    CHECK(from_file[r].index == from_image[r].index);
    CHECK(from_file[r].probability == from_image[r].probability);
    CHECK(from_file[r].probability == Approx(expect[from_file[r].index]).epsilon(1e-12));
  }
  // A grey PNG into this RGB model: read at its own channel count, then converted.
  data::write_png(dir / "grey.png", byte_pattern(1, 8, 8));
  CHECK(clf.read(dir / "grey.png").channels == 1);
  clf.classify(dir / "grey.png", 1);
  REQUIRE(clf.notes().size() == 1);
  CHECK(clf.notes()[0].rfind(dir / "grey.png: grey 8x8 image", 0) == 0);
}

TEST_CASE("classifier: bad input is one clear line", "[infer][classifier]") {
  test::TempDir dir("classifier_bad");
  nn::VisionTransformer<float> model(small_config(3));
  io::save_checkpoint<float>(dir / "w.safetensors", model, {}, nullptr, {{"vit.crop_pct", "1.5"}});
  CHECK_THROWS_WITH(Classifier(dir / "w.safetensors"), Catch::Contains("(vit.crop_pct): must be in (0, 1], got 1.5"));
  io::save_checkpoint<float>(dir / "n.safetensors", model, {}, nullptr, {{"vit.normalization", R"({"mean":[0.5]})"}});
  CHECK_THROWS_WITH(Classifier(dir / "n.safetensors"), Catch::Contains("needs arrays 'mean' and 'std'"));

  Classifier clf = make_classifier(3);
  {
    std::ofstream f(dir / "notes.txt");
    f << "not an image";
  }
  try {
    clf.classify(dir / "notes.txt", 1);
    FAIL("a text file was classified");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(dir / "notes.txt") != std::string::npos);
    CHECK(msg.find("not a decodable JPEG, PNG or BMP image") != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK_THROWS_WITH(clf.classify(dir / "missing.png", 1), Catch::Contains("missing.png"));
  CHECK_THROWS_WITH(clf.classify(byte_pattern(2, 8, 8), 1), Catch::Contains("image has 2 channels"));
  // Unnamed classes get "class_<i>".
  Classifier unnamed(std::make_unique<nn::VisionTransformer<float>>(small_config(3)), {},
                     data::folder_normalization(3));
  CHECK(unnamed.class_names()[4] == "class_4");
}
