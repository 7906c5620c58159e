// posenc: multi-head self-attention over any encoder (conventions.md section 6), with a KV
// cache for incremental decoding.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "detail/tile_kernels.hpp"
#include "encoder.hpp"
#include "types.hpp"

namespace posenc {

template <class T>
struct AttentionOptions {
  /// H; D must be a multiple of it.
  Index heads = 1;
  /// S[i, j] = -inf where p_j > p_i.
  bool causal = false;
  /// p_i = offset + i, unless `positions` is non-empty.
  std::int64_t offset = 0;
  std::vector<std::int64_t> positions;
  /// Score scale; 1/sqrt(Dh) when absent (T5 uses 1).
  std::optional<T> scale;
};

namespace detail {

inline void check_projection(const char* name, Index rows, Index cols, Index d) {
  require(rows == d && cols == d, "attention: ", name, " is [", rows, ", ", cols,
          "], expected [D, D] = [", d, ", ", d, "]");
}

template <class T>
Positions positions_of(const AttentionOptions<T>& opt, Index n) {
  if (opt.positions.empty()) return Positions(opt.offset, n);
  require(static_cast<Index>(opt.positions.size()) == n, "attention: positions has ",
          opt.positions.size(), " entries, X has N = ", n, " rows");
  return Positions(opt.positions);
}

template <class T>
T score_scale(const AttentionOptions<T>& opt, Index head_dim) {
  if (!opt.scale) return static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  require(std::isfinite(*opt.scale), "attention: scale = ", *opt.scale, " must be finite");
  return *opt.scale;
}

/// True when the memory of two row-major views overlaps (an output aliasing an input).
template <class A, class B>
bool overlaps(const A& a, const B& b) {
  if (a.size() == 0 || b.size() == 0) return false;
  const auto* a0 = reinterpret_cast<const char*>(a.data());
  const auto* b0 = reinterpret_cast<const char*>(b.data());
  const auto* a1 = reinterpret_cast<const char*>(a.data() + (a.rows() - 1) * a.outerStride() + a.cols());
  const auto* b1 = reinterpret_cast<const char*>(b.data() + (b.rows() - 1) * b.outerStride() + b.cols());
  return std::less<const char*>()(a0, b1) && std::less<const char*>()(b0, a1);
}

inline void check_heads(Index d, Index heads) {
  require(heads > 0, "attention: heads H = ", heads, " must be > 0");
  require_extent(heads, "attention: heads H");
  require(d % heads == 0, "attention: heads H = ", heads, " does not divide D = ", d);
}

/// The checks of attention, attention_step and MultiHeadAttention, in this order: H divides D,
/// each weight is [D, D], then the caller's own checks `more()`, then the encoder's check of D
/// and H.
template <class E, class W, class F>
void check_layer(const E& enc, Index d, Index heads, const W& wq, const W& wk, const W& wv,
                 const W& wo, F&& more) {
  check_heads(d, heads);
  check_projection("Wq", wq.rows(), wq.cols(), d);
  check_projection("Wk", wk.rows(), wk.cols(), d);
  check_projection("Wv", wv.rows(), wv.cols(), d);
  check_projection("Wo", wo.rows(), wo.cols(), d);
  more();
  if constexpr (encoder_traits<E>::checks_shape) enc.check(d, heads);
}

/// f(first_row, rows) over a split of [0, n) into one contiguous block per OpenMP thread
/// (a single call without OpenMP or for small work). Used for the projections: each thread
/// multiplies its own rows (Eigen's GEMM runs single-threaded inside a parallel region), which
/// scales better than splitting each product's columns.
template <class F>
void split_rows(Index n, double flop, F&& f) {
#if defined(_OPENMP)
#pragma omp parallel if (n >= 16 && flop >= 4e6)
  {
    const Index nt = omp_get_num_threads(), t = omp_get_thread_num();
    const Index chunk = (n + nt - 1) / nt;
    const Index b = std::min(n, t * chunk), e = std::min(n, b + chunk);
    if (e > b) f(b, e - b);
  }
#else
  (void)flop;
  f(Index(0), n);
#endif
}

/// q, k, v = src Wq, src Wk, src Wv, rows split over the threads.
template <class T>
void project_qkv(const ConstMatrixRef<T>& src, const ConstMatrixRef<T>& wq, const ConstMatrixRef<T>& wk,
                 const ConstMatrixRef<T>& wv, Matrix<T>& q, Matrix<T>& k, Matrix<T>& v) {
  const double d = static_cast<double>(src.cols());
  split_rows(src.rows(), 6.0 * static_cast<double>(src.rows()) * d * d, [&](Index b, Index r) {
    q.middleRows(b, r).noalias() = src.middleRows(b, r) * wq;
    k.middleRows(b, r).noalias() = src.middleRows(b, r) * wk;
    v.middleRows(b, r).noalias() = src.middleRows(b, r) * wv;
  });
}

/// y = o Wo, rows split over the threads.
template <class T>
void project_out(const Matrix<T>& o, const ConstMatrixRef<T>& wo, MatrixRef<T> y) {
  const double d = static_cast<double>(o.cols());
  split_rows(o.rows(), 2.0 * static_cast<double>(o.rows()) * d * d, [&](Index b, Index r) {
    y.middleRows(b, r).noalias() = o.middleRows(b, r) * wo;
  });
}

/// y = o Wo. Wo is read while y is written, so a y that aliases Wo is computed into a
/// temporary first (x, Wq, Wk, Wv are read before y is written: aliasing them is safe).
template <class T>
void write_output(const Matrix<T>& o, const ConstMatrixRef<T>& wo, MatrixRef<T> y) {
  if (!overlaps(y, wo)) return project_out<T>(o, wo, y);
  Matrix<T> tmp = new_matrix<T>(y.rows(), y.cols(), "attention: output [N, D]");
  project_out<T>(o, wo, tmp);
  y = tmp;
}

/// Q, K, V [n, D] of the tokens x [n, D] at positions pos: X (+ PE for an additive encoder)
/// times Wq, Wk, Wv, then Q_h and K_h rotated (RoPE). q, k, v are [n, D] on entry. When
/// `keep_input` is given, an additive encoder's X + PE storage is moved into it (for reuse as
/// O) instead of being freed.
template <class E>
void project_encoded(const E& enc, const ConstMatrixRef<typename E::Scalar>& x,
                     const ConstMatrixRef<typename E::Scalar>& wq,
                     const ConstMatrixRef<typename E::Scalar>& wk,
                     const ConstMatrixRef<typename E::Scalar>& wv, const Positions& pos,
                     Index heads, Matrix<typename E::Scalar>& q, Matrix<typename E::Scalar>& k,
                     Matrix<typename E::Scalar>& v,
                     Matrix<typename E::Scalar>* keep_input = nullptr) {
  using T = typename E::Scalar;
  if constexpr (encoder_traits<E>::adds_to_input) {
    Matrix<T> xe = new_matrix<T>(x.rows(), x.cols(), "attention: X + PE [N, D]");
    xe = x;
    enc.add_to_input(xe, pos);
    project_qkv<T>(xe, wq, wk, wv, q, k, v);
    if (keep_input) *keep_input = std::move(xe);
  } else {
    (void)keep_input;
    project_qkv<T>(x, wq, wk, wv, q, k, v);
  }
  if constexpr (encoder_traits<E>::rotates_qk) {
    enc.rotate(q, pos, heads);
    enc.rotate(k, pos, heads);
  }
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
  std::vector<T> kt;  // K_h^T of one head, packed tile by tile: [k_tiles][Dh][bk]
  Index kt_head = -1;
};

/// Exponents are clamped from below at this value, so that every probability is a normal
/// number (subnormals are slow): e^cutoff (1.6e-38 in float, 3.3e-308 in double) is far below
/// the resolution of a row sum, which is >= 1, so the result does not change.
template <class T>
constexpr T exp_cutoff() {
  return std::is_same<T, float>::value ? T(-87) : T(-708);
}

/// Scores, mask, softmax and values for every head: out [Nq, D] = softmax(S) V per head, with
/// S = scale Q_h K_h^T + the encoder's bias. Tiled over queries and keys with an online
/// softmax (Milakov & Gimelshein 2018), so no [Nq, Nk] matrix is formed; under a causal mask,
/// key tiles entirely in a query tile's future are skipped and only tiles that cross the
/// diagonal are masked. When Dh is a multiple of the SIMD width the two products run in
/// register-blocked micro-kernels (detail/tile_kernels.hpp) on a per-thread, per-head packed
/// K_h^T; otherwise through Eigen's GEMM. Heads x query tiles run in parallel under OpenMP.
template <class E>
void attend(const E& enc, const ConstMatrixRef<typename E::Scalar>& q,
            const ConstMatrixRef<typename E::Scalar>& k, const ConstMatrixRef<typename E::Scalar>& v,
            const Positions& qpos, const Positions& kpos, Index heads, typename E::Scalar scale,
            bool causal, MatrixRef<typename E::Scalar> out) {
  using T = typename E::Scalar;
  using RowMajorMap = Eigen::Map<Matrix<T>, 0, Eigen::OuterStride<>>;
  using RowArrayMap = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
  const Index nq = q.rows(), nk = k.rows(), d = q.cols(), dh = d / heads;
  POSENC_ASSERT(out.rows() == nq && out.cols() == d && v.rows() == nk);
  if (nq == 0) return;
  if (causal) {
    const std::int64_t kmin = nk > 0 ? kpos.min() : std::numeric_limits<std::int64_t>::max();
    for (Index i = 0; i < nq; ++i)
      require(qpos[i] >= kmin, "attention: query ", i, " at position ", qpos[i],
              " has every key masked (causal, the earliest key is at ",
              nk > 0 ? kpos.min() : -1, ")");
  } else {
    require(nk > 0, "attention: no keys to attend to");
  }

  constexpr Index bq = attention_tiles<T>::query, bk = attention_tiles<T>::key;
  constexpr int P = tile_packet<T>::size;
  static_assert(bk % P == 0, "the key tile must be a multiple of the SIMD width");
  const Index q_tiles = (nq + bq - 1) / bq, k_tiles = (nk + bk - 1) / bk;
  const bool contiguous = qpos.contiguous() && kpos.contiguous();
  std::vector<std::int64_t> ktile_min(static_cast<std::size_t>(k_tiles)),
      ktile_max(static_cast<std::size_t>(k_tiles));
  for (Index t = 0; t < k_tiles; ++t) {
    std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -1;
    for (Index j = t * bk; j < std::min(nk, (t + 1) * bk); ++j) {
      lo = std::min(lo, kpos[j]);
      hi = std::max(hi, kpos[j]);
    }
    ktile_min[static_cast<std::size_t>(t)] = lo;
    ktile_max[static_cast<std::size_t>(t)] = hi;
  }

  constexpr bool has_bias = encoder_traits<E>::biases_scores;
  constexpr bool has_values = adds_values<E>();
  // The micro-kernels need Dh in whole SIMD packets, and pay a K_h^T packing per head and
  // thread that only a block of queries amortises (a decoding step with a few new tokens runs
  // through Eigen's GEMV instead).
  const bool fast = dh % P == 0 && nq >= 8;
  const auto bias = make_score_bias(enc, qpos, kpos, heads, dh, scale);
  std::atomic<bool> empty_row{false};
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T cutoff = exp_cutoff<T>();
  const T* kdata = k.data();
  const T* vdata = v.data();
  const T* qdata = q.data();
  const Index ldk = k.outerStride(), ldv = v.outerStride(), ldq = q.outerStride();

  const Index work = heads * q_tiles;
#if defined(_OPENMP)
#pragma omp parallel if (work > 1 && nq * nk * d > 32768)
#endif
  {
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
      // Head-major, and within a head the last (under a causal mask the largest) tiles first.
      const Index h = w / q_tiles, i0 = (q_tiles - 1 - w % q_tiles) * bq, bi = std::min(bq, nq - i0);
      std::int64_t qmin = std::numeric_limits<std::int64_t>::max(), qmax = -1;
      for (Index i = 0; i < bi; ++i) {
        qmin = std::min(qmin, qpos[i0 + i]);
        qmax = std::max(qmax, qpos[i0 + i]);
      }
      if (fast && sc.kt_head != h) {
        // K_h^T, tile t at kt[t * dh * bk], row d holding keys t*bk .. t*bk+bk-1 (zero padded)
        sc.kt.assign(static_cast<std::size_t>(k_tiles * dh * bk), T(0));
        for (Index j = 0; j < nk; ++j) {
          const T* kr = kdata + j * ldk + h * dh;
          T* dst = sc.kt.data() + (j / bk) * dh * bk + (j % bk);
          for (Index c = 0; c < dh; ++c) dst[c * bk] = kr[c];
        }
        sc.kt_head = h;
      }
      const auto qh = q.block(i0, h * dh, bi, dh);
      auto acc = sc.acc.topRows(bi);
      acc.setZero();
      sc.m.head(bi).setConstant(neg_inf);
      sc.l.head(bi).setZero();
      for (Index t = 0; t < k_tiles; ++t) {
        const Index j0 = t * bk, bj = std::min(bk, nk - j0);
        if (causal && ktile_min[static_cast<std::size_t>(t)] > qmax) continue;
        RowMajorMap st(s, bi, bj, Eigen::OuterStride<>(lds));
        // A causal tile that crosses the diagonal: with contiguous positions row i keeps its
        // first cols[i] keys (p_j <= p_i), so the masked parts are neither computed nor read;
        // otherwise masked scores are set to -inf.
        const bool diagonal = causal && ktile_max[static_cast<std::size_t>(t)] > qmin;
        const Index* cols = nullptr;
        if (diagonal && contiguous) {
          // row i keeps keys j with p_j <= p_i: j < p_i - p_{j0} + 1 (saturated, then clamped)
          for (Index i = 0; i < bi; ++i)
            sc.cols[static_cast<std::size_t>(i)] = static_cast<Index>(std::clamp<std::int64_t>(
                saturating_add((qpos.offset() + i0 + i) - (kpos.offset() + j0), 1), 0, bj));
          cols = sc.cols.data();
        }
        if (fast) {
          qk_tile(qdata + i0 * ldq + h * dh, ldq, bi, sc.kt.data() + t * dh * bk, bk, bj, dh, scale,
                  s, lds, cols);
        } else {
          st.noalias() = scale * (qh * k.block(j0, h * dh, bj, dh).transpose());
        }
        if constexpr (has_bias) bias.add(h, i0, j0, qh, k.block(j0, h * dh, bj, dh), st);
        if (diagonal && !contiguous) {
          for (Index i = 0; i < bi; ++i) {
            const std::int64_t pi = qpos[i0 + i];
            for (Index j = 0; j < bj; ++j)
              if (kpos[j0 + j] > pi) s[i * lds + j] = neg_inf;
          }
        }
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
          if (ci == 0 || mn == neg_inf) {  // nothing (new) unmasked in this row
            row.setZero();
            sc.alpha(i) = T(1);
            continue;
          }
          sc.alpha(i) = mo == neg_inf ? T(0) : std::exp(mo - mn);
          row = (row - mn).max(cutoff).exp();
          sc.l(i) = sc.l(i) * sc.alpha(i) + row.sum();
          sc.m(i) = mn;
        }
        if (fast) {
          pv_tile(s, lds, bi, bj, vdata + j0 * ldv + h * dh, ldv, dh, sc.alpha.data(), acc.data(),
                  acc.outerStride(), cols);
        } else {
          acc = sc.alpha.head(bi).asDiagonal() * acc;
          acc.noalias() += st * v.block(j0, h * dh, bj, dh);
        }
        if constexpr (has_values) bias.add_values(h, i0, j0, st, acc);
      }
      // l = 0: every score of the row was masked or -inf. A NaN score (from NaN or Inf in
      // the inputs) makes l NaN and propagates to the row's output instead.
      for (Index i = 0; i < bi; ++i)
        if (sc.l(i) == T(0)) empty_row = true;
      out.block(i0, h * dh, bi, dh) = sc.l.head(bi).cwiseInverse().asDiagonal() * acc;
    }
  }
  require(!empty_row, "attention: a query row has every score masked or -inf");
}

}  // namespace detail

