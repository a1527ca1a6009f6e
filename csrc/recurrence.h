// The sequential part of an RNN: one step's product with the recurrent weights, fused with what
// comes before and after it, for one block of hidden units.
//
//   forward:  hs[t][:, J]  = f(pre[:, J] + h_prev W_hh[J, :]^T)        pre = x W_xh^T + b_h (hoisted)
//   backward: dz[t-1][:, J] = (dhs[t-1][:, J] + dz[t] W_hh[:, J]) * f'(hs[t-1][:, J])
//
// Both are C[B, J] = epilogue(init[B, J] + A[B, H] P[H, J]), with P a panel of W_hh packed once
// per sequence (W_hh[J, :]^T forward, W_hh[:, J] backward), so the weights are not repacked at
// every step as a general GEMM would. A register tile of MR rows x NP packets accumulates over k
// in registers; init, the activation and the store happen on those registers (no temporaries).
// The hoisted projection itself is the same product once for all steps (A = x, P = W_xh[J, :]^T,
// init = b_h, no activation: BiasEpilogue).
//
// How an element is summed depends only on the shapes (which tile it falls in; and for the
// one-panel forward step, whether the step's index is odd: see tile's kReverse), never on the
// thread count or the data's address: loads and stores are unaligned, the epilogue runs on whole
// packets (columns past the block are zero padding), partial packets go through a buffer.
#pragma once

#include <Eigen/Core>

#include <algorithm>

#include "elman.h"
#include "pointwise.h"

