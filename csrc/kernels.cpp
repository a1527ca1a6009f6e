// The fused kernels declared in elman.h (shape legend there).
//
// Parallel layout: one job of the team (team.h) per call. Whole-sequence GEMMs are split into
// fixed blocks of kRowBlock rows, taken as members come free; the recurrence is split into fixed
// tasks of kColBlock hidden units (and, for large batches, of rows), one phase of tasks per step:
// each member first takes its own tasks, the same at every step, so its rows of W_hh stay in its
// cache, then any left, and a step ends when its tasks are counted done. Since a task's result
// depends only on its data, results are bit-identical for any number of threads and any
// interleaving.
#include "elman.h"

#include <Eigen/Dense>

#include "pointwise.h"
#include "recurrence.h"
#include "team.h"

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

using team::Member;
using team::Steps;
using team::Tasks;

// Threads of a job that is worth a second thread only when `parallel`.
int team_size(bool parallel) { return parallel ? team::num_threads() : 1; }

// Runs body(m) as one job of `threads` threads (team::run).
template <typename Body>
void job(int threads, Body&& body) { team::run(threads, body); }

// body(task) for every task of `tasks`, shared by the members as they come free; returns when all
// are done (false for a worker whose job ended meanwhile: it must return at once).
template <typename Body>
bool for_tasks(Member& m, Tasks& tasks, Body&& body) {
  tasks.take(m, body);
  return m.wait([&] { return tasks.done(); });
}

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
// step starts with the rows the last one ended with. When the panels do not fit in L1, a plain
// cyclic order evicts each row just before it is read again (docs/performance.md). Each block is
// computed alone, so the block order changes no result; the reversed k order does (a fixed one per
// step parity, chosen by the shapes alone). Shared steps keep their fixed tasks, in k order.
inline Index zigzag(Index t, Index i, Index n) { return (t & 1) ? n - 1 - i : i; }

// Rows of the batch per task of a shared step. A step has blocks(H, kColBlock) tasks of whole
// columns; from B >= 16 and H >= 256 each is split by rows too, into blocks of about kRowTask rows
// (two of the tiles' 6), so that a step has tasks enough for many cores (docs/performance.md:
// B = 32, H = 256: 4 -> 12 tasks; B = 128, H = 1024: 16 -> 176). By the shapes alone: how a row is
// summed depends on the tile it falls in, so never on the thread count.
constexpr Index kRowTask = 12;
Index step_rows(Index B, Index H) {
  if (B < 16 || H < 256) return B;
  const Index parts = blocks(B, kRowTask);
  return blocks(blocks(B, parts), 2) * 2;
}

// Copies rows x cols of `from` (rows ldf apart) to `to` (rows ldt apart): a task's result from a
// member's scratch to its place (team.h, Steps).
template <typename S>
void copy_rows(S* to, Index ldt, const S* from, Index ldf, Index rows, Index cols) {
  for (Index i = 0; i < rows; ++i) std::copy_n(from + i * ldf, cols, to + i * ldt);
}

// How a sequence's steps run, forward and backward alike, decided by the shapes alone (never by
// the thread count, so that the bits are the same for any):
// - packed: W_hh in panels packed once per sequence (from kPackMinRows rows; a single cell step
//   multiplies by the weights in place with Eigen);
// - shared: from `min_shared` multiply-adds per step the team shares every step, in tasks of
//   `rows` rows of one block of kColBlock units (`tasks` per step); else one member runs them;
// - one_panel: one member runs every step and all of W_hh^T fits one register tile's width (up
//   to 8 packets: 64 < H <= 128 in float on AVX-512): one panel of `width` columns, read forward
//   at even steps and backward at odd ones, so that each step starts on the rows the last one
//   ended with (the panel, 45 KB at H = 100, is larger than L1).
template <typename S>
struct StepPlan {
  bool packed, shared, one_panel;
  Index width, col_blocks, rows, row_tasks, tasks;
  StepPlan(Index T, Index B, Index H, double min_shared)
      : packed(T * B >= kPackMinRows),
        shared(packed && double(B) * H * H >= min_shared),
        width(blocks(H, pointwise::kLanes<S>) * pointwise::kLanes<S>),
        col_blocks(blocks(H, kColBlock)),
        rows(shared ? step_rows(B, H) : B),
        row_tasks(blocks(B, std::max<Index>(rows, 1))),
        tasks(col_blocks * row_tasks) {
    one_panel = packed && !shared && width > kColBlock && width <= 8 * pointwise::kLanes<S>;
  }
  Index panel_columns(Index H) const { return one_panel ? width : H; }  // of the W_hh panels
};

