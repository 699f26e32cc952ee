// Device discovery, the caching device allocator, copies and the library
// stream (declared in include/vit/cuda/runtime.hpp).
// The allocator mirrors the CPU one: exact-size buckets after rounding to 512
// bytes, one mutex. A freed block is only reused by work queued later on the
// same single stream, so stream order makes reuse safe without events.
// CUDA graphs: blocks allocated while a graph is captured belong to that graph
// (its pool) until the graph is destroyed. Freed, they go back to the pool, so
// they are reused only by later allocations of the same capture (stream order
// inside the graph keeps that safe) and never by work outside it, which could
// otherwise overwrite a buffer between two replays.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common.cuh"
#include "vit/cuda/elementwise.hpp"

namespace vit::cuda {
namespace {

struct GraphPool {
  std::unordered_set<void*> owned;                          // every block, live or free
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // the free ones, by size
};

struct DeviceAllocator {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  AllocatorStats stats;
  GraphPool* capturing = nullptr;                 // the pool of the graph being captured
  std::unordered_map<void*, GraphPool*> pool_of;  // block -> its graph's pool
  std::unordered_map<void*, GraphPool*> graphs;   // graph exec -> its pool

  static size_t round_up(size_t b) { return b == 0 ? 512 : (b + 511) / 512 * 512; }

  void release_locked() {
    for (auto& [size, list] : free_blocks)
      for (void* p : list) cudaFree(p);
    free_blocks.clear();
    stats.bytes_cached = 0;
  }
};

DeviceAllocator& allocator() {
  static DeviceAllocator* a = new DeviceAllocator();  // never destroyed: outlives static tensors
  return *a;
}

bool g_allow_tf32 = false;

// The device of this process (set_device). CUDA's current device is a
// per-thread setting, so each thread that reaches the runtime (the main one,
// a data loader's workers) binds itself once, on its first call; from then
// on the device is fixed for the process.
std::atomic<int> g_device{0};
std::atomic<bool> g_device_bound{false};
thread_local int t_bound_device = -1;

void bind_thread() {
  const int d = g_device.load(std::memory_order_relaxed);
  if (t_bound_device == d) return;
  VIT_CUDA_CHECK(cudaSetDevice(d));
  t_bound_device = d;
  g_device_bound.store(true, std::memory_order_relaxed);
}

}  // namespace

void set_device(int ordinal) {
  const int n = device_count();
  VIT_CHECK(ordinal >= 0 && ordinal < n, "set_device: no CUDA device ", ordinal,
            " (this machine has ", n, ")");
  if (ordinal != g_device.load()) {
    VIT_CHECK(!g_device_bound.load(), "set_device(", ordinal,
              "): the process already works on device ", g_device.load(),
              " (memory or the stream was made there); choose the device before the first CUDA "
              "tensor");
    g_device.store(ordinal);
  }
  bind_thread();
}

int current_device() { return g_device.load(); }

int device_count() {
  // Asked on every CUDA allocation, so asked of the driver once.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the "no driver" error so later calls do not see it
      return 0;
    }
    return n;
  }();
  return count;
}

std::string device_description() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    // Without a GPU the runtime reports an old driver; say what is actually missing.
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
      return "no CUDA device (no NVIDIA GPU or driver on this machine)";
    return std::string("no CUDA device (") + cudaGetErrorString(e) + ")";
  }
  if (n == 0) return "no CUDA device";
  const int dev = current_device();
  cudaDeviceProp p{};
  VIT_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  std::ostringstream os;
  os << p.name << " (sm_" << p.major << p.minor << ", " << p.multiProcessorCount << " SMs, "
     << static_cast<double>(p.totalGlobalMem) / (1 << 30) << " GiB)";
  return os.str();
}

