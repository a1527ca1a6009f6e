// The fused kernels declared in elman.h (shape legend there).
//
// Parallel layout: one OpenMP region per call. Whole-sequence GEMMs are split into fixed blocks
// of kRowBlock rows; the recurrence is split into fixed blocks of kColBlock hidden units, each
// computed by one task per step, with the implicit barrier of `omp for` between steps. A static
// schedule hands every thread the same blocks at every step, so its rows of W_hh stay in its
// cache. Since a block's result depends only on its data, results are bit-identical for any
// number of threads.
#include "elman.h"

#include <Eigen/Dense>

#include "pointwise.h"
#include "recurrence.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <memory>
#include <string>
#include <vector>

namespace elman {
namespace {

template <typename S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using View = Eigen::Map<Mat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using ConstView = Eigen::Map<const Mat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using ConstRow = Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>;

// [rows, cols] window of row-major data whose rows start `stride` elements apart.
template <typename S>
View<S> view(S* p, Index rows, Index cols, Index stride) {
  return View<S>(p, rows, cols, Eigen::OuterStride<>(stride));
}
template <typename S>
ConstView<S> view(const S* p, Index rows, Index cols, Index stride) {
  return ConstView<S>(p, rows, cols, Eigen::OuterStride<>(stride));
}

constexpr Index kColBlock = 64;    // hidden units per task in the recurrence
constexpr Index kRowBlock = 256;   // rows per task in whole-sequence GEMMs
// Below this many multiply-adds between two barriers, a second thread costs more than it saves.
constexpr double kMinParallelWork = 131072.0;
// The backward's steps are shared from half that: its one-thread alternative has no second core
// to overlap with (the forward's projects the inputs ahead), and the team is woken for its
// gradient products anyway. Zen 5, T = 100, backward, against the steps on one thread and the
// products on the team: B = 4, H = 128 0.25 -> 0.21 ms, B = 1, H = 256 0.32-0.33 -> 0.27-0.29 ms;
// from a quarter of kMinParallelWork (B = 1, H = 192) sharing gained nothing. (Not measured on a
// Zen 4, whose two cores hand a value over and back in ~420 ns.)
constexpr double kMinSharedBackwardStep = kMinParallelWork / 2;

Index blocks(Index n, Index block) { return (n + block - 1) / block; }

// body(i) for i in [0, n): shared by the team when `team` (called inside a parallel region; the
// implicit barrier ends it unless kNoWait), else a plain loop. Small problems take the plain
// loop: even a one-thread OpenMP barrier costs a futex system call per step.
// kDynamic: handed out as threads come free (for tasks whose sizes differ; never used where a
// thread should keep the same blocks from one step to the next), with the barrier.
enum Wait { kBarrier, kNoWait, kDynamic };
template <Wait wait = kBarrier, typename Body>
void for_blocks(bool team, Index n, Body&& body) {
  if (!team) {
    for (Index i = 0; i < n; ++i) body(i);
  } else if (wait == kDynamic) {
#pragma omp for schedule(dynamic, 1)
    for (Index i = 0; i < n; ++i) body(i);
  } else if (wait == kNoWait) {
#pragma omp for schedule(static) nowait
    for (Index i = 0; i < n; ++i) body(i);
  } else {
#pragma omp for schedule(static)
    for (Index i = 0; i < n; ++i) body(i);
  }
}

// Threads of a parallel region: set by elman.set_num_threads (shared by every Python thread),
// else OpenMP's default for the calling thread (OMP_NUM_THREADS, threadpoolctl).
std::atomic<int> g_threads{0};
int num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  // Capped: OpenMP crashes instead of refusing a team of, say, OMP_NUM_THREADS=200000.
  return std::min(n > 0 ? n : omp_get_max_threads(), 1024);
}

// run(team) inside one parallel region of at most `threads` threads (1: serially, no region).
template <typename Run>
void region_of(int threads, Run&& run) {
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    run(true);
  } else {
    run(false);
  }
}

// The threads of a region that is parallel only when the work is worth a second thread.
int team_size(bool parallel) { return parallel ? num_threads() : 1; }

template <typename Run>
void region(bool parallel, Run&& run) { region_of(team_size(parallel), run); }

// The calling thread's index in a region (0 outside one): which slice of a per-thread workspace.
int thread_slot(bool team) { return team ? omp_get_thread_num() : 0; }

