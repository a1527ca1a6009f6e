// The optimizer steps of elman/optim.py, compiled: one call updates every parameter array and
// its state in place, in ONE pass over the elements, where the NumPy path runs some ten
// whole-array ufuncs per parameter array (at small sizes their call overhead is the step's cost).
//
// Bit-identical to the NumPy path (the `_update` methods of optim.py): every element gets the
// same operations in the same order, and every Python float that the NumPy path hands to a ufunc
// arrives here as that same double and is rounded to the array's dtype before use, as NumPy
// rounds a Python float next to a float32 array (NEP 50; NumPy 1's value-based casting does the
// same). +, -, *, / and sqrt are correctly rounded, here as in NumPy, in scalar and vector code,
// and this file is compiled with -ffp-contract=off (CMakeLists.txt), so no a*b + c becomes an
// FMA. NaN and inf propagate as in NumPy; nothing here raises or warns on them.
//
// Parameters and their state must be C-contiguous, aligned, writeable arrays of float32 or
// float64 (optim.py steps other parameters on its NumPy path). A step whose single pass
// would read other values than the NumPy path's whole-array passes does not run here: when a
// gradient shares memory with an array of its parameter's update (or two of those arrays share
// memory), NumPy's later passes read what its earlier ones wrote. Then the binding writes
// nothing and returns False, and optim.py takes the NumPy path; likewise for a gradient that is
// not C-contiguous and aligned, which NumPy reads where it is.
#include "optim_step.h"

#include "array_checks.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace elman {
namespace {

using Index = std::ptrdiff_t;

using array_checks::is_flat;
using array_checks::shape_str;
constexpr int kStates = 3;        // at most three state arrays per parameter (RMSprop)

// ---------------------------------------------------------------- the element-wise updates

// optim._with_weight_decay: grad + weight_decay * p, rounded as NumPy computes it there.
template <typename S>
S with_l2(S p, S grad, S weight_decay) { return p * weight_decay + grad; }

// optim._lerp: start + weight * (end - start), or, for weights >= 0.5, end - (1 - weight) *
// (end - start) (PyTorch's lerp, exact at both ends); w is weight or 1 - weight accordingly.
template <bool from_end, typename S>
S lerp(S start, S end, S w) {
  const S diff = end - start;
  return from_end ? end - diff * w : start + diff * w;
}

// numpy.maximum(a, b): NaN when either is NaN (a != a: a is NaN). std::max would drop b's NaN.
template <typename S>
S nan_max(S a, S b) { return (a >= b || a != a) ? a : b; }

// Calls fn(std::bool_constant<b>{}): each combination of options gets its own branch-free loop,
// which the compiler vectorizes.
template <typename Fn>
void with_flag(bool b, Fn&& fn) {
  if (b) fn(std::true_type{});
  else fn(std::false_type{});
}

enum class Decay { kNone, kL2, kDecoupled };

template <typename Fn>
void with_decay(Decay d, Fn&& fn) {
  if (d == Decay::kL2) fn(std::integral_constant<Decay, Decay::kL2>{});
  else if (d == Decay::kDecoupled) fn(std::integral_constant<Decay, Decay::kDecoupled>{});
  else fn(std::integral_constant<Decay, Decay::kNone>{});
}

// The scalars of a step, as the Python floats the NumPy path uses (optim.py names them).
struct SgdScalars {
  double weight_decay, momentum, one_minus_dampening, lr;
  bool first, nesterov;  // first: the momentum buffer starts as the gradient
};
struct AdagradScalars { double weight_decay, neg_clr, eps; };
struct RmspropScalars {
  double weight_decay, alpha, one_minus_alpha, lerp, eps, momentum, lr;
  bool lerp_from_end;  // lerp: 1 - alpha, or alpha when lerping from the end
};
struct AdamScalars {
  double decay, weight_decay, lerp, beta2, one_minus_beta2, neg_step_size,
         bias_correction2_sqrt, eps;
  Decay mode;
  bool lerp_from_end;  // lerp: 1 - beta1, or beta1 when lerping from the end
};

template <typename S>
S cast(double x) { return static_cast<S>(x); }  // round to nearest, as NumPy casts

// The loops are compiled twice, for the baseline x86-64 (SSE2) and for AVX2, and the loader picks
// the one the CPU runs (an ifunc, hence glibc only). The results are the same bits: AVX2 without
// FMA has the same correctly rounded operations, only twice as many per instruction, which made
// the charlm-sized Adam step's arithmetic 1.9x faster on Zen 4. (AVX-512 was slower there.)
// g++ only: clang (14 at least) does not multiversion function templates, so its build runs the
// baseline loops, which give the same bits.
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) && !defined(__clang__)
#if __has_attribute(target_clones)
#define ELMAN_OPTIM_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef ELMAN_OPTIM_CLONES
#define ELMAN_OPTIM_CLONES
#endif

