// grey_png PATH WIDTH HEIGHT: writes a one-channel (grey) PNG with a diagonal
// gradient, for CLI tests that feed a grey picture to an RGB model.
#include <vit/vit.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: grey_png PATH WIDTH HEIGHT\n");
    return 2;
  }
  const int64_t w = std::stoll(argv[2]), h = std::stoll(argv[3]);
  vit::data::Image img(1, h, w);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) img.at(0, y, x) = static_cast<uint8_t>((x + y) * 255 / (w + h - 2));
  vit::data::write_png(argv[1], img);
  return 0;
}
