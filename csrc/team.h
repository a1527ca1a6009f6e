// The kernels' threads: a team that shares a job without ever waiting on a thread the operating
// system has descheduled (shape legend: elman.h).
//
// A job is run by the calling thread and by the pool's workers that join it while it lasts (a
// worker that wakes up late finds nothing to do, or nothing at all). Work is claimed, never
// assigned: each member first takes the tasks it owns (affinity: the same blocks of W_hh at every
// step, so they stay in its cache), then any task nobody has claimed. A phase (a step of the
// recurrence, say) is finished when its tasks are counted done, not when every member has passed
// a barrier; a member with nothing to take spins for a bounded time, then yields, then sleeps.
// While a worker yields or sleeps it is not a member: the job may end without it, and it rejoins
// only the job it left. A job's memory (the caller's stack, its arrays) is touched only by
// members, and the caller returns only when no worker is one, so a worker never reads a job that
// has ended. Which thread computes a task never changes its result: results are bit-identical for
// any number of threads and any interleaving.
//
// Everything here has a serial meaning: a job of one thread runs on the caller alone, with the
// same tasks in the same order of phases; a build without OpenMP (ELMAN_OPENMP=0) has the same
// pool, and only loses OpenMP's controls of the thread count (OMP_NUM_THREADS is still read).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "elman.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <immintrin.h>
#elif defined(_M_ARM64) || defined(_M_ARM)
#include <intrin.h>
#endif

namespace elman::team {

// ------------------------------------------------------------------------------ thread count
// Threads a job may use: set_num_threads's value if set, else the default: OMP_NUM_THREADS (or an
// OpenMP limit such as threadpoolctl's), else the CPUs this process may run on (its affinity
// mask) capped by its cgroup's CPU quota (a container given 2 CPUs on a 64-core host uses 2).
int num_threads();
void set_num_threads(int n);      // n >= 1; 0 goes back to the default
const char* num_threads_source();  // where num_threads() came from, for show_config()
constexpr int kMaxThreads = 1024;

// ------------------------------------------------------------------------------ waiting
inline void cpu_relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
  _mm_pause();
#elif defined(_M_ARM64) || defined(_M_ARM)
  __yield();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

using Clock = std::chrono::steady_clock;

// How long a member spins on a condition before it yields: about what a few tasks of the
// recurrence take, so that a partner that is running is waited for, and one that is not costs a
// few microseconds. Measured in time, not in pause instructions, whose length differs tenfold
// between CPUs.
constexpr auto kSpin = std::chrono::microseconds(20);
constexpr int kYields = 8;  // then sched_yield this many times before sleeping

// What the team has done since the process started (or forked): for tests and diagnosis, read by
// elman._core.team_stats(). Relaxed counters, off the paths that every task takes.
struct Stats {
  std::atomic<std::uint64_t> jobs{0};       // jobs that woke the pool
  std::atomic<std::uint64_t> alone{0};      // jobs run on the caller alone: the pool was busy
  std::atomic<std::uint64_t> rescued{0};    // tasks computed again because their holder was slow
  std::atomic<std::uint64_t> sleeps{0};     // waits that went to sleep
  std::atomic<std::uint64_t> end_waits{0};  // jobs whose caller waited for a member to leave
};
const Stats& stats();

namespace detail {
// The pool (team.cpp). state packs the open job: generation << kGenShift | open bit | members.
constexpr int kGenShift = 21;
constexpr std::uint64_t kOpen = std::uint64_t(1) << 20, kMembers = kOpen - 1;

struct Shared {
  std::atomic<std::uint64_t> state{0};
  std::atomic<std::uint32_t> progress{0};  // bumped whenever a member may have made another's wait end
  std::atomic<int> sleepers{0};            // threads in futex_wait on progress
  Stats stats;
};
extern Shared g_shared;  // one per kernel build (team.cpp)
inline Shared& shared() { return g_shared; }
// ELMAN_TEAM_STRESS=1 (read at load): a member that finds nothing left to claim computes every
// unfinished task at once, as if each holder were descheduled. For the tests: every publish race
// of a rescue is then run on purpose, not only when the machine happens to be busy.
extern const bool g_stress;
void sleep_on(std::atomic<std::uint32_t>& word, std::uint32_t seen);  // unless word != seen
void wake_all(std::atomic<std::uint32_t>& word);
}  // namespace detail

class Member {
 public:
  Member(int slot, int team, std::uint64_t gen) : slot_(slot), team_(team), gen_(gen) {}
  int slot() const { return slot_; }  // 0 is the caller; slots are dense, 0 .. team() - 1
  int team() const { return team_; }  // the most members the job may have
  bool alone() const { return team_ == 1; }
  bool inside() const { return inside_; }  // a member now (false once a worker's wait returned false)