// SGD._update. buf (momentum): null when not kept.
template <typename S, bool l2, bool momentum, bool first, bool nesterov>
ELMAN_OPTIM_CLONES void sgd(S* __restrict p, S* __restrict buf, const S* __restrict grad, Index n,
                            const SgdScalars& s) {
  const S wd = cast<S>(s.weight_decay), mom = cast<S>(s.momentum),
          keep = cast<S>(s.one_minus_dampening), lr = cast<S>(s.lr);
  for (Index i = 0; i < n; ++i) {
    const S g = l2 ? with_l2(p[i], grad[i], wd) : grad[i];
    S d = g;
    if (momentum) {
      const S b = first ? g : buf[i] * mom + g * keep;
      buf[i] = b;
      d = nesterov ? b * mom + g : b;
    }
    p[i] = p[i] - d * lr;
  }
}

// Adagrad._update.
template <typename S, bool l2>
ELMAN_OPTIM_CLONES void adagrad(S* __restrict p, S* __restrict sum, const S* __restrict grad,
                                Index n, const AdagradScalars& s) {
  const S wd = cast<S>(s.weight_decay), neg_clr = cast<S>(s.neg_clr), eps = cast<S>(s.eps);
  for (Index i = 0; i < n; ++i) {
    const S g = l2 ? with_l2(p[i], grad[i], wd) : grad[i];
    const S total = sum[i] + g * g;
    sum[i] = total;
    p[i] = p[i] + g * neg_clr / (std::sqrt(total) + eps);
  }
}

// RMSprop._update. buf (momentum) and grad_avg (centered): null when not kept.
template <typename S, bool l2, bool centered, bool momentum, bool from_end>
ELMAN_OPTIM_CLONES void rmsprop(S* __restrict p, S* __restrict square_avg, S* __restrict buf,
                                S* __restrict grad_avg, const S* __restrict grad, Index n,
                                const RmspropScalars& s) {
  const S wd = cast<S>(s.weight_decay), alpha = cast<S>(s.alpha),
          one_minus_alpha = cast<S>(s.one_minus_alpha), w = cast<S>(s.lerp), eps = cast<S>(s.eps),
          mom = cast<S>(s.momentum), lr = cast<S>(s.lr),
          neg_lr = cast<S>(-s.lr);  // the NumPy path's -self.lr (negation is exact)
  for (Index i = 0; i < n; ++i) {
    const S g = l2 ? with_l2(p[i], grad[i], wd) : grad[i];
    const S sq = square_avg[i] * alpha + g * one_minus_alpha * g;
    square_avg[i] = sq;
    S var = sq;
    if (centered) {
      const S mean = lerp<from_end>(grad_avg[i], g, w);
      grad_avg[i] = mean;
      var = sq - mean * mean;
    }
    const S avg = std::sqrt(var) + eps;
    if (momentum) {
      const S b = buf[i] * mom + g / avg;
      buf[i] = b;
      p[i] = p[i] - b * lr;
    } else {
      p[i] = p[i] + g * neg_lr / avg;
    }
  }
}

// Adam._update (AdamW: decoupled decay). v_max (amsgrad): null when not kept.
template <typename S, Decay decay, bool from_end, bool amsgrad>
ELMAN_OPTIM_CLONES void adam(S* __restrict p, S* __restrict m, S* __restrict v,
                             S* __restrict v_max, const S* __restrict grad, Index n,
                             const AdamScalars& s) {
  const S scale = cast<S>(s.decay), wd = cast<S>(s.weight_decay), w = cast<S>(s.lerp),
          beta2 = cast<S>(s.beta2), one_minus_beta2 = cast<S>(s.one_minus_beta2),
          neg_step_size = cast<S>(s.neg_step_size),
          bias_correction2_sqrt = cast<S>(s.bias_correction2_sqrt), eps = cast<S>(s.eps);
  for (Index i = 0; i < n; ++i) {
    S param = p[i], g = grad[i];
    if (decay == Decay::kDecoupled) param = param * scale;  // the NumPy path decays p first
    if (decay == Decay::kL2) g = with_l2(param, g, wd);
    const S avg = lerp<from_end>(m[i], g, w);
    m[i] = avg;
    const S sq = v[i] * beta2 + g * one_minus_beta2 * g;
    v[i] = sq;
    S second = sq;
    if (amsgrad) {
      second = nan_max(v_max[i], sq);
      v_max[i] = second;
    }
    const S denom = std::sqrt(second) / bias_correction2_sqrt + eps;
    p[i] = param + avg * neg_step_size / denom;
  }
}

