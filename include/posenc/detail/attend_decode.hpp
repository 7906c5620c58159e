// posenc internals: the attention core for a few queries against many cached keys (decoding),
// declared in attention.hpp (whose visibility rules and score-bias helpers it uses), which
// includes this header at its end.
//
// A decoding step reads every cached key and value once and does a few multiply-adds per
// element, so it runs at memory bandwidth if K and V stream through once: each block of keys
// is read for all key/value heads in turn (one pass over a token-major cache), its key rows
// feed every query row of the head's group (grouped-query heads share the read), and the key
// range is split into fixed spans whose partial softmax states (running max m, sum l, and
// sum p V) are merged at the end, as flash-decoding does (Dao et al. 2023). Spans are
// handed to threads round-robin and merged in span order, so one input gives one result
// bit for bit whatever the thread count.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../attention.hpp"
#include "half_storage.hpp"
#include "tile_kernels.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

// Asks for the n values at p to be brought into the cache ahead of their use (one request per
// 64-byte line; a hint without effect where the compiler has no prefetch builtin).
template <class S>
inline void prefetch_values(const S* p, Index n) {
#if defined(__GNUC__) || defined(__clang__)
  const char* c = reinterpret_cast<const char*>(p);
  const Index bytes = n * static_cast<Index>(sizeof(S));
  for (Index b = 0; b < bytes; b += 64)
    __builtin_prefetch(c + b);
#else
  (void)p;
  (void)n;
#endif
}

// out[r] = scale * q_r . k for the R rows q + r * ldq, over dh (packets, then a scalar tail)
template <class T, int R, class S>
inline void decode_dots(const T* q, Index ldq, const S* k, Index dh, T scale, T* out, Index ldo) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Packet acc[R];
  for (int r = 0; r < R; ++r)
    acc[r] = pset1<Packet>(T(0));
  Index c = 0;
  for (; c + P <= dh; c += P) {
    const Packet kv = load_widened<T>(k + c);
    for (int r = 0; r < R; ++r)
      acc[r] = pmadd(ploadu<Packet>(q + r * ldq + c), kv, acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    T sum = predux(acc[r]);
    for (Index cc = c; cc < dh; ++cc)
      sum += q[r * ldq + cc] * static_cast<T>(k[cc]);
    out[r * ldo] = scale * sum;
  }
}

template <class T, int R = 8, class S>
inline void decode_dots_dispatch(int rows, const T* q, Index ldq, const S* k, Index dh, T scale,
                                 T* out, Index ldo) {
  if constexpr (R > 1) {
    if (rows < R) return decode_dots_dispatch<T, R - 1>(rows, q, ldq, k, dh, scale, out, ldo);
  }
  decode_dots<T, R>(q, ldq, k, dh, scale, out, ldo);
}

// acc[r] += sum_j p[r * ldp + j] v_j for the R rows acc + r * lda and bj keys v + j * ldv,
// four keys per pass over a row's accumulator
template <class T, int R, class S>
inline void decode_pv(const T* p, Index ldp, Index bj, const S* v, Index ldv, Index dh, T* acc,
                      Index lda) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  constexpr int P = tile_packet<T>::size;
  Index j = 0;
  for (; j + 4 <= bj; j += 4) {
    const S* v0 = v + j * ldv;
    Packet p0[R], p1[R], p2[R], p3[R];
    for (int r = 0; r < R; ++r) {
      p0[r] = pset1<Packet>(p[r * ldp + j]);
      p1[r] = pset1<Packet>(p[r * ldp + j + 1]);
      p2[r] = pset1<Packet>(p[r * ldp + j + 2]);
      p3[r] = pset1<Packet>(p[r * ldp + j + 3]);
    }
    Index c = 0;
    for (; c + P <= dh; c += P) {
      const Packet a0 = load_widened<T>(v0 + c), a1 = load_widened<T>(v0 + ldv + c),
                   a2 = load_widened<T>(v0 + 2 * ldv + c), a3 = load_widened<T>(v0 + 3 * ldv + c);
      for (int r = 0; r < R; ++r) {
        T* o = acc + r * lda + c;
        Packet x = ploadu<Packet>(o);
        x = pmadd(p0[r], a0, x);
        x = pmadd(p1[r], a1, x);
        x = pmadd(p2[r], a2, x);
        x = pmadd(p3[r], a3, x);
        pstoreu(o, x);
      }
    }
    for (; c < dh; ++c)
      for (int r = 0; r < R; ++r)
        acc[r * lda + c] += p[r * ldp + j] * static_cast<T>(v0[c]) +
                            p[r * ldp + j + 1] * static_cast<T>(v0[ldv + c]) +
                            p[r * ldp + j + 2] * static_cast<T>(v0[2 * ldv + c]) +
                            p[r * ldp + j + 3] * static_cast<T>(v0[3 * ldv + c]);
  }
  for (; j < bj; ++j)
    for (int r = 0; r < R; ++r) {
      const T pj = p[r * ldp + j];
      const S* vj = v + j * ldv;
      T* o = acc + r * lda;
      for (Index c = 0; c < dh; ++c)
        o[c] += pj * static_cast<T>(vj[c]);
    }
}