// Where workspaces come from (KernelTable::use_memory): elman._core's cache once it is set.
// Until then (a kernel build loaded on its own), plain allocations; a Block is freed the same way
// by either, so a block may safely outlive the switch.
array_memory::Block* own_acquire(std::size_t bytes) {
  void* data = std::malloc(std::max<std::size_t>(bytes, 1));
  if (!data) throw std::bad_alloc();
  return new array_memory::Block{data, bytes};
}
void own_release(array_memory::Block* b) noexcept {
  if (b) std::free(b->data), delete b;
}
std::atomic<array_memory::Block* (*)(std::size_t)> g_acquire{&own_acquire};
std::atomic<void (*)(array_memory::Block*) noexcept> g_release{&own_release};

// n values of uninitialised scratch memory for the length of a kernel call (std::bad_alloc, a
// MemoryError in Python, if there is none). Taken before any parallel region.
template <typename S>
class Workspace {
 public:
  explicit Workspace(Index n) : release_(g_release.load()) {
    if (n < 0 || std::size_t(n) > PTRDIFF_MAX / sizeof(S)) throw std::bad_alloc();
    block_ = g_acquire.load()(std::size_t(n) * sizeof(S));
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() { release_(block_); }
  S* get() const { return static_cast<S*>(block_->data); }

 private:
  void (*release_)(array_memory::Block*) noexcept;
  array_memory::Block* block_ = nullptr;
};

template <typename S>
void fill_zero(S* p, Index n) { std::fill(p, p + n, S(0)); }

template <typename S, typename Block>
void output_activate(Block&& y, OutputActivation g) {
  for (Index i = 0; g != OutputActivation::Identity && i < y.rows(); ++i) {
    S* row = y.data() + i * y.outerStride();
    const Index n = y.cols();
    if (g == OutputActivation::Sigmoid) {
      pointwise::sigmoid_row(row, n);
    } else {  // softmax, shifted by the row's max so that exp cannot overflow
      const S z = pointwise::exp_shifted_sum(row, row, n, pointwise::max(row, n));
      for (Index j = 0; j < n; ++j) row[j] /= z;
    }
  }
}

// sums[0, c) (+)= column sums of the [rows, c) window m, added row after row (a fixed order);
// the sums start from zero when `overwrite`.
template <typename S, typename M>
void add_column_sums(S* sums, const M& m, bool overwrite) {
  auto out = Eigen::Map<Eigen::Array<S, 1, Eigen::Dynamic>>(sums, m.cols());
  if (overwrite) out.setZero();
  for (Index r = 0; r < m.rows(); ++r) out += m.row(r).array();
}

}  // namespace

// Panels of K rows for the register-tiled products of recurrence.h, one per block of kColBlock
// hidden units, packed once per sequence: W_hh's for the recurrence, W_xh's for the input
// projection. Packing costs about one step of work at B = 1, so sequences of fewer than
// kPackMinRows rows (a single cell step, say) multiply by the weights in place with Eigen instead.
constexpr Index kPackMinRows = 4;

template <typename S>
struct Panels {
  std::unique_ptr<Workspace<S>> data;
  Index K;
  Panels(Index K_, Index H, bool packed)
      : data(packed ? std::make_unique<Workspace<S>>(blocks(H, kColBlock) * kColBlock * K_) : nullptr),
        K(K_) {}
  explicit operator bool() const { return bool(data); }
  S* operator[](Index cb) const { return data->get() + cb * kColBlock * K; }
};

// The i-th block of step t for a thread that runs all `n` blocks of every step alone: in reverse
// order every other step, and each block's panel then read from its end (tile's kReverse), so the
// step starts with the rows the last one ended with. When the panels do not fit in L1 (H = 144 at
// B = 1: 58 KB of W_hh against 32 KB), a plain cyclic order evicts each row just before it is read
// again (B = 1: H = 144 895 -> 804 ns per step, H = 256 2570 -> 2480). Each block is computed
// alone, so the block order changes no result; the reversed k order does (a fixed one per step
// parity, chosen by the shapes alone). Shared steps keep their fixed blocks, in k order.
inline Index zigzag(bool team, Index t, Index i, Index n) { return !team && (t & 1) ? n - 1 - i : i; }

