// elman: fused kernels for the vanilla (Elman) recurrent network.
//
//   h_t = f(W_xh x_t + W_hh h_{t-1} + b_h)          hidden state
//   y_t = g(W_hy h_t + b_y)                          output layer
//
// Shape legend, used by every kernel and binding:
//   T = time steps, B = batch, D = input features, H = hidden units, O = outputs,
//   N = T*B rows when time and batch are flattened, C = classes of a softmax.
// All arrays are row-major (C order, rightmost index fastest) and time-major:
//   x[T, B, D], h0[B, H], hs[T, B, H], W_xh[H, D], W_hh[H, H], b_h[H], W_hy[O, H], b_y[O].
// With batch rows the column-vector formulas read h_t = f(x_t W_xh^T + h_{t-1} W_hh^T + b_h).
//
// Conventions: outputs first, then const inputs, then sizes. Pointers are never null unless
// said; arrays of zero elements are allowed everywhere. Gradients are written, not accumulated.
// Work is split by fixed-size blocks of data, never by thread count, so results are
// bit-identical for any number of threads (team.h). No kernel allocates inside a time loop.
#pragma once

#include <cstddef>
#include <cstdint>

#include "array_memory.h"

namespace elman {

using Index = std::ptrdiff_t;
namespace team { struct Stats; }

enum class Activation { Tanh, Sigmoid, Relu, Identity };        // hidden f
enum class OutputActivation { Identity, Softmax, Sigmoid };     // output g

// hs[T, B, H] = states after each step, starting from h0[B, H].
template <typename S>
void rnn_forward(S* hs, const S* x, const S* h0, const S* W_xh, const S* W_hh, const S* b_h,
                 Index T, Index B, Index D, Index H, Activation f);

// Backpropagation through time. dhs[T, B, H] = dL/dhs (including the final state's gradient).
// Writes dx[T, B, D] (unless dx is null: the first layer of a model whose input needs no gradient
// skips that product), dh0[B, H], dW_xh[H, D], dW_hh[H, H], db_h[H]. Its workspace (the
// pre-activation gradients dz of a few hundred rows at a time) is taken inside, once per call.
template <typename S>
void rnn_backward(S* dx, S* dh0, S* dW_xh, S* dW_hh, S* db_h,
                  const S* dhs, const S* x, const S* h0, const S* hs, const S* W_xh, const S* W_hh,
                  Index T, Index B, Index D, Index H, Activation f);

// ys[N, O] = g(hs[N, H] W_hy^T + b_y).
template <typename S>
void output_forward(S* ys, const S* hs, const S* W_hy, const S* b_y, Index N, Index H, Index O,
                    OutputActivation g);

// Writes dhs[N, H], dW_hy[O, H], db_y[O] from dys[N, O]. dz[N, O] is workspace (unused for
// the identity activation).
template <typename S>
void output_backward(S* dhs, S* dW_hy, S* db_y, S* dz, const S* dys, const S* hs, const S* ys,
                     const S* W_hy, Index N, Index H, Index O, OutputActivation g);

// Softmax cross-entropy over rows of logits[N, C] with integer targets[N] and optional weights
// mask[N] (null = all ones). Writes dlogits[N, C] = (softmax - onehot) * mask / divisor and
// returns the loss sum(mask * nll) / divisor, where divisor = sum(mask) (or N) when mean is
// true and 1 otherwise; a zero divisor gives loss 0 and zero gradients. Targets of rows whose
// mask is 0 are never read, so they may hold anything; the caller checks the others' range.
template <typename S>
double softmax_cross_entropy(S* dlogits, const S* logits, const std::int64_t* targets,
                             const S* mask, Index N, Index C, bool mean);

// ---------------------------------------------------------------- one build of the kernels
// The kernels are compiled once per instruction set (baseline x86-64, AVX2+FMA, AVX-512), each
// into its own module elman._kernels_<isa> so that no inline function of one build can stand in
// for another's. Each module exposes this table; elman._core picks one at import (dispatch.cpp).
template <typename S>
struct Kernels {
  decltype(&rnn_forward<S>) rnn_forward;
  decltype(&rnn_backward<S>) rnn_backward;
  decltype(&output_forward<S>) output_forward;
  decltype(&output_backward<S>) output_backward;
  decltype(&softmax_cross_entropy<S>) softmax_cross_entropy;
};

struct KernelTable {
  int abi;                   // kKernelAbi of the build, checked by the dispatcher
  const char* isa;           // "baseline", "avx2" or "avx512"
  const char* simd;          // the instruction sets Eigen and the compiler use in this build
  const char* flags;         // the compiler flags of this build
  int openmp;                // the OpenMP version (_OPENMP) it was compiled against, 0 without
  Kernels<float> f32;
  Kernels<double> f64;
  void (*set_num_threads)(int n);  // threads of the kernels' jobs (team.h); 0: the default
  int (*num_threads)();            // what a job of this build would use now
  const char* (*num_threads_source)();  // where that number comes from (team.h)
  const team::Stats& (*team_stats)();     // what its team has done (team.h)
  // Where the kernels' workspaces come from: elman._core's cache of blocks (array_memory.h), set
  // once at import, so that a workspace is reused across calls rather than faulted in each time.
  void (*use_memory)(array_memory::Block* (*acquire)(std::size_t bytes),
                     void (*release)(array_memory::Block* block) noexcept);
};

constexpr int kKernelAbi = 4;  // bumped whenever KernelTable or a kernel signature changes

// Defined by each kernel build (kernels.cpp).
const KernelTable& kernel_table();

template <typename S>
const Kernels<S>& kernels_of(const KernelTable& t);
template <>
inline const Kernels<float>& kernels_of<float>(const KernelTable& t) { return t.f32; }
template <>
inline const Kernels<double>& kernels_of<double>(const KernelTable& t) { return t.f64; }

}  // namespace elman
