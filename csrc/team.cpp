// The pool of team.h: worker threads, how they sleep and wake, what a fork leaves of them, and how
// many threads a job may use.
#include "team.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#if ELMAN_OPENMP
#include <omp.h>
#endif

namespace elman::team {
namespace detail {

// A sleeper gives up after this long and looks again: a lost wake-up (there should be none) then
// costs a pause, never a hang.
constexpr auto kSleepLimit = std::chrono::milliseconds(20);

#if defined(__linux__)
void sleep_on(std::atomic<std::uint32_t>& word, std::uint32_t seen) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t), "futex word");
  timespec limit{0, long(std::chrono::nanoseconds(kSleepLimit).count())};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, &limit, nullptr, 0);
}
void wake_all(std::atomic<std::uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}
#else
// Elsewhere a condition variable stands in for the futex: the waker takes the mutex after changing
// the word, so a sleeper that saw the old value under the mutex is always woken.
std::mutex* g_sleep_mutex = new std::mutex;  // leaked: threads may still sleep at exit
std::condition_variable* g_sleep_cv = new std::condition_variable;
void sleep_on(std::atomic<std::uint32_t>& word, std::uint32_t seen) {
  std::unique_lock<std::mutex> lock(*g_sleep_mutex);
  if (word.load() == seen) g_sleep_cv->wait_for(lock, kSleepLimit);
}
void wake_all(std::atomic<std::uint32_t>&) {
  { std::lock_guard<std::mutex> lock(*g_sleep_mutex); }
  g_sleep_cv->notify_all();
}
#endif

}  // namespace detail

