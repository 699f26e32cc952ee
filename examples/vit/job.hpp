// The job this process is part of: a job of one process, or one rank of a
// data-parallel job that mpirun or srun started (main() sets it up). Rank 0
// is the one that prints and writes the run directory; every rank computes.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
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

/// On the GPU, a job of several ranks picks this rank's GPU and makes the
/// job's communicator the GPU one (NCCL where every rank of a machine has a
/// GPU of its own, else MPI staged through pinned host memory). Returns what
/// the log says of it. Before the first CUDA tensor; every rank calls it.
inline std::string use_gpu_communicator(vit::Device device) {
  if (device != vit::Device::CUDA || job().size() == 1) return job().name();
  std::string why;
  job_owner() = vit::dist::gpu_communicator(std::move(job_owner()), &why);
  return why;
}

/// CPU threads of this rank: `requested`, or the machine's cores shared by
/// the ranks on it.
inline int threads_per_rank(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(
      std::max(1u, std::thread::hardware_concurrency() / std::max(1u, unsigned(job().local_size()))));
}

}  // namespace vitcli