// Spins until `flag` is set by another thread (a short wait: the flagged work is small).
inline void wait_for(const std::atomic<int>& flag) {
  while (!flag.load(std::memory_order_acquire)) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

// Rows of the hoisted projection per task when it runs beside a one-thread recurrence: small, so
// that the recurrence can start after the first few steps' rows. Waking a second thread costs a
// few microseconds: below kMinOverlapWork multiply-adds (~20 us of projection) it does not pay
// (measured: a charlm-sized training step, 162k multiply-adds per layer, was 10% slower).
constexpr Index kOverlapRows = 8;
constexpr double kMinOverlapWork = 1 << 20;

template <typename S>
void rnn_forward(S* hs, const S* x, const S* h0, const S* W_xh, const S* W_hh, const S* b_h,
                 Index T, Index B, Index D, Index H, Activation f) {
  const Index N = T * B;
  if (N == 0 || H == 0) return;
  const Index col_blocks = blocks(H, kColBlock);
  const bool packed = N >= kPackMinRows, shared = double(B) * H * H >= kMinParallelWork;
  // One thread runs every step and all of it fits one register tile's width (up to 8 packets:
  // 64 < H <= 128 in float on AVX-512): W_hh^T as a single panel, read forward at even steps and
  // backward at odd ones, so that each step starts on the rows the last one ended with (the
  // panel, 45 KB at H = 100, is larger than L1; B = 1, one thread, tanh: H = 100 425 -> 365 ns per
  // step, H = 128 606 -> 547, against blocks of 64 units in alternating order). The choice
  // depends only on the shapes (and the direction on the step), so results still do not depend
  // on the thread count.
  const Index width = blocks(H, pointwise::kLanes<S>) * pointwise::kLanes<S>;
  const bool one_panel = packed && !shared && width > kColBlock && width <= 8 * pointwise::kLanes<S>;
  const Panels<S> panel(H, one_panel ? width : H, packed), xpanel(D, H, packed);
  const auto pack = [&](Index cb) {  // W_hh[J, :]^T and W_xh[J, :]^T, once per sequence
    const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
    if (!one_panel) recurrence::pack_panel(panel[cb], kColBlock, W_hh, H, H, j0, nc, /*transpose=*/true);
    else if (cb == 0) recurrence::pack_panel(panel[0], width, W_hh, H, H, 0, H, /*transpose=*/true);
    recurrence::pack_panel(xpanel[cb], kColBlock, W_xh, D, D, j0, nc, /*transpose=*/true);
  };
  // The hoisted input projection of rows [r0, r0 + nr), bias included: hs = x W_xh^T + b_h.
  // Each element is b_h + its k-sum in k order whichever rows are computed together (kSplitK
  // false), so the rows may be grouped differently on different paths without changing a bit.
  const auto project = [&](Index r0, Index nr) {
    if (packed) {
      const recurrence::BiasEpilogue<S> epi{b_h, hs + r0 * H, H};
      for (Index cb = 0; cb < col_blocks; ++cb) {
        const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
        recurrence::block<S, false>(x + r0 * D, nr, D, D, xpanel[cb], kColBlock, j0, nc, epi);
      }
      return;
    }
    auto z = view(hs + r0 * H, nr, H, H);
    z.rowwise() = ConstRow<S>(b_h, H);
    z.noalias() += view(x + r0 * D, nr, D, D) * view(W_xh, H, D, D).transpose();
  };
  // Step t of the recurrence: hs[t] = f(hs[t] + hs[t-1] W_hh^T), block by block of hidden units.
  const auto step = [&](bool team, Index t) {
    const S* h_prev = t == 0 ? h0 : hs + (t - 1) * B * H;
    const recurrence::ForwardEpilogue<S> epi{hs + t * B * H, hs + t * B * H, H, f};
    if (one_panel && (t & 1)) return recurrence::block<S, true, true>(h_prev, B, H, H, panel[0], width, 0, H, epi);
    if (one_panel) return recurrence::block(h_prev, B, H, H, panel[0], width, 0, H, epi);
    for_blocks(team, col_blocks, [&](Index i) {
      const Index cb = zigzag(team, t, i, col_blocks);
      const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
      if (packed && !shared && (t & 1))  // rows in reverse (see zigzag); by shape, not by team
        return recurrence::block<S, true, true>(h_prev, B, H, H, panel[cb], kColBlock, j0, nc, epi);
      if (packed) return recurrence::block(h_prev, B, H, H, panel[cb], kColBlock, j0, nc, epi);
      auto z = view(hs + t * B * H + j0, B, nc, H);
      z.noalias() += view(h_prev, B, H, H) * view(W_hh + j0 * H, nc, H, H).transpose();
      for (Index i = 0; i < B; ++i) pointwise::activate_row(z.data() + i * H, nc, f);
    });
  };

  if (shared) {  // the team shares every step
    region(true, [&](bool team) {
      // The static schedule gives each thread the same blocks here and in the recurrence, so it
      // packs the W_hh panels it will read.
      if (packed) for_blocks(team, col_blocks, pack);
      for_blocks(team, blocks(N, kRowBlock), [&](Index rb) {
        project(rb * kRowBlock, std::min(kRowBlock, N - rb * kRowBlock));
      });
      for (Index t = 0; t < T; ++t) step(team, t);
    });
    return;
  }
  // Steps too small to share: one thread runs the recurrence while the others project the inputs
  // of the steps ahead of it, in tasks of whole steps taken in order; the recurrence thread waits
  // for a step's task only when it cannot take an untaken one itself.
  const Index task_steps = std::max<Index>(1, kOverlapRows / B), tasks = blocks(T, task_steps);
  const int threads = packed && double(N) * D * H >= kMinOverlapWork ? std::min(num_threads(), 2) : 1;
  if (threads < 2) {
    if (packed) for (Index cb = 0; cb < col_blocks; ++cb) pack(cb);
    project(0, N);
    for (Index t = 0; t < T; ++t) step(false, t);
    return;
  }
  for (Index cb = 0; cb < col_blocks; ++cb) pack(cb);
  std::atomic<Index> next_task{0};
  const std::unique_ptr<std::atomic<int>[]> done(new std::atomic<int>[size_t(tasks)]);
  for (Index i = 0; i < tasks; ++i) done[i].store(0, std::memory_order_relaxed);
  const auto take_task = [&]() {  // false when every task has been taken
    const Index task = next_task.fetch_add(1, std::memory_order_relaxed);
    if (task >= tasks) return false;
    const Index t0 = task * task_steps, t1 = std::min(T, t0 + task_steps);
    project(t0 * B, (t1 - t0) * B);
    done[task].store(1, std::memory_order_release);
    return true;
  };
#pragma omp parallel num_threads(threads)
  {
    if (omp_get_thread_num() == 0) {
      for (Index t = 0; t < T; ++t) {
        const Index task = t / task_steps;
        while (!done[task].load(std::memory_order_acquire))
          if (!take_task()) wait_for(done[task]);
        step(false, t);
      }
    } else {
      while (take_task()) {
      }
    }
  }
}

// C[rows, cols] (+)= A[rows, K] P[K, cols] on the register tiles of recurrence.h: A[rows, K] with
// rows lda apart, or with kTransA its transpose stored as A^T[K, rows] with rows lda apart (the
// weight gradients' dz^T); P with rows ldp apart. The k-sum runs in blocks of rows small enough
// for a block of P to stay in a core's L2; A^T's block and each panel of P's are first copied into
// contiguous memory (read in place, rows 8 KB apart at H = 2048 fell into a few cache sets and
// the backward ran 10% slower than Eigen's packed GEMM; unblocked, at a third of its speed). Each
// block adds to what C holds, so how an element is summed depends only on the shapes.
constexpr Index kProductCols = 512, kProductBlockBytes = 512 * 1024;

// Rows of P per k-block: a block of kProductCols columns (whole kColBlock-wide panels, padding
// included) fills at most kProductBlockBytes, and has at least kColBlock rows.
template <typename S>
Index product_block_rows(Index cols) {
  const Index panel_cols = blocks(std::min(cols, kProductCols), kColBlock) * kColBlock;
  return std::max<Index>(kColBlock, kProductBlockBytes / Index(sizeof(S) * std::max<Index>(panel_cols, 1)));
}

// Elements of workspace product() needs: one packed panel of P and, with kTransA, A^T's block as
// rows. The kernels allocate it per thread before their parallel region, so that no task
// allocates (or could fail to) inside it.
template <typename S>
Index product_space(Index rows, Index K, Index cols, bool trans) {
  if (rows == 0 || cols == 0 || K == 0) return 0;
  return std::min(product_block_rows<S>(cols), K) * (kColBlock + (trans ? rows : 0));
}

template <typename S, bool kTransA>
void product(S* C, Index ldc, bool accumulate, const S* A, Index lda, Index rows, Index K,
             const S* P, Index ldp, Index cols, S* space) {
  if (rows == 0 || cols == 0) return;  // no C to write
  if (K == 0) {  // an empty sum: C stays, or becomes 0
    for (Index i = 0; !accumulate && i < rows; ++i) fill_zero(C + i * ldc, cols);
    return;
  }
  const Index kc = product_block_rows<S>(cols);
  S* const panel = space;                          // [kc, kColBlock]
  S* const a_rows = space + std::min(kc, K) * kColBlock;  // [rows, kc], kTransA only
  for (Index k0 = 0; k0 < K; k0 += kc) {
    const Index nk = std::min(kc, K - k0);
    const S* A_k = A + k0;
    Index lda_k = lda;
    if (kTransA) {  // a_rows[i, k] = A^T[k0 + k, i]
      recurrence::pack_panel(a_rows, nk, A + k0 * lda, lda, rows, 0, nk, /*transpose=*/true);
      A_k = a_rows, lda_k = nk;
    }
    for (Index c0 = 0; c0 < cols; c0 += kProductCols) {
      const Index nc = std::min(kProductCols, cols - c0);
      const recurrence::SumEpilogue<S> epi{C + c0, ldc, accumulate || k0 > 0};
      for (Index j = 0; j < nc; j += kColBlock) {
        const Index nj = std::min(kColBlock, nc - j);
        recurrence::pack_panel(panel, kColBlock, P + k0 * ldp + c0, ldp, nk, j, nj, /*transpose=*/false);
        recurrence::block<S, false>(A_k, rows, nk, lda_k, panel, kColBlock, j, nj, epi);
      }
    }
  }
}

// Tasks of the backward's gradient GEMMs: kGradUnits hidden units of dW_xh, dW_hh and db_h, or
// kGradRows rows of dx (multiples of the tiles' 6 rows; small enough for two threads to balance).
constexpr Index kGradUnits = 48, kGradRows = 96;

// The backward holds the pre-activation gradients dz for a chunk of whole steps at a time: the dh
// recurrence fills a chunk, the gradient GEMMs consume it, then the next (earlier) chunk is filled.
// Whole-sequence dz would add T*B*H to the memory of a pass (as much as hs itself). A chunk has at
// least kChunkRows rows (GEMMs of a few hundred rows run near the machine's peak) and is at least
// 1/kMaxChunks of the sequence (each chunk re-reads and re-writes dW_xh and dW_hh, 6 MiB at
// H = 1024: with 2-step chunks at B = 128 that traffic cost 14% of the backward).
constexpr Index kChunkRows = 256, kMaxChunks = 8;

template <typename S>
void rnn_backward(S* dx, S* dh0, S* dW_xh, S* dW_hh, S* db_h,
                  const S* dhs, const S* x, const S* h0, const S* hs, const S* W_xh, const S* W_hh,
                  Index T, Index B, Index D, Index H, Activation f) {
  const Index N = T * B;
  if (N == 0 || H == 0) {  // nothing flows: every gradient is zero
    if (dx) fill_zero(dx, N * D);
    fill_zero(dh0, B * H), fill_zero(dW_xh, H * D);
    fill_zero(dW_hh, H * H), fill_zero(db_h, H);
    return;
  }
  const Index step = B * H, col_blocks = blocks(H, kColBlock);
  const Index chunk = std::min(T, std::max({kChunkRows / B, blocks(T, kMaxChunks), Index(1)}));  // steps
  // dz of the chunk's steps, then one more step: dz[t1], carried over from the chunk after it.
  const Workspace<S> work((chunk + 1) * step);
  S* const carry = work.get() + chunk * step;
  // As in the forward: one panel when one thread runs the steps and H fits a tile's width, and
  // the panels read from their end at odd steps.
  const bool packed = N >= kPackMinRows, shared = double(B) * H * H >= kMinSharedBackwardStep;
  const Index width = blocks(H, pointwise::kLanes<S>) * pointwise::kLanes<S>;
  const bool one_panel = packed && !shared && width > kColBlock && width <= 8 * pointwise::kLanes<S>;
  const Panels<S> panel(H, one_panel ? width : H, packed);
  // Each thread's workspace for the gradient products, enough for the largest of them.
  const Index chunk_rows = chunk * B, units = std::min(kGradUnits, H);
  const Index space = std::max({product_space<S>(std::min(kGradRows, chunk_rows), H, D, false),
                                product_space<S>(units, chunk_rows, D, true),
                                product_space<S>(units, chunk_rows, H, true), Index(1)});
  // Steps too small to share run on one thread, but the chunks' gradient products still take the
  // team when they are worth waking it for (as the forward's overlap): at B = 1, H = 256 they are
  // three quarters of the backward's multiply-adds. The team's other threads wait at a barrier
  // while the first runs the steps; every product's result depends only on its data, so the bits
  // are those of a one-thread backward.
  const double product_work = double(N) * H * (H + D + (dx ? D : 0));
  const int threads = team_size(shared || product_work >= kMinOverlapWork);
  const Workspace<S> spaces(threads * space);
  region_of(threads, [&](bool team) {
    S* const mine = spaces.get() + thread_slot(team) * space;
    const bool steps_team = team && shared;  // the team shares the steps, else one thread runs them
    const bool runs_steps = steps_team || thread_slot(team) == 0;
    for (Index t0 = (T - 1) / chunk * chunk, t1 = T; t0 >= 0; t1 = t0, t0 -= chunk) {
      const Index rows = (t1 - t0) * B;
      const auto dz = [&](Index t) { return t == t1 ? carry : work.get() + (t - t0) * step; };
      if (t1 == T && runs_steps) {
        // The panels W_hh[:, J], and the last step, which has no product:
        // dz[T-1] = dhs[T-1] * f'(hs[T-1]).
        for_blocks(steps_team, col_blocks, [&](Index cb) {
          const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0), last = (T - 1) * step;
          if (panel && !one_panel) recurrence::pack_panel(panel[cb], kColBlock, W_hh, H, H, j0, nc, /*transpose=*/false);
          if (one_panel && cb == 0) recurrence::pack_panel(panel[0], width, W_hh, H, H, 0, H, /*transpose=*/false);
          const recurrence::BackwardEpilogue<S> epi{dhs + last, hs + last, dz(T - 1), H, f};
          recurrence::block<S>(nullptr, B, 0, H, nullptr, 0, j0, nc, epi);
        });
      }
      // The only sequential part: dz[t-1] = (dhs[t-1] + dz[t] W_hh) * f'(hs[t-1]) for the steps
      // of this chunk, and at the very start dh0 = dz[0] W_hh.
      for (Index t = t1 == T ? T - 1 : t1; runs_steps && (t > t0 || (t == 0 && t0 == 0)); --t) {
        const auto epi = t > 0 ? recurrence::BackwardEpilogue<S>{dhs + (t - 1) * step, hs + (t - 1) * step,
                                                                 dz(t - 1), H, f}
                               : recurrence::BackwardEpilogue<S>{nullptr, nullptr, dh0, H, f};
        const S* dz_t = dz(t);
        if (one_panel && (t & 1)) {
          recurrence::block<S, true, true>(dz_t, B, H, H, panel[0], width, 0, H, epi);
        } else if (one_panel) {
          recurrence::block(dz_t, B, H, H, panel[0], width, 0, H, epi);
        } else for_blocks(steps_team, col_blocks, [&](Index i) {
          const Index cb = zigzag(steps_team, t, i, col_blocks);
          const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
          if (panel && !shared && (t & 1))  // rows in reverse (see zigzag)
            return recurrence::block<S, true, true>(dz_t, B, H, H, panel[cb], kColBlock, j0, nc, epi);
          if (panel) return recurrence::block(dz_t, B, H, H, panel[cb], kColBlock, j0, nc, epi);
          auto g = view(epi.out + j0, B, nc, H);
          if (epi.dh_out) g = view(epi.dh_out + j0, B, nc, H);
          else g.setZero();
          g.noalias() += view(dz_t, B, H, H) * view(W_hh + j0, H, nc, H);
          if (epi.h) recurrence::block<S>(nullptr, B, 0, H, nullptr, 0, j0, nc,
                                          recurrence::BackwardEpilogue<S>{epi.out, epi.h, epi.out, H, f});
        });
        if (t == 0) break;
      }
      // The chunk's rows of dz, consumed by GEMMs: its rows of dx = dz W_xh, and its terms of
      // dW_xh = dz^T x, dW_hh = dz^T h_prev, db_h = column sums of dz, added to those of the
      // chunks after it (the first chunk done, the sequence's last, writes them). A task's result
      // depends only on its data, so a dynamic schedule balances them without changing a bit.
      if (team && !steps_team) {
#pragma omp barrier
      }
      const bool first = t1 == T;
      const S* dz_c = dz(t0);
      const Index unit_tasks = blocks(H, kGradUnits), row_tasks = dx ? blocks(rows, kGradRows) : 0;
      for_blocks<kDynamic>(team, unit_tasks + row_tasks, [&](Index task) {
        if (task >= unit_tasks) {  // rows r0.. of the chunk's dx
          const Index r0 = (task - unit_tasks) * kGradRows, nr = std::min(kGradRows, rows - r0);
          product<S, false>(dx + (t0 * B + r0) * D, D, false, dz_c + r0 * H, H, nr, H, W_xh, D, D, mine);
          return;
        }
        const Index j0 = task * kGradUnits, nj = std::min(kGradUnits, H - j0);
        product<S, true>(dW_xh + j0 * D, D, !first, dz_c + j0, H, nj, rows, x + t0 * B * D, D, D, mine);
        // h_prev of step t is hs[t-1], and h0 for t = 0.
        if (t0 > 0) {
          product<S, true>(dW_hh + j0 * H, H, !first, dz_c + j0, H, nj, rows, hs + (t0 - 1) * step, H, H,
                           mine);
        } else {
          product<S, true>(dW_hh + j0 * H, H, !first, dz_c + j0, H, nj, B, h0, H, H, mine);
          product<S, true>(dW_hh + j0 * H, H, true, dz_c + step + j0, H, nj, rows - B, hs, H, H, mine);
        }
        add_column_sums(db_h + j0, view(dz_c + j0, rows, nj, H), first);
        // dz[t0] is dz[t1] of the next chunk done: carried over (only this task reads these columns).
        for (Index i = 0; i < B; ++i) std::copy_n(dz_c + i * H + j0, nj, carry + i * H + j0);
      });
    }
  });
}

