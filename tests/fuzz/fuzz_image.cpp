// Fuzz target: image decoding through vit::data::decode_image (stb_image built
// for JPEG, PNG and BMP only, dimensions checked from the header, allocations
// capped), then the antialiased resize the image-folder loader applies. The
// first byte picks grey or RGB. Limits are 1024 per side and 1 Mpixel here
// (8192 and 64 Mpixel in the loader) so one input costs the fuzzer at most a
// few MB; the checks are the same code.
#include <vit/data/image.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int64_t channels = (data[0] & 1) ? 3 : 1;
  try {
    const vit::data::Image img = vit::data::decode_image({data + 1, size - 1}, "fuzz", channels,
                                                         vit::data::DecodeLimits{1024, 1 << 20});
    if (img.data.size() != size_t(img.channels * img.height * img.width)) __builtin_trap();
    const vit::data::Image small = vit::data::resize(img, 1 + data[0] % 17, 1 + (data[0] >> 4) % 13);
    (void)small;
    ++vit_fuzz::accepted;
  } catch (const vit::Error&) {
  }
  return 0;
}
