// What every implementation of team.h shares (the pool of team.cpp and the serial team of
// team_serial.cpp): the per-build state that team.h's inline code reads, and its statistics.
#include <cstdlib>
#include <cstring>

#include "team.h"

namespace elman::team {
namespace detail {

Shared g_shared;
const bool g_stress = [] {
  const char* v = std::getenv("ELMAN_TEAM_STRESS");
  return v && *v && std::strcmp(v, "0") != 0;
}();

}  // namespace detail

const Stats& stats() { return detail::g_shared.stats; }

}  // namespace elman::team