  // Tells waiting members that something they may wait for has happened (a phase finished, tasks
  // became available, a member left). Cheap when nobody sleeps.
  void notify() const {
    if (team_ == 1) return;
    auto& s = detail::shared();
    s.progress.fetch_add(1, std::memory_order_seq_cst);
    if (s.sleepers.load(std::memory_order_seq_cst) > 0) detail::wake_all(s.progress);
  }

  // Waits until ready() holds (ready reads the job's memory, so it is only called while a member).
  // Spins for kSpin; then a worker leaves the job, yields (kYields times), then sleeps, rejoining
  // to test ready() whenever another member notifies. Returns false, for a worker, when the job
  // ended while it was away: it must then return without touching anything of the job.
  template <typename Ready>
  bool wait(Ready&& ready) {
    if (spin(ready)) return true;
    auto& s = detail::shared();
    const bool worker = slot_ != 0;  // the caller never leaves: the job is its own
    for (int round = 0;; ++round) {
      // Announced before the last look: a notify after this sees the sleeper and wakes it, and one
      // before the look has already made ready() true (seq_cst on both sides).
      s.sleepers.fetch_add(1, std::memory_order_seq_cst);
      const std::uint32_t seen = s.progress.load(std::memory_order_seq_cst);
      if (ready()) {
        s.sleepers.fetch_sub(1, std::memory_order_relaxed);
        return true;
      }
      if (worker) leave();
      if (round < kYields) {
        std::this_thread::yield();
      } else {
        s.stats.sleeps.fetch_add(1, std::memory_order_relaxed);
        detail::sleep_on(s.progress, seen);
      }
      s.sleepers.fetch_sub(1, std::memory_order_relaxed);
      if (worker && !rejoin()) return false;
      if (spin(ready, std::chrono::microseconds(1))) return true;
    }
  }

  // Spins for up to `limit` on ready(); true if it came.
  template <typename Ready>
  static bool spin(Ready&& ready, Clock::duration limit = kSpin) {
    if (ready()) return true;
    const auto until = Clock::now() + limit;
    for (;;) {
      for (int i = 0; i < 32; ++i) {
        cpu_relax();
        if (ready()) return true;
      }
      if (Clock::now() >= until) return false;
    }
  }

  // Stops being a member (the pool calls it when a worker's job returns).
  void leave() {
    inside_ = false;
    // The last member out (the caller has left too: the job is ending) tells the caller.
    if ((detail::shared().state.fetch_sub(1, std::memory_order_acq_rel) & detail::kMembers) == 1) notify();
  }
 private:
  // Joins again the job this member left, if it is still open.
  bool rejoin() {
    auto& state = detail::shared().state;
    std::uint64_t s = state.load(std::memory_order_acquire);
    const std::uint64_t open = gen_ << detail::kGenShift | detail::kOpen;
    while ((s & ~detail::kMembers) == open)
      if (state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) return inside_ = true;
    return false;
  }

  int slot_, team_;
  std::uint64_t gen_;
  bool inside_ = true;
};

using Entry = void (*)(void* ctx, Member& m);

// Runs entry(ctx, m) on the calling thread (slot 0) and on up to threads - 1 workers of the pool
// that join before it ends (slots 1 ..). Returns once the caller's entry has returned and no worker
// is a member. A job of one thread, or one started while another Python thread's job holds the
// pool, runs on the caller alone (same tasks, same bits).
void run(int threads, Entry entry, void* ctx);

template <typename Body>
void run(int threads, Body&& body) {
  using B = std::remove_reference_t<Body>;
  run(threads, [](void* ctx, Member& m) { (*static_cast<B*>(ctx))(m); }, const_cast<void*>(static_cast<const void*>(&body)));
}

// ------------------------------------------------------------------------------ tasks
// Tasks [0, n) of one phase, handed out in order as members come free (a dynamic schedule: for
// tasks whose sizes differ, or that no member keeps from one call to the next), each to exactly
// one member. The counters live in the job's memory.
class Tasks {
 public:
  explicit Tasks(std::int64_t n = 0) : n_(n) {}
  Tasks(const Tasks&) = delete;
  void reset(std::int64_t n) { n_ = n, next_.store(0), done_.store(0); }  // before the job starts

