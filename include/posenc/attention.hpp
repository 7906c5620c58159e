// posenc: self-attention over any encoder (conventions.md sections 6 and 6b): the attention
// core on projected tensors, the layer (grouped-query heads, free head size, biases, windows,
// chunks, packed batches, sinks, soft-capping), and a KV cache for incremental decoding.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "detail/half_storage.hpp"
#include "detail/large_buffer.hpp"
#include "detail/parallel.hpp"
#include "detail/tile_kernels.hpp"
#include "encoder.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

namespace detail {

/// True when two row-major views share an element (an output aliasing an input). Views with
/// the same outer stride are compared element by element, so column blocks of one buffer
/// (a fused QKV matrix) do not count as overlapping; otherwise any shared address counts.
template <class A, class B>
bool overlaps(const A& a, const B& b) {
  if (a.size() == 0 || b.size() == 0) return false;
  using Scalar = std::remove_cv_t<std::remove_reference_t<decltype(*a.data())>>;
  const auto begin = [](const auto& m) { return reinterpret_cast<std::uintptr_t>(m.data()); };
  const auto end = [](const auto& m) {
    return reinterpret_cast<std::uintptr_t>(m.data() + (m.rows() - 1) * m.outerStride() + m.cols());
  };
  if (!(begin(a) < end(b) && begin(b) < end(a))) return false;
  constexpr std::uintptr_t size = sizeof(Scalar);
  const std::uintptr_t ld = static_cast<std::uintptr_t>(a.outerStride());
  if (static_cast<std::uintptr_t>(b.outerStride()) != ld || sizeof(*b.data()) != size ||
      (begin(b) - begin(a)) % size != 0)
    return true;
  // b starts `off` elements after a (swapped so that off >= 0): row r, column c of a's grid
  const bool a_first = begin(a) <= begin(b);
  const std::uintptr_t off = (a_first ? begin(b) - begin(a) : begin(a) - begin(b)) / size;
  const std::uintptr_t ar = static_cast<std::uintptr_t>(a_first ? a.rows() : b.rows()),
                       ac = static_cast<std::uintptr_t>(a_first ? a.cols() : b.cols()),
                       bc = static_cast<std::uintptr_t>(a_first ? b.cols() : a.cols());
  const std::uintptr_t r = off / ld, c = off % ld;
  // b's rows cover columns [c, c + bc) of a's rows r, r + 1, ... (wrapping into the next row
  // when c + bc > ld)
  return (c < ac && r < ar) || (c + bc > ld && r + 1 < ar);
}

/// Tile sizes of the attention kernel: query rows and key columns per score tile.
template <class T>
struct attention_tiles {
#ifdef POSENC_ATTN_BQ
  static constexpr Index query = POSENC_ATTN_BQ;
#else
  static constexpr Index query = 96;
#endif
#ifdef POSENC_ATTN_BK
  static constexpr Index key = POSENC_ATTN_BK;
#else
  static constexpr Index key = 128;
#endif
};

/// Block and span sizes of the decoding kernel: keys per block (the scores of one block for
/// all query rows stay in L1), and keys per span (one partial softmax state each).
template <class T>
struct decode_tiles {
  static constexpr Index block = 32;
  static constexpr Index span = 1024;
  /// The most queries per call that take this kernel (beyond, the tiled one is faster).
  static constexpr Index max_queries = 8;
};

}  // namespace detail

/// Which keys a query sees, beyond what the positions say (conventions.md section 6b); every
/// constraint that is set must hold.
struct Visibility {
  /// p_j <= p_i.
  bool causal = false;
  /// W > 0: p_i - p_j < W under causal, |p_i - p_j| < W otherwise (sliding window); 0: none.
  std::int64_t window = 0;
  /// C > 0: floor(p_i / C) = floor(p_j / C) (chunked attention); 0: none.
  std::int64_t chunk = 0;
};

/// Options of the attention core `attend` (conventions.md sections 6 and 6b).
template <class T>
struct AttendOptions {
  /// H query heads and H_kv key/value heads (H_kv divides H; 0 means H_kv = H); query head h
  /// reads key/value head floor(h H_kv / H).
  Index heads = 1;
  Index kv_heads = 0;
  Visibility visibility;
  /// Segment ids of a packed batch, one per query and one per key (both empty: none): a key
  /// is visible only to queries of its own segment; a negative id is padding, seen by no query
  /// and seeing nothing (its output row is 0).
  std::vector<std::int64_t> query_segments, key_segments;
  /// Score scale; 1/sqrt(Dh) when absent.
  std::optional<T> scale;
  /// c > 0: S <- c tanh(S / c) on the whole score before masking (Gemma 2).
  std::optional<T> softcap;
  /// One logit s_h per query head in the softmax denominator only (gpt-oss); empty: none.
  std::vector<T> sinks;
};

namespace detail {

/// Positions and segment ids of a block of queries or keys, reduced to their ranges.
struct BlockRange {
  std::int64_t pmin = std::numeric_limits<std::int64_t>::max(), pmax = -1;
  std::int64_t smin = std::numeric_limits<std::int64_t>::max(),
               smax = std::numeric_limits<std::int64_t>::min();
};

inline BlockRange block_range(const Positions& pos, const std::vector<std::int64_t>& seg, Index i0,
                              Index n) {
  BlockRange r;
  for (Index i = i0; i < i0 + n; ++i) {
    r.pmin = std::min(r.pmin, pos[i]);
    r.pmax = std::max(r.pmax, pos[i]);
    if (!seg.empty()) {
      const std::int64_t s = seg[static_cast<std::size_t>(i)];
      r.smin = std::min(r.smin, s);
      r.smax = std::max(r.smax, s);
    }
  }
  return r;
}

/// floor(p / c) for p >= 0, c > 0.
inline std::int64_t chunk_of(std::int64_t p, std::int64_t c) {
  return p / c;
}

/// The visibility rules of conventions.md 6b, for one pair and for whole tiles.
struct VisibilityRule {
  Visibility v;
  bool segmented = false;
  const std::int64_t* qseg = nullptr;
  const std::int64_t* kseg = nullptr;

  /// Key j (position pj) visible to query i (position pi)?
  bool visible(std::int64_t pi, std::int64_t pj, Index i, Index j) const {
    if (v.causal && pj > pi) return false;
    if (v.window > 0) {
      const std::int64_t d = pi - pj;  // a difference of two positions: fits
      if (v.causal ? d >= v.window : (d >= v.window || -d >= v.window)) return false;
    }
    if (v.chunk > 0 && chunk_of(pi, v.chunk) != chunk_of(pj, v.chunk)) return false;
    if (segmented) {
      const std::int64_t si = qseg[i], sj = kseg[j];
      if (si < 0 || sj < 0 || si != sj) return false;
    }
    return true;
  }