// Rows of the hoisted projection per task when it runs beside a one-thread recurrence: small, so
// that the recurrence can start after the first few steps' rows. Waking a second thread costs a
// few microseconds: below kMinOverlapWork multiply-adds (~20 us of projection) it does not pay
// (measured: a charlm-sized training step, 162k multiply-adds per layer, was 10% slower).
constexpr Index kOverlapRows = 8;
constexpr double kMinOverlapWork = 1 << 20;

inline void detail_rescued() { team::detail::shared().stats.rescued.fetch_add(1, std::memory_order_relaxed); }

template <typename S>
void rnn_forward(S* hs, const S* x, const S* h0, const S* W_xh, const S* W_hh, const S* b_h,
                 Index T, Index B, Index D, Index H, Activation f) {
  const Index N = T * B;
  if (N == 0 || H == 0) return;
  const StepPlan<S> plan(T, B, H, kMinParallelWork);
  const Index col_blocks = plan.col_blocks, width = plan.width;
  const bool packed = plan.packed, shared = plan.shared, one_panel = plan.one_panel;
  const Panels<S> panel(H, plan.panel_columns(H), packed), xpanel(D, H, packed);
  const auto pack = [&](Index cb) {  // W_hh[J, :]^T and W_xh[J, :]^T, once per sequence
    const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
    if (!one_panel) recurrence::pack_panel(panel[cb], kColBlock, W_hh, H, H, j0, nc, /*transpose=*/true);
    else if (cb == 0) recurrence::pack_panel(panel[0], width, W_hh, H, H, 0, H, /*transpose=*/true);
    recurrence::pack_panel(xpanel[cb], kColBlock, W_xh, D, D, j0, nc, /*transpose=*/true);
  };
  // The hoisted input projection of rows [r0, r0 + nr), bias included, into out[nr, H] (their
  // place in hs, or a member's scratch): x W_xh^T + b_h. Each element is b_h + its k-sum in k
  // order whichever rows are computed together (kSplitK false), so the rows may be grouped
  // differently on different paths without changing a bit.
  const auto project = [&](Index r0, Index nr, S* out) {
    if (packed) {
      const recurrence::BiasEpilogue<S> epi{b_h, out, H};
      for (Index cb = 0; cb < col_blocks; ++cb) {
        const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
        recurrence::block<S, false>(x + r0 * D, nr, D, D, xpanel[cb], kColBlock, j0, nc, epi);
      }
      return;
    }
    auto z = view(out, nr, H, H);
    z.rowwise() = ConstRow<S>(b_h, H);
    z.noalias() += view(x + r0 * D, nr, D, D) * view(W_xh, H, D, D).transpose();
  };

  if (shared) {
    // Task i of step t: rows [r0, r0 + nr) of the block cb of hidden units (cb-major, so that a
    // member's own range of tasks covers few blocks of W_hh), into `out`: in place, or a member's
    // scratch [nr, kColBlock] from which publish copies it.
    const Index rows = plan.rows, row_tasks = plan.row_tasks, n = plan.tasks;
    struct Where { Index r0, nr, j0, nc, cb; };
    const auto where = [&](Index i) {
      const Index cb = i / row_tasks, r0 = (i % row_tasks) * rows, j0 = cb * kColBlock;
      return Where{r0, std::min(rows, B - r0), j0, std::min(kColBlock, H - j0), cb};
    };
    const auto task = [&](Index t, Index i, S* scratch) {
      const Where w = where(i);
      const S* h_prev = (t == 0 ? h0 : hs + (t - 1) * B * H) + w.r0 * H;
      S* const pre = hs + t * B * H + w.r0 * H;
      const recurrence::ForwardEpilogue<S> epi =
          scratch ? recurrence::ForwardEpilogue<S>{pre, scratch, H, f, kColBlock, w.j0}
                  : recurrence::ForwardEpilogue<S>{pre, pre, H, f};
      recurrence::block(h_prev, w.nr, H, H, panel[w.cb], kColBlock, w.j0, w.nc, epi);
    };
    const int threads = team_size(true);
    const Workspace<S> scratch(Index(threads) * rows * kColBlock);
    const std::unique_ptr<Steps::Slot[]> pack_slots(new Steps::Slot[size_t(col_blocks)]);
    const std::unique_ptr<Steps::Slot[]> step_slots(new Steps::Slot[size_t(n)]);
    Steps packing(col_blocks, pack_slots.get()), steps(n, step_slots.get());
    Tasks projection(blocks(N, kRowBlock));
    job(threads, [&](Member& m) {
      // Each member packs the W_hh panels of the tasks it owns, so they start in its cache.
      if (!packing.phase(m, 0, false, pack, [](Index) {})) return;
      if (!for_tasks(m, projection, [&](Index rb) {
            const Index r0 = rb * kRowBlock;
            project(r0, std::min(kRowBlock, N - r0), hs + r0 * H);
          }))
        return;
      if (m.alone()) {  // every task in place, in order
        for (Index t = 0; t < T; ++t)
          for (Index i = 0; i < n; ++i) task(t, i, nullptr);
        return;
      }
      S* const mine = scratch.get() + m.slot() * rows * kColBlock;
      for (Index t = steps.phases_done(); t < T; t = std::max(t + 1, steps.phases_done())) {
        steps.phase(m, t, /*rescue=*/true, [&](Index i) { task(t, i, mine); }, [&](Index i) {
          const Where w = where(i);
          copy_rows(hs + t * B * H + w.r0 * H + w.j0, H, mine, kColBlock, w.nr, w.nc);
        });
      }
    });
    return;
  }

  // Steps too small to share: one thread runs them all, hs[t] = f(hs[t] + hs[t-1] W_hh^T).
  const auto step = [&](Index t) {
    const S* h_prev = t == 0 ? h0 : hs + (t - 1) * B * H;
    const recurrence::ForwardEpilogue<S> epi{hs + t * B * H, hs + t * B * H, H, f};
    if (one_panel && (t & 1)) return recurrence::block<S, true, true>(h_prev, B, H, H, panel[0], width, 0, H, epi);
    if (one_panel) return recurrence::block(h_prev, B, H, H, panel[0], width, 0, H, epi);
    for (Index i = 0; i < col_blocks; ++i) {
      const Index cb = zigzag(t, i, col_blocks);
      const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
      if (packed && (t & 1)) {  // rows in reverse (see zigzag); by shape, not by team
        recurrence::block<S, true, true>(h_prev, B, H, H, panel[cb], kColBlock, j0, nc, epi);
      } else if (packed) {
        recurrence::block(h_prev, B, H, H, panel[cb], kColBlock, j0, nc, epi);
      } else {
        auto z = view(hs + t * B * H + j0, B, nc, H);
        z.noalias() += view(h_prev, B, H, H) * view(W_hh + j0 * H, nc, H, H).transpose();
        for (Index r = 0; r < B; ++r) pointwise::activate_row(z.data() + r * H, nc, f);
      }
    }
  };
  const Index task_steps = std::max<Index>(1, kOverlapRows / B), tasks = blocks(T, task_steps);
  const int threads = packed && double(N) * D * H >= kMinOverlapWork ? std::min(team_size(true), 2) : 1;
  if (threads < 2) {
    if (packed) for (Index cb = 0; cb < col_blocks; ++cb) pack(cb);
    project(0, N, hs);
    for (Index t = 0; t < T; ++t) step(t);
    return;
  }
  // The recurrence on the caller while the other member projects the inputs of the steps ahead,
  // in tasks of whole steps taken in order. A task is computed into the member's scratch and
  // published by the first to finish it (state 0 -> 1 -> 2): when the recurrence reaches a task
  // another member holds, it waits about one task's time, then computes it itself.
  for (Index cb = 0; cb < col_blocks; ++cb) pack(cb);
  const Index task_rows = task_steps * B;
  const Workspace<S> scratch(Index(threads) * task_rows * H);
  const std::unique_ptr<std::atomic<int>[]> state(new std::atomic<int>[size_t(tasks)]);
  for (Index i = 0; i < tasks; ++i) state[i].store(0, std::memory_order_relaxed);
  std::atomic<Index> next_task{0};
  job(threads, [&](Member& m) {
    S* const mine = scratch.get() + m.slot() * task_rows * H;
    team::Clock::duration task_time = std::chrono::microseconds(2);
    const auto compute = [&](Index k) {  // task k into mine; published unless another was first
      const auto start = team::Clock::now();
      const Index t0 = k * task_steps, nr = (std::min(T, t0 + task_steps) - t0) * B;
      project(t0 * B, nr, mine);
      int expected = 0;
      if (state[k].compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        std::copy_n(mine, nr * H, hs + t0 * B * H);
        state[k].store(2, std::memory_order_release);
        m.notify();
      }
      task_time = team::Clock::now() - start;
    };
    const auto take = [&] {  // the next task nobody has taken, if any
      if (next_task.load(std::memory_order_relaxed) >= tasks) return false;
      const Index k = next_task.fetch_add(1, std::memory_order_relaxed);
      if (k < tasks) compute(k);
      return k < tasks;
    };
    if (m.slot() != 0) {
      while (take()) {
      }
      return;
    }
    for (Index t = 0; t < T; ++t) {
      const Index k = t / task_steps;
      const auto ready = [&] { return state[k].load(std::memory_order_acquire) == 2; };
      while (!ready()) {
        if (team::detail::g_stress && state[k].load(std::memory_order_acquire) == 0) {
          detail_rescued();  // as if the other member had taken it and been descheduled
          compute(k);
          continue;
        }
        if (take()) continue;
        if (Member::spin(ready, team::detail::g_stress ? team::Clock::duration(0) : 2 * task_time)) break;
        if (state[k].load(std::memory_order_acquire) == 0) {  // its holder is away
          detail_rescued();
          compute(k);
        }
        else m.wait(ready);  // being published: only the copy is left
      }
      step(t);
    }
  });
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

// The backward holds the pre-activation gradients dz for two chunks of whole steps at a time: the
// dh recurrence fills one chunk while the gradient GEMMs consume the one after it in time, which
// the recurrence filled before. Whole-sequence dz would add T*B*H to the memory of a pass (as much
// as hs itself). A chunk has at least kChunkRows rows (GEMMs of a few hundred rows run near the
// machine's peak) and is at least 1/kMaxChunks of the sequence (each chunk re-reads and re-writes
// dW_xh and dW_hh, 6 MiB at H = 1024: with 2-step chunks at B = 128 that traffic cost 14% of the
// backward).
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
  // Chunk k, in the order they are done (k = 0 is the sequence's last), holds steps [t0(k), t1(k)).
  const Index chunks = blocks(T, chunk);
  const auto t0_of = [&](Index k) { return (chunks - 1 - k) * chunk; };
  const auto t1_of = [&](Index k) { return std::min(T, t0_of(k) + chunk); };
  const Workspace<S> work(std::min<Index>(chunks, 2) * chunk * step);
  const auto dz = [&](Index t) {  // dz[t], in the buffer of its chunk (chunks alternate buffers)
    const Index c = t / chunk;
    return work.get() + ((chunks - 1 - c) % 2) * chunk * step + (t - c * chunk) * step;
  };
  // As in the forward (StepPlan), from a lower threshold: the backward's one-member steps have
  // no projection to overlap with.
  const StepPlan<S> plan(T, B, H, kMinSharedBackwardStep);
  const bool packed = plan.packed, shared = plan.shared, one_panel = plan.one_panel;
  const Index width = plan.width;
  const Panels<S> panel(H, plan.panel_columns(H), packed);
  // Each member's workspace for the gradient products, enough for the largest of them.
  const Index units = std::min(kGradUnits, H), chunk_rows = chunk * B;
  const Index space = std::max({product_space<S>(std::min(kGradRows, chunk_rows), H, D, false),
                                product_space<S>(units, chunk_rows, D, true),
                                product_space<S>(units, chunk_rows, H, true), Index(1)});
  // Steps too small to share run on one member, but the chunks' gradient products still take the
  // team when they are worth waking it for (as the forward's overlap): at B = 1, H = 256 they are
  // three quarters of the backward's multiply-adds. The other members take them while the first
  // runs the next chunk's steps; every product's result depends only on its data, so the bits are
  // those of a one-thread backward.
  const double product_work = double(N) * H * (H + D + (dx ? D : 0));
  const int threads = team_size(shared || product_work >= kMinOverlapWork);
  const Workspace<S> spaces(threads * space);

  // ---- the dh recurrence, the only sequential part. Phase q of it (q = 0 .. T) writes dz[T-1-q]:
  // q = 0 packs the panels W_hh[:, J] and writes dz[T-1] = dhs[T-1] * f'(hs[T-1]) (no product);
  // q > 0 writes dz[t-1] = (dhs[t-1] + dz[t] W_hh) * f'(hs[t-1]) with t = T - q, and at the very
  // end (t = 0) dh0 = dz[0] W_hh.
  const auto epilogue = [&](Index t) {  // of the phase that reads dz[t] (t > T - 1: the first)
    return t > 0 ? recurrence::BackwardEpilogue<S>{dhs + (t - 1) * step, hs + (t - 1) * step, dz(t - 1), H, f}
                 : recurrence::BackwardEpilogue<S>{nullptr, nullptr, dh0, H, f};
  };
  const auto last_step = [&](Index r0, Index nr, Index cb) {  // phase 0's part of rows r0.., block cb
    const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0), last = (T - 1) * step + r0 * H;
    const recurrence::BackwardEpilogue<S> epi{dhs + last, hs + last, dz(T - 1) + r0 * H, H, f};
    recurrence::block<S>(nullptr, nr, 0, H, nullptr, 0, j0, nc, epi);
  };
  // The steps of chunk k on one member: the tiles' own orders (one panel, zigzag), or Eigen.
  const auto steps_alone = [&](Index k) {
    const Index t0 = t0_of(k), t1 = t1_of(k);
    if (k == 0) {
      for (Index cb = 0; cb < col_blocks; ++cb) {
        const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
        if (panel && !one_panel) recurrence::pack_panel(panel[cb], kColBlock, W_hh, H, H, j0, nc, /*transpose=*/false);
        if (one_panel && cb == 0) recurrence::pack_panel(panel[0], width, W_hh, H, H, 0, H, /*transpose=*/false);
        last_step(0, B, cb);
      }
    }
    for (Index t = k == 0 ? T - 1 : t1; t > t0 || (t == 0 && t0 == 0); --t) {
      const auto epi = epilogue(t);
      const S* dz_t = dz(t);
      if (one_panel && (t & 1)) {
        recurrence::block<S, true, true>(dz_t, B, H, H, panel[0], width, 0, H, epi);
      } else if (one_panel) {
        recurrence::block(dz_t, B, H, H, panel[0], width, 0, H, epi);
      } else {
        for (Index i = 0; i < col_blocks; ++i) {
          const Index cb = zigzag(t, i, col_blocks);
          const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
          if (panel && (t & 1)) {  // rows in reverse (see zigzag)
            recurrence::block<S, true, true>(dz_t, B, H, H, panel[cb], kColBlock, j0, nc, epi);
          } else if (panel) {
            recurrence::block(dz_t, B, H, H, panel[cb], kColBlock, j0, nc, epi);
          } else {
            auto g = view(epi.out + j0, B, nc, H);
            if (epi.dh_out) g = view(epi.dh_out + j0, B, nc, H);
            else g.setZero();
            g.noalias() += view(dz_t, B, H, H) * view(W_hh + j0, H, nc, H);
            if (epi.h) recurrence::block<S>(nullptr, B, 0, H, nullptr, 0, j0, nc,
                                            recurrence::BackwardEpilogue<S>{epi.out, epi.h, epi.out, H, f});
          }
        }
      }
      if (t == 0) break;
    }
  };
  // Shared steps: task i of a phase is rows [r0, r0 + nr) of block cb (as in the forward).
  const Index rows = plan.rows, row_tasks = plan.row_tasks, n = plan.tasks;
  const Workspace<S> scratch(shared ? Index(threads) * rows * kColBlock : 0);
  const std::unique_ptr<Steps::Slot[]> step_slots(new Steps::Slot[size_t(shared ? n : 1)]);
  Steps steps(shared ? n : 1, step_slots.get());
  const auto shared_task = [&](Index q, Index i, S* scratch_m) {  // into scratch_m, or in place
    const Index cb = i / row_tasks, r0 = (i % row_tasks) * rows, nr = std::min(rows, B - r0);
    const Index j0 = cb * kColBlock, nc = std::min(kColBlock, H - j0);
    if (q == 0) {
      if (r0 == 0) recurrence::pack_panel(panel[cb], kColBlock, W_hh, H, H, j0, nc, /*transpose=*/false);
      return last_step(r0, nr, cb);
    }
    auto epi = epilogue(T - q);
    if (epi.dh_out) epi.dh_out += r0 * H, epi.h += r0 * H;
    if (scratch_m) epi.out = scratch_m, epi.ldo = kColBlock, epi.col0 = j0;
    else epi.out += r0 * H;
    recurrence::block(dz(T - q) + r0 * H, nr, H, H, panel[cb], kColBlock, j0, nc, epi);
  };
  // The last phase of chunk k's steps (the very last writes dh0).
  const auto last_phase_of = [&](Index k) { return k == chunks - 1 ? T : T - 1 - t0_of(k); };
  std::atomic<Index> stepped{0};  // chunks whose steps are done, when one member runs them
  const auto chunks_stepped = [&]() -> Index {
    if (!shared) return stepped.load(std::memory_order_acquire);
    const Index done = steps.phases_done();
    Index k = 0;
    while (k < chunks && last_phase_of(k) < done) ++k;
    return k;
  };

  // ---- the gradient products of chunk k: its rows of dx = dz W_xh, and its terms of
  // dW_xh = dz^T x, dW_hh = dz^T h_prev, db_h = column sums of dz, added to those of the chunks
  // done before it (the first chunk done, the sequence's last, writes them). A task's result
  // depends only on its data, so they are taken as members come free without changing a bit; a
  // chunk's tasks are taken once every task of the chunk before it is done, so that each term is
  // added in the same order.
  const std::unique_ptr<Tasks[]> products(new Tasks[size_t(chunks)]);
  const Index unit_tasks = blocks(H, kGradUnits);
  for (Index k = 0; k < chunks; ++k)
    products[k].reset(unit_tasks + (dx ? blocks((t1_of(k) - t0_of(k)) * B, kGradRows) : 0));
  const auto product_task = [&](Index k, Index task, S* mine) {
    const Index t0 = t0_of(k), rows_k = (t1_of(k) - t0) * B;
    const bool first = k == 0;
    const S* dz_c = dz(t0);
    if (task >= unit_tasks) {  // rows r0.. of the chunk's dx
      const Index r0 = (task - unit_tasks) * kGradRows, nr = std::min(kGradRows, rows_k - r0);
      product<S, false>(dx + (t0 * B + r0) * D, D, false, dz_c + r0 * H, H, nr, H, W_xh, D, D, mine);
      return;
    }
    const Index j0 = task * kGradUnits, nj = std::min(kGradUnits, H - j0);
    product<S, true>(dW_xh + j0 * D, D, !first, dz_c + j0, H, nj, rows_k, x + t0 * B * D, D, D, mine);
    // h_prev of step t is hs[t-1], and h0 for t = 0.
    if (t0 > 0) {
      product<S, true>(dW_hh + j0 * H, H, !first, dz_c + j0, H, nj, rows_k, hs + (t0 - 1) * step, H, H, mine);
    } else {
      product<S, true>(dW_hh + j0 * H, H, !first, dz_c + j0, H, nj, B, h0, H, H, mine);
      product<S, true>(dW_hh + j0 * H, H, true, dz_c + step + j0, H, nj, rows_k - B, hs, H, H, mine);
    }
    add_column_sums(db_h + j0, view(dz_c + j0, rows_k, nj, H), first);
  };

  // ---- the schedule. Chunk k's steps may start when the products of chunk k - 2 (which used its
  // buffer) are done; its products, when its steps and the products of chunk k - 1 are done. A
  // member runs steps when it can (they are the critical path), else takes products.
  const auto may_step = [&](Index k) { return k < chunks && (k < 2 || products[k - 2].done()); };
  const auto may_take = [&](Index k) {
    return k < chunks && chunks_stepped() > k && (k == 0 || products[k - 1].done()) && products[k].left();
  };
  job(threads, [&](Member& m) {
    S* const mine = spaces.get() + m.slot() * space;
    S* const scratch_m = shared && !m.alone() ? scratch.get() + m.slot() * rows * kColBlock : nullptr;
    const bool runs_steps = shared || m.slot() == 0;
    Index ks = 0, kp = 0;  // the next chunk this member steps, and whose products it looks at
    const auto skip_taken = [&] {
      while (kp < chunks && !products[kp].left()) ++kp;
    };
    const auto finished = [&] { return kp >= chunks && (!runs_steps || std::max(ks, chunks_stepped()) >= chunks); };
    const auto can_go_on = [&] {
      skip_taken();
      return finished() || (runs_steps && may_step(std::max(ks, chunks_stepped()))) || may_take(kp);
    };
    for (;;) {
      if (runs_steps) ks = std::max(ks, chunks_stepped());
      skip_taken();
      if (runs_steps && may_step(ks)) {
        if (!shared) {
          steps_alone(ks);
          stepped.store(ks + 1, std::memory_order_release);
          m.notify();
        } else {
          const Index last = last_phase_of(ks);
          for (Index q = std::max(ks == 0 ? 0 : T - t1_of(ks), steps.phases_done()); q <= last;
               q = std::max(q + 1, steps.phases_done())) {
            // Phase 0 packs the panels in place: it is waited for, not computed twice.
            const bool rescue = q > 0 && scratch_m;
            const bool in = steps.phase(m, q, rescue, [&](Index i) { shared_task(q, i, rescue ? scratch_m : nullptr); },
                                        [&](Index i) {
                                          const Index cb = i / row_tasks, r0 = (i % row_tasks) * rows;
                                          const Index j0 = cb * kColBlock;
                                          copy_rows(epilogue(T - q).out + r0 * H + j0, H, scratch_m, kColBlock,
                                                    std::min(rows, B - r0), std::min(kColBlock, H - j0));
                                        });
            if (!in) return;
          }
        }
        ++ks;
        continue;
      }
      if (may_take(kp)) {
        const Index k = kp;
        products[k].take(m, [&](Index task) { product_task(k, task, mine); });
        continue;
      }
      if (finished()) break;
      if (!m.wait(can_go_on)) return;
    }
    // The caller returns when every gradient is in place.
    if (m.slot() == 0) m.wait([&] { return products[chunks - 1].done() && chunks_stepped() == chunks; });
  });
}

