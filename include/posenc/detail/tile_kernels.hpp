// posenc internals: register-blocked micro-kernels of the attention kernel, written with
// Eigen's packet primitives (AVX-512, AVX, SSE, NEON, or plain scalars when Eigen does not
// vectorise). Both work on row-major tiles without packing Q or V:
//   qk_tile:  S[bi, nb*P] = scale * Q[bi, Dh] * KT[Dh, nb*P]   (KT: a packed, transposed key tile)
//   pv_tile:  A[bi, Dh]   = diag(alpha) A + P[bi, bj] * V[bj, Dh]  (or A += P V)
//   ptv_tile: A[m, Dh]   += scale P[n, m]^T V[n, Dh]
// and the backward pass's row passes over a tile (exp_rows_from_lse, ds_rows).
// Each keeps an R x NP block of packets in registers (R rows, NP packets of columns).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <limits>
#include <type_traits>

#include "../types.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

template <class T>
struct tile_packet {
  using type = typename Eigen::internal::packet_traits<T>::type;
  static constexpr int size = Eigen::internal::unpacket_traits<type>::size;
#if defined(EIGEN_VECTORIZE_AVX512) || defined(__aarch64__)
  static constexpr int rows = 6, packets = 4;  // 24 accumulators of 32 registers
#else
  static constexpr int rows = 4, packets = 2;  // 8 accumulators of 16 registers
#endif
};

// S[r, c*P + l] = scale * sum_d q[r*ldq + d] kt[d*ldk + c*P + l],  r < R, c < NP
template <class T, int R, int NP>
inline void qk_block(const T* q, Index ldq, const T* kt, Index ldk, Index dh, T scale, T* s,
                     Index lds) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Packet acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      acc[r][c] = pset1<Packet>(T(0));
  for (Index d = 0; d < dh; ++d) {
    Packet kv[NP];
    for (int c = 0; c < NP; ++c)
      kv[c] = ploadu<Packet>(kt + d * ldk + c * P);
    for (int r = 0; r < R; ++r) {
      const Packet b = pset1<Packet>(q[r * ldq + d]);
      for (int c = 0; c < NP; ++c)
        acc[r][c] = pmadd(b, kv[c], acc[r][c]);
    }
  }
  const Packet sc = pset1<Packet>(scale);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      pstoreu(s + r * lds + c * P, pmul(acc[r][c], sc));
}

