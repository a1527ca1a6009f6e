// The serial implementation of team.h, for builds without OpenMP (ELMAN_OPENMP=OFF, or no OpenMP
// found at configure time): every job runs on the calling thread alone. The kernels are the same
// code either way, and a job of one thread computes the same tasks in the same order of phases as
// a team does, so results are bit-identical to a threaded build's (tests/test_build_config.py).
//
// Such a build is single-threaded by design, not by accident: num_threads() is always 1, and
// set_num_threads is accepted (so that portable code calling it keeps working) and changes
// nothing. show_config() says so: openmp False, num_threads_source "serial build (no OpenMP)".
#include <atomic>
#include <thread>

#include "team.h"

namespace elman::team {
namespace detail {

// A job of one member never waits for another (Member::wait returns at once when its condition
// holds, which it always does here: the caller computed every task itself). Should it wait, a
// yield is as good as a sleep: there is nobody to wake it.
void sleep_on(std::atomic<std::uint32_t>&, std::uint32_t) { std::this_thread::yield(); }
void wake_all(std::atomic<std::uint32_t>&) {}

}  // namespace detail

void run(int, Entry entry, void* ctx) {
  Member alone(0, 1, 0);
  entry(ctx, alone);
}

int num_threads() { return 1; }
void set_num_threads(int) {}  // accepted, so that portable code keeps working; nothing to size
const char* num_threads_source() { return "serial build (no OpenMP)"; }

}  // namespace elman::team
