// Thread count for the CPU backend. One knob sets both OpenMP and Eigen so a
// run with --threads T is reproducible bit for bit (work splits depend on T).
#pragma once

#include "vit/core/eigen.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace vit {

/// Sets the number of CPU threads used by every op (OpenMP and Eigen GEMMs).
inline void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n < 1 ? 1 : n);
#endif
  Eigen::setNbThreads(n < 1 ? 1 : n);
}

inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace vit