  // Runs body(task) on every task this member can still take; returns when none is left to take
  // (not when all are done: see done()).
  template <typename Body>
  void take(const Member& m, Body&& body) {
    while (take_one(m, body)) {
    }
  }
  // Runs body on the next task not yet taken, if any.
  template <typename Body>
  bool take_one(const Member& m, Body&& body) {
    if (next_.load(std::memory_order_relaxed) >= n_) return false;
    const std::int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= n_) return false;
    body(i);
    done_.fetch_add(1, std::memory_order_release);
    m.notify();
    return true;
  }
  bool left() const { return next_.load(std::memory_order_relaxed) < n_; }  // tasks not yet taken
  bool done() const { return done_.load(std::memory_order_acquire) >= n_; }
  std::int64_t size() const { return n_; }

 private:
  std::int64_t n_;
  alignas(64) std::atomic<std::int64_t> next_{0};
  alignas(64) std::atomic<std::int64_t> done_{0};
};

// A sequence of phases of n tasks each (the steps of a recurrence, say): phase p + 1 starts when
// every task of phase p is done. A member takes first the tasks it owns (a contiguous range by
// slot, the same at every phase, so that the weights they read stay in its cache), then any
// nobody has claimed. With `rescue`, a task is computed into the member's own scratch and
// published by the first member to finish it: a member that finds nothing left to claim waits
// about two of its own tasks' time, then computes the tasks still unfinished itself, so a
// descheduled holder costs its one task, never its time slice (the late result, the same bits, is
// dropped). Without it, the task writes its results in place and is waited for.
class Steps {
 public:
  struct alignas(64) Slot {
    std::atomic<std::int64_t> claimed{0};    // phases for which this task has been claimed
    std::atomic<std::int64_t> published{0};  // phases for which its result is in place
  };
  // slots: n entries of the job's memory, zeroed (value-initialised) before the job starts.
  Steps(std::int64_t n, Slot* slots) : n_(n), slots_(slots) {}
  Steps(const Steps&) = delete;

  std::int64_t tasks() const { return n_; }
  // Phases done so far: a member that was away jumps ahead to the first one not done.
  std::int64_t phases_done() const { return done_.load(std::memory_order_acquire) / n_; }
  bool phase_done(std::int64_t p) const { return done_.load(std::memory_order_acquire) >= (p + 1) * n_; }

  // Takes part in phase p (every earlier phase done): compute(task) computes a task (into this
  // member's scratch when `rescue`), publish(task) then copies that scratch in place (called for
  // the first result of each task only). Returns when phase p is done, or false for a worker
  // whose job ended while it waited (only without rescue: a rescuing member never leaves).
  template <typename Compute, typename Publish>
  bool phase(Member& m, std::int64_t p, bool rescue, Compute&& compute, Publish&& publish) {
    const std::int64_t lo = n_ * m.slot() / m.team(), hi = n_ * (m.slot() + 1) / m.team();
    Clock::duration task_time{};
    const auto attempt = [&](std::int64_t i) {
      std::int64_t expected = p;
      if (!slots_[i].claimed.compare_exchange_strong(expected, p + 1, std::memory_order_acq_rel)) return;
      const auto start = Clock::now();
      compute(i);
      finish(m, i, p, rescue, publish);
      task_time = Clock::now() - start;
    };
    for (std::int64_t i = lo; i < hi; ++i) attempt(i);
    for (std::int64_t k = 0; k < n_ - (hi - lo); ++k) attempt((hi + k) % n_);
    const auto done = [&] { return phase_done(p); };
    if (!rescue) return m.wait(done);
    const Clock::duration patience = detail::g_stress ? Clock::duration(0) : 2 * task_time + std::chrono::microseconds(2);
    while (!Member::spin(done, patience)) {
      for (std::int64_t i = 0; i < n_ && !done(); ++i) {
        if (slots_[i].published.load(std::memory_order_acquire) > p) continue;
        detail::shared().stats.rescued.fetch_add(1, std::memory_order_relaxed);
        const auto start = Clock::now();
        compute(i);
        finish(m, i, p, rescue, publish);
        task_time = Clock::now() - start;
      }
    }
    return true;
  }

 private:
  template <typename Publish>
  void finish(const Member& m, std::int64_t i, std::int64_t p, bool rescue, Publish&& publish) {
    std::int64_t expected = p;
    if (slots_[i].published.compare_exchange_strong(expected, p + 1, std::memory_order_acq_rel)) {
      if (rescue) publish(i);
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == (p + 1) * n_) m.notify();
    }
  }

  const std::int64_t n_;
  Slot* const slots_;
  alignas(64) std::atomic<std::int64_t> done_{0};
};

}  // namespace elman::team