  /// 0: no pair of the tile is visible; 2: every pair is; 1: some are. `only_causal` is set
  /// when every pair is visible but for the causal rule.
  int classify(const BlockRange& q, const BlockRange& k, bool& only_causal) const {
    bool full = true;
    if (v.causal) {
      if (k.pmin > q.pmax) return 0;
    }
    if (v.window > 0) {
      if (q.pmin - k.pmax >= v.window) return 0;
      if (!v.causal && k.pmin - q.pmax >= v.window) return 0;
      if (!(q.pmax - k.pmin < v.window && (v.causal || k.pmax - q.pmin < v.window))) full = false;
    }
    if (v.chunk > 0) {
      const std::int64_t q0 = chunk_of(q.pmin, v.chunk), q1 = chunk_of(q.pmax, v.chunk);
      const std::int64_t k0 = chunk_of(k.pmin, v.chunk), k1 = chunk_of(k.pmax, v.chunk);
      if (k1 < q0 || k0 > q1) return 0;
      if (!(q0 == q1 && k0 == k1 && q0 == k0)) full = false;
    }
    if (segmented) {
      if (q.smax < 0 || k.smax < 0 || k.smax < q.smin || k.smin > q.smax) return 0;
      if (!(q.smin == q.smax && k.smin == k.smax && q.smin == k.smin)) full = false;
    }
    only_causal = full;
    if (v.causal && k.pmax > q.pmin) return 1;
    return full ? 2 : 1;
  }
};

/// The encoder's per-call score-bias object, or a placeholder for encoders without one.
template <class E>
auto make_score_bias(const E& enc, const Positions& qpos, const Positions& kpos, Index heads,
                     Index head_dim, typename E::Scalar scale) {
  if constexpr (encoder_traits<E>::biases_scores)
    return enc.score_bias(qpos, kpos, heads, head_dim, scale);
  else
    return 0;
}

/// Scratch of one thread of the attention kernel, allocated once per call and thread.
template <class T>
struct AttendScratch {
  Matrix<T> s;    // [bq, bk]: scores, then unnormalised probabilities
  Matrix<T> acc;  // [bq, Dh]: the running sum of p V
  Vector<T> m, l, alpha;
  std::vector<Index> cols;  // [bq]: unmasked keys per row of a causal diagonal tile
  std::vector<T> kt;        // K^T of one key/value head, packed tile by tile: [k_tiles][Dh][bk]
  Index kt_head = -1;
};

/// Exponents are clamped from below at this value, so that every probability is a normal
/// number (subnormals are slow): e^cutoff (1.6e-38 in float, 3.3e-308 in double) is far below
/// the resolution of a row sum, which is >= 1, so the result does not change.
template <class T>
constexpr T exp_cutoff() {
  return std::is_same<T, float>::value ? T(-87) : T(-708);
}

/// The checks of the attention core: shapes of Q, K, V, out against H, H_kv; positions and
/// segments against the rows; options in range. Returns Dh.
template <class T>
Index check_attend(const char* who, Index q_rows, Index q_cols, Index k_rows, Index k_cols,
                   Index v_rows, Index v_cols, Index out_rows, Index out_cols,
                   const Positions& qpos, const Positions& kpos, const AttendOptions<T>& opt) {
  const Index h = opt.heads, hkv = opt.kv_heads == 0 ? opt.heads : opt.kv_heads;
  require(h > 0, who, ": heads H = ", h, " must be > 0");
  require_extent(h, who, ": heads H");
  require(hkv > 0 && h % hkv == 0, who, ": kv_heads H_kv = ", hkv, " must divide heads H = ", h);
  require(q_cols % h == 0 && q_cols > 0, who, ": Q is [", q_rows, ", ", q_cols,
          "], its width is not a positive multiple of H = ", h);
  const Index dh = q_cols / h;
  require(k_cols == hkv * dh && v_cols == hkv * dh && v_rows == k_rows, who, ": K is [", k_rows,
          ", ", k_cols, "] and V is [", v_rows, ", ", v_cols, "], expected [Nk, H_kv * Dh] = [Nk, ",
          hkv * dh, "] each (H_kv = ", hkv, ", Dh = ", dh, ")");
  require(out_rows == q_rows && out_cols == q_cols, who, ": out is [", out_rows, ", ", out_cols,
          "], expected the shape of Q [", q_rows, ", ", q_cols, "]");
  require(qpos.size() == q_rows && kpos.size() == k_rows, who, ": ", qpos.size(),
          " query positions for ", q_rows, " rows of Q and ", kpos.size(), " key positions for ",
          k_rows, " rows of K");
  const bool qs = !opt.query_segments.empty(), ks = !opt.key_segments.empty();
  require(qs == ks, who, ": query_segments and key_segments must be given together");
  if (qs)
    require(static_cast<Index>(opt.query_segments.size()) == q_rows &&
                static_cast<Index>(opt.key_segments.size()) == k_rows,
            who, ": ", opt.query_segments.size(), " query segment ids for ", q_rows,
            " queries and ", opt.key_segments.size(), " key segment ids for ", k_rows, " keys");
  require(opt.visibility.window >= 0, who, ": window W = ", opt.visibility.window,
          " must be >= 0 (0: none)");
  require(opt.visibility.chunk >= 0, who, ": chunk C = ", opt.visibility.chunk,
          " must be >= 0 (0: none)");
  if (opt.scale)
    require(std::isfinite(*opt.scale), who, ": scale = ", *opt.scale, " must be finite");
  if (opt.softcap)
    require(std::isfinite(*opt.softcap) && *opt.softcap > T(0), who, ": softcap c = ", *opt.softcap,
            " must be finite and > 0");
  if (!opt.sinks.empty()) {
    require(static_cast<Index>(opt.sinks.size()) == h, who, ": sinks has ", opt.sinks.size(),
            " entries, expected one per query head (H = ", h, ")");
    for (std::size_t i = 0; i < opt.sinks.size(); ++i)
      require(!std::isnan(opt.sinks[i]) && opt.sinks[i] != std::numeric_limits<T>::infinity(), who,
              ": sinks[", i, "] = ", opt.sinks[i], " must be finite or -inf");
  }
  return dh;
}

/// attend_core for a few queries (decoding); defined in detail/attend_decode.hpp, which this
/// header includes at its end (it uses the rules and helpers above).
template <class E, class S>
void attend_decode(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
                   const ConstMatrixRef<S>& k, const ConstMatrixRef<S>& v, const Positions& qpos,
                   const Positions& kpos, const AttendOptions<typename E::Scalar>& opt,
                   MatrixRef<typename E::Scalar> out, typename E::Scalar* lse);

/// Scores, visibility, softmax and values for every query head: out [Nq, H Dh] = softmax(S) V
/// per head, with S = scale Q_h K_g^T + the encoder's bias (g the key/value head of h),
/// soft-capped, masked by the visibility rules, sinks in the denominator. Tiled over queries
/// and keys with an online softmax (Milakov & Gimelshein 2018), so no [Nq, Nk] matrix is
/// formed. Tiles that no query of a query tile can see (causal future, outside a window or a
/// chunk, other segments) are skipped, so a window W costs O(N W); only tiles that are partly
/// visible are masked element by element, and a causal diagonal tile with contiguous
/// positions computes only its visible prefix of each row. When Dh is a multiple of the SIMD
/// width the two products run in register-blocked micro-kernels (detail/tile_kernels.hpp) on
/// a per-thread packed K_g^T, packed once per key/value head and shared by its query heads;
/// otherwise through Eigen's GEMM. Heads x query tiles run in parallel under OpenMP. A query
/// row with no visible key gets 0. Inputs are checked by the caller (check_attend).
template <class E>
void attend_core(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
                 const ConstMatrixRef<typename E::Scalar>& k,
                 const ConstMatrixRef<typename E::Scalar>& v, const Positions& qpos,
                 const Positions& kpos, const AttendOptions<typename E::Scalar>& opt,
                 MatrixRef<typename E::Scalar> out, typename E::Scalar* lse = nullptr) {
  using T = typename E::Scalar;
  using RowMajorMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
  using RowArrayMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  const Index heads = opt.heads, kv_heads = opt.kv_heads == 0 ? opt.heads : opt.kv_heads;
  const Index nq = q.rows(), nk = k.rows(), dh = q.cols() / heads;
  const Index group = heads / kv_heads;
  const T scale = opt.scale ? *opt.scale : static_cast<T>(1.0 / std::sqrt(static_cast<double>(dh)));
  if (nq == 0) return;
  if (nk == 0) {
    out.setZero();
    if (lse) std::fill(lse, lse + heads * nq, std::numeric_limits<T>::infinity());
    return;
  }
  if (nq <= decode_tiles<T>::max_queries)
    return attend_decode<E, T>(enc, q, k, v, qpos, kpos, opt, out, lse);

  constexpr Index bq = attention_tiles<T>::query, bk = attention_tiles<T>::key;
  constexpr int P = tile_packet<T>::size;
  static_assert(bk % P == 0, "the key tile must be a multiple of the SIMD width");
  const Index q_tiles = (nq + bq - 1) / bq, k_tiles = (nk + bk - 1) / bk;
  const bool contiguous = qpos.contiguous() && kpos.contiguous();
  VisibilityRule rule{opt.visibility, !opt.query_segments.empty(), opt.query_segments.data(),
                      opt.key_segments.data()};
  std::vector<BlockRange> ktile(static_cast<std::size_t>(k_tiles));
  for (Index t = 0; t < k_tiles; ++t)
    ktile[static_cast<std::size_t>(t)] =
        block_range(kpos, opt.key_segments, t * bk, std::min(bk, nk - t * bk));

  constexpr bool has_bias = encoder_traits<E>::biases_scores;
  constexpr bool has_values = adds_values<E>();
  // The micro-kernels need Dh in whole SIMD packets, and pay a K^T packing per key/value head
  // and thread that only a block of queries amortises (a decoding step with a few new tokens
  // runs through Eigen's GEMV instead).
  const bool fast = dh % P == 0 && nq >= 8;
  const auto bias = make_score_bias(enc, qpos, kpos, heads, dh, scale);
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cutoff = exp_cutoff<T>();
  const bool capped = opt.softcap.has_value();
  const T cap = capped ? *opt.softcap : T(1);
  const T* kdata = k.data();
  const T* vdata = v.data();
  const T* qdata = q.data();
  const Index ldk = k.outerStride(), ldv = v.outerStride(), ldq = q.outerStride();

  const Index work = heads * q_tiles;
  parallel_region(work > 1 && nq * nk * q.cols() > 32768, 0, [&] {
    AttendScratch<T> sc;
    sc.s.resize(bq, bk);
    sc.acc.resize(bq, dh);
    sc.m.resize(bq);
    sc.l.resize(bq);
    sc.alpha.resize(bq);
    sc.cols.resize(static_cast<std::size_t>(bq));
    T* s = sc.s.data();
    constexpr Index lds = bk;
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (Index w = 0; w < work; ++w) {
      // Head-major (the query heads of one key/value head are consecutive, so its packed K^T
      // is reused), and within a head the last (under a causal mask the largest) tiles first.
      const Index h = w / q_tiles, i0 = (q_tiles - 1 - w % q_tiles) * bq,
                  bi = std::min(bq, nq - i0);
      const Index g = h / group;
      const BlockRange qr = block_range(qpos, opt.query_segments, i0, bi);
      if (fast && sc.kt_head != g) {
        // K_g^T, tile t at kt[t * dh * bk], row d holding keys t*bk .. t*bk+bk-1 (zero padded)
        sc.kt.assign(static_cast<std::size_t>(k_tiles * dh * bk), T(0));
        for (Index j = 0; j < nk; ++j) {
          const T* kr = kdata + j * ldk + g * dh;
          T* dst = sc.kt.data() + (j / bk) * dh * bk + (j % bk);
          for (Index c = 0; c < dh; ++c)
            dst[c * bk] = kr[c];
        }
        sc.kt_head = g;
      }
      const auto qh = q.block(i0, h * dh, bi, dh);
      auto acc = sc.acc.topRows(bi);
      acc.setZero();
      sc.m.head(bi).setConstant(neg_inf);
      sc.l.head(bi).setZero();
      for (Index t = 0; t < k_tiles; ++t) {
        const Index j0 = t * bk, bj = std::min(bk, nk - j0);
        bool only_causal = false;
        const int seen = rule.classify(qr, ktile[static_cast<std::size_t>(t)], only_causal);
        if (seen == 0) continue;
        RowMajorMap st(s, bi, bj, Eigen::OuterStride<>(lds));
        // A causal tile that crosses the diagonal and is otherwise fully visible: with
        // contiguous positions row i keeps its first cols[i] keys (p_j <= p_i), so the masked
        // parts are neither computed nor read; other partly visible tiles are masked element
        // by element (-inf).
        const Index* cols = nullptr;
        if (seen == 1 && only_causal && contiguous) {
          // row i keeps keys j < p_i - p_{j0} + 1 (saturated, then clamped)
          for (Index i = 0; i < bi; ++i)
            sc.cols[static_cast<std::size_t>(i)] = static_cast<Index>(std::clamp<std::int64_t>(
                saturating_add((qpos.offset() + i0 + i) - (kpos.offset() + j0), 1), 0, bj));
          cols = sc.cols.data();
        }
        const auto kh = k.block(j0, g * dh, bj, dh);
        if (fast) {
          qk_tile(qdata + i0 * ldq + h * dh, ldq, bi, sc.kt.data() + t * dh * bk, bk, bj, dh, scale,
                  s, lds, cols);
        } else {
          st.noalias() = scale * (qh * kh.transpose());
        }
        if constexpr (has_bias) bias.add(h, i0, j0, qh, kh, st);
        if (capped) st.array() = cap * (st.array() / cap).tanh();
        if (seen == 1 && !cols) {
          for (Index i = 0; i < bi; ++i) {
            const std::int64_t pi = qpos[i0 + i];
            for (Index j = 0; j < bj; ++j)
              if (!rule.visible(pi, kpos[j0 + j], i0 + i, j0 + j)) s[i * lds + j] = neg_inf;
          }
        }
        // (only partly visible tiles: the select is slower than the plain exponential)
        const bool masks_elements = seen == 1 && !cols;
        // online softmax: m' = max(m, max_j s_ij), alpha = e^(m - m'), p = e^(s - m'),
        // l = alpha l + sum_j p, acc = alpha acc + p V
        for (Index i = 0; i < bi; ++i) {
          const Index ci = cols ? cols[i] : bj;
          RowArrayMap row(s + i * lds, ci);
          RowArrayMap(s + i * lds + ci, bj - ci).setZero();
          // a NaN score makes the running maximum NaN, so that it propagates (and is never
          // taken for a masked row)
          const T mo = sc.m(i);
          const T rmax = ci > 0 ? row.template maxCoeff<Eigen::PropagateNaN>() : mo;
          const T mn = std::isnan(rmax) ? rmax : std::max(mo, rmax);
          if (ci == 0 || mn == neg_inf) {  // nothing (new) visible in this row
            row.setZero();
            sc.alpha(i) = T(1);
            continue;
          }
          sc.alpha(i) = mo == neg_inf ? T(0) : std::exp(mo - mn);
          // a masked (-inf) score has probability exactly 0: e^cutoff there would also feed
          // subnormal products into rows whose accumulator is still 0, which are slow
          if (masks_elements)
            row = (row == neg_inf).select(T(0), (row - mn).max(cutoff).exp());
          else
            row = (row - mn).max(cutoff).exp();
          sc.l(i) = sc.l(i) * sc.alpha(i) + row.sum();
          sc.m(i) = mn;
        }
        if (fast) {
          pv_tile(s, lds, bi, bj, vdata + j0 * ldv + g * dh, ldv, dh, sc.alpha.data(), acc.data(),
                  acc.outerStride(), cols);
        } else {
          acc = sc.alpha.head(bi).asDiagonal() * acc;
          acc.noalias() += st * v.block(j0, g * dh, bj, dh);
        }
        if constexpr (has_values) bias.add_values(h, i0, j0, st, acc);
      }
      // O_i = acc_i / l_i; with a sink s_h, l_i + e^(s_h - m_i) (both rescaled to
      // m' = max(m_i, s_h) so that neither exponential overflows). A row with no visible key
      // (l = 0) gets 0.
      const bool sink = !opt.sinks.empty();
      const T sh = sink ? opt.sinks[static_cast<std::size_t>(h)] : T(0);
      for (Index i = 0; i < bi; ++i) {
        auto o = out.row(i0 + i).segment(h * dh, dh);
        const T li = sc.l(i);
        // lse: the row's log-sum-exp, P_ij = e^(S_ij - lse) (+inf for a row that sees
        // nothing, so that every P_ij is 0), for the backward pass.
        if (li == T(0)) {
          o.setZero();
          if (lse) lse[h * nq + i0 + i] = std::numeric_limits<T>::infinity();
          continue;
        }
        T denom = li, num = T(1), mx = sc.m(i);
        if (sink && sh != neg_inf) {
          const T mi = sc.m(i);
          mx = std::isnan(mi) ? mi : std::max(mi, sh);
          num = std::exp(mi - mx);
          denom = li * num + std::exp(sh - mx);
        }
        o = (num / denom) * acc.row(i);
        if (lse) lse[h * nq + i0 + i] = mx + std::log(denom);
      }
    }
  });
}

/// The kernel with the layer's earlier interface: H heads of K and V (no grouping), causal or
/// not, for the tests and benchmarks that drive it directly.
template <class E>
void attend(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
            const ConstMatrixRef<typename E::Scalar>& k,
            const ConstMatrixRef<typename E::Scalar>& v, const Positions& qpos,
            const Positions& kpos, Index heads, typename E::Scalar scale, bool causal,
            MatrixRef<typename E::Scalar> out) {
  AttendOptions<typename E::Scalar> opt;
  opt.heads = heads;
  opt.visibility.causal = causal;
  opt.scale = scale;
  attend_core(enc, q, k, v, qpos, kpos, opt, out);
}

}  // namespace detail