// ---------------------------------------------------------------- arrays of a step

// One parameter array's share of a step: its gradient, read, and the arrays its update writes
// (the parameter, then its state in the order the binding lists them; null for state the
// optimizer does not keep). All C-contiguous, of n elements of one dtype.
struct Group {
  bool single;  // float32, else float64
  Index n;
  const void* grad;
  void* param;
  std::array<void*, kStates> state{};

  template <typename S>
  const S* in() const { return static_cast<const S*>(grad); }
  template <typename S>
  S* out() const { return static_cast<S*>(param); }
  template <typename S>
  S* out(int k) const { return static_cast<S*>(state[k]); }  // state k
};

std::string type_name(py::handle h) { return py::str(py::type::of(h).attr("__name__")); }
std::string dtype_name(const py::array& a) { return py::str(a.dtype()); }

// "list[i]" in a message; built only when one is raised, as a step checks some 30 arrays.
struct Item {
  const char* list;
  size_t i;
  std::string str() const { return std::string(list) + "[" + std::to_string(i) + "]"; }
};

bool same_shape(const py::array& a, const py::array& b) {
  if (a.ndim() != b.ndim()) return false;
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) != b.shape(i)) return false;
  return true;
}

// Whether the memory of two flat arrays overlaps.
bool overlap(const py::array& a, const py::array& b) {
  const char* pa = static_cast<const char*>(a.data());
  const char* pb = static_cast<const char*>(b.data());
  return a.nbytes() > 0 && b.nbytes() > 0 && pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

// The arrays of the list argument `name`: a list or tuple of arrays, n of them unless n < 0.
std::vector<py::array> arrays(py::handle list, const char* name, py::ssize_t n = -1) {
  if (!py::isinstance<py::list>(list) && !py::isinstance<py::tuple>(list))
    throw py::type_error(std::string(name) + " must be a list of arrays, got " + type_name(list));
  auto seq = py::reinterpret_borrow<py::sequence>(list);
  const auto size = py::ssize_t(seq.size());
  if (n >= 0 && size != n)
    throw py::value_error(std::string(name) + " has " + std::to_string(size) +
                          " arrays, expected " + std::to_string(n) + " (one per parameter)");
  std::vector<py::array> out;
  out.reserve(size_t(size));
  for (py::ssize_t i = 0; i < size; ++i) {
    py::object a = seq[i];
    if (!py::isinstance<py::array>(a))
      throw py::type_error(Item{name, size_t(i)}.str() + " must be a numpy.ndarray, got " +
                           type_name(a));
    out.push_back(py::reinterpret_steal<py::array>(a.release()));
  }
  return out;
}

// An array that goes with a parameter (its gradient or state): of the parameter's dtype and shape.
void check_like(const py::array& a, const Item& name, const py::array& param,
                const Item& param_name) {
  if (a.dtype().num() != param.dtype().num() || a.dtype().byteorder() != param.dtype().byteorder())
    throw py::type_error(name.str() + " has dtype " + dtype_name(a) + ", expected " +
                         dtype_name(param) + " (" + param_name.str() + "'s)");
  if (!same_shape(a, param))
    throw py::value_error(name.str() + " has shape " + shape_str(a) + ", expected " +
                          shape_str(param) + " (" + param_name.str() + "'s)");
}

// An array the step writes: in place, as a plain pointer.
void check_written(const py::array& a, const Item& name) {
  if (!is_flat(a) || !a.writeable())
    throw py::value_error(name.str() +
                          " must be a writeable, C-contiguous, aligned array (updated in place)");
}

struct StateList {
  py::handle list;  // None when the optimizer keeps no such state
  const char* name;
};

// The arrays of a step, by parameter, and references to them: they must outlive the GIL-free
// pass whatever other threads do to the lists they came in.
struct Step {
  std::vector<Group> groups;
  std::vector<std::vector<py::array>> arrays;
};

// Checks the arrays of a step, raising before anything is written, and returns them by
// parameter; or nothing when the step must take the NumPy path (top of this file).
std::optional<Step> checked_step(py::handle params_list, py::handle grads_list,
                                 std::initializer_list<StateList> state_lists) {
  auto params = arrays(params_list, "params");
  const auto n = py::ssize_t(params.size());
  auto grads = arrays(grads_list, "grads", n);
  std::vector<std::vector<py::array>> states;  // empty for a None list
  for (const auto& s : state_lists)
    states.push_back(s.list.is_none() ? std::vector<py::array>{} : arrays(s.list, s.name, n));

  std::vector<Group> out(params.size());
  bool in_place = true;  // every gradient flat, and no two arrays of a group overlapping
  for (size_t i = 0; i < params.size(); ++i) {
    py::array& p = params[i];
    const Item p_name{"params", i};
    const int num = p.dtype().num();
    if (num != py::detail::npy_api::NPY_FLOAT_ && num != py::detail::npy_api::NPY_DOUBLE_)
      throw py::type_error(p_name.str() + " has dtype " + dtype_name(p) +
                           "; expected float32 or float64");
    check_written(p, p_name);
    check_like(grads[i], {"grads", i}, p, p_name);
    in_place = in_place && is_flat(grads[i]) && !overlap(grads[i], p);
    Group& g = out[i];
    g.single = num == py::detail::npy_api::NPY_FLOAT_;
    g.n = Index(p.size());
    g.grad = grads[i].data();
    g.param = p.mutable_data();
    size_t k = 0;
    for (const auto& s : state_lists) {
      if (!states[k].empty()) {
        py::array& a = states[k][i];
        const Item a_name{s.name, i};
        check_like(a, a_name, p, p_name);
        check_written(a, a_name);
        in_place = in_place && !overlap(a, grads[i]) && !overlap(a, p);
        for (size_t j = 0; j < k; ++j)
          in_place = in_place && (states[j].empty() || !overlap(a, states[j][i]));
        g.state[k] = a.mutable_data();
      }
      ++k;
    }
  }
  if (!in_place) return std::nullopt;
  states.push_back(std::move(params));  // all the arrays, kept alive
  states.push_back(std::move(grads));
  return Step{std::move(out), std::move(states)};
}

// fn(S{}, group) for each group in order (a parameter listed twice is updated twice, as by the
// NumPy path), without the GIL.
template <typename Fn>
void for_groups(const Step& step, Fn&& fn) {
  py::gil_scoped_release nogil;
  for (const Group& g : step.groups) {
    if (g.single) fn(float{}, g);
    else fn(double{}, g);
  }
}

// ---------------------------------------------------------------- bindings

bool sgd_step(py::handle params, py::handle grads, py::handle momentum_buffers,
              const SgdScalars& s) {
  const auto step = checked_step(params, grads, {{momentum_buffers, "momentum_buffers"}});
  if (!step) return false;
  for_groups(*step, [&](auto scalar, const Group& g) {
    using S = decltype(scalar);
    S* buf = g.out<S>(0);
    with_flag(s.weight_decay != 0, [&](auto l2) {
      with_flag(buf != nullptr, [&](auto momentum) {
        with_flag(buf != nullptr && s.first, [&](auto first) {
          with_flag(buf != nullptr && s.nesterov, [&](auto nesterov) {
            sgd<S, decltype(l2)::value, decltype(momentum)::value, decltype(first)::value,
                decltype(nesterov)::value>(g.out<S>(), buf, g.in<S>(), g.n, s);
          });
        });
      });
    });
  });
  return true;
}

bool adagrad_step(py::handle params, py::handle grads, py::handle sums, const AdagradScalars& s) {
  const auto step = checked_step(params, grads, {{sums, "sums"}});
  if (!step) return false;
  for_groups(*step, [&](auto scalar, const Group& g) {
    using S = decltype(scalar);
    with_flag(s.weight_decay != 0, [&](auto l2) {
      adagrad<S, decltype(l2)::value>(g.out<S>(), g.out<S>(0), g.in<S>(), g.n, s);
    });
  });
  return true;
}

bool rmsprop_step(py::handle params, py::handle grads, py::handle square_avgs,
                  py::handle momentum_buffers, py::handle grad_avgs, const RmspropScalars& s) {
  const auto step = checked_step(params, grads, {{square_avgs, "square_avgs"},
                                                 {momentum_buffers, "momentum_buffers"},
                                                 {grad_avgs, "grad_avgs"}});
  if (!step) return false;
  for_groups(*step, [&](auto scalar, const Group& g) {
    using S = decltype(scalar);
    S *buf = g.out<S>(1), *grad_avg = g.out<S>(2);
    with_flag(s.weight_decay != 0, [&](auto l2) {
      with_flag(grad_avg != nullptr, [&](auto centered) {
        with_flag(buf != nullptr, [&](auto momentum) {
          with_flag(s.lerp_from_end, [&](auto from_end) {
            rmsprop<S, decltype(l2)::value, decltype(centered)::value, decltype(momentum)::value,
                    decltype(from_end)::value>(g.out<S>(), g.out<S>(0), buf, grad_avg, g.in<S>(),
                                               g.n, s);
          });
        });
      });
    });
  });
  return true;
}

bool adam_step(py::handle params, py::handle grads, py::handle exp_avgs, py::handle exp_avg_sqs,
               py::handle max_exp_avg_sqs, const AdamScalars& s) {
  const auto step = checked_step(params, grads, {{exp_avgs, "exp_avgs"},
                                                 {exp_avg_sqs, "exp_avg_sqs"},
                                                 {max_exp_avg_sqs, "max_exp_avg_sqs"}});
  if (!step) return false;
  for_groups(*step, [&](auto scalar, const Group& g) {
    using S = decltype(scalar);
    S* v_max = g.out<S>(2);
    with_decay(s.mode, [&](auto decay) {
      with_flag(s.lerp_from_end, [&](auto from_end) {
        with_flag(v_max != nullptr, [&](auto amsgrad) {
          adam<S, decltype(decay)::value, decltype(from_end)::value, decltype(amsgrad)::value>(
              g.out<S>(), g.out<S>(0), g.out<S>(1), v_max, g.in<S>(), g.n, s);
        });
      });
    });
  });
  return true;
}

}  // namespace

