// elman._kernels_<isa>: one build of the kernels (elman.h, KernelTable), handed to elman._core
// as a capsule. Compiled with that build's instruction-set flags, like kernels.cpp.
#include <pybind11/pybind11.h>

#include "elman.h"

PYBIND11_MODULE(ELMAN_KERNEL_MODULE, m) {
  m.doc() = "One instruction-set build of elman's kernels; elman._core chooses among them.";
  m.attr("isa") = elman::kernel_table().isa;
  m.attr("table") = pybind11::capsule(static_cast<const void*>(&elman::kernel_table()),
                                      "elman.KernelTable");
}