namespace elman::recurrence {

using pointwise::kLanes;
using pointwise::Packet;
namespace ei = Eigen::internal;

// Loads n <= L values (the rest zero) / stores the first n lanes: with a masked load / store where
// the build has one (float on AVX2 and AVX-512), else through a small buffer (a call to copy the
// values, and a store the next load cannot forward from: it costs a step of a short row dearly).
template <typename S>
constexpr bool kMasked = ei::unpacket_traits<Packet<S>>::masked_load_available &&
                         ei::unpacket_traits<Packet<S>>::masked_store_available;

template <typename S>
inline Packet<S> load_partial(const S* p, Index n) {
  if (n == kLanes<S>) return ei::ploadu<Packet<S>>(p);
  if constexpr (kMasked<S>) {
    using Mask = typename ei::unpacket_traits<Packet<S>>::mask_t;
    return ei::ploadu<Packet<S>>(p, Mask((1u << n) - 1));
  } else {
    alignas(64) S buf[kLanes<S>] = {};
    std::copy(p, p + n, buf);
    return ei::pload<Packet<S>>(buf);
  }
}
template <typename S>
inline void store_partial(S* p, const Packet<S>& v, Index n) {
  if (n == kLanes<S>) return ei::pstoreu(p, v);
  if constexpr (kMasked<S>) {
    using Mask = typename ei::unpacket_traits<Packet<S>>::mask_t;
    ei::pstoreu(p, v, Mask((1u << n) - 1));
  } else {
    alignas(64) S buf[kLanes<S>];
    ei::pstore(buf, v);
    std::copy(buf, buf + n, p);
  }
}

// Packs the panel P[K, J] (J = nc columns, padded with zeros to a whole number of packets, row
// stride ldp) from a row-major matrix W with rows ld apart: P[k, j] = W[j0 + j, k] when
// `transpose` (W_hh[J, :]^T for the forward recurrence, W_xh[J, :]^T for the input projection),
// else P[k, j] = W[k, j0 + j] (W_hh[:, J] for the backward). Only copies: no value changes.
// Columns past the last packet (up to ldp) are never read by the tiles and may be left unset.
template <typename S>
void pack_panel(S* P, Index ldp, const S* W, Index ld, Index K, Index j0, Index nc, bool transpose) {
  if (transpose) {
    // L x L squares through a register transpose, the edges too: rows of W past the block load as
    // zeros (they become the padding columns), columns past K with a partial load. A scalar loop
    // for the edges took most of the packing time at H = 100, where packing is ~15% of a forward.
    constexpr Index L = kLanes<S>;
    for (Index j = 0; j < nc; j += L) {
      const Index nj = std::min(L, nc - j), width = std::min(L, ldp - j);
      for (Index k = 0; k < K; k += L) {
        const Index nk = std::min(L, K - k);
        ei::PacketBlock<Packet<S>, L> square;
        for (Index r = 0; r < L; ++r)
          square.packet[r] = r < nj ? load_partial(W + (j0 + j + r) * ld + k, nk) : ei::pset1<Packet<S>>(S(0));
        ei::ptranspose(square);
        for (Index r = 0; r < nk; ++r) store_partial(P + (k + r) * ldp + j, square.packet[r], width);
      }
    }
    return;
  }
  for (Index k = 0; k < K; ++k) {
    std::copy(W + k * ld + j0, W + k * ld + j0 + nc, P + k * ldp);
    std::fill(P + k * ldp + nc, P + (k + 1) * ldp, S(0));
  }
}

// What surrounds the product: where acc starts and what happens to it before it is stored.
// The outputs of a block go either in place (ldo = H, col0 = 0) or, for a task that another
// member may compute too (team.h, Steps), into the member's scratch: rows ldo apart, column j of
// the block at out[j - col0].
template <typename S>
struct ForwardEpilogue {
  const S* pre;  // [B, H] row stride H: x W_xh^T + b_h for this step (may equal out)
  S* out;        // the new state: [B, H], or the block's columns of it
  Index H;
  Activation f;
  Index ldo = H, col0 = 0;
  Packet<S> init(Index i, Index j, Index n) const { return load_partial(pre + i * H + j, n); }
  void store(Index i, Index j, Index n, Packet<S> acc) const {
    store_partial(out + i * ldo + j - col0, pointwise::activate<S>(acc, f), n);
  }
};

// The hoisted input projection: out[:, J] = b[J] + x W_xh[J, :]^T, no activation.
template <typename S>
struct BiasEpilogue {
  const S* bias;  // [H]
  S* out;         // [rows, H]
  Index H;
  Packet<S> init(Index, Index j, Index n) const { return load_partial(bias + j, n); }
  void store(Index i, Index j, Index n, Packet<S> acc) const { store_partial(out + i * H + j, acc, n); }
};

// A plain product C (+)= A P, C[rows, :] with rows ldc apart: the backward's gradient GEMMs.
template <typename S>
struct SumEpilogue {
  S* out;
  Index ldc;
  bool accumulate;  // add to what out holds, else overwrite it
  Packet<S> init(Index i, Index j, Index n) const {
    return accumulate ? load_partial(out + i * ldc + j, n) : ei::pset1<Packet<S>>(S(0));
  }
  void store(Index i, Index j, Index n, Packet<S> acc) const { store_partial(out + i * ldc + j, acc, n); }
};

template <typename S>
struct BackwardEpilogue {
  const S* dh_out;  // [B, H] dhs[t-1], or null at t = 0 (then nothing is added)
  const S* h;       // [B, H] hs[t-1], or null at t = 0 (dh0 is not multiplied by f')
  S* out;           // [B, H] dz[t-1], or dh0 (or the block's columns: see ForwardEpilogue)
  Index H;
  Activation f;
  Index ldo = H, col0 = 0;
  Packet<S> init(Index i, Index j, Index n) const {
    return dh_out ? load_partial(dh_out + i * H + j, n) : ei::pset1<Packet<S>>(S(0));
  }
  void store(Index i, Index j, Index n, Packet<S> acc) const {
    if (h) acc = pointwise::times_derivative<S>(acc, load_partial(h + i * H + j, n), f);
    store_partial(out + i * ldo + j - col0, acc, n);
  }
};

// Rows i0..i0+MR, packets p0..p0+NP of the block starting at column j0 (nc valid columns);
// A[B, K] has rows H apart, P[K, ldp] is the block's panel. U > 1 splits the k-sum into U
// interleaved partial sums (added in a fixed order at the end): with few packets per row, one
// chain of dependent FMAs per packet would leave the FMA units waiting on their latency.
// kReverse: the same partial sums (term k goes to sum k % U), each taken from its last term to its
// first, so the panel is read from its end: a step that reads it after a forward one starts with
// the rows still in L1 from that step's end (a panel larger than L1 read in the same direction at
// every step misses on every row).
template <typename S, int MR, int NP, int U, bool kReverse = false, typename Epi>
inline void tile(const S* A, Index K, Index H, const S* P, Index ldp, Index i0, Index p0, Index j0,
                 Index nc, const Epi& epi) {
  constexpr Index L = kLanes<S>;
  Index n[NP];
  Packet<S> acc[U][MR][NP];
  for (int q = 0; q < NP; ++q) n[q] = std::min(L, nc - (p0 + q) * L);
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) {
      acc[0][r][q] = epi.init(i0 + r, j0 + (p0 + q) * L, n[q]);
      for (int u = 1; u < U; ++u) acc[u][r][q] = ei::pset1<Packet<S>>(S(0));
    }
  const S* w = P ? P + p0 * L : nullptr;
  const S* a = A ? A + i0 * H : nullptr;
  Index k = 0;
  if constexpr (kReverse) {
    const Index full = K - K % U;  // terms [full, K) are the partial sums' last ones
    for (Index kk = K - 1; kk >= full; --kk)
      for (int r = 0; r < MR; ++r) {
        const Packet<S> ark = ei::pset1<Packet<S>>(a[r * H + kk]);
        for (int q = 0; q < NP; ++q)
          acc[kk - full][r][q] = ei::pmadd(ark, ei::ploadu<Packet<S>>(w + kk * ldp + q * L), acc[kk - full][r][q]);
      }
    for (Index kb = full - U; kb >= 0; kb -= U)
      for (int u = U - 1; u >= 0; --u) {
        Packet<S> wk[NP];
        for (int q = 0; q < NP; ++q) wk[q] = ei::ploadu<Packet<S>>(w + (kb + u) * ldp + q * L);
        for (int r = 0; r < MR; ++r) {
          const Packet<S> ark = ei::pset1<Packet<S>>(a[r * H + kb + u]);
          for (int q = 0; q < NP; ++q) acc[u][r][q] = ei::pmadd(ark, wk[q], acc[u][r][q]);
        }
      }
    k = K;  // nothing left for the loops below
  }
  for (; k + U <= K; k += U, w += U * ldp) {
    for (int u = 0; u < U; ++u) {
      Packet<S> wk[NP];
      for (int q = 0; q < NP; ++q) wk[q] = ei::ploadu<Packet<S>>(w + u * ldp + q * L);
      for (int r = 0; r < MR; ++r) {
        const Packet<S> ark = ei::pset1<Packet<S>>(a[r * H + k + u]);
        for (int q = 0; q < NP; ++q) acc[u][r][q] = ei::pmadd(ark, wk[q], acc[u][r][q]);
      }
    }
  }
  for (int u = 0; k < K; ++k, ++u, w += ldp) {  // the last K % U terms
    for (int r = 0; r < MR; ++r) {
      const Packet<S> ark = ei::pset1<Packet<S>>(a[r * H + k]);
      for (int q = 0; q < NP; ++q) acc[u][r][q] = ei::pmadd(ark, ei::ploadu<Packet<S>>(w + q * L), acc[u][r][q]);
    }
  }
  for (int u = 1; u < U; ++u)
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NP; ++q) acc[0][r][q] = ei::padd(acc[0][r][q], acc[u][r][q]);
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) epi.store(i0 + r, j0 + (p0 + q) * L, n[q], acc[0][r][q]);
}

