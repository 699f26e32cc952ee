// Start-up of a data-parallel job: which communicator this process gets.
// A program calls init_process_group(argc, argv) first thing and works the
// same whether it was started plainly (a job of one: SingleProcess, no MPI
// touched, so a plain run needs no MPI installed at run time), by mpirun or
// by srun (MpiCommunicator). How many ranks the launcher started is read from
// its environment before MPI exists, so a build without MPI launched as one
// of several ranks says so in one line instead of training N unaware copies
// that each believe they are alone.
//
// For tensors on the GPU, gpu_communicator() then picks this rank's GPU and
// the way GPU buffers travel: NCCL where the build has it and every rank of
// the node has a GPU of its own, else the base (MPI) communicator, which
// stages GPU buffers through pinned host memory. It says which and why, for
// the log.
#pragma once

#include <cstdlib>
#include <memory>
#include <string>

#include "vit/core/device_runtime.hpp"
#include "vit/core/error.hpp"
#include "vit/dist/communicator.hpp"
#include "vit/dist/nccl_communicator.hpp"

#ifndef VIT_WITH_MPI
#define VIT_WITH_MPI 0
#endif
#if VIT_WITH_MPI
#include "vit/dist/mpi_communicator.hpp"
#endif
#if VIT_WITH_CUDA
#include "vit/cuda/runtime.hpp"
#endif

namespace vit::dist {

namespace detail {
// A positive integer from the environment, or 0 when unset or not a number.
inline int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (end && *end == '\0' && n > 0 && n < (1L << 30)) ? static_cast<int>(n) : 0;
}
}  // namespace detail

/// How many ranks the launcher started this process among, from its
/// environment: Open MPI's mpirun (OMPI_COMM_WORLD_SIZE), MPICH/Intel MPI's
/// Hydra (PMI_SIZE), Slurm's srun (SLURM_STEP_NUM_TASKS: srun sets it for
/// each task of a step, while SLURM_NTASKS is also set inside an sbatch
/// script that runs the program plainly). 1 when started plainly.
inline int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (const int n = detail::env_int(var)) return n;
  return 1;
}

/// The communicator of this process: MpiCommunicator (MPI initialised here;
/// it finalises MPI when destroyed, so keep it until the end of main) when
/// launched as one of several ranks, SingleProcess when started plainly.
/// Launched as one of several ranks by a build without MPI, it throws
/// vit::Error. MPI may remove its own arguments from argc/argv.
inline std::unique_ptr<Communicator> init_process_group(int& argc, char**& argv) {
  const int launched = launcher_world_size();
  if (launched <= 1) return std::make_unique<SingleProcess>();
#if VIT_WITH_MPI
  auto comm = MpiCommunicator::init(argc, argv);
  // A launcher of another MPI than the one linked starts N singletons.
  VIT_CHECK(comm->size() == launched, "launched as one of ", launched,
            " ranks, but MPI sees a job of ", comm->size(),
            ": start the program with the mpirun of the MPI it was built with");
  return comm;
#else
  (void)argc;
  (void)argv;
  throw Error("launched as one of " + std::to_string(launched) +
              " ranks (mpirun/srun) but this build of vit has no MPI: configure with "
              "-DVIT_MPI=ON and libopenmpi-dev");
#endif
}

/// For a job whose tensors live on the GPU: selects this rank's GPU
/// (local_rank % device_count, through cuda::set_device, so call it before
/// the first CUDA tensor) and returns the communicator GPU buffers should go
/// through: a NcclCommunicator over `base` when the build has NCCL
/// (VIT_WITH_NCCL), the job has more than one rank and every rank of every
/// node has a GPU of its own; else `base` itself (MPI, staging GPU buffers
/// through pinned host memory). `why`, when given, receives a line for the
/// log. Collective: every rank of `base` calls it (the choice is agreed on,
/// so no rank takes NCCL while another stays with MPI).
inline std::unique_ptr<Communicator> gpu_communicator(std::unique_ptr<Communicator> base,
                                                      std::string* why = nullptr) {
  VIT_CHECK(base, "gpu_communicator: no base communicator");
#if VIT_WITH_CUDA
  const int devices = cuda::device_count();
  VIT_CHECK(devices > 0, "gpu_communicator: ", cuda::device_description());
  const int device = base->local_rank() % devices;
  cuda::set_device(device);
  std::string reason = "rank " + std::to_string(base->rank()) + " of " +
                       std::to_string(base->size()) + " on GPU " + std::to_string(device) + " of " +
                       std::to_string(devices) + ": ";
  // Ranks of this node that would share a GPU (0 or all of them).
  int32_t crowded = base->local_size() > devices ? 1 : 0;
  if (base->size() > 1) base->allreduce_sum(&crowded, 1, DType::Int32, Device::CPU);
  if (base->size() == 1) {
    reason += "one rank, nothing to communicate";
  } else if (!VIT_WITH_NCCL) {
    reason += base->name() + " staged through pinned host memory (this build has no NCCL)";
  } else if (crowded > 0) {
    reason += base->name() + " staged through pinned host memory (" +
              std::to_string(base->local_size()) + " ranks share " + std::to_string(devices) +
              " GPUs on a node; NCCL needs one GPU per rank)";
  } else {
#if VIT_WITH_NCCL
    auto nccl = std::make_unique<NcclCommunicator>(std::move(base));
    reason += nccl->name();
    if (why) *why = reason;
    return nccl;
#endif
  }
  if (why) *why = reason;
  return base;
#else
  (void)why;
  VIT_CHECK(false,
            "gpu_communicator: this build of vit has no CUDA backend "
            "(link vit::cuda)");
  return base;
#endif
}

}  // namespace vit::dist
