// Shared by the fuzz targets: each defines LLVMFuzzerTestOneInput, the entry
// point libFuzzer calls (clang, scripts/fuzz.sh) and that replay_main.cpp
// calls for every committed corpus and regression input (any compiler, ctest).
//
// A target feeds the bytes to one parser of outside data and catches only
// vit::Error, the one way our parsers may refuse input. Any other exception,
// a crash, a sanitizer report, a leak or a hang is a finding.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace vit_fuzz {
/// Inputs the parser accepted whole (so replay can check that the seed corpus
/// reaches past the first validation step, not only the error paths).
inline long accepted = 0;
}  // namespace vit_fuzz
