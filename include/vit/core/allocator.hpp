// CPU caching allocator: freed buffers go to a free list keyed by their byte
// size and are handed out again for the next request of that size. A training
// step allocates the same sizes every step, so after the first step it stops
// calling malloc. Buffers are 64-byte aligned for AVX loads.
// Deliberately simple: exact-size buckets, one mutex, no trimming except
// release_cached(); the working set of a ViT step is a few hundred sizes.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace vit {

struct AllocatorStats {
  size_t bytes_in_use = 0;    // handed out and not yet returned
  size_t bytes_cached = 0;    // held in free lists
  size_t peak_bytes_in_use = 0;
  size_t system_allocs = 0;   // calls that reached the system allocator
};

class CpuCachingAllocator {
 public:
  static CpuCachingAllocator& instance() {
    static CpuCachingAllocator* a = new CpuCachingAllocator();  // never destroyed: outlives statics
    return *a;
  }

  void* allocate(size_t bytes) {
    bytes = round_up(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use += bytes;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    auto it = free_.find(bytes);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= bytes;
      return p;
    }
    ++stats_.system_allocs;
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (!p) {
      release_cached_locked();
      p = std::aligned_alloc(kAlignment, bytes);
    }
    if (!p) {
      stats_.bytes_in_use -= bytes;
      throw std::bad_alloc();
    }
    return p;
  }

  void deallocate(void* p, size_t bytes) {
    if (!p) return;
    bytes = round_up(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use -= bytes;
    stats_.bytes_cached += bytes;
    free_[bytes].push_back(p);
  }

  /// Returns every cached buffer to the system.
  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_cached_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  static constexpr size_t kAlignment = 64;
  static size_t round_up(size_t b) { return b == 0 ? kAlignment : (b + kAlignment - 1) / kAlignment * kAlignment; }

  void release_cached_locked() {
    for (auto& [size, list] : free_)
      for (void* p : list) std::free(p);
    free_.clear();
    stats_.bytes_cached = 0;
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

}  // namespace vit