template <typename S>
void output_forward(S* ys, const S* hs, const S* W_hy, const S* b_y, Index N, Index H, Index O,
                    OutputActivation g) {
  if (N == 0 || O == 0) return;
  const Index col_blocks = blocks(O, kColBlock);
  const bool packed = N >= kPackMinRows;
  const Panels<S> panel(H, O, packed);  // W_hy[J, :]^T
  region(double(N) * H * O >= kMinParallelWork, [&](bool team) {
    if (packed) for_blocks(team, col_blocks, [&](Index cb) {
      const Index j0 = cb * kColBlock, nc = std::min(kColBlock, O - j0);
      recurrence::pack_panel(panel[cb], kColBlock, W_hy, H, H, j0, nc, /*transpose=*/true);
    });
    for_blocks(team, blocks(N, kRowBlock), [&](Index rb) {
      const Index r0 = rb * kRowBlock, nr = std::min(kRowBlock, N - r0);
      auto y = view(ys + r0 * O, nr, O, O);
      if (packed) {
        const recurrence::BiasEpilogue<S> epi{b_y, ys + r0 * O, O};
        for (Index cb = 0; cb < col_blocks; ++cb) {
          const Index j0 = cb * kColBlock, nc = std::min(kColBlock, O - j0);
          recurrence::block<S, false>(hs + r0 * H, nr, H, H, panel[cb], kColBlock, j0, nc, epi);
        }
      } else {
        y.rowwise() = ConstRow<S>(b_y, O);
        y.noalias() += view(hs + r0 * H, nr, H, H) * view(W_hy, O, H, H).transpose();
      }
      output_activate<S>(y, g);
    });
  });
}