void* allocate(size_t bytes) {
  bind_thread();
  DeviceAllocator& a = allocator();
  const size_t size = DeviceAllocator::round_up(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  auto take = [&](std::unordered_map<size_t, std::vector<void*>>& lists) -> void* {
    auto it = lists.find(size);
    if (it == lists.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    a.stats.bytes_cached -= size;
    a.stats.bytes_in_use += size;
    if (a.stats.bytes_in_use > a.stats.peak_bytes_in_use) a.stats.peak_bytes_in_use = a.stats.bytes_in_use;
    return p;
  };
  if (a.capturing) {
    if (void* p = take(a.capturing->free_blocks)) return p;
    // From the general cache or the driver, then the graph's for good.
    void* p = take(a.free_blocks);
    if (!p) {
      VIT_CUDA_CHECK(cudaMalloc(&p, size));  // relaxed capture mode allows it
      ++a.stats.system_allocs;
      a.stats.bytes_in_use += size;
      if (a.stats.bytes_in_use > a.stats.peak_bytes_in_use) a.stats.peak_bytes_in_use = a.stats.bytes_in_use;
    }
    a.capturing->owned.insert(p);
    a.pool_of[p] = a.capturing;
    return p;
  }
  if (void* p = take(a.free_blocks)) return p;
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    VIT_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
    a.release_locked();  // cached blocks of other sizes may make room
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    VIT_CHECK(false, "CUDA out of memory: allocating ", bytes, " bytes (",
              static_cast<double>(bytes) / (1 << 20), " MiB) failed: ", cudaGetErrorString(e), "; ",
              static_cast<double>(a.stats.bytes_in_use) / (1 << 20), " MiB in use by vit, ",
              static_cast<double>(free_b) / (1 << 20), " of ",
              static_cast<double>(total_b) / (1 << 20), " MiB free on the device");
  }
  ++a.stats.system_allocs;
  a.stats.bytes_in_use += size;
  if (a.stats.bytes_in_use > a.stats.peak_bytes_in_use) a.stats.peak_bytes_in_use = a.stats.bytes_in_use;
  return p;
}

void deallocate(void* p, size_t bytes) {
  if (!p) return;
  DeviceAllocator& a = allocator();
  const size_t size = DeviceAllocator::round_up(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  a.stats.bytes_in_use -= size;
  a.stats.bytes_cached += size;
  const auto owner = a.pool_of.find(p);
  if (owner != a.pool_of.end()) owner->second->free_blocks[size].push_back(p);
  else a.free_blocks[size].push_back(p);
}

AllocatorStats allocator_stats() {
  DeviceAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.stats;
}

void release_cached() {
  DeviceAllocator& a = allocator();
  VIT_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
  std::lock_guard<std::mutex> lock(a.mutex);
  a.release_locked();
}

void* stream() {
  bind_thread();  // every launcher comes here first
  static cudaStream_t s = [] {
    cudaStream_t made = nullptr;
    VIT_CUDA_CHECK(cudaStreamCreateWithFlags(&made, cudaStreamNonBlocking));
    return made;
  }();
  return s;
}

namespace {
// Host -> device copies go through a ring of pinned staging buffers, so the
// DMA runs asynchronously behind the queued kernels and the host goes on (a
// data batch is uploaded while the previous step still computes). A slot is
// reused only after the event recorded behind its copy has completed.
struct StagingRing {
  static constexpr int kSlots = 4;
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;
  };
  std::mutex mutex;
  Slot slots[kSlots];
  int next = 0;
};
StagingRing& staging() {
  static StagingRing* r = new StagingRing();
  return *r;
}
constexpr size_t kMaxStagedBytes = size_t(256) << 20;  // larger copies go synchronously
}  // namespace

namespace {
[[noreturn]] void refuse_in_capture(const char* what) {
  VIT_CHECK(false, what, " while a CUDA graph is captured: a replay would not see the host's "
            "data (copy inputs into fixed device tensors before replaying, read results after)");
  std::abort();
}
}  // namespace

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  bind_thread();  // the staging ring's events belong to the device
  if (capturing()) refuse_in_capture("copy_to_device");
  if (bytes > kMaxStagedBytes) {
    VIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, detail::stream()));
    VIT_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));  // pageable src must stay valid
    return;
  }
  StagingRing& r = staging();
  std::lock_guard<std::mutex> lock(r.mutex);
  StagingRing::Slot& slot = r.slots[r.next];
  r.next = (r.next + 1) % StagingRing::kSlots;
  if (slot.done) VIT_CUDA_CHECK(cudaEventSynchronize(slot.done));  // its last copy has left
  else VIT_CUDA_CHECK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
  if (slot.capacity < bytes) {
    if (slot.host) VIT_CUDA_CHECK(cudaFreeHost(slot.host));
    slot.host = nullptr;
    slot.capacity = 0;
    VIT_CUDA_CHECK(cudaHostAlloc(&slot.host, bytes, cudaHostAllocDefault));
    slot.capacity = bytes;
  }
  std::memcpy(slot.host, src, bytes);  // src is free to change as soon as this returns
  VIT_CUDA_CHECK(cudaMemcpyAsync(dst, slot.host, bytes, cudaMemcpyHostToDevice, detail::stream()));
  VIT_CUDA_CHECK(cudaEventRecord(slot.done, detail::stream()));
}