// a[r, c*P + l] = alpha[r] a[r, c*P + l] + sum_j p[r*ldp + j] v[j*ldv + c*P + l]
template <class T, int R, int NP>
inline void pv_block(const T* p, Index ldp, Index bj, const T* v, Index ldv, const T* alpha, T* a,
                     Index lda) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Packet acc[R][NP];
  for (int r = 0; r < R; ++r) {
    if (alpha) {
      const Packet al = pset1<Packet>(alpha[r]);
      for (int c = 0; c < NP; ++c)
        acc[r][c] = pmul(ploadu<Packet>(a + r * lda + c * P), al);
    } else {
      for (int c = 0; c < NP; ++c)
        acc[r][c] = ploadu<Packet>(a + r * lda + c * P);
    }
  }
  for (Index j = 0; j < bj; ++j) {
    Packet vv[NP];
    for (int c = 0; c < NP; ++c)
      vv[c] = ploadu<Packet>(v + j * ldv + c * P);
    for (int r = 0; r < R; ++r) {
      const Packet b = pset1<Packet>(p[r * ldp + j]);
      for (int c = 0; c < NP; ++c)
        acc[r][c] = pmadd(b, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      pstoreu(a + r * lda + c * P, acc[r][c]);
}

// Run-time (rows, packets) -> the instantiation, for the edges of a tile.
template <class T, int R, int NP = tile_packet<T>::packets>
inline void qk_dispatch(int rows, int np, const T* q, Index ldq, const T* kt, Index ldk, Index dh,
                        T scale, T* s, Index lds) {
  if constexpr (R > 1) {
    if (rows < R) return qk_dispatch<T, R - 1, NP>(rows, np, q, ldq, kt, ldk, dh, scale, s, lds);
  }
  if constexpr (NP > 1) {
    if (np < NP) return qk_dispatch<T, R, NP - 1>(rows, np, q, ldq, kt, ldk, dh, scale, s, lds);
  }
  qk_block<T, R, NP>(q, ldq, kt, ldk, dh, scale, s, lds);
}

template <class T, int R, int NP = tile_packet<T>::packets>
inline void pv_dispatch(int rows, int np, const T* p, Index ldp, Index bj, const T* v, Index ldv,
                        const T* alpha, T* a, Index lda) {
  if constexpr (R > 1) {
    if (rows < R) return pv_dispatch<T, R - 1, NP>(rows, np, p, ldp, bj, v, ldv, alpha, a, lda);
  }
  if constexpr (NP > 1) {
    if (np < NP) return pv_dispatch<T, R, NP - 1>(rows, np, p, ldp, bj, v, ldv, alpha, a, lda);
  }
  pv_block<T, R, NP>(p, ldp, bj, v, ldv, alpha, a, lda);
}

// The largest cols[r] over rows [r0, r0 + rows), or bj without cols.
inline Index block_cols(const Index* cols, Index r0, int rows, Index bj) {
  if (!cols) return bj;
  Index c = 0;
  for (int r = 0; r < rows; ++r)
    c = std::max(c, cols[r0 + r]);
  return c;
}

/// s [bi, ceil(bj/P)*P] (row stride lds) = scale * q [bi, dh] (row stride ldq) * kt, where kt is
/// [dh, >= ceil(bj/P)*P] with row stride ldk (columns past bj are padding). With cols, row i
/// needs only its first cols[i] scores (a causal diagonal tile): blocks of packets past every
/// row's need are set to 0 instead of computed.
template <class T>
void qk_tile(const T* q, Index ldq, Index bi, const T* kt, Index ldk, Index bj, Index dh, T scale,
             T* s, Index lds, const Index* cols = nullptr) {
  constexpr int P = tile_packet<T>::size, R = tile_packet<T>::rows, NP = tile_packet<T>::packets;
  const Index npk = (bj + P - 1) / P;
  for (Index c0 = 0; c0 < npk; c0 += NP) {
    const int np = static_cast<int>(std::min<Index>(NP, npk - c0));
    for (Index r0 = 0; r0 < bi; r0 += R) {
      const int rows = static_cast<int>(std::min<Index>(R, bi - r0));
      if (c0 * P >= block_cols(cols, r0, rows, bj)) {
        for (int r = 0; r < rows; ++r)
          std::fill(s + (r0 + r) * lds + c0 * P, s + (r0 + r) * lds + (c0 + np) * P, T(0));
        continue;
      }
      qk_dispatch<T, R>(rows, np, q + r0 * ldq, ldq, kt + c0 * P, ldk, dh, scale,
                        s + r0 * lds + c0 * P, lds);
    }
  }
}

/// a [bi, dh] = diag(alpha) a + p [bi, bj] v [bj, dh] (alpha null: a += p v); dh must be a
/// multiple of the packet size. With cols, p[i, j] = 0 for j >= cols[i], and those terms are
/// skipped.
template <class T>
void pv_tile(const T* p, Index ldp, Index bi, Index bj, const T* v, Index ldv, Index dh,
             const T* alpha, T* a, Index lda, const Index* cols = nullptr) {
  constexpr int P = tile_packet<T>::size, R = tile_packet<T>::rows, NP = tile_packet<T>::packets;
  const Index npd = dh / P;
  for (Index c0 = 0; c0 < npd; c0 += NP) {
    const int np = static_cast<int>(std::min<Index>(NP, npd - c0));
    for (Index r0 = 0; r0 < bi; r0 += R) {
      const int rows = static_cast<int>(std::min<Index>(R, bi - r0));
      pv_dispatch<T, R>(rows, np, p + r0 * ldp, ldp, block_cols(cols, r0, rows, bj), v + c0 * P,
                        ldv, alpha ? alpha + r0 : nullptr, a + r0 * lda + c0 * P, lda);
    }
  }
}

// a[r, c*P + l] += scale sum_k p[k*ldp + r] v[k*ldv + c*P + l]: pv_block on the transpose of p
template <class T, int R, int NP>
inline void ptv_block(const T* p, Index ldp, Index n, const T* v, Index ldv, T scale, T* a,
                      Index lda) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Packet acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      acc[r][c] = pset1<Packet>(T(0));
  for (Index k = 0; k < n; ++k) {
    Packet vv[NP];
    for (int c = 0; c < NP; ++c)
      vv[c] = ploadu<Packet>(v + k * ldv + c * P);
    for (int r = 0; r < R; ++r) {
      const Packet b = pset1<Packet>(p[k * ldp + r]);
      for (int c = 0; c < NP; ++c)
        acc[r][c] = pmadd(b, vv[c], acc[r][c]);
    }
  }
  const Packet sc = pset1<Packet>(scale);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      pstoreu(a + r * lda + c * P, pmadd(acc[r][c], sc, ploadu<Packet>(a + r * lda + c * P)));
}

template <class T, int R, int NP = tile_packet<T>::packets>
inline void ptv_dispatch(int rows, int np, const T* p, Index ldp, Index n, const T* v, Index ldv,
                         T scale, T* a, Index lda) {
  if constexpr (R > 1) {
    if (rows < R) return ptv_dispatch<T, R - 1, NP>(rows, np, p, ldp, n, v, ldv, scale, a, lda);
  }
  if constexpr (NP > 1) {
    if (np < NP) return ptv_dispatch<T, R, NP - 1>(rows, np, p, ldp, n, v, ldv, scale, a, lda);
  }
  ptv_block<T, R, NP>(p, ldp, n, v, ldv, scale, a, lda);
}

/// a [m, dh] += scale p^T v for p [n, m] (row stride ldp) and v [n, dh]: the backward pass's
/// dV += P^T dO and dK += scale dS^T Q on the tiles as they are (no transposed copy, no
/// packing); dh must be a multiple of the packet size.
template <class T>
void ptv_tile(const T* p, Index ldp, Index n, Index m, const T* v, Index ldv, Index dh, T scale,
              T* a, Index lda) {
  constexpr int P = tile_packet<T>::size, R = tile_packet<T>::rows, NP = tile_packet<T>::packets;
  const Index npd = dh / P;
  for (Index c0 = 0; c0 < npd; c0 += NP) {
    const int np = static_cast<int>(std::min<Index>(NP, npd - c0));
    for (Index r0 = 0; r0 < m; r0 += R)
      ptv_dispatch<T, R>(static_cast<int>(std::min<Index>(R, m - r0)), np, p + r0, ldp, n,
                         v + c0 * P, ldv, scale, a + r0 * lda + c0 * P, lda);
  }
}

/// The backward pass's probabilities, in place on a tile s [bi, bj] (row stride lds): P_ij =
/// e^max(S_ij - lse_i, -64) on each row's first cols[i] entries (all bj when cols is null), 0
/// after them and in rows with lse_i = +inf (they see no key); lse_i = lse[i]. Written on raw
/// rows: Eigen's nested row and block expressions, inlined into the kernel's loop, cost more
/// than the row's arithmetic.
template <class T>
void exp_rows_from_lse(T* s, Index lds, Index bi, Index bj, const Index* cols, const T* lse) {
  using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  for (Index i = 0; i < bi; ++i) {
    T* row = s + i * lds;
    const Index ci = lse[i] == std::numeric_limits<T>::infinity() ? 0 : cols ? cols[i] : bj;
    if (ci > 0) {
      Row r(row, ci);
      r = (r - lse[i]).max(T(-64)).exp();
    }
    std::fill(row + ci, row + bj, T(0));
  }
}

/// dS = P o (dP - D_i) in place in dp [bi, bj] on each row's first cols[i] entries (all bj
/// when cols is null), 0 after them; D_i = d[i], p and dp with row stride ld.
template <class T>
void ds_rows(const T* p, T* dp, Index ld, Index bi, Index bj, const Index* cols, const T* d) {
  using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;
  for (Index i = 0; i < bi; ++i) {
    const Index ci = cols ? cols[i] : bj;
    T* row = dp + i * ld;
    if (ci > 0) {
      Row r(row, ci);
      r = ConstRow(p + i * ld, ci) * (r - d[i]);
    }
    std::fill(row + ci, row + bj, T(0));
  }
}

// The band products of a relative-embedding term's gradient: a tile's weights w[a, c]
// = ds[a * rs + c * cs] (a < na, c < nc; (rs, cs) = (lds, 1) reads dS, (1, lds) its transpose),
// one table row per distance index u = a - c + nc - 1 in [0, na + nc - 1), tab rows u read with
// stride ldt (negative: the rows run backwards).
//
// band_rows_block: x[a] += scale sum_c w[a, c] tab[a - c + nc - 1] for the R rows a0 + r (x,
// ds and tab already offset to row a0, to its table row u = a0, and to the block's packets):
// R x NP accumulators, one pass over the R + nc - 1 table rows the block touches; the first
// and last R - 1 of them reach only some of the rows.
template <class T, int R, int NP>
inline void band_rows_block(const T* ds, Index rs, Index cs, Index nc, const T* tab, Index ldt,
                            T scale, T* x, Index ldx) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Packet acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      acc[r][c] = pset1<Packet>(T(0));
  // table row u feeds row r through c = r + nc - 1 - u, valid when 0 <= c < nc
  const auto step = [&](Index u, auto edge) {
    Packet tv[NP];
    for (int c = 0; c < NP; ++c)
      tv[c] = ploadu<Packet>(tab + u * ldt + c * P);
    for (int r = 0; r < R; ++r) {
      const Index col = r + nc - 1 - u;
      if constexpr (decltype(edge)::value) {
        if (col < 0 || col >= nc) continue;
      }
      const Packet b = pset1<Packet>(ds[r * rs + col * cs]);
      for (int c = 0; c < NP; ++c)
        acc[r][c] = pmadd(b, tv[c], acc[r][c]);
    }
  };
  const Index nu = R + nc - 1, full_lo = std::min<Index>(R - 1, nu),
              full_hi = std::max(full_lo, nc);
  for (Index u = 0; u < full_lo; ++u)
    step(u, std::true_type{});
  for (Index u = full_lo; u < full_hi; ++u)
    step(u, std::false_type{});
  for (Index u = full_hi; u < nu; ++u)
    step(u, std::true_type{});
  const Packet sc = pset1<Packet>(scale);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      pstoreu(x + r * ldx + c * P, pmadd(acc[r][c], sc, ploadu<Packet>(x + r * ldx + c * P)));
}

