// Device tag of a tensor. CUDA is a slot: in a build without vit::cuda every
// attempt to place a tensor there throws a clear vit::Error.
#pragma once

#include <ostream>

namespace vit {

enum class Device { CPU, CUDA };

inline const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }
inline std::ostream& operator<<(std::ostream& os, Device d) { return os << device_name(d); }

}  // namespace vit