/// The attention core on projected tensors (conventions.md sections 6 and 6b): Q [Nq, H Dh]
/// and K, V [Nk, H_kv Dh] after any rotation (a RoPE encoder's rotate is not applied here:
/// rotate Q and K yourself, or keep rotated keys in a cache), out [Nq, H Dh] = per query head
/// softmax(S) V with S = scale Q_h K_g^T + the encoder's score bias (ALiBi, T5, Shaw,
/// Transformer-XL, user hooks), soft-capped, restricted to the visible keys, sinks in the
/// denominator. Every argument may be a block of the caller's buffers (a fused QKV buffer's
/// column blocks included); out must not overlap Q, K or V.
template <class E>
void attend(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
            const ConstMatrixRef<typename E::Scalar>& k,
            const ConstMatrixRef<typename E::Scalar>& v, const Positions& q_positions,
            const Positions& k_positions, const AttendOptions<typename E::Scalar>& options,
            MatrixRef<typename E::Scalar> out) {
  detail::check_attend("attend", q.rows(), q.cols(), k.rows(), k.cols(), v.rows(), v.cols(),
                       out.rows(), out.cols(), q_positions, k_positions, options);
  detail::require(
      !detail::overlaps(out, q) && !detail::overlaps(out, k) && !detail::overlaps(out, v),
      "attend: out overlaps Q, K or V");
  detail::attend_core(enc, q, k, v, q_positions, k_positions, options, out);
}

namespace detail {

/// x [rows, cols] of bfloat16 or half widened to float (exactly: both are subsets of float).
template <class S>
Matrix<float> widened(const ConstMatrixRef<S>& x, const char* what) {
  Matrix<float> w = new_matrix<float>(x.rows(), x.cols(), what);
  widen_rows<float, S>(x.data(), x.outerStride(), x.rows(), x.cols(), w.data(), w.cols());
  return w;
}

/// attend_core on keys and values kept as S (T itself, or bfloat16 / half for float): 1 to 8
/// queries read them in place (the decoding kernel, widening each load to float); more
/// queries run the tiled kernel on a float copy of K and V.
template <class E, class S>
void attend_stored(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
                   const ConstMatrixRef<S>& k, const ConstMatrixRef<S>& v, const Positions& qpos,
                   const Positions& kpos, const AttendOptions<typename E::Scalar>& opt,
                   MatrixRef<typename E::Scalar> out, typename E::Scalar* lse) {
  using T = typename E::Scalar;
  static_assert(is_storage_of<T, S>::value,
                "posenc: keys and values are T, or for T = float bfloat16 or half");
  if constexpr (std::is_same<S, T>::value) {
    attend_core(enc, q, k, v, qpos, kpos, opt, out, lse);
  } else {
    if (q.rows() == 0) return;
    if (q.rows() <= decode_tiles<T>::max_queries && k.rows() > 0) {
      attend_decode<E, S>(enc, q, k, v, qpos, kpos, opt, out, lse);
      return;
    }
    const char* what = "attend: K, V widened to float [Nk, H_kv * Dh]";
    attend_core(enc, q, widened<S>(k, what), widened<S>(v, what), qpos, kpos, opt, out, lse);
  }
}

template <class E, class S>
void attend_half(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
                 const ConstMatrixRef<S>& k, const ConstMatrixRef<S>& v, const Positions& qpos,
                 const Positions& kpos, const AttendOptions<typename E::Scalar>& opt,
                 MatrixRef<typename E::Scalar> out) {
  static_assert(std::is_same<typename E::Scalar, float>::value,
                "posenc: bfloat16 and half keys and values need a float encoder (Scalar = float)");
  check_attend("attend", q.rows(), q.cols(), k.rows(), k.cols(), v.rows(), v.cols(), out.rows(),
               out.cols(), qpos, kpos, opt);
  require(!overlaps(out, q), "attend: out overlaps Q");
  attend_stored<E, S>(enc, q, k, v, qpos, kpos, opt, out, nullptr);
}

}  // namespace detail