// band_table_block: tab[u] += scale sum_a w[a, a + nc - 1 - u] x[a] for the R distance
// indices u0 + r (tab offset to row u0 and the block's packets; x, ds not offset): one pass
// over the rows a of x that reach the block.
template <class T, int R, int NP>
inline void band_table_block(const T* ds, Index rs, Index cs, Index na, Index nc, Index u0,
                             const T* x, Index ldx, T scale, T* tab, Index ldt) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Packet acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      acc[r][c] = pset1<Packet>(T(0));
  // row a feeds distance u0 + r through c = a + nc - 1 - u0 - r, valid when 0 <= c < nc
  const auto step = [&](Index a, auto edge) {
    Packet xv[NP];
    for (int c = 0; c < NP; ++c)
      xv[c] = ploadu<Packet>(x + a * ldx + c * P);
    const Index c0 = a + nc - 1 - u0;
    for (int r = 0; r < R; ++r) {
      const Index col = c0 - r;
      if constexpr (decltype(edge)::value) {
        if (col < 0 || col >= nc) continue;
      }
      const Packet b = pset1<Packet>(ds[a * rs + col * cs]);
      for (int c = 0; c < NP; ++c)
        acc[r][c] = pmadd(b, xv[c], acc[r][c]);
    }
  };
  // rows reaching some of the block: a in [u0 - nc + 1, u0 + R - 1]; all of it:
  // a in [u0 + R - nc, u0]
  const Index lo = std::max<Index>(0, u0 - nc + 1), hi = std::min<Index>(na, u0 + R);
  const Index full_lo = std::clamp<Index>(u0 + R - nc, lo, hi);
  const Index full_hi = std::clamp<Index>(u0 + 1, full_lo, hi);
  for (Index a = lo; a < full_lo; ++a)
    step(a, std::true_type{});
  for (Index a = full_lo; a < full_hi; ++a)
    step(a, std::false_type{});
  for (Index a = full_hi; a < hi; ++a)
    step(a, std::true_type{});
  const Packet sc = pset1<Packet>(scale);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NP; ++c)
      pstoreu(tab + r * ldt + c * P, pmadd(acc[r][c], sc, ploadu<Packet>(tab + r * ldt + c * P)));
}