template <class T, int R = 8, class S>
inline void decode_pv_dispatch(int rows, const T* p, Index ldp, Index bj, const S* v, Index ldv,
                               Index dh, T* acc, Index lda) {
  if constexpr (R > 1) {
    if (rows < R) return decode_pv_dispatch<T, R - 1>(rows, p, ldp, bj, v, ldv, dh, acc, lda);
  }
  decode_pv<T, R>(p, ldp, bj, v, ldv, dh, acc, lda);
}

/// The partial softmax state of one span for every (head, query) row: m, l and acc = sum p V.
template <class T>
struct DecodeSpanState {
  Vector<T> m, l;
  Matrix<T> acc;  // [H Nq, Dh], row h Nq + i
};

/// attend_core for nq <= decode_tiles<T>::max_queries (the same arguments and results, lse
/// included); every visibility rule, soft-cap, sinks and encoder hook (score bias, value term)
/// as the tiled kernel applies them.
template <class E, class S>
void attend_decode(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
                   const ConstMatrixRef<S>& k, const ConstMatrixRef<S>& v, const Positions& qpos,
                   const Positions& kpos, const AttendOptions<typename E::Scalar>& opt,
                   MatrixRef<typename E::Scalar> out, typename E::Scalar* lse) {
  using T = typename E::Scalar;
  using RowArrayMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  constexpr bool has_bias = encoder_traits<E>::biases_scores;
  constexpr bool has_values = adds_values<E>();
  const Index heads = opt.heads, kv_heads = opt.kv_heads == 0 ? opt.heads : opt.kv_heads;
  const Index nq = q.rows(), nk = k.rows(), dh = q.cols() / heads, group = heads / kv_heads;
  const T scale = opt.scale ? *opt.scale : static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));
  constexpr Index B = decode_tiles<T>::block, span = decode_tiles<T>::span;
  const Index rows = heads * nq, spans = (nk + span - 1) / span;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cutoff = exp_cutoff<T>();
  const bool capped = opt.softcap.has_value();
  const T cap = capped ? *opt.softcap : T(1);
  VisibilityRule rule{opt.visibility, !opt.query_segments.empty(), opt.query_segments.data(),
                      opt.key_segments.data()};
  const BlockRange qr = block_range(qpos, opt.query_segments, 0, nq);
  const auto bias = make_score_bias(enc, qpos, kpos, heads, dh, scale);
  const S* kdata = k.data();
  const S* vdata = v.data();
  // Keys kept in half precision are widened block by block for an encoder's score bias,
  // whose hook takes float rows (the scores then read the widened block too).
  constexpr bool widen_keys = has_bias && !std::is_same<S, T>::value;
  const T* qdata = q.data();
  const Index ldk = k.outerStride(), ldv = v.outerStride(), ldq = q.outerStride();

  // Rows of K and V requested ahead (about 8 KiB of the stream) where a row is shorter than
  // 4 KiB: measured at N 32768, H 32, Dh 128, that lifts bf16 at H_kv 8 (2 KiB rows) from
  // 0.45-0.49 to 0.55-0.56 of the read bandwidth at 1 thread and 0.44-0.47 to 0.58-0.72 at 2,
  // but slows the longer rows (H_kv 32, and f32 at H_kv 8), which the hardware already
  // streams: 0 there (no requests).
  const auto rows_ahead = [](Index ld) {
    const Index bytes = std::max<Index>(1, ld * static_cast<Index>(sizeof(S)));
    return bytes < 4096 ? std::max<Index>(1, 8192 / bytes) : Index(0);
  };
  const Index ahead_k = rows_ahead(ldk), ahead_v = rows_ahead(ldv);
  std::vector<DecodeSpanState<T>> state(static_cast<std::size_t>(spans));
  parallel_region(spans > 1 && nk * q.cols() > 262144, 0, [&] {
    // scores of one block, row h Nq + i (a head's rows are one [Nq, B] tile for its hooks)
    Matrix<T> s(rows, B);
    Matrix<T> kwide(widen_keys ? B : 0, widen_keys ? k.cols() : 0);
#if defined(_OPENMP)
#pragma omp for schedule(static, 1)
#endif
    for (Index sp = 0; sp < spans; ++sp) {
      DecodeSpanState<T>& st = state[static_cast<std::size_t>(sp)];
      st.m = Vector<T>::Constant(rows, neg_inf);
      st.l = Vector<T>::Zero(rows);
      st.acc = Matrix<T>::Zero(rows, dh);
      const Index end = std::min(nk, (sp + 1) * span);
      for (Index j0 = sp * span; j0 < end; j0 += B) {
        const Index bj = std::min(B, end - j0);
        bool only_causal = false;
        const int seen =
            rule.classify(qr, block_range(kpos, opt.key_segments, j0, bj), only_causal);
        if (seen == 0) continue;
        // S = scale Q K^T: key row by key row, all key/value heads in turn (the cache is read
        // in its order), each head's slice feeding every query row of its group (one query:
        // the group's heads are consecutive rows dh apart)
        const auto scores = [&](const auto* kbase, Index ld) {
          for (Index j = 0; j < bj; ++j) {
            const auto* krow = kbase + j * ld;
            // the head's slice ahead_k rows on, requested while this row is computed
            const bool fetch = !widen_keys && ahead_k > 0 && j0 + j + ahead_k < nk;
            for (Index g = 0; g < kv_heads; ++g) {
              const auto* kr = krow + g * dh;
              if (fetch) prefetch_values(kr + ahead_k * ld, dh);
              if (nq == 1) {
                for (Index hl = 0; hl < group; hl += 8)
                  decode_dots_dispatch<T>(static_cast<int>(std::min<Index>(8, group - hl)),
                                          qdata + (g * group + hl) * dh, dh, kr, dh, scale,
                                          s.data() + (g * group + hl) * B + j, B);
                continue;
              }
              for (Index hl = 0; hl < group; ++hl) {
                const Index h = g * group + hl;
                for (Index i = 0; i < nq; i += 8)
                  decode_dots_dispatch<T>(static_cast<int>(std::min<Index>(8, nq - i)),
                                          qdata + i * ldq + h * dh, ldq, kr, dh, scale,
                                          s.data() + (h * nq + i) * B + j, B);
              }
            }
          }
        };
        if constexpr (widen_keys) {
          widen_rows<T>(kdata + j0 * ldk, ldk, bj, k.cols(), kwide.data(), kwide.cols());
          scores(kwide.data(), kwide.cols());
        } else {
          scores(kdata + j0 * ldk, ldk);
        }
        for (Index h = 0; h < heads; ++h) {
          const Index g = h / group;
          Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>> sh(s.data() + h * nq * B, nq, bj,
                                                            Eigen::OuterStride<>(B));
          if constexpr (widen_keys)
            bias.add(h, 0, j0, q.block(0, h * dh, nq, dh), kwide.block(0, g * dh, bj, dh), sh);
          else if constexpr (has_bias)
            bias.add(h, 0, j0, q.block(0, h * dh, nq, dh), k.block(j0, g * dh, bj, dh), sh);
          if (capped) sh.array() = cap * (sh.array() / cap).tanh();
          if (seen == 1)
            for (Index i = 0; i < nq; ++i) {
              const std::int64_t pi = qpos[i];
              for (Index j = 0; j < bj; ++j)
                if (!rule.visible(pi, kpos[j0 + j], i, j0 + j)) sh(i, j) = neg_inf;
            }
          // online softmax, as the tiled kernel: m' = max(m, max_j s_ij), acc = e^(m - m')
          // acc + e^(s - m') V
          for (Index i = 0; i < nq; ++i) {
            const Index r = h * nq + i;
            RowArrayMap row(s.data() + r * B, bj);
            const T mo = st.m(r);
            const T rmax = row.template maxCoeff<Eigen::PropagateNaN>();
            const T mn = std::isnan(rmax) ? rmax : std::max(mo, rmax);
            if (mn == neg_inf) {
              row.setZero();
              continue;
            }
            const T alpha = mo == neg_inf ? T(0) : std::exp(mo - mn);
            if (seen == 1)
              row = (row == neg_inf).select(T(0), (row - mn).max(cutoff).exp());
            else
              row = (row - mn).max(cutoff).exp();
            st.l(r) = st.l(r) * alpha + row.sum();
            st.m(r) = mn;
            if (alpha != T(1)) st.acc.row(r) *= alpha;
          }
        }
        // acc += P V, four value rows at a time for all key/value heads in turn, each head's
        // slice feeding the group's rows
        for (Index j = 0; j < bj; j += 4) {
          const Index nj = std::min<Index>(4, bj - j);
          const bool fetch = ahead_v > 0 && j0 + j + nj + ahead_v <= nk;
          for (Index g = 0; g < kv_heads; ++g) {
            const S* vg = vdata + (j0 + j) * ldv + g * dh;
            if (fetch)
              for (Index jj = 0; jj < nj; ++jj)
                prefetch_values(vg + (ahead_v + jj) * ldv, dh);
            const Index r0 = g * group * nq, nr = group * nq;
            for (Index r = 0; r < nr; r += 8)
              decode_pv_dispatch<T>(static_cast<int>(std::min<Index>(8, nr - r)),
                                    s.data() + (r0 + r) * B + j, B, nj, vg, ldv, dh,
                                    st.acc.data() + (r0 + r) * dh, dh);
          }
        }
        if constexpr (has_values) {
          for (Index h = 0; h < heads; ++h) {
            Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>> ph(s.data() + h * nq * B, nq, bj,
                                                              Eigen::OuterStride<>(B));
            bias.add_values(h, 0, j0, ph, st.acc.middleRows(h * nq, nq));
          }
        }
      }
    }
  });

  // Merge the spans in order: M = max m_s, l = sum e^(m_s - M) l_s, acc likewise; then the
  // sinks and the normalisation of the tiled kernel.
  const bool sink = !opt.sinks.empty();
  Vector<T> accrow(dh);
  for (Index h = 0; h < heads; ++h) {
    const T sh = sink ? opt.sinks[static_cast<std::size_t>(h)] : T(0);
    for (Index i = 0; i < nq; ++i) {
      const Index r = h * nq + i;
      T mx = neg_inf;
      bool nan = false;
      for (const auto& st : state) {
        if (std::isnan(st.m(r))) nan = true;
        if (st.l(r) != T(0)) mx = std::max(mx, st.m(r));
      }
      if (nan) mx = std::numeric_limits<T>::quiet_NaN();
      T li = T(0);
      accrow.setZero();
      if (mx != neg_inf)
        for (const auto& st : state) {
          if (st.l(r) == T(0)) continue;
          const T f = std::exp(st.m(r) - mx);
          li += f * st.l(r);
          accrow += f * st.acc.row(r).transpose();
        }
      auto o = out.row(i).segment(h * dh, dh);
      if (li == T(0) && !nan) {
        o.setZero();
        if (lse) lse[h * nq + i] = std::numeric_limits<T>::infinity();
        continue;
      }
      T denom = li, num = T(1), m = mx;
      if (sink && sh != neg_inf) {
        m = std::isnan(mx) ? mx : std::max(mx, sh);
        num = std::exp(mx - m);
        denom = li * num + std::exp(sh - m);
      }
      o = (num / denom) * accrow.transpose();
      if (lse) lse[h * nq + i] = m + std::log(denom);
    }
  }
}

}  // namespace detail
POSENC_NAMESPACE_END
