#include "array_memory.h"

#include <cstdint>
#if defined(_WIN32)
#include <malloc.h>
#endif
#include <cstdlib>
#include <deque>
#include <mutex>
#include <new>
#include <iterator>
#include <algorithm>

namespace elman::array_memory {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kMaxCachedBlocks = 64;

struct Cache {
  std::mutex mutex;
  std::deque<Block*> blocks;  // oldest first
  std::size_t bytes = 0;
};

// Never destroyed: an array may be freed after static destructors have run (at interpreter exit).
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

// Page-aligned memory: std::aligned_alloc where the C library has it, _aligned_malloc on Windows
// (whose C library never had aligned_alloc); each freed by its own partner.
void* aligned_pages(std::size_t size) {
#if defined(_WIN32)
  return _aligned_malloc(size, kPage);
#else
  return std::aligned_alloc(kPage, size);
#endif
}
void free_pages(void* p) noexcept {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

void destroy(Block* b) noexcept {
  free_pages(b->data);
  delete b;
}

// Takes the oldest blocks out while the cache holds too much, into out[] (at most
// kMaxCachedBlocks + 1: one block came in), for the caller to free once unlocked.
std::size_t evict_locked(Cache& c, Block** out) {
  std::size_t n = 0;
  while (!c.blocks.empty() && (c.bytes > kMaxCachedBytes || c.blocks.size() > kMaxCachedBlocks)) {
    out[n++] = c.blocks.front();
    c.bytes -= c.blocks.front()->bytes;
    c.blocks.pop_front();
  }
  return n;
}

}  // namespace

Block* acquire(std::size_t bytes) {
  if (bytes > SIZE_MAX - kPage) throw std::bad_alloc();
  const std::size_t size = (std::max<std::size_t>(bytes, 1) + kPage - 1) / kPage * kPage;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto it = c.blocks.rbegin(); it != c.blocks.rend(); ++it) {  // the most recent first
      if ((*it)->bytes != size) continue;
      Block* b = *it;
      c.blocks.erase(std::next(it).base());
      c.bytes -= size;
      return b;
    }
  }
  void* data = aligned_pages(size);
  if (!data) throw std::bad_alloc();
  try {
    return new Block{data, size};
  } catch (...) {
    free_pages(data);
    throw;
  }
}

void release(Block* block) noexcept {
  if (!block) return;
  if (block->bytes > kMaxCachedBytes) return destroy(block);
  Block* evicted[kMaxCachedBlocks + 1];
  std::size_t n = 0;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    try {
      c.blocks.push_back(block);
      c.bytes += block->bytes;
    } catch (...) {  // no memory even to remember it: give it back instead
      evicted[n++] = block;
    }
    n += evict_locked(c, evicted + n);
  }
  for (std::size_t i = 0; i < n; ++i) destroy(evicted[i]);
}

std::size_t cached_bytes() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.bytes;
}

std::size_t free_cached() noexcept {
  Cache& c = cache();
  std::deque<Block*> all;
  std::size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    all.swap(c.blocks);
    bytes = c.bytes;
    c.bytes = 0;
  }
  for (Block* b : all) destroy(b);
  return bytes;
}

}  // namespace elman::array_memory