template <class T, int R, int NP = tile_packet<T>::packets>
inline void band_rows_dispatch(int rows, int np, const T* ds, Index rs, Index cs, Index nc,
                               const T* tab, Index ldt, T scale, T* x, Index ldx) {
  if constexpr (R > 1) {
    if (rows < R)
      return band_rows_dispatch<T, R - 1, NP>(rows, np, ds, rs, cs, nc, tab, ldt, scale, x, ldx);
  }
  if constexpr (NP > 1) {
    if (np < NP)
      return band_rows_dispatch<T, R, NP - 1>(rows, np, ds, rs, cs, nc, tab, ldt, scale, x, ldx);
  }
  band_rows_block<T, R, NP>(ds, rs, cs, nc, tab, ldt, scale, x, ldx);
}

template <class T, int R, int NP = tile_packet<T>::packets>
inline void band_table_dispatch(int rows, int np, const T* ds, Index rs, Index cs, Index na,
                                Index nc, Index u0, const T* x, Index ldx, T scale, T* tab,
                                Index ldt) {
  if constexpr (R > 1) {
    if (rows < R)
      return band_table_dispatch<T, R - 1, NP>(rows, np, ds, rs, cs, na, nc, u0, x, ldx, scale, tab,
                                               ldt);
  }
  if constexpr (NP > 1) {
    if (np < NP)
      return band_table_dispatch<T, R, NP - 1>(rows, np, ds, rs, cs, na, nc, u0, x, ldx, scale, tab,
                                               ldt);
  }
  band_table_block<T, R, NP>(ds, rs, cs, na, nc, u0, x, ldx, scale, tab, ldt);
}

