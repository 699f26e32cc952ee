// Fuzz target: the IDX reader (MNIST / Fashion-MNIST) with its gzip path. The
// input is an image file and a label file: the first two bytes give the
// image file's length (little endian, clamped), the label file is the rest.
// Either may be gzipped; inflation is capped at 4 MiB here (1 GiB in the
// trainer) so that gzip bombs cost the fuzzer milliseconds, not seconds.
#include <vit/data/idx.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t split = std::min<size_t>(size - 2, size_t(data[0]) | (size_t(data[1]) << 8));
  const uint8_t* images = data + 2;
  constexpr size_t kCap = size_t(4) << 20;
  try {
    auto img = vit::data::maybe_gunzip({images, images + split}, kCap, "fuzz-images");
    auto lab = vit::data::maybe_gunzip({images + split, data + size}, kCap, "fuzz-labels");
    const auto ds = vit::data::decode_idx(std::move(img), "fuzz-images", lab, "fuzz-labels",
                                          vit::data::detail::fashion_mnist_names());
    if (ds.pixels.size() != ds.labels.size() * size_t(ds.height * ds.width)) __builtin_trap();
    ++vit_fuzz::accepted;
  } catch (const vit::Error&) {
  }
  return 0;
}
