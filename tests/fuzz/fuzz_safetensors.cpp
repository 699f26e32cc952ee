// Fuzz target: the safetensors reader (8-byte header length, JSON header with
// dtypes, shapes, offsets and __metadata__, then the byte buffer), and the
// conversion of every tensor it accepts to float and double.
#include <vit/io/safetensors.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto f = vit::io::SafetensorsFile::parse(std::vector<uint8_t>(data, data + size), "fuzz");
    for (const auto& [key, value] : f.metadata()) (void)key.size(), (void)value.size();
    for (const auto& t : f.tensors()) {
      (void)f.bytes(t.name);
      try {  // integer and bool dtypes are refused here, by design
        (void)f.tensor<float>(t.name);
        (void)f.tensor<double>(t.name);
      } catch (const vit::Error&) {
      }
    }
    ++vit_fuzz::accepted;
  } catch (const vit::Error&) {
  }
  return 0;
}