/// attend with keys and values stored as bfloat16 (float queries, outputs and arithmetic;
/// each key and value widened exactly to float as it is read).
template <class E>
void attend(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
            const ConstMatrixRef<Eigen::bfloat16>& k, const ConstMatrixRef<Eigen::bfloat16>& v,
            const Positions& q_positions, const Positions& k_positions,
            const AttendOptions<typename E::Scalar>& options, MatrixRef<typename E::Scalar> out) {
  detail::attend_half<E, Eigen::bfloat16>(enc, q, k, v, q_positions, k_positions, options, out);
}

/// attend with keys and values stored as IEEE half (binary16), as the bfloat16 form.
template <class E>
void attend(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
            const ConstMatrixRef<Eigen::half>& k, const ConstMatrixRef<Eigen::half>& v,
            const Positions& q_positions, const Positions& k_positions,
            const AttendOptions<typename E::Scalar>& options, MatrixRef<typename E::Scalar> out) {
  detail::attend_half<E, Eigen::half>(enc, q, k, v, q_positions, k_positions, options, out);
}

namespace detail {

/// attend on Q, K, V stored as S: Q widened to float (O(Nq H Dh), read once), K and V read in
/// place as attend_stored does; out is float, or S holding the float result rounded once.
template <class E, class S, class O>
void attend_half_queries(const E& enc, const ConstMatrixRef<S>& q, const ConstMatrixRef<S>& k,
                         const ConstMatrixRef<S>& v, const Positions& qpos, const Positions& kpos,
                         const AttendOptions<typename E::Scalar>& opt, MatrixRef<O> out) {
  static_assert(std::is_same<typename E::Scalar, float>::value,
                "posenc: bfloat16 and half queries, keys and values need a float encoder "
                "(Scalar = float)");
  check_attend("attend", q.rows(), q.cols(), k.rows(), k.cols(), v.rows(), v.cols(), out.rows(),
               out.cols(), qpos, kpos, opt);
  const Matrix<float> qf = widened<S>(q, "attend: Q widened to float [Nq, H * Dh]");
  if constexpr (std::is_same<O, float>::value) {
    attend_stored<E, S>(enc, qf, k, v, qpos, kpos, opt, out, nullptr);
  } else {
    Matrix<float> of = new_matrix<float>(out.rows(), out.cols(), "attend: O in float [Nq, H * Dh]");
    attend_stored<E, S>(enc, qf, k, v, qpos, kpos, opt, of, nullptr);
    out = of.template cast<S>();
  }
}

}  // namespace detail

/// attend with queries, keys and values stored as bfloat16 (float arithmetic: Q widened once,
/// K and V as they are read); float outputs.
template <class E>
void attend(const E& enc, const ConstMatrixRef<Eigen::bfloat16>& q,
            const ConstMatrixRef<Eigen::bfloat16>& k, const ConstMatrixRef<Eigen::bfloat16>& v,
            const Positions& q_positions, const Positions& k_positions,
            const AttendOptions<typename E::Scalar>& options, MatrixRef<typename E::Scalar> out) {
  detail::attend_half_queries<E, Eigen::bfloat16>(enc, q, k, v, q_positions, k_positions, options,
                                                  out);
}

/// As above with bfloat16 outputs: each the float result rounded once (to nearest, ties to
/// even). out may share storage with Q, K or V (it is written last).
template <class E>
void attend(const E& enc, const ConstMatrixRef<Eigen::bfloat16>& q,
            const ConstMatrixRef<Eigen::bfloat16>& k, const ConstMatrixRef<Eigen::bfloat16>& v,
            const Positions& q_positions, const Positions& k_positions,
            const AttendOptions<typename E::Scalar>& options, MatrixRef<Eigen::bfloat16> out) {
  detail::attend_half_queries<E, Eigen::bfloat16>(enc, q, k, v, q_positions, k_positions, options,
                                                  out);
}

/// attend with queries, keys and values stored as IEEE half; float outputs.
template <class E>
void attend(const E& enc, const ConstMatrixRef<Eigen::half>& q,
            const ConstMatrixRef<Eigen::half>& k, const ConstMatrixRef<Eigen::half>& v,
            const Positions& q_positions, const Positions& k_positions,
            const AttendOptions<typename E::Scalar>& options, MatrixRef<typename E::Scalar> out) {
  detail::attend_half_queries<E, Eigen::half>(enc, q, k, v, q_positions, k_positions, options, out);
}

/// As above with half outputs, each the float result rounded once.
template <class E>
void attend(const E& enc, const ConstMatrixRef<Eigen::half>& q,
            const ConstMatrixRef<Eigen::half>& k, const ConstMatrixRef<Eigen::half>& v,
            const Positions& q_positions, const Positions& k_positions,
            const AttendOptions<typename E::Scalar>& options, MatrixRef<Eigen::half> out) {
  detail::attend_half_queries<E, Eigen::half>(enc, q, k, v, q_positions, k_positions, options, out);
}

/// Options of an attention layer (conventions.md sections 6 and 6b).
template <class T>
struct AttentionOptions {
  /// H query heads.
  Index heads = 1;
  /// H_kv key/value heads, dividing H (1: multi-query; 0 means H_kv = H).
  Index kv_heads = 0;
  /// Dh, the size of every head (0 means D / H).
  Index head_dim = 0;
  /// S[i, j] = -inf where p_j > p_i.
  bool causal = false;
  /// Sliding window W (0: none) and chunk C (0: none), as Visibility.
  std::int64_t window = 0;
  std::int64_t chunk = 0;
  /// p_i = offset + i, unless `positions` is given (any Positions: contiguous or a list).
  std::int64_t offset = 0;
  std::optional<Positions> positions;
  /// Segment ids of a packed batch, one per token (empty: one sequence); negative: padding.
  std::vector<std::int64_t> segments;
  /// Score scale; 1/sqrt(Dh) when absent (T5 uses 1).
  std::optional<T> scale;
  /// Logit soft-capping c (Gemma 2): S <- c tanh(S / c).
  std::optional<T> softcap;
  /// Attention sinks, one logit per query head (gpt-oss); empty: none.
  std::vector<T> sinks;
  /// Projection biases (empty: none): bq [H Dh], bk, bv [H_kv Dh], bo [D].
  Vector<T> bq, bk, bv, bo;

  /// H_kv and Dh with their defaults resolved, for a model width D.
  Index resolved_kv_heads() const { return kv_heads == 0 ? heads : kv_heads; }
  Index resolved_head_dim(Index d_model) const {
    return head_dim != 0 ? head_dim : (heads > 0 ? d_model / heads : 0);
  }
};

