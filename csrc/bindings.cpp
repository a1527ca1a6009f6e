// elman._core: check and convert the arguments, allocate the outputs, release the GIL, call the
// kernels (elman.h has the shape legend). Everything a user can pass in is either accepted
// exactly as NumPy would read it or rejected with a Python exception that names the argument.
//
// Conversion rule (documented in elman/functional.py): a call computes in one dtype, float32 or
// float64: NumPy's result type of the floating arguments, with float16 raised to float32 and
// integers, booleans and wider floats computed in float64. Arrays that are already C-contiguous,
// aligned, native-endian and of that dtype are read in place (zero copy); anything else is
// copied once by numpy.require. Inputs are never written.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <Eigen/Core>

#if !defined(_WIN32)
#include <dlfcn.h>
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "array_checks.h"
#include "array_memory.h"
#include "dispatch.h"
#include "elman.h"
#include "team.h"
#include "optim_step.h"

namespace py = pybind11;
using elman::Index;

namespace {

using elman::array_checks::is_flat;
using elman::array_checks::shape_str;

py::object numpy_attr(const char* name) {
  return py::module_::import("numpy").attr(name);
}

// a as a C-contiguous, aligned array of dtype, copied only if it is not one already
// (numpy.require: unlike numpy.ascontiguousarray it keeps a 0-d array 0-d, and unlike
// numpy.asarray it also realigns data that starts at an odd address).
py::array c_order(const py::array& a, const py::dtype& dtype) {
  return numpy_attr("require")(a, dtype, py::make_tuple("C", "A"));
}

std::string dims_str(std::initializer_list<Index> dims) {
  std::ostringstream s;
  s << "(";
  Index i = 0;
  for (Index d : dims) s << (i++ ? ", " : "") << d;
  s << (dims.size() == 1 ? ",)" : ")");
  return s.str();
}

// Any array-like to an ndarray of real numbers; anything else is a TypeError naming the argument.
py::array as_ndarray(py::handle h, const char* name) {
  if (h.is_none()) throw py::type_error(std::string(name) + " must be an array, got None");
  py::array a;
  if (py::isinstance<py::array>(h)) {
    a = py::reinterpret_borrow<py::array>(h);
  } else {
    try {
      a = numpy_attr("asarray")(h);
    } catch (py::error_already_set&) {
      throw py::type_error(std::string(name) + " must be an array of numbers, got " +
                           std::string(py::str(py::type::of(h).attr("__name__"))));
    }
  }
  const char kind = a.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(std::string(name) + " must hold real numbers, got dtype " +
                         std::string(py::str(a.dtype())));
  return a;
}


// The dtype a call computes in (NPY_FLOAT or NPY_DOUBLE), per the rule at the top of this file.
int compute_dtype(const std::vector<py::array>& arrays) {
  const int first = arrays.front().dtype().num();
  bool same = first == py::detail::npy_api::NPY_FLOAT_ || first == py::detail::npy_api::NPY_DOUBLE_;
  for (const auto& a : arrays) same = same && a.dtype().num() == first;
  if (same) return first;  // the common case, decided without calling into NumPy
  py::tuple args(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) args[i] = arrays[i];
  py::dtype r = numpy_attr("result_type")(*args);
  if (r.kind() == 'f' && r.itemsize() <= 4) return py::detail::npy_api::NPY_FLOAT_;
  return py::detail::npy_api::NPY_DOUBLE_;
}

// Holds the converted arguments of one call, in the order they were given.
struct Args {
  std::vector<py::array> a;
  int dtype;

  Args(std::initializer_list<std::pair<py::handle, const char*>> args) {
    for (const auto& [h, name] : args) a.push_back(as_ndarray(h, name));
    dtype = compute_dtype(a);
    for (auto& arr : a) {
      if (arr.dtype().num() != dtype || !is_flat(arr))
        arr = c_order(arr, py::dtype(dtype));
    }
  }
  template <typename S>
  const S* ptr(size_t i) const { return static_cast<const S*>(a[i].data()); }
  Index dim(size_t i, int axis) const { return a[i].shape(axis); }
};

void expect_ndim(const py::array& a, const char* name, py::ssize_t ndim, const char* dims) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          (ndim == 1 ? " dimension " : " dimensions ") + dims + ", got shape " +
                          shape_str(a));
}

