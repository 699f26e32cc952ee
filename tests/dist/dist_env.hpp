// What tests/dist's mpirun binaries share between their main (dist_main.cpp),
// which starts the job, and the test cases (communicator_cases.cpp), which
// run on whatever communicator the job got: the communicator, the device the
// cases put their buffers on, and the line gpu_communicator() gave.
#pragma once

#include <string>

#include "vit/core/device.hpp"
#include "vit/dist/communicator.hpp"

namespace dist_test {

vit::dist::Communicator& comm();
vit::Device device();
/// gpu_communicator()'s reason line; empty for the host-buffer binary.
const std::string& gpu_path();

}  // namespace dist_test