template <typename S>
void output_backward(S* dhs, S* dW_hy, S* db_y, S* dz, const S* dys, const S* hs, const S* ys,
                     const S* W_hy, Index N, Index H, Index O, OutputActivation g) {
  if (N == 0 || O == 0) {
    fill_zero(dhs, N * H), fill_zero(dW_hy, O * H), fill_zero(db_y, O);
    return;
  }
  const S* dz_read = g == OutputActivation::Identity ? dys : dz;  // identity: dz is dys itself
  const Index row_blocks = blocks(N, kRowBlock);
  const Index space = std::max({product_space<S>(std::min(kGradRows, N), O, H, false),
                                product_space<S>(std::min(kGradUnits, O), N, H, true), Index(1)});
  const int threads = team_size(double(N) * H * O >= kMinParallelWork);
  const Workspace<S> spaces(threads * space);
  region_of(threads, [&](bool team) {
    S* const mine = spaces.get() + thread_slot(team) * space;
    if (g != OutputActivation::Identity) {
      // dz = dys * g'(ys), from the stored outputs.
      for_blocks(team, row_blocks, [&](Index rb) {
        const Index r0 = rb * kRowBlock, nr = std::min(kRowBlock, N - r0);
        auto d = view(dz + r0 * O, nr, O, O);
        const auto dy = view(dys + r0 * O, nr, O, O);
        const auto y = view(ys + r0 * O, nr, O, O);
        if (g == OutputActivation::Sigmoid) {
          d.array() = dy.array() * y.array() * (S(1) - y.array());
        } else {  // softmax: dz = y * (dy - <dy, y>) per row
          for (Index i = 0; i < nr; ++i) {
            const S inner = pointwise::dot(dys + (r0 + i) * O, ys + (r0 + i) * O, O);
            d.row(i).array() = y.row(i).array() * (dy.row(i).array() - inner);
          }
        }
      });
    }
    // dhs = dz W_hy by rows, dW_hy = dz^T hs and db_y by output units; dynamic, as in rnn_backward.
    const Index unit_tasks = blocks(O, kGradUnits), row_tasks = blocks(N, kGradRows);
    for_blocks<kDynamic>(team, unit_tasks + row_tasks, [&](Index task) {
      if (task >= unit_tasks) {
        const Index r0 = (task - unit_tasks) * kGradRows, nr = std::min(kGradRows, N - r0);
        product<S, false>(dhs + r0 * H, H, false, dz_read + r0 * O, O, nr, O, W_hy, H, H, mine);
        return;
      }
      const Index j0 = task * kGradUnits, nj = std::min(kGradUnits, O - j0);
      product<S, true>(dW_hy + j0 * H, H, false, dz_read + j0, O, nj, N, hs, H, H, mine);
      add_column_sums(db_y + j0, view(dz_read + j0, N, nj, O), true);
    });
  });
}