void expect_shape(const py::array& a, const char* name, const char* dims,
                  std::initializer_list<Index> expected) {
  bool ok = a.ndim() == py::ssize_t(expected.size());
  py::ssize_t i = 0;
  for (Index d : expected) ok = ok && a.shape(i++) == d;
  if (!ok)
    throw py::value_error(std::string(name) + " has shape " + shape_str(a) + ", expected " + dims +
                          " = " + dims_str(expected));
}

// Shape check for the leading dimensions ("...") plus a fixed last one.
void expect_rows(const py::array& a, const char* name, const py::array& like, const char* like_name,
                 Index last, const char* last_name) {
  bool ok = a.ndim() == like.ndim() && a.ndim() >= 1 && a.shape(a.ndim() - 1) == last;
  for (py::ssize_t i = 0; ok && i + 1 < a.ndim(); ++i) ok = a.shape(i) == like.shape(i);
  if (!ok) {
    std::vector<py::ssize_t> want(like.shape(), like.shape() + like.ndim());
    if (!want.empty()) want.back() = last;
    std::ostringstream s;
    s << name << " has shape " << shape_str(a) << ", expected " << like_name << ".shape[:-1] + ("
      << last_name << ",) = (";
    for (size_t k = 0; k < want.size(); ++k) s << (k ? ", " : "") << want[k];
    s << (want.size() == 1 ? ",)" : ")");
    throw py::value_error(s.str());
  }
}

std::string text_arg(py::handle h, const char* name) {
  if (!py::isinstance<py::str>(h))
    throw py::type_error(std::string(name) + " must be a str, got " +
                         std::string(py::str(py::type::of(h).attr("__name__"))));
  return h.cast<std::string>();
}

elman::Activation parse_activation(py::handle h) {
  const std::string s = text_arg(h, "activation");
  if (s == "tanh") return elman::Activation::Tanh;
  if (s == "sigmoid") return elman::Activation::Sigmoid;
  if (s == "relu") return elman::Activation::Relu;
  if (s == "identity") return elman::Activation::Identity;
  throw py::value_error("activation must be one of 'tanh', 'sigmoid', 'relu', 'identity', got '" +
                        s + "'");
}

elman::OutputActivation parse_output_activation(py::handle h) {
  const std::string s = text_arg(h, "activation");
  if (s == "identity") return elman::OutputActivation::Identity;
  if (s == "softmax") return elman::OutputActivation::Softmax;
  if (s == "sigmoid") return elman::OutputActivation::Sigmoid;
  throw py::value_error("activation must be one of 'identity', 'softmax', 'sigmoid', got '" + s +
                        "'");
}

// Calls fn(S{}) with S = float or double, the dtype the call computes in.
template <typename Fn>
auto dispatch(int dtype, Fn&& fn) {
  if (dtype == py::detail::npy_api::NPY_FLOAT_) return fn(float{});
  return fn(double{});
}

// Arrays on cached memory are traced by tracemalloc in NumPy's domain, as NumPy's own are. The
// functions are looked up at run time: Python 3.11's tracemalloc.h declares them without
// extern "C", so a C++ call would ask for a mangled name the interpreter does not export.
constexpr unsigned int kNumpyTraceDomain = 389047;
struct TraceMalloc {
  int (*track)(unsigned int, std::uintptr_t, std::size_t) = nullptr;
  int (*untrack)(unsigned int, std::uintptr_t) = nullptr;
  TraceMalloc() {
#if !defined(_WIN32)  // without dlsym such arrays are not traced; nothing else changes
    track = reinterpret_cast<decltype(track)>(dlsym(RTLD_DEFAULT, "PyTraceMalloc_Track"));
    untrack = reinterpret_cast<decltype(untrack)>(dlsym(RTLD_DEFAULT, "PyTraceMalloc_Untrack"));
    if (!track || !untrack) track = nullptr, untrack = nullptr;
#endif
  }
};
const TraceMalloc& tracemalloc() {
  static const TraceMalloc t;
  return t;
}