/// The gradient of a tile's content-by-position term with one table row per distance:
/// for s[a, c] += scale y_a . tab[a - c + nc - 1] (a < na, c < nc; y: the tile's queries, or
/// its keys with dS read transposed), given w[a, c] = dL/ds = ds[a rs + c cs],
///   dy[a] += scale sum_c w[a, c] tab[a - c + nc - 1],
///   dtab[u] += scale sum_{a - c + nc - 1 = u} w[a, c] y[a],
/// tab / dtab rows u at stride ldt / lddt (either may be negative), dh a multiple of the packet
/// size. Exactly na nc dh multiply-adds for each, no gathered copy of the band.
template <class T>
void band_products(const T* ds, Index rs, Index cs, Index na, Index nc, const T* y, Index ldy,
                   const T* tab, Index ldt, Index dh, T scale, T* dy, Index lddy, T* dtab,
                   Index lddt) {
  constexpr int P = tile_packet<T>::size, R = tile_packet<T>::rows, NP = tile_packet<T>::packets;
  const Index npd = dh / P, nu = na + nc - 1;
  for (Index c0 = 0; c0 < npd; c0 += NP) {
    const int np = static_cast<int>(std::min<Index>(NP, npd - c0));
    for (Index a0 = 0; a0 < na; a0 += R)
      band_rows_dispatch<T, R>(static_cast<int>(std::min<Index>(R, na - a0)), np, ds + a0 * rs, rs,
                               cs, nc, tab + a0 * ldt + c0 * P, ldt, scale, dy + a0 * lddy + c0 * P,
                               lddy);
    for (Index u0 = 0; u0 < nu; u0 += R)
      band_table_dispatch<T, R>(static_cast<int>(std::min<Index>(R, nu - u0)), np, ds, rs, cs, na,
                                nc, u0, y + c0 * P, ldy, scale, dtab + u0 * lddt + c0 * P, lddt);
  }
}

}  // namespace detail
POSENC_NAMESPACE_END