template <typename S>
double softmax_cross_entropy(S* dlogits, const S* logits, const std::int64_t* targets,
                             const S* mask, Index N, Index C, bool mean) {
  double divisor = 1.0;
  if (mean) {
    divisor = double(N);
    if (mask) {
      divisor = 0.0;
      for (Index i = 0; i < N; ++i) divisor += double(mask[i]);
    }
  }
  if (N == 0 || divisor == 0.0) {
    fill_zero(dlogits, N * C);
    return 0.0;
  }
  const Index row_blocks = blocks(N, kRowBlock);
  std::vector<double> partial(row_blocks, 0.0);  // per-block sums, added in order: deterministic
  region(double(N) * C >= kMinParallelWork, [&](bool team) {
    for_blocks(team, row_blocks, [&](Index rb) {
      const Index r0 = rb * kRowBlock, r1 = std::min(N, r0 + kRowBlock);
      double sum = 0.0;
      for (Index i = r0; i < r1; ++i) {
        const S w = mask ? mask[i] : S(1);
        S* d = dlogits + i * C;
        const S* l = logits + i * C;
        if (w == S(0)) {  // ignored position: its target is not read, its gradient is zero
          fill_zero(d, C);
          continue;
        }
        const S m = pointwise::max(l, C);
        const S z = pointwise::exp_shifted_sum(d, l, C, m);  // unnormalised probabilities, written once
        const std::int64_t k = targets[i];
        sum += double(w) * (double(m) + std::log(double(z)) - double(l[k]));  // logsumexp - logit
        const S scale = S(double(w) / (double(z) * divisor));
        for (Index j = 0; j < C; ++j) d[j] *= scale;
        d[k] -= S(double(w) / divisor);
      }
      partial[rb] = sum;
    });
  });
  double loss = 0.0;
  for (double p : partial) loss += p;
  return loss / divisor;
}

