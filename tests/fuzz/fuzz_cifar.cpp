// Fuzz target: the CIFAR binary readers. The first byte picks what the rest
// is: a CIFAR-10 batch, a CIFAR-100 file read for fine or for coarse labels,
// or a class-names text file (batches.meta.txt).
#include <vit/data/cifar.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::span<const uint8_t> rest(data + 1, size - 1);
  try {
    vit::data::Dataset ds = vit::data::detail::cifar_shell(vit::data::detail::cifar10_names());
    switch (data[0] % 4) {
      case 0: vit::data::detail::append_cifar_records(ds, rest, "fuzz", 1, 0, {10}); break;
      case 1: vit::data::detail::append_cifar_records(ds, rest, "fuzz", 2, 1, {20, 100}); break;
      case 2: vit::data::detail::append_cifar_records(ds, rest, "fuzz", 2, 0, {20, 100}); break;
      default: (void)vit::data::detail::parse_class_names(rest, "fuzz", 10); break;
    }
    if (ds.pixels.size() != ds.labels.size() * 3072) __builtin_trap();  // records and labels disagree
    ++vit_fuzz::accepted;
  } catch (const vit::Error&) {
  }
  return 0;
}
