// The Catch2 main shared by every test file.
#define CATCH_CONFIG_MAIN
// Under the sanitizers g++ 12 reports -Wmaybe-uninitialized inside
// libstdc++'s <regex> (std::function in its NFA states), which Catch2's main
// instantiates: a false positive, silenced for this include only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <catch2/catch.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