namespace detail {

template <class T>
Positions positions_of(const AttentionOptions<T>& opt, Index n) {
  if (!opt.positions) return Positions(opt.offset, n);
  require(opt.positions->size() == n, "attention: positions has ", opt.positions->size(),
          " entries, X has N = ", n, " rows");
  return *opt.positions;
}

/// The core's options for a layer's call whose keys have segment ids key_segments.
template <class T>
AttendOptions<T> attend_options(const AttentionOptions<T>& opt,
                                std::vector<std::int64_t> key_segments) {
  AttendOptions<T> a;
  a.heads = opt.heads;
  a.kv_heads = opt.resolved_kv_heads();
  a.visibility.causal = opt.causal;
  a.visibility.window = opt.window;
  a.visibility.chunk = opt.chunk;
  a.query_segments = opt.segments;
  a.key_segments = std::move(key_segments);
  a.scale = opt.scale;
  a.softcap = opt.softcap;
  a.sinks = opt.sinks;
  return a;
}

/// The shape of a layer: D from X, H, H_kv and Dh from the options.
template <class T>
AttentionShape layer_shape(Index d_model, const AttentionOptions<T>& opt) {
  return AttentionShape{d_model, opt.heads, opt.resolved_kv_heads(),
                        opt.resolved_head_dim(d_model)};
}

inline void check_weight(const char* name, Index rows, Index cols, Index want_rows, Index want_cols,
                         const char* shape) {
  require(rows == want_rows && cols == want_cols, "attention: ", name, " is [", rows, ", ", cols,
          "], expected ", shape, " = [", want_rows, ", ", want_cols, "]");
}

template <class T>
void check_bias(const char* name, const Vector<T>& b, Index want, const char* shape) {
  require(b.size() == 0 || b.size() == want, "attention: ", name, " has ", b.size(),
          " entries, expected ", shape, " = ", want);
  require(b.allFinite(), "attention: ", name, " has non-finite entries");
}

/// The checks of attention, attention_step and MultiHeadAttention, in this order: H, H_kv,
/// Dh; each weight's shape; each bias's; the caller's own checks `more()`; the options; then
/// the encoder's check of the shape.
template <class E, class W, class F>
void check_layer(const E& enc, Index d, const AttentionOptions<typename E::Scalar>& opt,
                 const W& wq, const W& wk, const W& wv, const W& wo, F&& more) {
  require(opt.heads > 0, "attention: heads H = ", opt.heads, " must be > 0");
  require_extent(opt.heads, "attention: heads H");
  const Index hkv = opt.resolved_kv_heads();
  require(hkv > 0 && opt.heads % hkv == 0, "attention: kv_heads H_kv = ", hkv,
          " must divide heads H = ", opt.heads);
  require(opt.head_dim >= 0, "attention: head_dim Dh = ", opt.head_dim, " must be >= 0 (0: D / H)");
  if (opt.head_dim == 0)
    require(d % opt.heads == 0, "attention: heads H = ", opt.heads, " does not divide D = ", d,
            " (give head_dim for a head size other than D / H)");
  const Index dh = opt.resolved_head_dim(d);
  require_extent(dh, "attention: head_dim Dh");
  const Index qw = checked_mul(opt.heads, dh, "attention: H * Dh");
  const Index kw = checked_mul(hkv, dh, "attention: H_kv * Dh");
  check_weight("Wq", wq.rows(), wq.cols(), d, qw, "[D, H * Dh]");
  check_weight("Wk", wk.rows(), wk.cols(), d, kw, "[D, H_kv * Dh]");
  check_weight("Wv", wv.rows(), wv.cols(), d, kw, "[D, H_kv * Dh]");
  check_weight("Wo", wo.rows(), wo.cols(), qw, d, "[H * Dh, D]");
  check_bias("bq", opt.bq, qw, "H * Dh");
  check_bias("bk", opt.bk, kw, "H_kv * Dh");
  check_bias("bv", opt.bv, kw, "H_kv * Dh");
  check_bias("bo", opt.bo, d, "D");
  more();
  require(opt.window >= 0, "attention: window W = ", opt.window, " must be >= 0 (0: none)");
  require(opt.chunk >= 0, "attention: chunk C = ", opt.chunk, " must be >= 0 (0: none)");
  if (opt.scale)
    require(std::isfinite(*opt.scale), "attention: scale = ", *opt.scale, " must be finite");
  if (opt.softcap)
    require(std::isfinite(*opt.softcap) && *opt.softcap > 0,
            "attention: softcap c = ", *opt.softcap, " must be finite and > 0");
  require(opt.sinks.empty() || static_cast<Index>(opt.sinks.size()) == opt.heads,
          "attention: sinks has ", opt.sinks.size(),
          " entries, expected one per head (H = ", opt.heads, ")");
  check_encoder(enc, AttentionShape{d, opt.heads, hkv, dh});
}

/// f(first_row, rows) over a split of [0, n) into one contiguous block per OpenMP thread
/// (a single call without OpenMP or for small work). Used for the projections: each thread
/// multiplies its own rows (Eigen's GEMM runs single-threaded inside a parallel region), which
/// scales better than splitting each product's columns.
template <class F>
void split_rows(Index n, [[maybe_unused]] double flop, F&& f) {
#if defined(_OPENMP)
  if (n >= 16 && flop >= 4e6) {
    // not `parallel if`: see parallel_region
#pragma omp parallel
    {
      const Index nt = omp_get_num_threads(), t = omp_get_thread_num();
      const Index chunk = (n + nt - 1) / nt;
      const Index b = std::min(n, t * chunk), e = std::min(n, b + chunk);
      if (e > b) f(b, e - b);
    }
    return;
  }
#endif
  f(Index(0), n);
}

/// q, k, v = src Wq + bq, src Wk + bk, src Wv + bv, rows split over the threads.
template <class T>
void project_qkv(const ConstMatrixRef<T>& src, const ConstMatrixRef<T>& wq,
                 const ConstMatrixRef<T>& wk, const ConstMatrixRef<T>& wv,
                 const AttentionOptions<T>& opt, Matrix<T>& q, Matrix<T>& k, Matrix<T>& v) {
  const double flop = 2.0 * static_cast<double>(src.rows()) * static_cast<double>(src.cols()) *
                      static_cast<double>(wq.cols() + wk.cols() + wv.cols());
  split_rows(src.rows(), flop, [&](Index b, Index r) {
    q.middleRows(b, r).noalias() = src.middleRows(b, r) * wq;
    k.middleRows(b, r).noalias() = src.middleRows(b, r) * wk;
    v.middleRows(b, r).noalias() = src.middleRows(b, r) * wv;
    if (opt.bq.size()) q.middleRows(b, r).rowwise() += opt.bq.transpose();
    if (opt.bk.size()) k.middleRows(b, r).rowwise() += opt.bk.transpose();
    if (opt.bv.size()) v.middleRows(b, r).rowwise() += opt.bv.transpose();
  });
}

/// y = o Wo + bo, rows split over the threads.
template <class T>
void project_out(const Matrix<T>& o, const ConstMatrixRef<T>& wo, const Vector<T>& bo,
                 MatrixRef<T> y) {
  const double flop = 2.0 * static_cast<double>(o.rows()) * static_cast<double>(o.cols()) *
                      static_cast<double>(wo.cols());
  split_rows(o.rows(), flop, [&](Index b, Index r) {
    y.middleRows(b, r).noalias() = o.middleRows(b, r) * wo;
    if (bo.size()) y.middleRows(b, r).rowwise() += bo.transpose();
  });
}

/// y = o Wo + bo. Wo is read while y is written, so a y that aliases Wo is computed into a
/// temporary first (x, Wq, Wk, Wv are read before y is written: aliasing them is safe).
template <class T>
void write_output(const Matrix<T>& o, const ConstMatrixRef<T>& wo, const Vector<T>& bo,
                  MatrixRef<T> y) {
  if (!overlaps(y, wo)) return project_out<T>(o, wo, bo, y);
  Matrix<T> tmp = new_matrix<T>(y.rows(), y.cols(), "attention: output [N, D]");
  project_out<T>(o, wo, bo, tmp);
  y = tmp;
}

/// Q [n, H Dh], K, V [n, H_kv Dh] of the tokens x [n, D] at positions pos: X (+ PE for an
/// additive encoder) times Wq, Wk, Wv plus biases, then the heads of Q and K rotated (RoPE, or
/// the encoder's own query and key hooks). When `keep_input` is given, an additive encoder's
/// X + PE storage is moved into it (for reuse as O) instead of being freed.
template <class E>
void project_encoded(const E& enc, const ConstMatrixRef<typename E::Scalar>& x,
                     const ConstMatrixRef<typename E::Scalar>& wq,
                     const ConstMatrixRef<typename E::Scalar>& wk,
                     const ConstMatrixRef<typename E::Scalar>& wv, const Positions& pos,
                     const AttentionOptions<typename E::Scalar>& opt, Matrix<typename E::Scalar>& q,
                     Matrix<typename E::Scalar>& k, Matrix<typename E::Scalar>& v,
                     [[maybe_unused]] Matrix<typename E::Scalar>* keep_input = nullptr) {
  using T = typename E::Scalar;
  if constexpr (encoder_traits<E>::adds_to_input) {
    Matrix<T> xe = new_matrix<T>(x.rows(), x.cols(), "attention: X + PE [N, D]");
    xe = x;
    enc.add_to_input(xe, pos);
    project_qkv<T>(xe, wq, wk, wv, opt, q, k, v);
    if (keep_input && xe.cols() == q.cols()) *keep_input = std::move(xe);
  } else {
    project_qkv<T>(x, wq, wk, wv, opt, q, k, v);
  }
  rotate_queries(enc, MatrixRef<T>(q), pos, opt.heads);
  rotate_keys(enc, MatrixRef<T>(k), pos, opt.resolved_kv_heads());
}

}  // namespace detail

/// Self-attention with encoder `enc` (conventions.md sections 6 and 6b):
///   X' = X + PE (additive encoders);  Q = X' Wq + bq, K = X' Wk + bk, V = X' Wv + bv;
///   RoPE rotates Q_h, K_g;  S_h = scale Q_h K_g^T + B_h (+ content terms), soft-capped;
///   visibility (causal, window, chunk, segments);  O_h = softmax(S_h) V_g (sinks in the
///   denominator);  Y = [O_0 ... O_{H-1}] Wo + bo,
/// with g = floor(h H_kv / H). x is [N, D]; Wq [D, H Dh], Wk, Wv [D, H_kv Dh], Wo [H Dh, D],
/// applied as x W. Writes y [N, D]; y may share storage with x or the weights.
template <class E>
void attention(const ConstMatrixRef<typename E::Scalar>& x,
               const ConstMatrixRef<typename E::Scalar>& wq,
               const ConstMatrixRef<typename E::Scalar>& wk,
               const ConstMatrixRef<typename E::Scalar>& wv,
               const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
               const AttentionOptions<typename E::Scalar>& opt, MatrixRef<typename E::Scalar> y) {
  using T = typename E::Scalar;
  const Index n = x.rows(), d = x.cols();
  detail::check_layer(enc, d, opt, wq, wk, wv, wo, [&] {
    detail::require(y.rows() == n && y.cols() == d, "attention: output is [", y.rows(), ", ",
                    y.cols(), "], expected [", n, ", ", d, "]");
    detail::require(opt.segments.empty() || static_cast<Index>(opt.segments.size()) == n,
                    "attention: segments has ", opt.segments.size(), " entries, X has N = ", n,
                    " rows");
  });
  const Positions pos = detail::positions_of(opt, n);
  if (n == 0) return;

  // Working memory: Q, O [N, H Dh] and K, V [N, H_kv Dh] (O reuses X + PE's storage when the
  // widths agree), plus the kernel's per-thread tiles.
  const Index qw = wq.cols(), kw = wk.cols();
  const char* what = "attention: Q, K, V";
  Matrix<T> q = detail::new_matrix<T>(n, qw, what), k = detail::new_matrix<T>(n, kw, what),
            v = detail::new_matrix<T>(n, kw, what), o;
  detail::project_encoded(enc, x, wq, wk, wv, pos, opt, q, k, v, &o);
  if (o.size() == 0) o = detail::new_matrix<T>(n, qw, "attention: O [N, H * Dh]");
  detail::attend_core(enc, q, k, v, pos, pos, detail::attend_options(opt, opt.segments), o);
  detail::write_output<T>(o, wo, opt.bo, y);
}