void register_optim(py::module_& m) {
  // Private: elman.optim passes the Python floats its NumPy path hands to ufuncs (names as there).
  // Each returns False, having written nothing, when the step must take the NumPy path.
  m.def("sgd_step", [](py::handle params, py::handle grads, py::handle momentum_buffers,
                       double weight_decay, bool first, double momentum,
                       double one_minus_dampening, bool nesterov, double lr) {
    return sgd_step(params, grads, momentum_buffers,
                    {weight_decay, momentum, one_minus_dampening, lr, first, nesterov});
  }, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("weight_decay"),
     py::arg("first"), py::arg("momentum"), py::arg("one_minus_dampening"), py::arg("nesterov"),
     py::arg("lr"));
  m.def("adagrad_step", [](py::handle params, py::handle grads, py::handle sums,
                           double weight_decay, double neg_clr, double eps) {
    return adagrad_step(params, grads, sums, {weight_decay, neg_clr, eps});
  }, py::arg("params"), py::arg("grads"), py::arg("sums"), py::arg("weight_decay"),
     py::arg("neg_clr"), py::arg("eps"));
  m.def("rmsprop_step", [](py::handle params, py::handle grads, py::handle square_avgs,
                           py::handle momentum_buffers, py::handle grad_avgs, double weight_decay,
                           double alpha, double one_minus_alpha, bool lerp_from_end, double lerp,
                           double eps, double momentum, double lr) {
    return rmsprop_step(params, grads, square_avgs, momentum_buffers, grad_avgs,
                        {weight_decay, alpha, one_minus_alpha, lerp, eps, momentum, lr,
                         lerp_from_end});
  }, py::arg("params"), py::arg("grads"), py::arg("square_avgs"), py::arg("momentum_buffers"),
     py::arg("grad_avgs"), py::arg("weight_decay"), py::arg("alpha"), py::arg("one_minus_alpha"),
     py::arg("lerp_from_end"), py::arg("lerp"), py::arg("eps"), py::arg("momentum"),
     py::arg("lr"));
  // decay: the decoupled (AdamW) factor 1 - lr * weight_decay, None for none; weight_decay is
  // then the L2 coefficient, 0 for none.
  m.def("adam_step", [](py::handle params, py::handle grads, py::handle exp_avgs,
                        py::handle exp_avg_sqs, py::handle max_exp_avg_sqs,
                        std::optional<double> decay, double weight_decay, bool lerp_from_end,
                        double lerp, double beta2, double one_minus_beta2, double neg_step_size,
                        double bias_correction2_sqrt, double eps) {
    const Decay mode = decay ? Decay::kDecoupled : weight_decay != 0 ? Decay::kL2 : Decay::kNone;
    return adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                     {decay.value_or(1.0), weight_decay, lerp, beta2, one_minus_beta2,
                      neg_step_size, bias_correction2_sqrt, eps, mode, lerp_from_end});
  }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
     py::arg("max_exp_avg_sqs"), py::arg("decay"), py::arg("weight_decay"),
     py::arg("lerp_from_end"), py::arg("lerp"), py::arg("beta2"), py::arg("one_minus_beta2"),
     py::arg("neg_step_size"), py::arg("bias_correction2_sqrt"), py::arg("eps"));
}

}  // namespace elman
