// The emulated CUDA device: every function of include/vit/core/device_runtime.hpp
// and include/vit/cuda/runtime.hpp (what cuda/runtime.cu defines on a GPU),
// on host memory. Linked instead of vit::cuda (as vit::cuda_emu, with the
// launchers of cuda/*.cu compiled by g++ and their kernels run by
// tests/cuda_emu/emu.hpp), it makes Device::CUDA tensors work on any machine.
//
// "Device" memory comes from a caching allocator shaped like the real one
// (exact-size buckets after rounding to 512 bytes, 256-byte aligned blocks as
// cudaMalloc gives) over a capacity of its own (kCapacity, or the
// VIT_EMU_DEVICE_MIB environment variable), so out of memory is an error here
// too. Every block handed out, fresh or reused, is filled with 0xff bytes
// (NaN as float), as memory nobody wrote holds garbage on a GPU: a kernel or
// op that reads what it never wrote produces NaN instead of a lucky zero.
// Everything runs synchronously on the calling thread; the "stream" is
// nullptr and synchronize() has nothing to wait for.
//
// What emulation cannot catch: "device" pointers are host pointers here, so
// host code that dereferences one works instead of crashing.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "emu_backend.hpp"
#include "vit/core/device_runtime.hpp"
#include "vit/core/error.hpp"
#include "vit/cuda/runtime.hpp"
// Last: it defines CUDA's keywords as macros.
#include "emu.hpp"

namespace vit::cuda {
namespace {

constexpr size_t kAlignment = 256;               // cudaMalloc's guarantee
constexpr size_t kCapacity = size_t(4) << 30;  // 4 GiB unless VIT_EMU_DEVICE_MIB says otherwise

size_t capacity() {
  static const size_t c = [] {
    const char* env = std::getenv("VIT_EMU_DEVICE_MIB");
    if (env && *env) {
      char* end = nullptr;
      const unsigned long long mib = std::strtoull(env, &end, 10);
      if (end && *end == '\0' && mib > 0) return static_cast<size_t>(mib) << 20;
    }
    return kCapacity;
  }();
  return c;
}

struct EmuAllocator {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  AllocatorStats stats;

  static size_t round_up(size_t b) { return b == 0 ? 512 : (b + 511) / 512 * 512; }

  void release_locked() {
    for (auto& [size, list] : free_blocks)
      for (void* p : list) std::free(p);
    free_blocks.clear();
    stats.bytes_cached = 0;
  }
};

EmuAllocator& allocator() {
  static EmuAllocator* a = new EmuAllocator();  // never destroyed: outlives static tensors
  return *a;
}

bool g_allow_tf32 = false;

}  // namespace

int device_count() { return 1; }

std::string device_description() { return "emulated CUDA device (CPU threads, tests/cuda_emu)"; }

void* allocate(size_t bytes) {
  EmuAllocator& a = allocator();
  const size_t size = EmuAllocator::round_up(bytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.free_blocks.find(size);
    if (it != a.free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      a.stats.bytes_cached -= size;
    } else {
      if (a.stats.bytes_in_use + a.stats.bytes_cached + size > capacity()) a.release_locked();
      if (a.stats.bytes_in_use + size <= capacity()) p = std::aligned_alloc(kAlignment, size);
      VIT_CHECK(p != nullptr, "CUDA out of memory: allocating ", bytes, " bytes (",
                static_cast<double>(bytes) / (1 << 20), " MiB) failed: ",
                static_cast<double>(a.stats.bytes_in_use) / (1 << 20), " MiB in use by vit, of ",
                static_cast<double>(capacity()) / (1 << 20),
                " MiB on the emulated device (VIT_EMU_DEVICE_MIB)");
      ++a.stats.system_allocs;
    }
    a.stats.bytes_in_use += size;
    if (a.stats.bytes_in_use > a.stats.peak_bytes_in_use)
      a.stats.peak_bytes_in_use = a.stats.bytes_in_use;
  }
  std::memset(p, 0xff, size);  // poison: unwritten memory reads as NaN
  return p;
}

void deallocate(void* p, size_t bytes) {
  if (!p) return;
  EmuAllocator& a = allocator();
  const size_t size = EmuAllocator::round_up(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  a.stats.bytes_in_use -= size;
  a.stats.bytes_cached += size;
  a.free_blocks[size].push_back(p);
}

AllocatorStats allocator_stats() {
  EmuAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.stats;
}

void release_cached() {
  EmuAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  a.release_locked();
}

void* stream() { return nullptr; }

// One emulated device, ordinal 0.
void set_device(int ordinal) {
  VIT_CHECK(ordinal == 0, "set_device: no CUDA device ", ordinal,
            " (the emulated backend has one, device 0)");
}
int current_device() { return 0; }

// Page-aligned host memory stands in for page-locked memory.
void* allocate_pinned(size_t bytes) {
  const size_t size = (bytes + 4095) / 4096 * 4096;
  void* p = std::aligned_alloc(4096, size == 0 ? 4096 : size);
  VIT_CHECK(p != nullptr, "allocate_pinned: ", bytes, " bytes of host memory failed");
  return p;
}
void deallocate_pinned(void* p, size_t) { std::free(p); }

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}

void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t row_bytes, size_t rows) {
  if (row_bytes == 0 || rows == 0) return;
  // cudaMemcpy2D's own rule: a pitch narrower than a row is an error.
  VIT_CHECK(dst_pitch >= row_bytes && src_pitch >= row_bytes,
            "copy_rows_on_device: pitches ", dst_pitch, " (dst) and ", src_pitch,
            " (src) must be at least the row of ", row_bytes, " bytes");
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  for (size_t r = 0; r < rows; ++r) std::memcpy(d + r * dst_pitch, s + r * src_pitch, row_bytes);
}

void fill32(void* dst, uint32_t pattern, size_t words) {
  auto* d = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < words; ++i) std::memcpy(d + 4 * i, &pattern, 4);
}

void synchronize() {}

// The emulator runs every kernel as it is queued: there is nothing to capture.
bool graphs_supported() { return false; }
bool capturing() { return false; }
void begin_capture() {
  VIT_CHECK(false, "begin_capture: CUDA graphs need a real device (the emulated backend runs "
            "work as it is queued)");
}
void* end_capture() {
  VIT_CHECK(false, "end_capture: no CUDA graph is being captured (emulated backend)");
  return nullptr;
}
void replay_graph(void*) { VIT_CHECK(false, "replay_graph: no graphs on the emulated backend"); }
void destroy_graph(void*) {}

void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

uint64_t emulated::kernel_launches() { return vit_emu::launch_count().load(); }

}  // namespace vit::cuda