/// Multi-head self-attention with encoder `enc` (conventions.md section 6):
///   X' = X + PE (additive encoders);  Q = X' Wq, K = X' Wk, V = X' Wv;  RoPE rotates Q_h, K_h;
///   S_h = scale Q_h K_h^T + B_h (+ content terms);  O_h = softmax(S_h) V_h;  Y = [O_0 ... O_{H-1}] Wo.
/// x is [N, D]; the weights are [D, D] and applied as x W. Writes y [N, D].
template <class E>
void attention(const ConstMatrixRef<typename E::Scalar>& x, const ConstMatrixRef<typename E::Scalar>& wq,
               const ConstMatrixRef<typename E::Scalar>& wk, const ConstMatrixRef<typename E::Scalar>& wv,
               const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
               const AttentionOptions<typename E::Scalar>& opt, MatrixRef<typename E::Scalar> y) {
  using T = typename E::Scalar;
  const Index n = x.rows(), d = x.cols();
  detail::check_layer(enc, d, opt.heads, wq, wk, wv, wo, [&] {
    detail::require(y.rows() == n && y.cols() == d, "attention: output is [", y.rows(), ", ",
                    y.cols(), "], expected [", n, ", ", d, "]");
  });
  const Positions pos = detail::positions_of(opt, n);
  const T scale = detail::score_scale(opt, d / opt.heads);
  if (n == 0) return;

  // Working memory: Q, K, V and O, each [N, D] (O reuses X + PE's storage), plus the
  // kernel's per-thread tiles.
  const char* what = "attention: Q, K, V [N, D]";
  Matrix<T> q = detail::new_matrix<T>(n, d, what), k = detail::new_matrix<T>(n, d, what),
            v = detail::new_matrix<T>(n, d, what), o;
  detail::project_encoded(enc, x, wq, wk, wv, pos, opt.heads, q, k, v, &o);
  if (o.size() == 0) o = detail::new_matrix<T>(n, d, "attention: O [N, D]");
  detail::attend(enc, q, k, v, pos, pos, opt.heads, scale, opt.causal, o);
  detail::write_output<T>(o, wo, y);
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

/// Keys (after rotation) and values of the tokens seen so far, with their positions, for
/// incremental decoding. Capacity grows geometrically. A cache belongs to one caller at a
/// time (attention_step appends to it); the encoder and weights it is used with may be shared.
template <class T>
class KVCache {
 public:
  KVCache() = default;
  KVCache(Index d_model, Index capacity) { reserve(d_model, capacity); }

  Index size() const { return size_; }
  Index d_model() const { return k_.cols(); }
  /// Keys [size, D] and values [size, D].
  auto keys() const { return k_.topRows(size_); }
  auto values() const { return v_.topRows(size_); }
  const std::vector<std::int64_t>& positions() const { return pos_; }
  /// The position after the last cached token (or -1 when empty); an error when the last
  /// one is INT64_MAX.
  std::int64_t next_position() const {
    if (pos_.empty()) return -1;
    return detail::checked_add(pos_.back(), 1, "KVCache::next_position: the last cached position");
  }

  void clear() {
    size_ = 0;
    pos_.clear();
  }
  void reserve(Index d_model, Index capacity) {
    detail::require(d_model >= 0 && capacity >= 0, "KVCache: d_model = ", d_model,
                    ", capacity = ", capacity, " must be >= 0");
    detail::require(size_ == 0 || d_model == k_.cols(), "KVCache: d_model = ", d_model,
                    " differs from the cached D = ", k_.cols());
    if (capacity <= k_.rows() && d_model == k_.cols()) return;
    const char* what = "KVCache: keys and values [capacity, D]";
    Matrix<T> k = detail::new_matrix<T>(capacity, d_model, what),
              v = detail::new_matrix<T>(capacity, d_model, what);
    if (size_ > 0) {
      k.topRows(size_) = k_.topRows(size_);
      v.topRows(size_) = v_.topRows(size_);
    }
    k_.swap(k);
    v_.swap(v);
  }
  /// Appends rows k, v [n, D] at positions pos.
  void append(const ConstMatrixRef<T>& k, const ConstMatrixRef<T>& v, const Positions& pos) {
    detail::require(k.rows() == pos.size() && v.rows() == pos.size() && k.cols() == v.cols(),
                    "KVCache::append: k is [", k.rows(), ", ", k.cols(), "], v is [", v.rows(),
                    ", ", v.cols(), "], expected [", pos.size(), ", D] each");
    const Index needed = detail::checked_add(size_, k.rows(), "KVCache::append: size + n");
    if (needed > k_.rows() || k.cols() != k_.cols())
      reserve(k.cols(), std::max(needed, 2 * k_.rows()));
    k_.middleRows(size_, k.rows()) = k;
    v_.middleRows(size_, v.rows()) = v;
    for (Index i = 0; i < pos.size(); ++i) pos_.push_back(pos[i]);
    size_ += k.rows();
  }

 private:
  Matrix<T> k_, v_;
  Index size_ = 0;
  std::vector<std::int64_t> pos_;
};

/// Attention for new tokens x_new [n, D] given a cache of earlier ones: the new tokens sit at
/// positions cache.next_position() ... (opt.offset ... for an empty cache, or opt.positions),
/// their keys and values are appended, and each attends to every cached key allowed by the
/// mask. With causal attention the outputs equal those of a full recomputation.
template <class E>
void attention_step(const ConstMatrixRef<typename E::Scalar>& x_new,
                    const ConstMatrixRef<typename E::Scalar>& wq,
                    const ConstMatrixRef<typename E::Scalar>& wk,
                    const ConstMatrixRef<typename E::Scalar>& wv,
                    const ConstMatrixRef<typename E::Scalar>& wo, const E& enc,
                    const AttentionOptions<typename E::Scalar>& opt, KVCache<typename E::Scalar>& cache,
                    MatrixRef<typename E::Scalar> y) {
  using T = typename E::Scalar;
  const Index n = x_new.rows(), d = x_new.cols();
  detail::check_layer(enc, d, opt.heads, wq, wk, wv, wo, [&] {
    detail::require(cache.size() == 0 || cache.d_model() == d, "attention_step: x_new has D = ", d,
                    ", the cache holds D = ", cache.d_model());
    detail::require(y.rows() == n && y.cols() == d, "attention_step: output is [", y.rows(), ", ",
                    y.cols(), "], expected [", n, ", ", d, "]");
  });
  const Positions pos = opt.positions.empty()
                            ? Positions(cache.size() ? cache.next_position() : opt.offset, n)
                            : detail::positions_of(opt, n);
  const T scale = detail::score_scale(opt, d / opt.heads);
  if (n == 0) return;

  const char* what = "attention_step: Q, K, V [n, D]";
  Matrix<T> q = detail::new_matrix<T>(n, d, what), k = detail::new_matrix<T>(n, d, what),
            v = detail::new_matrix<T>(n, d, what);
  detail::project_encoded(enc, x_new, wq, wk, wv, pos, opt.heads, q, k, v);
  cache.append(k, v, pos);
  const Positions kpos(cache.positions());
  Matrix<T> o = detail::new_matrix<T>(n, d, "attention_step: O [n, D]");
  detail::attend(enc, q, cache.keys(), cache.values(), pos, kpos, opt.heads, scale, opt.causal, o);
  detail::write_output<T>(o, wo, y);
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
    detail::check_layer(enc_, wq_.rows(), opt_.heads, wq_, wk_, wv_, wo_, [] {});
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
  Matrix<T> step(const ConstMatrixRef<T>& x_new, KVCache<T>& cache) const {
    Matrix<T> y(x_new.rows(), x_new.cols());
    attention_step(x_new, wq_, wk_, wv_, wo_, enc_, opt_, cache, y);
    return y;
  }

 private:
  Matrix<T> wq_, wk_, wv_, wo_;
  E enc_;
  AttentionOptions<T> opt_;
};

}  // namespace posenc
