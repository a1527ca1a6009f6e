// Chooses among the kernel builds packaged with elman (CMakeLists.txt sets ELMAN_BUILT_ISAS, in
// the order of preference measured on the machines we have: see README, "Performance").
#include "dispatch.h"

#include <pybind11/pybind11.h>

#include <cstdlib>
#include <sstream>

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

// x86-64-v3 is AVX2 + FMA + BMI2 + F16C + MOVBE..., v4 adds AVX-512 F/BW/CD/DQ/VL: exactly
// what the builds' -march flags allow the compiler to emit.
bool cpu_runs(const std::string& isa) {
  if (isa == "baseline") return true;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (isa == "avx2") return __builtin_cpu_supports("x86-64-v3");
  if (isa == "avx512") return __builtin_cpu_supports("x86-64-v4");
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