// A new uninitialised C-contiguous array. Large ones live on array_memory's cached blocks (the
// array's base is the capsule that gives its block back), so that a loop allocating the same
// outputs at every step does not fault their pages in again each time.
template <typename S>
py::array_t<S> empty(std::vector<py::ssize_t> shape) {
  std::size_t n = 1;
  for (py::ssize_t d : shape) {
    if (d < 0 || (d > 0 && n > PTRDIFF_MAX / sizeof(S) / std::size_t(d))) return py::array_t<S>(shape);
    n *= std::size_t(d);
  }
  const std::size_t bytes = n * sizeof(S);
  if (bytes < elman::array_memory::kMinBytes) return py::array_t<S>(shape);
  elman::array_memory::Block* block = elman::array_memory::acquire(bytes);
  py::capsule owner(block, [](void* p) {
    auto* b = static_cast<elman::array_memory::Block*>(p);
    if (tracemalloc().untrack) tracemalloc().untrack(kNumpyTraceDomain, reinterpret_cast<std::uintptr_t>(b->data));
    elman::array_memory::release(b);
  });
  if (tracemalloc().track) tracemalloc().track(kNumpyTraceDomain, reinterpret_cast<std::uintptr_t>(block->data), bytes);
  return py::array_t<S>(shape, static_cast<S*>(block->data), owner);
}

template <typename S>
S* mut(py::array_t<S>& a) { return a.mutable_data(); }

// Uninitialised scratch memory of n elements from the cache (std::bad_alloc becomes MemoryError).
struct GiveBack {
  void operator()(elman::array_memory::Block* b) const noexcept { elman::array_memory::release(b); }
};
template <typename S>
struct Scratch {
  std::unique_ptr<elman::array_memory::Block, GiveBack> block;
  S* get() const { return static_cast<S*>(block->data); }
};
template <typename S>
Scratch<S> scratch(Index n) {
  if (n < 0 || std::size_t(n) > PTRDIFF_MAX / sizeof(S)) throw std::bad_alloc();
  return {std::unique_ptr<elman::array_memory::Block, GiveBack>(elman::array_memory::acquire(std::size_t(n) * sizeof(S)))};
}

// Why `out` cannot be written as a plain S* (one condition per message, so the caller knows which
// to fix): the compute dtype, native byte order, writeable, C-contiguous, aligned.
template <typename S>
void check_out_layout(const py::array& o) {
  const std::string want = py::str(py::dtype::of<S>());
  const std::string got = py::str(o.dtype());
  if (o.dtype().num() != py::dtype::of<S>().num())
    throw py::value_error("out must have dtype " + want + " (the dtype this call computes in), got " + got);
  if (!elman::array_checks::is_native(o))
    throw py::value_error("out must be " + want + " in native byte order, got the byte-swapped dtype " +
                          std::string(py::str(o.dtype().attr("str"))));
  if (!o.writeable())
    throw py::value_error("out is read-only (its writeable flag is False): pass a writeable array");
  if (!(o.flags() & py::array::c_style))
    throw py::value_error("out must be C-contiguous, got an array with strides " +
                          std::string(py::str(o.attr("strides"))) + ": pass numpy.empty(shape, " + want + ")");
  if (!(o.flags() & elman::array_checks::kAligned))
    throw py::value_error("out is not aligned: its data does not start at a multiple of " +
                          std::to_string(sizeof(S)) + " bytes (" + want +
                          "'s alignment); pass numpy.empty(shape, " + want + ")");
}