/// As above, returning y.
template <class E>
Matrix<typename E::Scalar> attention(const ConstMatrixRef<typename E::Scalar>& x,
                                     const ConstMatrixRef<typename E::Scalar>& wq,
                                     const ConstMatrixRef<typename E::Scalar>& wk,
                                     const ConstMatrixRef<typename E::Scalar>& wv,
                                     const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
                                     const AttentionOptions<typename E::Scalar>& opt) {
  Matrix<typename E::Scalar> y(x.rows(), x.cols());
  attention(x, wq, wk, wv, wo, enc, opt, y);
  return y;
}

namespace detail {

/// attention on X and Y stored as S (bfloat16 or half) and weights as W (float or S): X and the
/// S weights widened to float once, the float layer, Y rounded once to S.
template <class E, class S, class W>
void attention_half(const ConstMatrixRef<S>& x, const ConstMatrixRef<W>& wq,
                    const ConstMatrixRef<W>& wk, const ConstMatrixRef<W>& wv,
                    const ConstMatrixRef<W>& wo, const E& enc,
                    const AttentionOptions<typename E::Scalar>& opt, MatrixRef<S> y) {
  static_assert(std::is_same<typename E::Scalar, float>::value,
                "posenc: bfloat16 and half layers need a float encoder (Scalar = float)");
  require(y.rows() == x.rows() && y.cols() == x.cols(), "attention: output is [", y.rows(), ", ",
          y.cols(), "], expected [", x.rows(), ", ", x.cols(), "]");
  const Matrix<float> xf = widened<S>(x, "attention: X widened to float [N, D]");
  Matrix<float> yf = new_matrix<float>(x.rows(), x.cols(), "attention: Y in float [N, D]");
  if constexpr (std::is_same<W, float>::value) {
    attention(xf, wq, wk, wv, wo, enc, opt, yf);
  } else {
    const char* what = "attention: weights widened to float";
    attention(xf, widened<S>(wq, what), widened<S>(wk, what), widened<S>(wv, what),
              widened<S>(wo, what), enc, opt, yf);
  }
  y = yf.template cast<S>();
}

}  // namespace detail

/// attention on a layer whose input and output are bfloat16 (float weights and arithmetic):
/// X widened once, Y the float result rounded once. y may share storage with x.
template <class E>
void attention(const ConstMatrixRef<Eigen::bfloat16>& x,
               const ConstMatrixRef<typename E::Scalar>& wq,
               const ConstMatrixRef<typename E::Scalar>& wk,
               const ConstMatrixRef<typename E::Scalar>& wv,
               const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
               const AttentionOptions<typename E::Scalar>& opt, MatrixRef<Eigen::bfloat16> y) {
  detail::attention_half<E, Eigen::bfloat16, typename E::Scalar>(x, wq, wk, wv, wo, enc, opt, y);
}

/// As above with the weights stored as bfloat16 too (widened to float for the call).
template <class E>
void attention(const ConstMatrixRef<Eigen::bfloat16>& x, const ConstMatrixRef<Eigen::bfloat16>& wq,
               const ConstMatrixRef<Eigen::bfloat16>& wk, const ConstMatrixRef<Eigen::bfloat16>& wv,
               const ConstMatrixRef<Eigen::bfloat16>& wo, const E& enc,
               const AttentionOptions<typename E::Scalar>& opt, MatrixRef<Eigen::bfloat16> y) {
  detail::attention_half<E, Eigen::bfloat16, Eigen::bfloat16>(x, wq, wk, wv, wo, enc, opt, y);
}

/// attention on a layer whose input and output are IEEE half (float weights and arithmetic).
template <class E>
void attention(const ConstMatrixRef<Eigen::half>& x, const ConstMatrixRef<typename E::Scalar>& wq,
               const ConstMatrixRef<typename E::Scalar>& wk,
               const ConstMatrixRef<typename E::Scalar>& wv,
               const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
               const AttentionOptions<typename E::Scalar>& opt, MatrixRef<Eigen::half> y) {
  detail::attention_half<E, Eigen::half, typename E::Scalar>(x, wq, wk, wv, wo, enc, opt, y);
}

/// As above with the weights stored as half too.
template <class E>
void attention(const ConstMatrixRef<Eigen::half>& x, const ConstMatrixRef<Eigen::half>& wq,
               const ConstMatrixRef<Eigen::half>& wk, const ConstMatrixRef<Eigen::half>& wv,
               const ConstMatrixRef<Eigen::half>& wo, const E& enc,
               const AttentionOptions<typename E::Scalar>& opt, MatrixRef<Eigen::half> y) {
  detail::attention_half<E, Eigen::half, Eigen::half>(x, wq, wk, wv, wo, enc, opt, y);
}

/// Keys (after rotation) and values of the tokens seen so far, with their positions and
/// segment ids, for incremental decoding: [size, H_kv Dh] each, token-major (the order in which
/// a decoding step streams them). The storage is the cache's own (grown geometrically; reserve
/// ahead to avoid reallocation; from 2 MiB on 2 MiB aligned with transparent huge pages
/// advised on Linux, see detail/large_buffer.hpp) or the caller's (fixed capacity; appending
/// beyond it is an error). With a sliding window set (set_window), attention_step
/// drops the keys that no later query can see, so the cache holds about 2 W tokens at most.
/// A cache belongs to one
/// caller at a time (attention_step appends to it); the encoder and weights it is used with
/// may be shared. Storage: the type the keys and values are kept in, T itself, or for
/// T = float Eigen::bfloat16 or Eigen::half (half the memory and half the bytes a decoding
/// step reads; each appended value rounded once to nearest, arithmetic in float).
template <class T, class Storage = T>
class KVCache {
  static_assert(detail::is_storage_of<T, Storage>::value,
                "posenc: KVCache<T, Storage> keeps T itself, or for T = float also Eigen::bfloat16 "
                "or Eigen::half");
  using View = Eigen::Map<Matrix<Storage>, 0, Eigen::OuterStride<>>;
  using ConstView = Eigen::Map<const Matrix<Storage>, 0, Eigen::OuterStride<>>;

 public:
  KVCache() = default;
  /// An empty cache of rows `width` = H_kv Dh wide with room for `capacity` tokens.
  KVCache(Index width, Index capacity) { reserve(width, capacity); }
  /// An empty cache over the caller's buffers keys, values [capacity, H_kv Dh] (blocks with an
  /// outer stride included), which must outlive it; nothing is allocated for K and V.
  KVCache(MatrixRef<Storage> keys, MatrixRef<Storage> values)
      : kp_(keys.data()),
        vp_(values.data()),
        ldk_(keys.outerStride()),
        ldv_(values.outerStride()),
        capacity_(keys.rows()),
        width_(keys.cols()),
        external_(true) {
    detail::require(values.rows() == keys.rows() && values.cols() == keys.cols(),
                    "KVCache: values are [", values.rows(), ", ", values.cols(),
                    "], expected the shape of keys [", keys.rows(), ", ", keys.cols(), "]");
    detail::require(!detail::overlaps(keys, values), "KVCache: keys and values overlap");
  }
  KVCache(const KVCache& other) { *this = other; }
  KVCache(KVCache&& other) noexcept { *this = std::move(other); }
  KVCache& operator=(KVCache&& other) noexcept {
    if (this == &other) return *this;
    own_k_ = std::move(other.own_k_);
    own_v_ = std::move(other.own_v_);
    external_ = other.external_;
    kp_ = external_ ? other.kp_ : own_k_.data();
    vp_ = external_ ? other.vp_ : own_v_.data();
    ldk_ = other.ldk_;
    ldv_ = other.ldv_;
    capacity_ = other.capacity_;
    width_ = other.width_;
    size_ = other.size_;
    pos_ = std::move(other.pos_);
    seg_ = std::move(other.seg_);
    contiguous_ = other.contiguous_;
    window_ = other.window_;
    rotated_for_ = other.rotated_for_;
    other.kp_ = other.vp_ = nullptr;
    other.external_ = false;
    other.ldk_ = other.ldv_ = other.capacity_ = other.width_ = other.size_ = 0;
    other.pos_.clear();
    other.seg_.clear();
    other.contiguous_ = true;
    other.rotated_for_ = -1;
    return *this;
  }
  KVCache& operator=(const KVCache& other) {
    if (this == &other) return *this;
    pos_ = other.pos_;
    seg_ = other.seg_;
    contiguous_ = other.contiguous_;
    window_ = other.window_;
    rotated_for_ = other.rotated_for_;
    size_ = 0;
    if (other.external_) {  // a copy of a cache over the caller's memory owns its storage
      external_ = false;
      kp_ = vp_ = nullptr;
      capacity_ = width_ = 0;
    }
    reserve(other.width_, other.size_);
    keys_view() = other.keys();
    values_view() = other.values();
    size_ = other.size_;
    return *this;
  }

