// Writes vit's evaluation transform of one image file, as benchmarks/timm_compare.py
// compares it with timm's: decode (RGB), resize the shorter side to
// floor(size / crop_pct), centre crop, ToTensor + Normalize; the float32 CHW
// values go to OUT as raw little-endian bytes.
// Usage: eval_transform_dump IMAGE SIZE CROP_PCT MEAN_R MEAN_G MEAN_B STD_R STD_G STD_B OUT
#include <vit/data/eval_transform.hpp>
#include <vit/data/image.hpp>
#include <vit/data/transforms.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 11) {
    std::fprintf(stderr,
                 "usage: eval_transform_dump IMAGE SIZE CROP_PCT MEAN_R MEAN_G MEAN_B STD_R STD_G "
                 "STD_B OUT\n");
    return 2;
  }
  try {
    const int64_t size = std::stoll(argv[2]);
    const double crop_pct = std::stod(argv[3]);
    vit::data::Normalization norm;
    for (int c = 0; c < 3; ++c) norm.mean.push_back(std::stof(argv[4 + c]));
    for (int c = 0; c < 3; ++c) norm.std.push_back(std::stof(argv[7 + c]));
    const vit::data::Image img = vit::data::read_image(argv[1], 3);
    const vit::data::Image crop = vit::data::eval_transform(img, size, crop_pct);
    std::vector<float> out(static_cast<size_t>(crop.numel()));
    vit::data::to_normalized_float(crop, norm, out.data());
    std::ofstream f(argv[10], std::ios::binary);
    f.write(reinterpret_cast<const char*>(out.data()),
            static_cast<std::streamsize>(out.size() * sizeof(float)));
    if (!f) throw std::runtime_error(std::string(argv[10]) + ": cannot write");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "eval_transform_dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
