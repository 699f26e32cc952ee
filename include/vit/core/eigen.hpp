// Eigen, as the library includes it. g++ 12 with AVX-512 reports
// -Wmaybe-uninitialized (and, under the sanitizers, -Wuninitialized) inside
// its own avx512fintrin.h (`__m512 __Y = __Y;` in
// _mm512_undefined_ps) for Eigen's vectorised erf/exp/tanh wherever they are
// inlined: a false positive that would print ~3,000 lines in every build. The
// diagnostic is judged at Eigen's code, so it is silenced around Eigen's
// headers only; user code keeps the warning.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