  Index size() const { return size_; }
  Index capacity() const { return capacity_; }
  /// H_kv Dh, the width of a cached row.
  Index width() const { return width_; }
  Index d_model() const { return width_; }
  /// Keys [size, H_kv Dh] and values [size, H_kv Dh].
  ConstView keys() const { return ConstView(kp_, size_, width_, Eigen::OuterStride<>(ldk_)); }
  ConstView values() const { return ConstView(vp_, size_, width_, Eigen::OuterStride<>(ldv_)); }
  /// The cached keys, writable: for changing them in place (re-rotation, conventions.md 3d).
  View mutable_keys() { return View(kp_, size_, width_, Eigen::OuterStride<>(ldk_)); }
  const std::vector<std::int64_t>& positions() const { return pos_; }
  /// The largest position of the call whose frequency set the cached keys carry (-1 when none
  /// is recorded). attention_step keeps it, and re-rotates the keys when a new length picks
  /// another set (RoPE's dynamic and longrope scalings).
  std::int64_t rotated_for() const { return rotated_for_; }
  void set_rotated_for(std::int64_t max_position) { rotated_for_ = max_position; }
  /// The cached positions as Positions: contiguous when every append continued the last one,
  /// so that the kernel's fast paths stay on.
  Positions key_positions() const {
    if (contiguous_) return Positions(size_ ? pos_.front() : 0, size_);
    return Positions(pos_);
  }
  /// Segment ids of the cached tokens (empty when none were given).
  const std::vector<std::int64_t>& segments() const { return seg_; }
  /// The position after the last cached token (or -1 when empty); an error when the last
  /// one is INT64_MAX.
  std::int64_t next_position() const {
    if (pos_.empty()) return -1;
    return detail::checked_add(pos_.back(), 1, "KVCache::next_position: the last cached position");
  }

  /// The sliding window W of the causal layer this cache serves: drop_invisible() then drops
  /// the keys that no later query can see. 0: keep everything.
  void set_window(std::int64_t w) {
    detail::require(w >= 0, "KVCache::set_window: W = ", w, " must be >= 0 (0: none)");
    window_ = w;
  }
  std::int64_t window() const { return window_; }

  /// Drops the keys at positions p <= p_last - W (p_last the last cached position): a later
  /// causal query at p' > p_last sees only p' - p < W. The rest move to the front once the
  /// dropped ones are at least half of the cache (amortised O(1) per token); positions must
  /// have been appended in increasing order.
  void drop_invisible() {
    if (window_ <= 0 || size_ == 0) return;
    const std::int64_t last = pos_.back();
    Index stale = 0;
    while (stale < size_ && pos_[static_cast<std::size_t>(stale)] <= last - window_)
      ++stale;
    if (stale == 0 || 2 * stale < size_) return;
    const Index keep = size_ - stale;
    for (Index i = 0; i < keep; ++i) {
      keys_view().row(i) = keys_view().row(stale + i);
      values_view().row(i) = values_view().row(stale + i);
    }
    pos_.erase(pos_.begin(), pos_.begin() + stale);
    if (!seg_.empty()) seg_.erase(seg_.begin(), seg_.begin() + stale);
    size_ = keep;
  }

  void clear() {
    size_ = 0;
    pos_.clear();
    seg_.clear();
    contiguous_ = true;
    rotated_for_ = -1;
  }

  /// Removes the cached tokens [begin, end), keeping the order of the rest.
  void erase(Index begin, Index end) {
    detail::require(0 <= begin && begin <= end && end <= size_, "KVCache::erase: [", begin, ", ",
                    end, ") is not a range of the ", size_, " cached tokens");
    const Index n = end - begin;
    if (n == 0) return;
    for (Index i = end; i < size_; ++i) {
      keys_view().row(i - n) = keys_view().row(i);
      values_view().row(i - n) = values_view().row(i);
    }
    pos_.erase(pos_.begin() + begin, pos_.begin() + end);
    if (!seg_.empty()) seg_.erase(seg_.begin() + begin, seg_.begin() + end);
    size_ -= n;
    update_contiguous();
  }

  /// Adds delta to the positions of the cached tokens [begin, size) (their keys are not
  /// touched: see evict_and_shift, which moves rotated keys with them).
  void shift_positions(Index begin, std::int64_t delta) {
    detail::require(0 <= begin && begin <= size_, "KVCache::shift_positions: begin = ", begin,
                    " is outside [0, ", size_, "]");
    for (Index i = begin; i < size_; ++i) {
      std::int64_t& p = pos_[static_cast<std::size_t>(i)];
      p = detail::checked_add(p, delta, "KVCache::shift_positions: position");
      detail::require(p >= 0, "KVCache::shift_positions: position ", p - delta, " + ", delta,
                      " is negative");
    }
    update_contiguous();
  }
  /// Room for `capacity` tokens of `width` = H_kv Dh (never shrinks).
  void reserve(Index width, Index capacity) {
    detail::require(width >= 0 && capacity >= 0, "KVCache: width = ", width,
                    ", capacity = ", capacity, " must be >= 0");
    detail::require(size_ == 0 || width == width_, "KVCache: width = ", width,
                    " differs from the cached width H_kv * Dh = ", width_);
    if (capacity <= capacity_ && width == width_) return;
    detail::require(!external_, "KVCache: ", capacity, " tokens of width ", width,
                    " do not fit the caller's buffers [", capacity_, ", ", width_, "]");
    const char* what = "KVCache: keys and values [capacity, H_kv * Dh]";
    const std::int64_t n = detail::checked_elements(capacity, width, what);
    detail::LargeBuffer<Storage> k(n, what), v(n, what);
    if (size_ > 0) {
      View(k.data(), size_, width, Eigen::OuterStride<>(width)) = keys();
      View(v.data(), size_, width, Eigen::OuterStride<>(width)) = values();
    }
    own_k_.swap(k);
    own_v_.swap(v);
    kp_ = own_k_.data();
    vp_ = own_v_.data();
    ldk_ = ldv_ = width;
    capacity_ = capacity;
    width_ = width;
    pos_.reserve(static_cast<std::size_t>(capacity));
  }
  /// Appends rows k, v [n, H_kv Dh] at positions pos (with segment ids, if the cache has any).
  void append(const ConstMatrixRef<T>& k, const ConstMatrixRef<T>& v, const Positions& pos,
              const std::vector<std::int64_t>& segments = {}) {
    detail::require(k.rows() == pos.size() && v.rows() == pos.size() && k.cols() == v.cols(),
                    "KVCache::append: k is [", k.rows(), ", ", k.cols(), "], v is [", v.rows(),
                    ", ", v.cols(), "], expected [", pos.size(), ", H_kv * Dh] each");
    detail::require(size_ == 0 || k.cols() == width_, "KVCache::append: rows are ", k.cols(),
                    " wide, the cache holds ", width_);
    detail::require(segments.empty() || static_cast<Index>(segments.size()) == pos.size(),
                    "KVCache::append: ", segments.size(), " segment ids for ", pos.size(),
                    " tokens");
    detail::require(size_ == 0 || segments.empty() == seg_.empty(),
                    "KVCache::append: segment ids must be given for every append or for none");
    if (pos.empty()) return;
    const Index needed = detail::checked_add(size_, k.rows(), "KVCache::append: size + n");
    if (needed > capacity_ || k.cols() != width_)
      reserve(k.cols(), external_ ? needed : std::max(needed, 2 * capacity_));
    if constexpr (std::is_same<T, Storage>::value) {
      keys_view().middleRows(size_, k.rows()) = k;
      values_view().middleRows(size_, v.rows()) = v;
    } else {  // rounded once to nearest, ties to even
      keys_view().middleRows(size_, k.rows()) = k.template cast<Storage>();
      values_view().middleRows(size_, v.rows()) = v.template cast<Storage>();
    }
    for (Index i = 0; i < pos.size(); ++i) {
      const std::int64_t p = pos[i];
      if (!pos_.empty() && contiguous_ && p - pos_.back() != 1) contiguous_ = false;
      pos_.push_back(p);
    }
    seg_.insert(seg_.end(), segments.begin(), segments.end());
    size_ += k.rows();
  }

 private:
  void update_contiguous() {
    contiguous_ = true;
    for (std::size_t i = 1; i < pos_.size() && contiguous_; ++i)
      contiguous_ = detail::sub_fits(pos_[i], pos_[i - 1]) && pos_[i] - pos_[i - 1] == 1;
  }
  View keys_view() { return View(kp_, capacity_, width_, Eigen::OuterStride<>(ldk_)); }
  View values_view() { return View(vp_, capacity_, width_, Eigen::OuterStride<>(ldv_)); }