template <typename S>
constexpr Kernels<S> kernels_for() {
  return {&rnn_forward<S>, &rnn_backward<S>, &output_forward<S>, &output_backward<S>,
          &softmax_cross_entropy<S>};
}

// What the compiler was told to use in this build (Eigen 3.4 reports AVX2 as plain "AVX").
const char* simd() {
#if defined(__AVX512F__)
  return "AVX-512F, AVX2, FMA";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2, FMA";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE2__)
  return "SSE2";
#else
  return Eigen::SimdInstructionSetsInUse();
#endif
}

const KernelTable& kernel_table() {
  static const KernelTable table{kKernelAbi,
                                 ELMAN_ISA,        // set per build by CMakeLists.txt
                                 simd(),
                                 ELMAN_ISA_FLAGS,  // likewise
                                 _OPENMP,
                                 kernels_for<float>(),
                                 kernels_for<double>(),
                                 [](int n) { g_threads.store(n, std::memory_order_relaxed); },
                                 &num_threads,
                                 [](array_memory::Block* (*acquire)(std::size_t),
                                    void (*release)(array_memory::Block*) noexcept) {
                                   g_release.store(release), g_acquire.store(acquire);
                                 }};
  return table;
}

#define ELMAN_INSTANTIATE(S)                                                                    \
  template void rnn_forward<S>(S*, const S*, const S*, const S*, const S*, const S*, Index,      \
                               Index, Index, Index, Activation);                                 \
  template void rnn_backward<S>(S*, S*, S*, S*, S*, const S*, const S*, const S*, const S*,      \
                                const S*, const S*, Index, Index, Index, Index, Activation);     \
  template void output_forward<S>(S*, const S*, const S*, const S*, Index, Index, Index,         \
                                  OutputActivation);                                             \
  template void output_backward<S>(S*, S*, S*, S*, const S*, const S*, const S*, const S*,       \
                                   Index, Index, Index, OutputActivation);                       \
  template double softmax_cross_entropy<S>(S*, const S*, const std::int64_t*, const S*, Index,   \
                                           Index, bool);
ELMAN_INSTANTIATE(float)
ELMAN_INSTANTIATE(double)

}  // namespace elman
