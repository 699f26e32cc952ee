// Writes the tiny data sets the CLI test trains on, in the real on-disk formats:
//   OUT/cifar10/  data_batch_1..5.bin (13 records each), test_batch.bin (20), batches.meta.txt
//   OUT/cifar100/ train.bin (40), test.bin (20)  (coarse + fine label bytes)
//   OUT/images/   sample0.png, sample1.bmp
// With --folder, instead: OUT/flowers/{train,val}/{a,b}/*.png, an image folder
// laid out as ImageNet is, photos of several aspect ratios (6 train and 2 val
// per class; class a is reddish, class b bluish).
// Class k of CIFAR-10 is a bright square in quadrant k%4 with tint k/4, plus
// noise, so a few training steps already move the accuracy off chance.
#include <vit/vit.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace {
void record(std::vector<uint8_t>& out, int label, vit::Generator& g) {
  const int qx = (label % 4) % 2, qy = (label % 4) / 2, tint = label / 4;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const bool in = (x / 16 == qx) && (y / 16 == qy);
        const int base = in ? 200 - 60 * (c == tint) : 40;
        out.push_back(static_cast<uint8_t>(std::clamp<int>(base + static_cast<int>(g.next_u64() % 40), 0, 255)));
      }
}
void write(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// OUT/flowers/{train,val}/{a,b}/NN.png at (height, width) cycling through
// portrait, landscape and square sizes.
void write_folder(const std::string& out) {
  namespace fs = std::filesystem;
  const int sizes[][2] = {{40, 60}, {64, 36}, {48, 48}, {30, 72}, {56, 42}, {36, 36}};
  vit::Generator g(2);
  int n = 0;
  for (const char* split : {"train", "val"})
    for (int k = 0; k < 2; ++k) {
      const std::string dir = out + "/flowers/" + split + "/" + (k == 0 ? "a" : "b");
      fs::create_directories(dir);
      for (int i = 0; i < (split[0] == 't' ? 6 : 2); ++i, ++n) {
        const int h = sizes[n % 6][0], w = sizes[n % 6][1];
        vit::data::Image img(3, h, w);
        for (int c = 0; c < 3; ++c)
          for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
              const int base = c == (k == 0 ? 0 : 2) ? 190 : 70;
              img.at(c, y, x) = static_cast<uint8_t>(base + static_cast<int>(g.next_u64() % 50));
            }
        vit::data::write_png(dir + "/" + std::to_string(10 + i) + ".png", img);
      }
    }
}
}  // namespace

int main(int argc, char** argv) {
  const bool folder = argc == 3 && std::string(argv[2]) == "--folder";
  if (argc != 2 && !folder) {
    std::fprintf(stderr, "usage: make_tiny_data OUT_DIR [--folder]\n");
    return 1;
  }
  const std::string out = argv[1];
  if (folder) {
    write_folder(out);
    return 0;
  }
  namespace fs = std::filesystem;
  fs::create_directories(out + "/cifar10");
  fs::create_directories(out + "/cifar100");
  fs::create_directories(out + "/images");
  vit::Generator g(1);
  int next = 0;
  for (int b = 1; b <= 6; ++b) {
    std::vector<uint8_t> bytes;
    const int n = b <= 5 ? 13 : 20;
    for (int i = 0; i < n; ++i) {
      const int label = next++ % 10;
      bytes.push_back(static_cast<uint8_t>(label));
      record(bytes, label, g);
    }
    write(out + "/cifar10/" + (b <= 5 ? "data_batch_" + std::to_string(b) + ".bin" : "test_batch.bin"), bytes);
  }
  std::ofstream(out + "/cifar10/batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
  for (const char* name : {"train.bin", "test.bin"}) {
    std::vector<uint8_t> bytes;
    const int n = std::string(name) == "train.bin" ? 40 : 20;
    for (int i = 0; i < n; ++i) {
      const int fine = (i * 7) % 100;
      bytes.push_back(static_cast<uint8_t>(fine / 5));
      bytes.push_back(static_cast<uint8_t>(fine));
      record(bytes, fine % 10, g);
    }
    write(out + "/cifar100/" + name, bytes);
  }
  for (int k = 0; k < 2; ++k) {
    std::vector<uint8_t> chw;
    record(chw, k, g);
    vit::data::Image img(3, 32, 32);
    img.data = chw;
    std::vector<uint8_t> hwc(32 * 32 * 3);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) hwc[p * 3 + c] = chw[c * 1024 + p];
    if (k == 0) vit::data::write_png(out + "/images/sample0.png", img);
    else {
      std::vector<uint8_t> bmp;  // stb is built without stdio inside vit: write through a callback
      stbi_write_bmp_to_func(
          [](void* ctx, void* data, int size) {
            auto* v = static_cast<std::vector<uint8_t>*>(ctx);
            v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
          },
          &bmp, 32, 32, 3, hwc.data());
      write(out + "/images/sample1.bmp", bmp);
    }
  }
  return 0;
}