  detail::LargeBuffer<Storage> own_k_, own_v_;  // 2 MiB aligned, huge pages advised
  Storage* kp_ = nullptr;
  Storage* vp_ = nullptr;
  Index ldk_ = 0, ldv_ = 0, capacity_ = 0, width_ = 0, size_ = 0;
  bool external_ = false;
  std::vector<std::int64_t> pos_, seg_;
  bool contiguous_ = true;
  std::int64_t window_ = 0;
  std::int64_t rotated_for_ = -1;
};

/// Evicts the cached tokens [begin, end) and moves the later ones down to close the gap, as
/// StreamingLLM (Xiao et al. 2023) does to keep its attention sinks (the first tokens) and a
/// recent window: a token after the span at position p moves to p - (p_end - p_begin), the
/// position length of the span. Keys rotated by RoPE move with it (conventions.md 3d: one
/// rotation by delta * inv_freq of the set the keys carry); the keys of encoders that bias
/// scores by position (ALiBi, T5, Shaw, Transformer-XL) carry none, so only the positions move.
/// The cache afterwards equals one that saw the kept tokens at their new positions. kv_heads
/// is the layer's H_kv.
template <class E>
void evict_and_shift(const E& enc, KVCache<typename E::Scalar>& cache, Index begin, Index end,
                     Index kv_heads) {
  static_assert(!encoder_traits<E>::adds_to_input,
                "evict_and_shift: an additive encoding's keys carry their absolute positions, "
                "which no rotation can move");
  detail::require(0 <= begin && begin <= end && end <= cache.size(), "evict_and_shift: [", begin,
                  ", ", end, ") is not a range of the ", cache.size(), " cached tokens");
  detail::require(kv_heads > 0 && cache.width() % kv_heads == 0,
                  "evict_and_shift: kv_heads = ", kv_heads, " does not divide the cached width ",
                  cache.width());
  if (begin == end) return;
  const std::int64_t rotated_for =
      cache.rotated_for() >= 0 ? cache.rotated_for() : cache.key_positions().max();
  std::int64_t delta = 0;
  if (end < cache.size()) {
    const auto& p = cache.positions();
    delta =
        detail::checked_sub(p[static_cast<std::size_t>(begin)], p[static_cast<std::size_t>(end)],
                            "evict_and_shift: the span's position length");
    if constexpr (encoder_traits<E>::rotates_qk) {
      static_assert(detail::has_shift<E>::value,
                    "evict_and_shift: the encoder rotates keys but has no `shift` hook "
                    "(void shift(MatrixRef<Scalar>, const Positions&, Index, std::int64_t, "
                    "const RotaryFrequencies&) const)");
      const Index kept = cache.size() - end;
      const std::vector<std::int64_t> moved(p.begin() + end, p.end());
      auto keys = cache.mutable_keys().bottomRows(kept);
      enc.shift(keys, Positions(moved), kv_heads, delta, enc.frequencies(rotated_for));
    }
  }
  cache.erase(begin, end);
  cache.shift_positions(begin, delta);
  if constexpr (detail::has_rerotate_for<E>::value) {
    // The kept keys carry the set of the old length; a cache that had seen them at their new
    // positions carries the set of the new one (conventions.md 3d).
    if (cache.size() > 0) {
      const std::int64_t now = cache.key_positions().max();
      enc.rerotate_for(cache.mutable_keys(), cache.key_positions(), kv_heads, rotated_for, now);
      cache.set_rotated_for(now);
    }
  }
}

/// Attention for new tokens x_new [n, D] given a cache of earlier ones: the new tokens sit at
/// positions cache.next_position() ... (opt.offset ... for an empty cache, or opt.positions),
/// their keys and values are appended, and each attends to every cached key it may see. With
/// a causal mask the outputs equal those of one full call over all the tokens.
template <class E, class S>
void attention_step(const ConstMatrixRef<typename E::Scalar>& x_new,
                    const ConstMatrixRef<typename E::Scalar>& wq,
                    const ConstMatrixRef<typename E::Scalar>& wk,
                    const ConstMatrixRef<typename E::Scalar>& wv,
                    const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
                    const AttentionOptions<typename E::Scalar>& opt,
                    KVCache<typename E::Scalar, S>& cache, MatrixRef<typename E::Scalar> y) {
  using T = typename E::Scalar;
  const Index n = x_new.rows(), d = x_new.cols();
  detail::check_layer(enc, d, opt, wq, wk, wv, wo, [&] {
    detail::require(cache.size() == 0 || cache.width() == wk.cols(),
                    "attention_step: the cache holds rows ", cache.width(),
                    " wide, the layer's keys are H_kv * Dh = ", wk.cols());
    detail::require(y.rows() == n && y.cols() == d, "attention_step: output is [", y.rows(), ", ",
                    y.cols(), "], expected [", n, ", ", d, "]");
    detail::require(opt.segments.empty() || static_cast<Index>(opt.segments.size()) == n,
                    "attention_step: segments has ", opt.segments.size(), " entries, x_new has ", n,
                    " rows");
    detail::require(
        cache.window() == 0 || (opt.causal && opt.window > 0 && cache.window() >= opt.window),
        "attention_step: the cache drops keys outside a window of ", cache.window(),
        ", the layer is ", opt.causal ? "causal" : "not causal", " with window ", opt.window,
        " (a cache window needs a causal layer with window <= it)");
  });
  const Positions pos = opt.positions
                            ? detail::positions_of(opt, n)
                            : Positions(cache.size() ? cache.next_position() : opt.offset, n);
  if (n == 0) return;

  const char* what = "attention_step: Q, K, V";
  Matrix<T> q = detail::new_matrix<T>(n, wq.cols(), what),
            k = detail::new_matrix<T>(n, wk.cols(), what),
            v = detail::new_matrix<T>(n, wk.cols(), what);
  detail::project_encoded(enc, x_new, wq, wk, wv, pos, opt, q, k, v);
  if constexpr (detail::has_rerotate_for<E>::value) {
    // Conventions 3d's rule: every query and key carries the frequency set of the whole
    // sequence's length, as in one causal call over it. The new rows were rotated for their own
    // largest position, the cached keys for the largest one when they were last rotated (which
    // an eviction may since have removed).
    const Index kv_heads = opt.resolved_kv_heads();
    const std::int64_t pnew = pos.max();
    const std::int64_t pall = cache.size() ? std::max(pnew, cache.key_positions().max()) : pnew;
    if (pall != pnew) {
      enc.rerotate_for(q, pos, opt.heads, pnew, pall);
      enc.rerotate_for(k, pos, kv_heads, pnew, pall);
    }
    if (cache.size() && cache.rotated_for() != pall) {
      if constexpr (std::is_same<S, T>::value) {
        enc.rerotate_for(cache.mutable_keys(), cache.key_positions(), kv_heads, cache.rotated_for(),
                         pall);
      } else {  // widened, re-rotated in float, rounded back once
        Matrix<T> wide = cache.keys().template cast<T>();
        enc.rerotate_for(wide, cache.key_positions(), kv_heads, cache.rotated_for(), pall);
        cache.mutable_keys() = wide.template cast<S>();
      }
    }
    cache.append(k, v, pos, opt.segments);
    cache.set_rotated_for(pall);
  } else {
    cache.append(k, v, pos, opt.segments);
  }
  Matrix<T> o = detail::new_matrix<T>(n, wq.cols(), "attention_step: O [n, H * Dh]");
  detail::attend_stored<E, S>(enc, q, cache.keys(), cache.values(), pos, cache.key_positions(),
                              detail::attend_options(opt, cache.segments()), o, nullptr);
  cache.drop_invisible();
  detail::write_output<T>(o, wo, opt.bo, y);
}

/// Weights, encoder and options of one attention layer, for repeated calls. The const
/// members may run on several threads at once (each call may itself use OpenMP threads).
template <class E>
class MultiHeadAttention {
 public:
  using Scalar = typename E::Scalar;
  using T = Scalar;

  MultiHeadAttention(const ConstMatrixRef<T>& wq, const ConstMatrixRef<T>& wk,
                     const ConstMatrixRef<T>& wv, const ConstMatrixRef<T>& wo, E encoder,
                     AttentionOptions<T> options)
      : wq_(wq), wk_(wk), wv_(wv), wo_(wo), enc_(std::move(encoder)), opt_(std::move(options)) {
    detail::check_layer(enc_, wq_.rows(), opt_, wq_, wk_, wv_, wo_, [] {});
  }

  const E& encoder() const { return enc_; }
  E& encoder() { return enc_; }
  const AttentionOptions<T>& options() const { return opt_; }
  Index d_model() const { return wq_.rows(); }

  /// Y for the whole sequence x [N, D].
  Matrix<T> operator()(const ConstMatrixRef<T>& x) const {
    return attention(x, wq_, wk_, wv_, wo_, enc_, opt_);
  }
  /// Y for new tokens, appended to cache.
  template <class S>
  Matrix<T> step(const ConstMatrixRef<T>& x_new, KVCache<T, S>& cache) const {
    Matrix<T> y(x_new.rows(), x_new.cols());
    attention_step(x_new, wq_, wk_, wv_, wo_, enc_, opt_, cache, y);
    return y;
  }

 private:
  Matrix<T> wq_, wk_, wv_, wo_;
  E enc_;
  AttentionOptions<T> opt_;
};

POSENC_NAMESPACE_END

#include "detail/attend_decode.hpp"