// The caller's `out` array when given (for loops that must not allocate, e.g. streaming), else a
// new one. `out` must be exactly what the call would allocate: C-contiguous, writeable, of the
// compute dtype and shape, and not overlapping any input (the kernels read inputs while writing).
template <typename S>
py::array_t<S> output_array(py::handle out, std::vector<py::ssize_t> shape, const Args& args) {
  if (out.is_none()) return empty<S>(std::move(shape));
  if (!py::isinstance<py::array>(out))
    throw py::type_error("out must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::of(out).attr("__name__"))));
  auto o = py::reinterpret_borrow<py::array>(out);
  std::ostringstream want;
  want << "(";
  for (size_t i = 0; i < shape.size(); ++i) want << (i ? ", " : "") << shape[i];
  want << (shape.size() == 1 ? ",)" : ")");
  check_out_layout<S>(o);
  bool ok_shape = o.ndim() == py::ssize_t(shape.size());
  for (size_t i = 0; ok_shape && i < shape.size(); ++i) ok_shape = o.shape(i) == shape[i];
  if (!ok_shape) throw py::value_error("out has shape " + shape_str(o) + ", expected " + want.str());
  const char* lo = static_cast<const char*>(o.data());
  const char* hi = lo + o.nbytes();
  for (const auto& in : args.a) {
    const char* ilo = static_cast<const char*>(in.data());
    if (in.nbytes() > 0 && o.nbytes() > 0 && ilo < hi && lo < ilo + in.nbytes())
      throw py::value_error("out overlaps an input; pass a separate buffer");
  }
  return py::reinterpret_borrow<py::array_t<S>>(out);
}

// ---------------------------------------------------------------- recurrent layer

struct RnnDims { Index T, B, D, H; };

// Checks x[T, B, D] (or x_t[B, D] when `step`), W_xh[H, D], W_hh[H, H] and returns the sizes.
RnnDims rnn_dims(const py::array& x, const char* x_name, bool step, const py::array& W_xh,
                 const py::array& W_hh) {
  RnnDims d{};
  if (step) {
    expect_ndim(x, x_name, 2, "(B, D)");
    d = {1, x.shape(0), x.shape(1), 0};
  } else {
    expect_ndim(x, x_name, 3, "(T, B, D)");
    d = {x.shape(0), x.shape(1), x.shape(2), 0};
  }
  expect_ndim(W_hh, "W_hh", 2, "(H, H)");
  d.H = W_hh.shape(0);
  expect_shape(W_hh, "W_hh", "(H, H)", {d.H, d.H});
  expect_shape(W_xh, "W_xh", "(H, D)", {d.H, d.D});
  return d;
}

py::array forward(py::handle x, py::handle h0, py::handle W_xh, py::handle W_hh, py::handle b_h,
                  py::handle activation, bool step, py::handle out = py::none()) {
  const auto f = parse_activation(activation);
  const char* x_name = step ? "x_t" : "x";
  const char* h_name = step ? "h_prev" : "h0";
  Args a({{x, x_name}, {h0, h_name}, {W_xh, "W_xh"}, {W_hh, "W_hh"}, {b_h, "b_h"}});
  const RnnDims d = rnn_dims(a.a[0], x_name, step, a.a[2], a.a[3]);
  expect_shape(a.a[1], h_name, "(B, H)", {d.B, d.H});
  expect_shape(a.a[4], "b_h", "(H,)", {d.H});
  return dispatch(a.dtype, [&](auto s) -> py::array {
    using S = decltype(s);
    auto hs = step ? output_array<S>(out, {d.B, d.H}, a) : output_array<S>(out, {d.T, d.B, d.H}, a);
    S* p_hs = mut(hs);
    py::gil_scoped_release nogil;
    elman::dispatch::kernels<S>().rnn_forward(p_hs, a.ptr<S>(0), a.ptr<S>(1), a.ptr<S>(2), a.ptr<S>(3), a.ptr<S>(4),
                          d.T, d.B, d.D, d.H, f);
    return hs;
  });
}

// input_grad false: dx is None and its product is skipped (the other results are the same bits).
py::tuple backward(py::handle dhs, py::handle x, py::handle h0, py::handle hs, py::handle W_xh,
                   py::handle W_hh, py::handle activation, bool step, bool input_grad = true) {
  const auto f = parse_activation(activation);
  const char* dh_name = step ? "dh_next" : "dhs";
  const char* x_name = step ? "x_t" : "x";
  const char* h0_name = step ? "h_prev" : "h0";
  const char* hs_name = step ? "h_next" : "hs";
  Args a({{dhs, dh_name}, {x, x_name}, {h0, h0_name}, {hs, hs_name}, {W_xh, "W_xh"},
          {W_hh, "W_hh"}});
  const RnnDims d = rnn_dims(a.a[1], x_name, step, a.a[4], a.a[5]);
  expect_shape(a.a[2], h0_name, "(B, H)", {d.B, d.H});
  if (step) {
    expect_shape(a.a[3], hs_name, "(B, H)", {d.B, d.H});
    expect_shape(a.a[0], dh_name, "(B, H)", {d.B, d.H});
  } else {
    expect_shape(a.a[3], hs_name, "(T, B, H)", {d.T, d.B, d.H});
    expect_shape(a.a[0], dh_name, "(T, B, H)", {d.T, d.B, d.H});
  }
  return dispatch(a.dtype, [&](auto s) -> py::tuple {
    using S = decltype(s);
    py::object dx = py::none();
    S* p_dx = nullptr;
    if (input_grad) {
      auto a_dx = step ? empty<S>({d.B, d.D}) : empty<S>({d.T, d.B, d.D});
      p_dx = mut(a_dx);
      dx = std::move(a_dx);
    }
    auto dh0 = empty<S>({d.B, d.H});
    auto dW_xh = empty<S>({d.H, d.D});
    auto dW_hh = empty<S>({d.H, d.H});
    auto db = empty<S>({d.H});
    S *p_dh0 = mut(dh0), *p_dWxh = mut(dW_xh), *p_dWhh = mut(dW_hh), *p_db = mut(db);
    {
      py::gil_scoped_release nogil;
      elman::dispatch::kernels<S>().rnn_backward(p_dx, p_dh0, p_dWxh, p_dWhh, p_db, a.ptr<S>(0), a.ptr<S>(1),
                             a.ptr<S>(2), a.ptr<S>(3), a.ptr<S>(4), a.ptr<S>(5), d.T, d.B, d.D,
                             d.H, f);
    }
    return py::make_tuple(dx, dh0, dW_xh, dW_hh, db);
  });
}

// ---------------------------------------------------------------- output layer and loss

Index leading_rows(const py::array& a) {
  Index n = 1;
  for (py::ssize_t i = 0; i + 1 < a.ndim(); ++i) n *= a.shape(i);
  return n;
}

std::vector<py::ssize_t> with_last(const py::array& a, Index last) {
  std::vector<py::ssize_t> s(a.shape(), a.shape() + a.ndim());
  s.back() = last;
  return s;
}

// Checks hs[..., H] and W_hy[O, H]; returns {N, H, O}.
std::array<Index, 3> output_dims(const py::array& hs, const py::array& W_hy) {
  if (hs.ndim() < 1) throw py::value_error("hs must have at least 1 dimension (..., H), got a scalar");
  const Index H = hs.shape(hs.ndim() - 1);
  expect_ndim(W_hy, "W_hy", 2, "(O, H)");
  const Index O = W_hy.shape(0);
  expect_shape(W_hy, "W_hy", "(O, H)", {O, H});
  return {leading_rows(hs), H, O};
}

py::array output_forward(py::handle hs, py::handle W_hy, py::handle b_y, py::handle activation,
                         py::handle out) {
  const auto g = parse_output_activation(activation);
  Args a({{hs, "hs"}, {W_hy, "W_hy"}, {b_y, "b_y"}});
  const auto [N, H, O] = output_dims(a.a[0], a.a[1]);
  expect_shape(a.a[2], "b_y", "(O,)", {O});
  return dispatch(a.dtype, [&, N = N, H = H, O = O](auto s) -> py::array {
    using S = decltype(s);
    auto ys = output_array<S>(out, with_last(a.a[0], O), a);
    S* p_ys = mut(ys);
    py::gil_scoped_release nogil;
    elman::dispatch::kernels<S>().output_forward(p_ys, a.ptr<S>(0), a.ptr<S>(1), a.ptr<S>(2), N, H, O, g);
    return ys;
  });
}

py::tuple output_backward(py::handle dys, py::handle hs, py::handle ys, py::handle W_hy,
                          py::handle activation) {
  const auto g = parse_output_activation(activation);
  Args a({{dys, "dys"}, {hs, "hs"}, {ys, "ys"}, {W_hy, "W_hy"}});
  const auto [N, H, O] = output_dims(a.a[1], a.a[3]);
  expect_rows(a.a[2], "ys", a.a[1], "hs", O, "O");
  expect_rows(a.a[0], "dys", a.a[1], "hs", O, "O");
  return dispatch(a.dtype, [&, N = N, H = H, O = O](auto s) -> py::tuple {
    using S = decltype(s);
    auto dhs = empty<S>(with_last(a.a[1], H));
    auto dW = empty<S>({O, H});
    auto db = empty<S>({O});
    auto dz = scratch<S>(g == elman::OutputActivation::Identity ? 0 : N * O);
    S *p_dhs = mut(dhs), *p_dW = mut(dW), *p_db = mut(db);
    {
      py::gil_scoped_release nogil;
      elman::dispatch::kernels<S>().output_backward(p_dhs, p_dW, p_db, dz.get(), a.ptr<S>(0), a.ptr<S>(1),
                                a.ptr<S>(2), a.ptr<S>(3), N, H, O, g);
    }
    return py::make_tuple(dhs, dW, db);
  });
}

// targets: any integer array of logits.shape[:-1], read as int64 (a uint64 above 2**63 - 1 wraps
// to a negative value there, which the class check then rejects; its message reads `given`).
py::array_t<std::int64_t> as_targets(const py::array& t, const py::array& logits) {
  const char kind = t.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error("targets must be an array of integer class indices, got dtype " +
                         std::string(py::str(t.dtype())));
  bool ok = t.ndim() + 1 == logits.ndim();
  for (py::ssize_t i = 0; ok && i < t.ndim(); ++i) ok = t.shape(i) == logits.shape(i);
  if (!ok) {
    std::vector<py::ssize_t> want(logits.shape(), logits.shape() + logits.ndim() - 1);
    std::ostringstream s;
    s << "targets has shape " << shape_str(t) << ", expected logits.shape[:-1] = (";
    for (size_t k = 0; k < want.size(); ++k) s << (k ? ", " : "") << want[k];
    s << (want.size() == 1 ? ",)" : ")");
    throw py::value_error(s.str());
  }
  return c_order(t, py::dtype::of<std::int64_t>());
}

py::tuple softmax_cross_entropy(py::handle logits, py::handle targets, py::handle mask,
                                py::handle reduction) {
  const std::string red = text_arg(reduction, "reduction");
  if (red != "mean" && red != "sum")
    throw py::value_error("reduction must be 'mean' or 'sum', got '" + red + "'");
  Args a({{logits, "logits"}});  // the logits alone decide the dtype, as in the reference
  const py::array& lg = a.a[0];
  if (lg.ndim() < 1) throw py::value_error("logits must have at least 1 dimension (..., C), got a scalar");
  const Index C = lg.shape(lg.ndim() - 1), N = leading_rows(lg);
  const py::array given = as_ndarray(targets, "targets");
  auto tg = as_targets(given, lg);
  const bool has_mask = !mask.is_none();
  py::array mk;
  if (has_mask) {
    mk = c_order(as_ndarray(mask, "mask"), py::dtype(a.dtype));
    bool ok = mk.ndim() + 1 == lg.ndim();
    for (py::ssize_t i = 0; ok && i < mk.ndim(); ++i) ok = mk.shape(i) == lg.shape(i);
    if (!ok) throw py::value_error("mask has shape " + shape_str(mk) + ", expected the shape of targets " + shape_str(tg));
  }
  return dispatch(a.dtype, [&](auto s) -> py::tuple {
    using S = decltype(s);
    const S* m = has_mask ? static_cast<const S*>(mk.data()) : nullptr;
    const std::int64_t* t = tg.data();
    for (Index i = 0; i < N; ++i) {  // targets that count must name a class
      if ((m == nullptr || m[i] != S(0)) && (t[i] < 0 || t[i] >= C)) {
        std::ostringstream msg;
        msg << "targets holds ";
        if (given.dtype().kind() == 'u')  // as given: a uint64 of 2**63 is not -2**63
          msg << std::string(py::str(given.attr("reshape")(-1).attr("__getitem__")(py::int_(i))));
        else
          msg << t[i];
        msg << " at flat position " << i << ", outside the classes [0, C) with C = " << C;
        throw py::value_error(msg.str());
      }
    }
    auto dlogits = empty<S>(std::vector<py::ssize_t>(lg.shape(), lg.shape() + lg.ndim()));
    S* out = mut(dlogits);
    double loss;
    {
      py::gil_scoped_release nogil;
      loss = elman::dispatch::kernels<S>().softmax_cross_entropy(out, a.ptr<S>(0), t, m, N, C, red == "mean");
    }
    return py::make_tuple(loss, dlogits);
  });
}

// The compiler of this build, named as its vendor does (clang defines __GNUC__ and __VERSION__
// too, so it is asked first; MSVC has neither).
std::string compiler() {
#if defined(__clang__)
  std::string v = "clang " __clang_version__;
  while (!v.empty() && v.back() == ' ') v.pop_back();  // __clang_version__ may end in a space
  return v;
#elif defined(__GNUC__)
  return "g++ " __VERSION__;
#elif defined(_MSC_VER)
  return "MSVC " + std::to_string(_MSC_FULL_VER);
#else
  return "unknown";
#endif
}

py::dict config() {
  const auto& t = elman::dispatch::table();
  py::dict c;
  c["version"] = ELMAN_VERSION;
  c["isa"] = t.isa;
  c["isas"] = elman::dispatch::runnable();
  c["built_isas"] = elman::dispatch::built();
  c["num_threads"] = t.num_threads();
  c["num_threads_source"] = t.num_threads_source();
  c["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) +
               "." + std::to_string(EIGEN_MINOR_VERSION);
  c["simd"] = t.simd;
  c["flags"] = t.flags;
  // OpenMP only sets the default thread count (OMP_NUM_THREADS, threadpoolctl): the threads are
  // elman's own (team.h), with or without it.
  c["openmp"] = t.openmp != 0;
  c["openmp_version"] = t.openmp ? py::object(py::int_(t.openmp)) : py::object(py::none());
  c["compiler"] = compiler();
  return c;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  elman::dispatch::load();  // an ImportError when no kernel build fits (ELMAN_ISA, CPU)
  m.doc() = "elman's compiled kernels. Use the functions of the elman package, which document them.";
  m.attr("__version__") = ELMAN_VERSION;
  m.def("cell_forward", [](py::handle x_t, py::handle h_prev, py::handle W_xh, py::handle W_hh,
                           py::handle b_h, py::handle act, py::handle out) {
    return forward(x_t, h_prev, W_xh, W_hh, b_h, act, true, out);
  }, py::arg("x_t"), py::arg("h_prev"), py::arg("W_xh"), py::arg("W_hh"), py::arg("b_h"),
     py::arg("activation") = "tanh", py::kw_only(), py::arg("out") = py::none(),
     "cell_forward(x_t, h_prev, W_xh, W_hh, b_h, activation='tanh', *, out=None): out, when given, "
     "receives h_next[B, H] (C-contiguous, compute dtype, not overlapping the inputs).");
  m.def("rnn_forward", [](py::handle x, py::handle h0, py::handle W_xh, py::handle W_hh,
                          py::handle b_h, py::handle act) {
    return forward(x, h0, W_xh, W_hh, b_h, act, false);
  }, py::arg("x"), py::arg("h0"), py::arg("W_xh"), py::arg("W_hh"), py::arg("b_h"),
     py::arg("activation") = "tanh");
  m.def("cell_backward", [](py::handle dh_next, py::handle x_t, py::handle h_prev, py::handle h_next,
                            py::handle W_xh, py::handle W_hh, py::handle act) {
    return backward(dh_next, x_t, h_prev, h_next, W_xh, W_hh, act, true);
  }, py::arg("dh_next"), py::arg("x_t"), py::arg("h_prev"), py::arg("h_next"), py::arg("W_xh"),
     py::arg("W_hh"), py::arg("activation") = "tanh");
  m.def("rnn_backward", [](py::handle dhs, py::handle x, py::handle h0, py::handle hs,
                           py::handle W_xh, py::handle W_hh, py::handle act, bool input_grad) {
    return backward(dhs, x, h0, hs, W_xh, W_hh, act, false, input_grad);
  }, py::arg("dhs"), py::arg("x"), py::arg("h0"), py::arg("hs"), py::arg("W_xh"), py::arg("W_hh"),
     py::arg("activation") = "tanh", py::arg("input_grad") = true);
  m.def("output_forward", &output_forward, py::arg("hs"), py::arg("W_hy"), py::arg("b_y"),
        py::arg("activation") = "identity", py::kw_only(), py::arg("out") = py::none(),
        "output_forward(hs, W_hy, b_y, activation='identity', *, out=None): out, when given, "
        "receives ys[..., O] (C-contiguous, compute dtype, not overlapping the inputs).");
  m.def("output_backward", &output_backward, py::arg("dys"), py::arg("hs"), py::arg("ys"),
        py::arg("W_hy"), py::arg("activation") = "identity");
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("targets"),
        py::arg("mask") = py::none(), py::arg("reduction") = "mean");
  m.def("config", &config, "Version, Eigen version, SIMD in use and compiler of this build.");
  m.def("team_stats", []() {
    const elman::team::Stats& s = elman::dispatch::table().team_stats();
    py::dict d;
    d["jobs"] = s.jobs.load(), d["alone"] = s.alone.load(), d["rescued"] = s.rescued.load();
    d["sleeps"] = s.sleeps.load(), d["end_waits"] = s.end_waits.load();
    return d;
  }, "What the kernels' team has done in this process (csrc/team.h, Stats): jobs that woke it, "
     "jobs run alone, tasks computed again, waits that slept, callers that waited at a job's end.");
  m.def("get_num_threads", []() { return elman::dispatch::table().num_threads(); },
        "Number of threads the kernels' parallel regions use.");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads needs n >= 1, got " + std::to_string(n));
    if (n > 1024) throw py::value_error("set_num_threads needs n <= 1024, got " + std::to_string(n));
    elman::dispatch::table().set_num_threads(n);
  }, py::arg("n"), "Set the number of threads of the kernels, for every Python thread.");
  m.def("cached_bytes", []() { return elman::array_memory::cached_bytes(); },
        "Bytes of freed output arrays kept for reuse.");
  m.def("free_cached_memory", []() { return elman::array_memory::free_cached(); },
        "Give the kept memory of freed output arrays back to the system; returns its bytes.");
  elman::register_optim(m);  // the optimizer steps of elman.optim (optim_step.cpp)
}
