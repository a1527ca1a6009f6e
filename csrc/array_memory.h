// Memory of the large arrays elman._core returns, kept for reuse after NumPy frees them.
//
// A training loop allocates the same outputs (hs, dx, dlogits, ...) at every step and drops the
// previous step's. glibc hands such sizes back to the kernel when they are freed (munmap, or a trim
// of the heap top) and the next step faults every page in again: ~2,800 page faults and 3-4 ms of a
// 35 ms medium training step on this machine. Blocks freed here are kept, up to kMaxCachedBytes, and
// handed out again for an array of the same page-rounded size, already mapped.
#pragma once

#include <cstddef>

namespace elman::array_memory {

// Arrays smaller than this come from NumPy's allocator as usual (glibc keeps them in its heap).
constexpr std::size_t kMinBytes = std::size_t(256) << 10;
// What the cache may hold while no array uses it; a block larger than this is never kept.
constexpr std::size_t kMaxCachedBytes = std::size_t(256) << 20;

struct Block {
  void* data;
  std::size_t bytes;  // page-rounded capacity
};

// A block of at least `bytes` bytes, page-aligned: a cached one of the same capacity if there is
// one, else newly allocated. Throws std::bad_alloc.
Block* acquire(std::size_t bytes);

// Takes back a block no array uses any more: cached (the oldest ones freed beyond the limit).
void release(Block* block) noexcept;

// Bytes held by cached blocks, and freeing them all (returns the bytes freed).
std::size_t cached_bytes() noexcept;
std::size_t free_cached() noexcept;

}  // namespace elman::array_memory
