// Pointwise functions and reductions over one row of contiguous values, computed so that every
// element gets exactly the same arithmetic wherever it sits.
//
// Why not Eigen's array expressions: they split a row into a scalar head (until the data is
// aligned), vector packets and a scalar tail, so the split depends on the address of the data.
// For tanh and exp the scalar and vector formulas differ in the last bit, and a sum's order
// follows the split, so results would change with where NumPy happened to allocate an array.
// Here a row is processed from its first element in whole packets; the tail goes through the
// same packet function in a padded buffer. (The kernels are also compiled with
// -ffp-contract=off, so plain +, -, * are the same in scalar and vector code.)
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cmath>

#include "elman.h"

namespace elman::pointwise {

namespace ei = Eigen::internal;

template <typename S>
using Packet = typename ei::packet_traits<S>::type;
template <typename S>
constexpr Index kLanes = ei::unpacket_traits<Packet<S>>::size;

// p[i] = op(p[i]) for i < n, with op a function of one packet.
template <typename S, typename Op>
inline void transform(S* p, Index n, Op op) {
  constexpr Index L = kLanes<S>;
  Index i = 0;
  for (; i + L <= n; i += L) ei::pstoreu(p + i, op(ei::ploadu<Packet<S>>(p + i)));
  if (i < n) {
    alignas(64) S buf[L] = {};
    std::copy(p + i, p + n, buf);
    ei::pstore(buf, op(ei::pload<Packet<S>>(buf)));
    std::copy(buf, buf + (n - i), p + i);
  }
}

// exp, vectorised for float and double.
template <typename S>
inline Packet<S> exp(const Packet<S>& x) { return ei::pexp(x); }

// 1 / (1 + exp(-x)): exact to a few ulp, 0 at -inf, 1 at +inf, NaN stays NaN.
template <typename S>
inline Packet<S> sigmoid(const Packet<S>& x) {
  const Packet<S> one = ei::pset1<Packet<S>>(S(1));
  return ei::pdiv(one, ei::padd(one, ei::pexp(ei::pnegate(x))));
}

// tanh: Eigen's vectorised rational approximation for float; Eigen has no vectorised double
// tanh, so double lanes go through the C library's.
inline Packet<float> tanh(const Packet<float>& x) { return ei::ptanh(x); }
inline Packet<double> tanh(const Packet<double>& x) {
  alignas(64) double lane[kLanes<double>];
  ei::pstore(lane, x);
  for (double& v : lane) v = std::tanh(v);
  return ei::pload<Packet<double>>(lane);
}

// max(x, 0) written as a select, so that NaN propagates.
template <typename S>
inline Packet<S> relu(const Packet<S>& x) {
  const Packet<S> zero = ei::pset1<Packet<S>>(S(0));
  return ei::pselect(ei::pcmp_lt(x, zero), zero, x);
}

// The hidden activation f on a packet.
template <typename S>
inline Packet<S> activate(const Packet<S>& x, Activation f) {
  switch (f) {
    case Activation::Tanh: return tanh(x);
    case Activation::Sigmoid: return sigmoid<S>(x);
    case Activation::Relu: return relu<S>(x);
    case Activation::Identity: return x;
  }
  return x;
}

// g * f'(z), with f'(z) computed from the stored output h = f(z): 1 - h^2, h (1 - h), [h > 0], 1.
template <typename S>
inline Packet<S> times_derivative(const Packet<S>& g, const Packet<S>& h, Activation f) {
  const Packet<S> one = ei::pset1<Packet<S>>(S(1));
  switch (f) {
    case Activation::Tanh: return ei::pmul(g, ei::psub(one, ei::pmul(h, h)));
    case Activation::Sigmoid: return ei::pmul(g, ei::pmul(h, ei::psub(one, h)));
    case Activation::Relu:
      return ei::pmul(g, ei::pand(ei::pcmp_lt(ei::pset1<Packet<S>>(S(0)), h), one));
    case Activation::Identity: return g;
  }
  return g;
}

template <typename S>
inline void activate_row(S* p, Index n, Activation f) {
  if (f != Activation::Identity) transform<S>(p, n, [f](const Packet<S>& x) { return activate<S>(x, f); });
}

template <typename S>
inline void sigmoid_row(S* p, Index n) { transform<S>(p, n, sigmoid<S>); }

// Sum of n values in a fixed order: 8 interleaved partial sums, combined pairwise.
template <typename S>
inline S sum(const S* p, Index n) {
  S acc[8] = {};
  Index i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
  for (int k = 0; i < n; ++i, ++k) acc[k] += p[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Sum of a[i] * b[i], in the same fixed order as sum().
template <typename S>
inline S dot(const S* a, const S* b, Index n) {
  S acc[8] = {};
  Index i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  for (int k = 0; i < n; ++i, ++k) acc[k] += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The largest of n values, NaN if any is NaN. Whole packets from the first value, the tail padded
// with one of its own values: a max is exact, so the grouping changes nothing (a scalar loop with a
// NaN test carried a compare-and-select dependency per value: half of a softmax's time).
template <typename S>
inline S max(const S* p, Index n) {
  constexpr Index L = kLanes<S>;
  if (n <= 0) return S(0);
  Packet<S> m = ei::pset1<Packet<S>>(p[0]);
  Index i = 0;
  for (; i + L <= n; i += L) m = ei::pmax<Eigen::PropagateNaN>(m, ei::ploadu<Packet<S>>(p + i));
  if (i < n) {
    alignas(64) S buf[L];
    std::fill(buf, buf + L, p[i]);
    std::copy(p + i, p + n, buf);
    m = ei::pmax<Eigen::PropagateNaN>(m, ei::pload<Packet<S>>(buf));
  }
  alignas(64) S lane[L];
  ei::pstore(lane, m);
  S out = lane[0];
  for (Index k = 1; k < L; ++k) out = (lane[k] > out || std::isnan(lane[k])) ? lane[k] : out;
  return out;
}

// out[i] = exp(in[i] - m) for i < n (out may be in), returning the sum of the out[i]: added per
// lane in packets from the first value (the tail's padding lanes add zero), then the lanes in a
// fixed order. One pass where a softmax row took four.
template <typename S>
inline S exp_shifted_sum(S* out, const S* in, Index n, S m) {
  constexpr Index L = kLanes<S>;
  const Packet<S> shift = ei::pset1<Packet<S>>(m);
  Packet<S> acc = ei::pset1<Packet<S>>(S(0));
  Index i = 0;
  for (; i + L <= n; i += L) {
    const Packet<S> e = exp<S>(ei::psub(ei::ploadu<Packet<S>>(in + i), shift));
    ei::pstoreu(out + i, e);
    acc = ei::padd(acc, e);
  }
  if (i < n) {
    alignas(64) S buf[L] = {};
    std::copy(in + i, in + n, buf);
    ei::pstore(buf, exp<S>(ei::psub(ei::pload<Packet<S>>(buf), shift)));
    std::copy(buf, buf + (n - i), out + i);
    std::fill(buf + (n - i), buf + L, S(0));
    acc = ei::padd(acc, ei::pload<Packet<S>>(buf));
  }
  alignas(64) S lane[L];
  ei::pstore(lane, acc);
  return sum(lane, L);
}

}  // namespace elman::pointwise
