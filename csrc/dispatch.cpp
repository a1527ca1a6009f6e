// Chooses among the kernel builds packaged with elman (CMakeLists.txt sets ELMAN_BUILT_ISAS, in
// the order of preference measured on the machines we have: see README, "Performance").
#include "dispatch.h"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#elif defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace py = pybind11;

namespace elman::dispatch {
namespace {

const KernelTable* g_table = nullptr;

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// x86-64-v3 is AVX2 + FMA + BMI1/2 + F16C + LZCNT + MOVBE (+ the v2 set), v4 adds AVX-512
// F/BW/CD/DQ/VL: exactly what the builds' -march flags allow the compiler to emit. Read from CPUID
// and XGETBV directly (not __builtin_cpu_supports("x86-64-v3"), which only g++ 11+ and clang 16+
// know, nor any builtin MSVC lacks): a feature counts only if the OS saves its registers too.
#if defined(__x86_64__) || defined(_M_X64)
struct Regs {
  unsigned a, b, c, d;
};
Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r{};
#if defined(_MSC_VER)
  int v[4];
  __cpuidex(v, int(leaf), int(sub));
  r = {unsigned(v[0]), unsigned(v[1]), unsigned(v[2]), unsigned(v[3])};
#else
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
#endif
  return r;
}
unsigned long long xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
#endif
}
bool bit(unsigned word, int i) { return (word >> i) & 1u; }

struct X86Levels {
  bool v3 = false, v4 = false;
};
X86Levels x86_levels() {
  X86Levels out;
  if (cpuid(0).a < 7) return out;
  const Regs l1 = cpuid(1), l7 = cpuid(7, 0), e1 = cpuid(0x80000000).a >= 0x80000001 ? cpuid(0x80000001) : Regs{};
  if (!bit(l1.c, 27)) return out;  // OSXSAVE: XGETBV may be executed
  const unsigned long long xcr = xcr0();
  const bool ymm = (xcr & 0x6) == 0x6;             // SSE and AVX state saved by the OS
  const bool zmm = ymm && (xcr & 0xe0) == 0xe0;    // opmask, ZMM_Hi256, Hi16_ZMM too
  const bool v2 = bit(l1.c, 0) && bit(l1.c, 9) && bit(l1.c, 13) && bit(l1.c, 19) && bit(l1.c, 20) &&
                  bit(l1.c, 23) && bit(e1.c, 0);  // SSE3 SSSE3 CX16 SSE4.1 SSE4.2 POPCNT LAHF
  out.v3 = v2 && ymm && bit(l1.c, 28) && bit(l1.c, 12) && bit(l1.c, 29) && bit(l1.c, 22) &&  // AVX FMA F16C MOVBE
           bit(l7.b, 5) && bit(l7.b, 3) && bit(l7.b, 8) && bit(e1.c, 5);  // AVX2 BMI1 BMI2 LZCNT
  out.v4 = out.v3 && zmm && bit(l7.b, 16) && bit(l7.b, 17) && bit(l7.b, 28) && bit(l7.b, 30) &&
           bit(l7.b, 31);  // AVX512 F DQ CD BW VL
  return out;
}
#endif

bool cpu_runs(const std::string& isa) {
  if (isa == "baseline") return true;
#if defined(__x86_64__) || defined(_M_X64)
  static const X86Levels levels = x86_levels();
  if (isa == "avx2") return levels.v3;
  if (isa == "avx512") return levels.v4;
#endif
  return false;
}

}  // namespace

std::vector<std::string> built() { return split(ELMAN_BUILT_ISAS); }

std::vector<std::string> runnable() {
  std::vector<std::string> out;
  for (const auto& isa : built())
    if (cpu_runs(isa)) out.push_back(isa);
  return out;
}

void load() {
  std::string isa;
  if (const char* forced = std::getenv("ELMAN_ISA"); forced && *forced) {
    isa = forced;
    const auto all = built();
    if (std::find(all.begin(), all.end(), isa) == all.end())
      throw py::import_error("ELMAN_ISA=" + isa + " is not a build in this package (" + joined(all) + ")");
    if (!cpu_runs(isa))
      throw py::import_error("ELMAN_ISA=" + isa + ": this CPU cannot run that build (it runs: " +
                             joined(runnable()) + ")");
  } else {
    const auto ok = runnable();
    if (ok.empty()) throw py::import_error("elman has no kernel build this CPU can run");
    isa = ok.front();
  }
  py::object capsule = py::module_::import(("elman._kernels_" + isa).c_str()).attr("table");
  auto* t = static_cast<const KernelTable*>(py::reinterpret_borrow<py::capsule>(capsule).get_pointer());
  if (t == nullptr || t->abi != kKernelAbi)
    throw py::import_error("elman._kernels_" + isa + " does not match elman._core: reinstall elman");
  t->use_memory(&array_memory::acquire, &array_memory::release);
  g_table = t;
}

const KernelTable& table() { return *g_table; }

}  // namespace elman::dispatch
