// The Catch2 main of the mpirun test binaries: starts the job with
// init_process_group (MPI under mpirun, SingleProcess when run plainly),
// runs every test case on every rank in the same order (collectives must
// match), and makes a failure on any rank the exit status of every rank, so
// mpirun, and ctest after it, fail. Only rank 0 prints; another rank's report
// is printed when that rank failed.
//
// VIT_DIST_TEST_GPU: 0 puts the buffers on the CPU; 1 puts them on
// Device::CUDA behind gpu_communicator() (the emulated backend: MPI staged
// through pinned buffers); 2 on a real GPU behind a NcclCommunicator (exits
// 77, "skipped", without a device).
#define CATCH_CONFIG_RUNNER
// As in tests/main.cpp: g++ 12 under the sanitizers reports
// -Wmaybe-uninitialized inside libstdc++'s <regex>, which Catch2's runner
// instantiates; a false positive, silenced for this include only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <catch2/catch.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "dist/dist_env.hpp"
#include "vit/dist/process_group.hpp"

#ifndef VIT_DIST_TEST_GPU
#define VIT_DIST_TEST_GPU 0
#endif
#if VIT_DIST_TEST_GPU == 2
#include "vit/cuda/runtime.hpp"
#include "vit/dist/nccl_communicator.hpp"
#endif

namespace dist_test {
namespace {
std::unique_ptr<vit::dist::Communicator> g_comm;
std::string g_gpu_path;
}  // namespace
vit::dist::Communicator& comm() { return *g_comm; }
vit::Device device() { return VIT_DIST_TEST_GPU ? vit::Device::CUDA : vit::Device::CPU; }
const std::string& gpu_path() { return g_gpu_path; }
}  // namespace dist_test

int main(int argc, char** argv) {
  using namespace vit::dist;
  try {
    dist_test::g_comm = init_process_group(argc, argv);
#if VIT_DIST_TEST_GPU == 1
    dist_test::g_comm = gpu_communicator(std::move(dist_test::g_comm), &dist_test::g_gpu_path);
#elif VIT_DIST_TEST_GPU == 2
    if (!vit::cuda::available()) {
      std::printf("skipped: %s\n", vit::cuda::device_description().c_str());
      return 77;
    }
    // NCCL itself, even on one rank (gpu_communicator would keep a job of one
    // as it is).
    auto& base = dist_test::g_comm;
    vit::cuda::set_device(base->local_rank() % vit::cuda::device_count());
    dist_test::g_comm = std::make_unique<NcclCommunicator>(std::move(base));
    dist_test::g_gpu_path = dist_test::g_comm->name();
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vit_dist tests: %s\n", e.what());
    return 1;
  }
  Communicator& comm = *dist_test::g_comm;
  if (comm.rank() == 0)
    std::printf(
        "%s, %d rank(s)%s%s\n", comm.name().c_str(), comm.size(),
        dist_test::gpu_path().empty() ? "" : "; GPU buffers: ", dist_test::gpu_path().c_str());

  std::ostringstream quiet;
  std::streambuf* console = nullptr;
  // VIT_DIST_TEST_ALL_RANKS=1: every rank prints as it goes (a hang shows who
  // is where).
  const char* all_ranks = std::getenv("VIT_DIST_TEST_ALL_RANKS");
  if (comm.rank() != 0 && !(all_ranks && *all_ranks == '1'))
    console = std::cout.rdbuf(quiet.rdbuf());
  int failed = 1;
  try {
    Catch::Session session;
    // ctest and mpirun capture the output: no escape codes in the log.
    session.configData().useColour = Catch::UseColour::No;
    failed = session.run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", comm.rank(), e.what());
  }
  if (console) std::cout.rdbuf(console);

  int32_t failed_ranks = failed != 0 ? 1 : 0;
  try {
    comm.allreduce_sum(&failed_ranks, 1, DType::Int32, vit::Device::CPU);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", comm.rank(), e.what());
    comm.abort(1);
  }
  if (failed && comm.rank() != 0)
    std::cerr << "---- rank " << comm.rank() << " failed:\n" << quiet.str() << std::flush;
  if (comm.rank() == 0 && failed_ranks > 0)
    std::fprintf(stderr, "%d of %d ranks failed\n", failed_ranks, comm.size());
  dist_test::g_comm.reset();  // MPI_Finalize
  return failed_ranks > 0 ? 1 : 0;
}
