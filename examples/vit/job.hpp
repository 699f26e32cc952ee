// The job this process is part of: a job of one process, or one rank of a
// data-parallel job that mpirun or srun started (main() sets it up). Rank 0
// is the one that prints and writes the run directory; every rank computes.
#pragma once

#include <memory>
#include <vit/vit.hpp>

namespace vitcli {

/// The job's communicator, owned here from main() to its end (null: a job of
/// one process). `vit train --device cuda` replaces it by the GPU one, which
/// wraps it (dist::gpu_communicator).
inline std::unique_ptr<vit::dist::Communicator>& job_owner() {
  static std::unique_ptr<vit::dist::Communicator> comm;
  return comm;
}
/// The job's communicator, for host buffers (and, once replaced, the GPU's).
inline vit::dist::Communicator& job() {
  static vit::dist::SingleProcess one;
  return job_owner() ? *job_owner() : one;
}
/// Whether this process prints and writes files: rank 0, or the only one.
inline bool main_rank() { return job().rank() == 0; }

}  // namespace vitcli