// One row, NP = 1..8 packets. kSplitK: with enough partial sums per packet to keep ~8 FMA chains
// going (the latency-bound B = 1 recurrence); else one sum per packet in k order, the arithmetic of
// the MR-row tiles, so that a row's result does not depend on which rows were computed with it.
template <typename S, bool kSplitK, bool kReverse, typename Epi>
inline void row_tile(Index np, const S* A, Index K, Index H, const S* P, Index ldp, Index i,
                     Index p0, Index j0, Index nc, const Epi& epi) {
  constexpr int s = kSplitK ? 1 : 0;  // U = 1 when not split
  constexpr bool R = kReverse;
  switch (np) {
    case 1: return tile<S, 1, 1, s ? 8 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    case 2: return tile<S, 1, 2, s ? 4 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    case 3: return tile<S, 1, 3, s ? 3 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    case 4: return tile<S, 1, 4, s ? 2 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    case 5: return tile<S, 1, 5, s ? 2 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    case 6: return tile<S, 1, 6, s ? 2 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    case 7: return tile<S, 1, 7, s ? 2 : 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
    default: return tile<S, 1, 8, 1, R>(A, K, H, P, ldp, i, p0, j0, nc, epi);
  }
}

// All B rows of one block of nc <= ldp columns starting at j0: C = epi(init + A P), where the
// product has K terms (K = H, or 0 for an epilogue alone) and rows of A are H apart. The tiling
// depends only on B and nc, so results do not depend on the thread count; with kSplitK false
// (see row_tile) they do not depend on B either.
// kReverse: every tile reads the panel from its end (see tile).
template <typename S, bool kSplitK = true, bool kReverse = false, typename Epi>
void block(const S* A, Index B, Index K, Index H, const S* P, Index ldp, Index j0, Index nc,
           const Epi& epi) {
  constexpr bool R = kReverse;
  constexpr Index L = kLanes<S>;
  constexpr int MR = 6, NP = 2;  // 12 accumulators: a 6 x 2-packet tile (BLIS's AVX2 shape)
  const Index packets = (nc + L - 1) / L;
  Index i = 0;
  for (; i + MR <= B; i += MR) {
    Index p = 0;
    for (; p + NP <= packets; p += NP) tile<S, MR, NP, 1, R>(A, K, H, P, ldp, i, p, j0, nc, epi);
    for (; p < packets; ++p) tile<S, MR, 1, 1, R>(A, K, H, P, ldp, i, p, j0, nc, epi);
  }
  // The 1-5 rows left over in pairs: a single row loads a packet of weights for every FMA, a pair
  // for every two (at B = 32 the two single rows of each block took ~15% of a step). Their k-sums
  // run in k order, as in the 6-row tiles.
  for (; i + 2 <= B; i += 2) {
    Index p = 0;
    for (; p + 4 <= packets; p += 4) tile<S, 2, 4, 1, R>(A, K, H, P, ldp, i, p, j0, nc, epi);
    for (; p < packets; ++p) tile<S, 2, 1, 1, R>(A, K, H, P, ldp, i, p, j0, nc, epi);
  }
  for (; i < B; ++i)  // single rows (the one row of B = 1, or the last of an odd remainder)
    for (Index p = 0; p < packets; p += 8)
      row_tile<S, kSplitK, R>(std::min<Index>(8, packets - p), A, K, H, P, ldp, i, p, j0, nc, epi);
}

}  // namespace elman::recurrence
