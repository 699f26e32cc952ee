// The job start-up in a build without MPI or CUDA (vit::vit alone), run
// plainly: reading the launcher's environment, SingleProcess, and the one-line
// errors of a multi-rank launch or a GPU request that this build cannot serve.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vit/dist/communicator.hpp"
#include "vit/dist/process_group.hpp"

using namespace vit::dist;
using vit::Device;

static_assert(!VIT_WITH_MPI && !VIT_WITH_CUDA,
              "tests/dist/process_group_cases.cpp is the build without MPI and CUDA");

namespace {

// Clears the launchers' variables for the scope (the test may itself run in a
// job), sets the given ones, and restores everything after.
class LauncherEnv {
 public:
  LauncherEnv() : LauncherEnv({}) {}
  explicit LauncherEnv(std::initializer_list<std::pair<const char*, const char*>> set) {
    for (const char* v :
         {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"}) {
      const char* old = std::getenv(v);
      saved_.emplace_back(v, old ? std::optional<std::string>(old) : std::nullopt);
      unsetenv(v);
    }
    for (auto& [k, v] : set) setenv(k, v, 1);
  }
  ~LauncherEnv() {
    for (auto& [k, v] : saved_) {
      if (v)
        setenv(k.c_str(), v->c_str(), 1);
      else
        unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace

TEST_CASE("SingleProcess: a job of one, every call the identity", "[dist]") {
  SingleProcess c;
  CHECK(c.rank() == 0);
  CHECK(c.size() == 1);
  CHECK(c.local_rank() == 0);
  CHECK(c.local_size() == 1);
  CHECK(c.name() == "single process");
  std::vector<double> v = {1.5, -2, 3};
  c.allreduce_sum(v.data(), 3, DType::Float64, Device::CPU);
  c.broadcast(v.data(), 3, DType::Float64, 0, Device::CPU);
  c.start_allreduce_sum(v.data(), 3, DType::Float64, Device::CPU);
  c.progress();
  c.wait_all();
  c.barrier();
  CHECK(v == std::vector<double>{1.5, -2, 3});
  vit::Tensor<float> t = vit::Tensor<float>::full({2, 2}, 4.f);
  c.allreduce_sum(t);
  c.broadcast(t, 0);
  for (float x : t.to_vector()) CHECK(x == 4.f);
  CHECK_THROWS_AS(c.allreduce_sum(v.data(), -1, DType::Float64, Device::CPU), vit::Error);
  CHECK_THROWS_AS(c.broadcast(v.data(), 3, DType::Float64, 1, Device::CPU), vit::Error);
}

TEST_CASE("launcher_world_size reads mpirun's, Hydra's and srun's environment", "[dist]") {
  {
    LauncherEnv env;
    CHECK(launcher_world_size() == 1);
  }
  {
    LauncherEnv env({{"OMPI_COMM_WORLD_SIZE", "4"}});
    CHECK(launcher_world_size() == 4);
  }
  {
    LauncherEnv env({{"PMI_SIZE", "3"}});
    CHECK(launcher_world_size() == 3);
  }
  {
    LauncherEnv env({{"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_NTASKS", "8"}});
    CHECK(launcher_world_size() == 8);
  }
  {
    // An sbatch script running the program itself, without srun: one process.
    LauncherEnv env({{"SLURM_NTASKS", "8"}});
    CHECK(launcher_world_size() == 1);
  }
  {
    LauncherEnv env({{"OMPI_COMM_WORLD_SIZE", "two"}, {"PMI_SIZE", ""}});
    CHECK(launcher_world_size() == 1);
  }
}

TEST_CASE("init_process_group started plainly is a SingleProcess", "[dist]") {
  LauncherEnv env;
  int argc = 1;
  char name[] = "vit_dist_process_group_tests";
  char* args[] = {name, nullptr};
  char** argv = args;
  auto comm = init_process_group(argc, argv);
  CHECK(comm->name() == "single process");
  CHECK(comm->size() == 1);
  CHECK(argc == 1);
}

TEST_CASE("a build without MPI launched as several ranks says so in one line", "[dist]") {
  LauncherEnv env({{"OMPI_COMM_WORLD_SIZE", "4"}});
  int argc = 1;
  char name[] = "vit_dist_process_group_tests";
  char* args[] = {name, nullptr};
  char** argv = args;
  CHECK_THROWS_WITH(init_process_group(argc, argv),
                    "launched as one of 4 ranks (mpirun/srun) but this build "
                    "of vit has no MPI: "
                    "configure with -DVIT_MPI=ON and libopenmpi-dev");
}

TEST_CASE("gpu_communicator in a build without CUDA is an error", "[dist]") {
  CHECK_THROWS_AS(gpu_communicator(std::make_unique<SingleProcess>()), vit::Error);
}
