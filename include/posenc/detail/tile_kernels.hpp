// posenc internals: register-blocked micro-kernels of the attention kernel, written with
// Eigen's packet primitives (AVX-512, AVX, SSE, NEON, or plain scalars when Eigen does not
// vectorise). Both work on row-major tiles without packing Q or V:
//   qk_tile:  S[bi, nb*P] = scale * Q[bi, Dh] * KT[Dh, nb*P]   (KT: a packed, transposed key tile)
//   pv_tile:  A[bi, Dh]   = diag(alpha) A + P[bi, bj] * V[bj, Dh]  (or A += P V)
// Each keeps an R x NP block of packets in registers (R rows, NP packets of columns).
#pragma once

#include <Eigen/Core>
#include <algorithm>

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

}  // namespace detail
POSENC_NAMESPACE_END