template <typename S>
void output_forward(S* ys, const S* hs, const S* W_hy, const S* b_y, Index N, Index H, Index O,
                    OutputActivation g) {
  if (N == 0 || O == 0) return;
  const Index col_blocks = blocks(O, kColBlock);
  const bool packed = N >= kPackMinRows;
  const Panels<S> panel(H, O, packed);  // W_hy[J, :]^T
  Tasks packs(packed ? col_blocks : 0), row_blocks(blocks(N, kRowBlock));
  job(team_size(double(N) * H * O >= kMinParallelWork), [&](Member& m) {
    if (!for_tasks(m, packs, [&](Index cb) {
          const Index j0 = cb * kColBlock, nc = std::min(kColBlock, O - j0);
          recurrence::pack_panel(panel[cb], kColBlock, W_hy, H, H, j0, nc, /*transpose=*/true);
        }))
      return;
    for_tasks(m, row_blocks, [&](Index rb) {
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
  const Index unit_tasks = blocks(O, kGradUnits), row_tasks = blocks(N, kGradRows);
  Tasks derivatives(g != OutputActivation::Identity ? row_blocks : 0), products(unit_tasks + row_tasks);
  job(threads, [&](Member& m) {
    S* const mine = spaces.get() + m.slot() * space;
    // dz = dys * g'(ys), from the stored outputs (none for the identity).
    if (!for_tasks(m, derivatives, [&](Index rb) {
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
      }))
      return;
    // dhs = dz W_hy by rows, dW_hy = dz^T hs and db_y by output units, as in rnn_backward.
    for_tasks(m, products, [&](Index task) {
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
  Tasks tasks(row_blocks);
  job(team_size(double(N) * C >= kMinParallelWork), [&](Member& m) {
    for_tasks(m, tasks, [&](Index rb) {
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
        const S top = pointwise::max(l, C);
        const S z = pointwise::exp_shifted_sum(d, l, C, top);  // unnormalised probabilities, written once
        const std::int64_t k = targets[i];
        sum += double(w) * (double(top) + std::log(double(z)) - double(l[k]));  // logsumexp - logit
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
#if ELMAN_OPENMP
                                 _OPENMP,
#else
                                 0,
#endif
                                 kernels_for<float>(),
                                 kernels_for<double>(),
                                 &team::set_num_threads,
                                 &team::num_threads,
                                 &team::num_threads_source,
                                 &team::stats,
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