void* allocate_pinned(size_t bytes) {
  bind_thread();
  void* p = nullptr;
  const cudaError_t e = cudaMallocHost(&p, bytes == 0 ? 1 : bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    VIT_CHECK(false, "allocate_pinned: ", bytes, " bytes (", static_cast<double>(bytes) / (1 << 20),
              " MiB) of page-locked host memory: ", cudaGetErrorString(e));
  }
  return p;
}

void deallocate_pinned(void* p, size_t) {
  if (p) VIT_CUDA_CHECK(cudaFreeHost(p));
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (capturing()) refuse_in_capture("copy_to_host");
  VIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, detail::stream()));
  VIT_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
}

void copy_on_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  VIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, detail::stream()));
}

void copy_rows_on_device(void* dst, size_t dst_pitch, const void* src, size_t src_pitch,
                         size_t row_bytes, size_t rows) {
  if (row_bytes == 0 || rows == 0) return;
  VIT_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows,
                                   cudaMemcpyDeviceToDevice, detail::stream()));
}

void fill32(void* dst, uint32_t pattern, size_t words) {
  if (words == 0) return;
  if (pattern == 0) {
    VIT_CUDA_CHECK(cudaMemsetAsync(dst, 0, words * 4, detail::stream()));
    return;
  }
  float value;
  std::memcpy(&value, &pattern, 4);  // the fill kernel stores the bits as they are
  fill(static_cast<float*>(dst), value, static_cast<int64_t>(words));  // cuda/elementwise.cu
}

void synchronize() {
  if (capturing()) refuse_in_capture("synchronize");
  VIT_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
}

bool graphs_supported() { return true; }

bool capturing() {
  DeviceAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  return a.capturing != nullptr;
}

void begin_capture() {
  DeviceAllocator& a = allocator();
  {
    std::lock_guard<std::mutex> lock(a.mutex);
    VIT_CHECK(!a.capturing, "begin_capture: a CUDA graph is already being captured");
    a.capturing = new GraphPool();
  }
  // Relaxed: the allocator may still call cudaMalloc for a block the capture needs.
  const cudaError_t e = cudaStreamBeginCapture(detail::stream(), cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    std::lock_guard<std::mutex> lock(a.mutex);
    delete a.capturing;
    a.capturing = nullptr;
    VIT_CUDA_CHECK(e);
  }
}

void* end_capture() {
  DeviceAllocator& a = allocator();
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(detail::stream(), &graph);
  GraphPool* pool = nullptr;
  {
    std::lock_guard<std::mutex> lock(a.mutex);
    pool = a.capturing;
    a.capturing = nullptr;
  }
  VIT_CHECK(pool, "end_capture: no CUDA graph is being captured");
  cudaGraphExec_t exec = nullptr;
  cudaError_t ie = e;
  if (e == cudaSuccess) ie = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  std::lock_guard<std::mutex> lock(a.mutex);
  if (ie != cudaSuccess) {
    for (void* p : pool->owned) a.pool_of.erase(p);  // its blocks return to the general cache when freed
    for (auto& [size, list] : pool->free_blocks)
      for (void* p : list) a.free_blocks[size].push_back(p);
    delete pool;
    VIT_CHECK(false, "end_capture: ", cudaGetErrorString(ie));
  }
  a.graphs[exec] = pool;
  return exec;
}

void replay_graph(void* graph) {
  VIT_CHECK(graph, "replay_graph: no graph");
  VIT_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), detail::stream()));
}

void destroy_graph(void* graph) {
  if (!graph) return;
  VIT_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
  DeviceAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mutex);
  const auto it = a.graphs.find(graph);
  if (it == a.graphs.end()) return;
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
  GraphPool* pool = it->second;
  a.graphs.erase(it);
  for (void* p : pool->owned) a.pool_of.erase(p);  // live blocks return to the general cache when freed
  for (auto& [size, list] : pool->free_blocks)
    for (void* p : list) a.free_blocks[size].push_back(p);
  delete pool;
}

void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

}  // namespace vit::cuda