namespace {

using detail::kGenShift;
using detail::kMembers;
using detail::kOpen;

// How long an idle worker spins for the next job before it yields and sleeps: a training loop
// calls the kernels back to back, with a few tens of microseconds of Python between them.
constexpr auto kIdleSpin = std::chrono::microseconds(100);

struct Pool {
  std::atomic<std::uint32_t> jobs{0};  // bumped when a job opens: idle workers sleep on it
  std::atomic<int> idle_sleepers{0};
  std::atomic<bool> busy{false};       // a job holds the pool (one at a time; others run alone)
  std::uint64_t generation = 0;        // of the last job (changed only by the pool's holder)
  std::atomic<int> team{0}, next_slot{0};
  std::atomic<Entry> entry{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::mutex grow;      // guards started
  int started = 0;      // workers running
};

// Leaked on purpose, as are the threads: a worker may still sleep in it while the process exits,
// and after a fork the child's copy describes threads that do not exist (see forked()).
Pool* g_pool = new Pool;

void worker_main() {
  Pool& pool = *g_pool;
  auto& state = detail::shared().state;
  std::uint64_t joined = 0;  // the last job this worker joined: once each
  std::uint32_t seen = pool.jobs.load(std::memory_order_acquire);
  for (;;) {
    std::uint64_t s = state.load(std::memory_order_acquire);
    const std::uint64_t gen = s >> kGenShift;
    if ((s & kOpen) && gen != joined) {
      // Join while the job is open, then take a slot, if one is left.
      bool in = false;
      while ((s & kOpen) && (s >> kGenShift) == gen && !in)
        in = state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel);
      if (in) {
        joined = gen;
        const int team = pool.team.load(std::memory_order_relaxed);
        const int slot = pool.next_slot.fetch_add(1, std::memory_order_relaxed);
        Member m(slot < team ? slot : 0, team, gen);
        if (slot < team) pool.entry.load(std::memory_order_relaxed)(pool.ctx.load(std::memory_order_relaxed), m);
        if (m.inside()) m.leave();
        seen = pool.jobs.load(std::memory_order_acquire);
        continue;
      }
    }
    // Idle: spin, yield, then sleep until a job opens.
    const auto idle = [&] { return pool.jobs.load(std::memory_order_acquire) != seen; };
    bool woken = Member::spin(idle, kIdleSpin);
    for (int i = 0; !woken && i < kYields; ++i) {
      std::this_thread::yield();
      woken = idle();
    }
    if (!woken) {
      pool.idle_sleepers.fetch_add(1, std::memory_order_seq_cst);
      if (!idle()) detail::sleep_on(pool.jobs, seen);
      pool.idle_sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
    seen = pool.jobs.load(std::memory_order_acquire);
  }
}

// A forked child has only the thread that forked: the pool's workers, and any job in flight, stay
// behind in the parent. The child starts an empty pool, whose workers start at its first job.
void forked() {
  g_pool = new Pool;  // the parent's copy is leaked: its mutex may have been held at the fork
  auto& s = detail::g_shared;
  s.state.store(0), s.sleepers.store(0);
  for (auto* counter : {&s.stats.jobs, &s.stats.alone, &s.stats.rescued, &s.stats.sleeps, &s.stats.end_waits})
    counter->store(0);
}

// Starts workers until `n` run; fewer if the system refuses threads (the job then has fewer).
int ensure_workers(int n) {
  Pool& pool = *g_pool;
  std::lock_guard<std::mutex> lock(pool.grow);
#if defined(__unix__) || defined(__APPLE__)
  static const bool registered = pthread_atfork(nullptr, nullptr, &forked) == 0;
  (void)registered;
#endif
  while (pool.started < n) {
    try {
      std::thread(worker_main).detach();
    } catch (const std::system_error&) {
      break;
    }
    ++pool.started;
  }
  return pool.started;
}

}  // namespace

void run(int threads, Entry entry, void* ctx) {
  threads = std::min(threads, kMaxThreads);
  Pool& pool = *g_pool;
  auto& stats = detail::shared().stats;
  if (threads > 1 && pool.busy.exchange(true, std::memory_order_acquire)) {
    stats.alone.fetch_add(1, std::memory_order_relaxed);
    threads = 1;
  } else if (threads > 1) {
    stats.jobs.fetch_add(1, std::memory_order_relaxed);
  }
  if (threads <= 1) {
    Member alone(0, 1, 0);
    entry(ctx, alone);
    return;
  }
  threads = 1 + std::min(threads - 1, ensure_workers(threads - 1));
  auto& state = detail::shared().state;
  const std::uint64_t gen = ++pool.generation & ((std::uint64_t(1) << (64 - kGenShift)) - 1);
  pool.team.store(threads, std::memory_order_relaxed);
  pool.next_slot.store(1, std::memory_order_relaxed);
  pool.entry.store(entry, std::memory_order_relaxed);
  pool.ctx.store(ctx, std::memory_order_relaxed);
  state.store(gen << kGenShift | kOpen | 1, std::memory_order_release);  // open, the caller a member
  pool.jobs.fetch_add(1, std::memory_order_seq_cst);
  if (pool.idle_sleepers.load(std::memory_order_seq_cst) > 0) detail::wake_all(pool.jobs);

  Member caller(0, threads, gen);
  struct Close {  // also when entry throws: the job must not stay open over a dead stack frame
    Member& caller;
    Pool& pool;
    std::uint64_t gen;
    ~Close() {
      auto& state = detail::shared().state;
      caller.leave();
      // Wait for the members still inside (each holds at most a task), then close.
      const std::uint64_t empty = gen << kGenShift | kOpen;
      Member waiter(0, 2, gen);  // a caller's wait: it sleeps on progress, which the last one out bumps
      for (bool waited = false;; waited = true) {
        std::uint64_t expected = empty;
        if (state.compare_exchange_strong(expected, gen << kGenShift, std::memory_order_acq_rel)) break;
        if (!waited) detail::shared().stats.end_waits.fetch_add(1, std::memory_order_relaxed);
        waiter.wait([&] { return (state.load(std::memory_order_acquire) & kMembers) == 0; });
      }
      pool.busy.store(false, std::memory_order_release);
    }
  } close{caller, pool, gen};
  entry(ctx, caller);
}

// ------------------------------------------------------------------------------ thread count
namespace {

std::atomic<int> g_set{0};                  // set_num_threads's value; 0: the default
std::atomic<const char*> g_source{"CPUs"};  // where the last num_threads() came from

int parse_count(const char* text) {  // OMP_NUM_THREADS's first entry ("4" or "4,2"), else 0
  if (!text) return 0;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  return end != text && n > 0 ? int(std::min<long>(n, kMaxThreads)) : 0;
}

int cpus_available() {  // CPUs in this process's affinity mask (taskset, os.sched_setaffinity)
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// CPUs' worth of time the process's cgroup may use (cpu.max in cgroup v2, cpu.cfs_quota_us /
// cpu.cfs_period_us in v1), the smallest along its path to the root; 0 if unlimited or unknown.
// ELMAN_CGROUP_ROOT names another cgroup file system root (tests use a folder of their own).
int read_quota(const std::string& dir) {
  std::ifstream v2(dir + "/cpu.max");
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period) {
    if (quota == "max" || period <= 0) return 0;
    const double q = std::atof(quota.c_str());
    return q > 0 ? std::max(1, int((q + period - 1) / period)) : 0;
  }
  std::ifstream q1(dir + "/cpu.cfs_quota_us"), p1(dir + "/cpu.cfs_period_us");
  double q = 0;
  if (q1 >> q && p1 >> period && q > 0 && period > 0) return std::max(1, int((q + period - 1) / period));
  return 0;
}

int cgroup_quota() {
#if defined(__linux__)
  const char* root_env = std::getenv("ELMAN_CGROUP_ROOT");
  const std::vector<std::string> roots = root_env && *root_env
      ? std::vector<std::string>{root_env}
      : std::vector<std::string>{"/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"};
  std::ifstream self("/proc/self/cgroup");
  std::vector<std::string> paths;
  for (std::string line; std::getline(self, line);) {  // "0::/path" (v2), "4:cpu,cpuacct:/path" (v1)
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    if (controllers.empty() || controllers.find("cpu") != std::string::npos) paths.push_back(line.substr(b + 1));
  }
  if (paths.empty()) paths.push_back("/");
  int best = 0;
  for (const auto& root : roots)
    for (std::string path : paths) {
      // A container sees its own cgroup as the root, and /proc/self/cgroup may still name the
      // host's path: look along the path, and at the root itself.
      for (;;) {
        const int q = read_quota(root + (path == "/" ? "" : path));
        if (q > 0) best = best ? std::min(best, q) : q;
        if (path.empty() || path == "/") break;
        path = path.substr(0, path.rfind('/'));
        if (path.empty()) path = "/";
      }
    }
  return best;
#else
  return 0;
#endif
}

}  // namespace

int num_threads() {
  if (const int n = g_set.load(std::memory_order_relaxed); n > 0) {
    g_source.store("set_num_threads", std::memory_order_relaxed);
    return n;
  }
  const char* omp_env = std::getenv("OMP_NUM_THREADS");
#if ELMAN_OPENMP
  const int omp = std::min(omp_get_max_threads(), kMaxThreads);  // threadpoolctl's limit included
  if (parse_count(omp_env) > 0) {
    g_source.store("OMP_NUM_THREADS", std::memory_order_relaxed);
    return std::max(1, omp);
  }
#else
  if (const int n = parse_count(omp_env); n > 0) {
    g_source.store("OMP_NUM_THREADS", std::memory_order_relaxed);
    return n;
  }
#endif
  int n = cpus_available();
  const char* source = n < int(std::thread::hardware_concurrency()) ? "affinity mask" : "CPUs";
  static const int quota = cgroup_quota();  // read once: a process's quota rarely changes
  if (quota > 0 && quota < n) n = quota, source = "cgroup cpu.max";
#if ELMAN_OPENMP
  if (omp < n) n = std::max(1, omp), source = "OpenMP limit (omp_set_num_threads, threadpoolctl)";
#endif
  g_source.store(source, std::memory_order_relaxed);
  return n;
}

void set_num_threads(int n) { g_set.store(std::clamp(n, 0, kMaxThreads), std::memory_order_relaxed); }

const char* num_threads_source() {
  num_threads();
  return g_source.load(std::memory_order_relaxed);
}

}  // namespace elman::team
