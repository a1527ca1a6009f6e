// What elman._core's bindings (bindings.cpp, optim_step.cpp) ask of a NumPy array before reading it
// as a plain pointer, and how its shape reads in an error message.
#pragma once

#include <pybind11/numpy.h>

#include <sstream>
#include <string>

namespace elman::array_checks {

namespace py = pybind11;

constexpr int kAligned = 0x0100;  // NPY_ARRAY_ALIGNED

// Native byte order (NumPy writes '=' or '|' for native, '<' on little-endian machines).
inline bool is_native(const py::array& a) { return a.dtype().byteorder() != '>'; }

// C-contiguous, aligned and native-endian: readable as a plain S* of size() elements.
inline bool is_flat(const py::array& a) {
  return (a.flags() & py::array::c_style) && (a.flags() & kAligned) && is_native(a);
}

// "(2, 3)", "(4,)", "()": the shape as Python prints it.
inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

}  // namespace elman::array_checks
