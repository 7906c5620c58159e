// posenc: relative encodings: T5's bucketed bias (Raffel et al. 2020), Shaw et al.'s clipped
// relative representations (2018), and Transformer-XL's relative sinusoid (Dai et al. 2019).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "detail/sinusoid.hpp"
#include "types.hpp"

namespace posenc {

namespace detail {

// T5 bucket of rel = p_key - p_query, parameters already checked.
inline Index t5_bucket_unchecked(std::int64_t rel, Index num_buckets, Index max_distance,
                                 bool bidirectional) {
  Index nb = num_buckets, bucket = 0;
  std::int64_t n;
  if (bidirectional) {
    nb /= 2;
    bucket = rel > 0 ? nb : 0;
    n = rel < 0 ? -rel : rel;
  } else {
    n = rel < 0 ? -rel : 0;
  }
  const Index e = nb / 2;
  if (n < e) return bucket + static_cast<Index>(n);
  // n >= e >= 1, so the logarithm's argument is >= 1: never ln(0).
  const double large = std::log(static_cast<double>(n) / static_cast<double>(e)) /
                       std::log(static_cast<double>(max_distance) / static_cast<double>(e)) *
                       static_cast<double>(nb - e);
  return bucket + std::min<Index>(nb - 1, e + static_cast<Index>(large));
}

inline void check_t5_parameters(const char* who, Index num_buckets, Index max_distance,
                                bool bidirectional) {
  const Index min_buckets = bidirectional ? 4 : 2;
  require(num_buckets >= min_buckets, who, ": num_buckets = ", num_buckets, " is too small (",
          bidirectional ? "bidirectional" : "causal", " buckets need >= ", min_buckets, ")");
  const Index e = (bidirectional ? num_buckets / 2 : num_buckets) / 2;
  require(max_distance > e, who, ": max_distance = ", max_distance,
          " must exceed the exact range num_buckets/", bidirectional ? 4 : 2, " = ", e);
}

/// Dense lookup over the integer keys lo .. hi when that range is short, else none. hi - lo
/// of two relative distances can exceed int64 (positions 2^62 apart): such a range is sparse.
inline bool dense_range(std::int64_t lo, std::int64_t hi, Index nq, Index nk) {
  if (!sub_fits(hi, lo)) return false;
  return hi - lo < 4 * (nq + nk) + 4096;
}

}  // namespace detail

/// T5's relative-position bucket of rel = p_key - p_query (conventions.md 5a; identical to
/// Hugging Face's T5Attention._relative_position_bucket):
///   bidirectional: nb = num_buckets/2, bucket = (rel > 0) nb, n = |rel|;
///   causal:        nb = num_buckets,   bucket = 0,            n = max(-rel, 0);
///   e = nb/2; bucket += n < e ? n : min(nb-1, e + trunc(ln(n/e)/ln(max_distance/e) (nb-e))).
inline Index t5_bucket(std::int64_t rel, Index num_buckets = 32, Index max_distance = 128,
                       bool bidirectional = true) {
  detail::check_t5_parameters("t5_bucket", num_buckets, max_distance, bidirectional);
  return detail::t5_bucket_unchecked(rel, num_buckets, max_distance, bidirectional);
}

struct T5Options {
  Index max_distance = 128;
  /// T5's encoder uses bidirectional buckets, its decoder causal ones.
  bool bidirectional = true;
};

/// B[h, i, j] = T[bucket(p_j - p_i), h] with a trained table T [num_buckets, H]. T5 itself does
/// not scale scores by 1/sqrt(Dh): pass scale = 1 to the attention for T5 models.
template <class T>
class T5Encoding {
 public:
  using Scalar = T;

  explicit T5Encoding(const ConstMatrixRef<T>& table, T5Options options = {})
      : table_(table), options_(options) {
    detail::require(table.cols() > 0, "T5Encoding: table is [", table.rows(), ", ", table.cols(),
                    "], expected [num_buckets, H] with H > 0");
    detail::check_t5_parameters("T5Encoding", table.rows(), options.max_distance,
                                options.bidirectional);
    detail::require(table_.allFinite(), "T5Encoding: table has non-finite entries");
  }

  Index num_buckets() const { return table_.rows(); }
  Index heads() const { return table_.cols(); }
  const T5Options& options() const { return options_; }
  const Matrix<T>& table() const { return table_; }
  Matrix<T>& table() { return table_; }

  Index bucket(std::int64_t rel) const {
    return detail::t5_bucket_unchecked(rel, num_buckets(), options_.max_distance,
                                       options_.bidirectional);
  }

  struct ScoreBias {
    const T5Encoding* enc;
    Positions q, k;
    std::int64_t rel_lo = 0;
    Matrix<T> values;  // [H, rel range]: T[bucket(rel), h], when the range is dense

    void add(Index h, Index i0, Index j0, const ConstMatrixRef<T>& /*q*/,
             const ConstMatrixRef<T>& /*k*/, MatrixRef<T> s) const {
      for (Index i = 0; i < s.rows(); ++i) {
        const std::int64_t pi = q[i0 + i];
        T* row = s.row(i).data();
        if (values.size() > 0) {
          // values(h, rel - rel_lo) with rel = p_j - p_i; index, not pointer, arithmetic (a
          // pointer offset by -rel_lo - p_i would leave the array: undefined behaviour).
          const T* v = values.row(h).data();
          const std::int64_t shift = -rel_lo - pi;
          if (k.contiguous()) {  // a contiguous run of the lookup row
            const T* run = v + (k.offset() + j0 + shift);
            for (Index j = 0; j < s.cols(); ++j)
              row[j] += run[j];
          } else {
            for (Index j = 0; j < s.cols(); ++j)
              row[j] += v[k[j0 + j] + shift];
          }
        } else {
          for (Index j = 0; j < s.cols(); ++j)
            row[j] += enc->table_(enc->bucket(k[j0 + j] - pi), h);
        }
      }
    }
  };

  ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos, Index heads,
                       Index /*head_dim*/, T /*scale*/) const {
    check_heads(heads);
    ScoreBias b{this, query_pos, key_pos, 0, Matrix<T>()};
    if (query_pos.empty() || key_pos.empty()) return b;
    const std::int64_t lo = key_pos.min() - query_pos.max(), hi = key_pos.max() - query_pos.min();
    if (detail::dense_range(lo, hi, query_pos.size(), key_pos.size())) {
      b.rel_lo = lo;
      b.values = detail::new_matrix<T>(this->heads(), static_cast<Index>(hi - lo + 1),
                                       "T5Encoding: the bias lookup [H, distances]");
      for (std::int64_t c = 0; c <= hi - lo; ++c)  // not r <= hi: hi may be INT64_MAX
        b.values.col(c) = table_.row(bucket(lo + c)).transpose();
    }
    return b;
  }

  /// The bias of head h as a matrix [Nq, Nk]; with causal, entries where p_j > p_i are -inf.
  Matrix<T> bias(Index h, const Positions& query_pos, const Positions& key_pos,
                 bool causal = false) const {
    detail::require(h >= 0 && h < heads(), "T5Encoding::bias: head h = ", h, " is outside [0, ",
                    heads(), ")");
    Matrix<T> b =
        detail::new_matrix<T>(query_pos.size(), key_pos.size(), "T5Encoding::bias: [Nq, Nk]");
    for (Index i = 0; i < b.rows(); ++i)
      for (Index j = 0; j < b.cols(); ++j) {
        const std::int64_t rel = key_pos[j] - query_pos[i];
        b(i, j) =
            (causal && rel > 0) ? -std::numeric_limits<T>::infinity() : table_(bucket(rel), h);
      }
    return b;
  }

  void check(const AttentionShape& shape) const { check_heads(shape.heads); }

 private:
  void check_heads(Index heads) const {
    detail::require(heads == this->heads(), "T5Encoding: table has ", this->heads(),
                    " heads (columns), the attention has H = ", heads);
  }

  Matrix<T> table_;
  T5Options options_;
};

/// Shaw et al. (2018): tables A_K, A_V [2K+1, Dh] shared by all heads, r(i, j) =
/// clip(p_j - p_i, -K, K) + K;  e_ij = scale (q_i k_j + q_i A_K[r]),  z_i = sum_j a_ij (v_j +
/// A_V[r]).
template <class T>
class ShawEncoding {
 public:
  using Scalar = T;

  ShawEncoding(const ConstMatrixRef<T>& a_k, const ConstMatrixRef<T>& a_v) : a_k_(a_k), a_v_(a_v) {
    detail::require(a_k.rows() >= 1 && a_k.rows() % 2 == 1 && a_k.cols() > 0,
                    "ShawEncoding: A_K is [", a_k.rows(), ", ", a_k.cols(),
                    "], expected [2K+1, Dh] (an odd number of rows)");
    detail::require(a_v.rows() == a_k.rows() && a_v.cols() == a_k.cols(), "ShawEncoding: A_V is [",
                    a_v.rows(), ", ", a_v.cols(), "], expected the shape of A_K [", a_k.rows(),
                    ", ", a_k.cols(), "]");
    detail::require(a_k_.allFinite() && a_v_.allFinite(),
                    "ShawEncoding: A_K or A_V has non-finite entries");
  }

  /// K, the largest relative distance told apart.
  Index max_relative() const { return (a_k_.rows() - 1) / 2; }
  Index head_dim() const { return a_k_.cols(); }
  const Matrix<T>& a_k() const { return a_k_; }
  const Matrix<T>& a_v() const { return a_v_; }

  struct ScoreBias {
    const ShawEncoding* enc;
    Positions q, k;
    T scale;

    Index r(Index i, Index j) const {
      const std::int64_t kk = enc->max_relative();
      return static_cast<Index>(std::clamp<std::int64_t>(k[j] - q[i], -kk, kk) + kk);
    }
    // p_{j0} - p_i for contiguous positions: the relative distance at the row's first column
    // (a difference of two positions, so it fits in int64).
    std::int64_t run_start(Index i, Index j0) const { return (k.offset() + j0) - (q.offset() + i); }
    // s_ij += scale q_i . A_K[r(i, j)]
    void add(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
             const ConstMatrixRef<T>& /*kt*/, MatrixRef<T> s) const {
      Matrix<T> qa(qt.rows(), enc->a_k_.rows());
      qa.noalias() = scale * qt * enc->a_k_.transpose();
      if (q.contiguous() && k.contiguous()) {
        // r = clamp(j + c, -K, K) + K along a row: a run at r = 0, a contiguous run, a run at 2K
        const std::int64_t kk = enc->max_relative(), cols = s.cols();
        for (Index i = 0; i < s.rows(); ++i) {
          const std::int64_t c = run_start(i0 + i, j0);
          const std::int64_t lo_end = std::clamp<std::int64_t>(
              detail::saturating_add(detail::saturating_sub(-kk, c), 1), 0, cols);
          const std::int64_t mid_end =
              std::clamp<std::int64_t>(detail::saturating_sub(kk, c), lo_end, cols);
          const T* a = qa.row(i).data();
          T* row = s.row(i).data();
          for (std::int64_t j = 0; j < lo_end; ++j)
            row[j] += a[0];
          for (std::int64_t j = lo_end; j < mid_end; ++j)
            row[j] += a[j + c + kk];
          for (std::int64_t j = mid_end; j < cols; ++j)
            row[j] += a[2 * kk];
        }
        return;
      }
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j)
          s(i, j) += qa(i, r(i0 + i, j0 + j));
    }
    // out_i += sum_j p_ij A_V[r(i, j)]
    void add_values(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& p,
                    MatrixRef<T> out) const {
      Matrix<T> w = Matrix<T>::Zero(p.rows(), enc->a_v_.rows());
      if (q.contiguous() && k.contiguous()) {  // the three runs of add() above
        const std::int64_t kk = enc->max_relative(), cols = p.cols();
        for (Index i = 0; i < p.rows(); ++i) {
          const std::int64_t c = run_start(i0 + i, j0);
          const std::int64_t lo_end = std::clamp<std::int64_t>(
              detail::saturating_add(detail::saturating_sub(-kk, c), 1), 0, cols);
          const std::int64_t mid_end =
              std::clamp<std::int64_t>(detail::saturating_sub(kk, c), lo_end, cols);
          T* wr = w.row(i).data();
          T lo_sum = 0, hi_sum = 0;
          for (std::int64_t j = 0; j < lo_end; ++j)
            lo_sum += p(i, j);
          for (std::int64_t j = lo_end; j < mid_end; ++j)
            wr[j + c + kk] += p(i, j);
          for (std::int64_t j = mid_end; j < cols; ++j)
            hi_sum += p(i, j);
          wr[0] += lo_sum;
          wr[2 * kk] += hi_sum;
        }
      } else {
        for (Index i = 0; i < p.rows(); ++i)
          for (Index j = 0; j < p.cols(); ++j)
            w(i, r(i0 + i, j0 + j)) += p(i, j);
      }
      out.noalias() += w * enc->a_v_;
    }
  };

  ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos, Index heads,
                       Index head_dim, T scale) const {
    detail::require(head_dim == this->head_dim(),
                    "ShawEncoding: tables have Dh = ", this->head_dim(),
                    ", the attention has Dh = ", head_dim, " (H = ", heads, ")");
    return ScoreBias{this, query_pos, key_pos, scale};
  }

  void check(const AttentionShape& shape) const {
    detail::require(shape.head_dim == head_dim(), "ShawEncoding: tables have Dh = ", head_dim(),
                    ", the attention has Dh = ", shape.head_dim);
  }

 private:
  Matrix<T> a_k_, a_v_;
};

struct TransformerXLOptions {
  /// d is clamped to [-clamp_len, clamp_len]; negative means no clamp.
  std::int64_t clamp_len = -1;
  /// Base of the relative sinusoid (10000 in Transformer-XL).
  double base = 10000.0;
};

/// Transformer-XL (Dai et al. 2019, section 3.3): e_ij = scale ((q_i + u_h) k_j +
/// (q_i + v_h) r_{d,h}), with r_d = R_d W_R, R_d the split sinusoid of d = p_i - p_j over D
/// dimensions, split into heads like Q. W_R is [D, H Dh] (conventions.md 5c's [D, D] when
/// Dh = D / H). Negative d (bidirectional) follows XLNet.
template <class T>
class TransformerXLEncoding {
 public:
  using Scalar = T;

  TransformerXLEncoding(const ConstMatrixRef<T>& u, const ConstMatrixRef<T>& v,
                        const ConstMatrixRef<T>& w_r, TransformerXLOptions options = {})
      : u_(u), v_(v), w_r_(w_r), options_(options) {
    detail::require(u.rows() > 0 && u.cols() > 0, "TransformerXLEncoding: u is [", u.rows(), ", ",
                    u.cols(), "], expected [H, Dh]");
    detail::require(v.rows() == u.rows() && v.cols() == u.cols(), "TransformerXLEncoding: v is [",
                    v.rows(), ", ", v.cols(), "], expected the shape of u [", u.rows(), ", ",
                    u.cols(), "]");
    const Index hdh = u.rows() * u.cols();
    detail::require(w_r.cols() == hdh && w_r.rows() > 0, "TransformerXLEncoding: W_R is [",
                    w_r.rows(), ", ", w_r.cols(), "], expected [D, H * Dh] = [D, ", hdh,
                    "] (u, v are [H, Dh] = [", u.rows(), ", ", u.cols(), "])");
    const Index d = w_r.rows();
    detail::require(d % 2 == 0, "TransformerXLEncoding: D = ", d, " (W_R's rows) must be even");
    detail::require(std::isfinite(options.base) && options.base > 0.0,
                    "TransformerXLEncoding: base = ", options.base, " must be finite and > 0");
    detail::require(u_.allFinite() && v_.allFinite() && w_r_.allFinite(),
                    "TransformerXLEncoding: u, v or W_R has non-finite entries");
    inv_freq_ = detail::vaswani_inv_freq(d, options.base);
  }

  Index heads() const { return u_.rows(); }
  Index head_dim() const { return u_.cols(); }
  const TransformerXLOptions& options() const { return options_; }

  std::int64_t clamp(std::int64_t d) const {
    const std::int64_t c = options_.clamp_len;
    return c < 0 ? d : std::clamp<std::int64_t>(d, -c, c);
  }

  /// r_d = R_d W_R for each d in ds: [ds.size(), H Dh].
  Matrix<T> relative_embeddings(const std::vector<std::int64_t>& ds) const {
    const Index d = w_r_.rows();
    const Index n = static_cast<Index>(ds.size());
    const char* what = "TransformerXLEncoding: the relative embeddings [distances, D]";
    Matrix<T> r = detail::new_matrix<T>(n, d, what);
    for (std::size_t i = 0; i < ds.size(); ++i)
      detail::sinusoid_row(static_cast<double>(ds[i]), inv_freq_, true, 1.0,
                           r.row(static_cast<Index>(i)).data());
    Matrix<T> out = detail::new_matrix<T>(n, w_r_.cols(), what);
    out.noalias() = r * w_r_;
    return out;
  }

  struct ScoreBias {
    const TransformerXLEncoding* enc;
    Positions q, k;
    T scale;
    bool dense = true;
    std::vector<std::int64_t> ds;  // the distances r holds, ascending (dense: ds[0] .. consecutive)
    Matrix<T> r;                   // [ds.size(), D]

    Index index_of(std::int64_t d) const {
      if (dense) return static_cast<Index>(d - ds.front());
      return static_cast<Index>(std::lower_bound(ds.begin(), ds.end(), d) - ds.begin());
    }

    void add(Index h, Index i0, Index j0, const ConstMatrixRef<T>& qt, const ConstMatrixRef<T>& kt,
             MatrixRef<T> s) const {
      const Index dh = enc->head_dim();
      // scale u_h . k_j, the same for every query
      Vector<T> uk(kt.rows());
      uk.noalias() = scale * (kt * enc->u_.row(h).transpose());
      Matrix<T> qv = qt;
      qv.rowwise() += enc->v_.row(h);
      const auto rh = r.middleCols(h * dh, dh);
      if (dense) {
        std::int64_t lo = std::numeric_limits<std::int64_t>::max(),
                     hi = std::numeric_limits<std::int64_t>::min();
        std::int64_t qmin = lo, qmax = hi, kmin = lo, kmax = hi;
        for (Index i = 0; i < s.rows(); ++i) {
          qmin = std::min(qmin, q[i0 + i]);
          qmax = std::max(qmax, q[i0 + i]);
        }
        for (Index j = 0; j < s.cols(); ++j) {
          kmin = std::min(kmin, k[j0 + j]);
          kmax = std::max(kmax, k[j0 + j]);
        }
        lo = enc->clamp(qmin - kmax);
        hi = enc->clamp(qmax - kmin);
        const Index first = index_of(lo);
        Matrix<T> g(s.rows(), static_cast<Index>(hi - lo + 1));
        g.noalias() = scale * (qv * rh.middleRows(first, g.cols()).transpose());
        if (q.contiguous() && k.contiguous()) {
          // d = p_i - p_j = e - j along a row: clamped runs at +-clamp_len around a reversed
          // contiguous run of g
          const std::int64_t cols = s.cols(), cl = enc->options_.clamp_len;
          for (Index i = 0; i < s.rows(); ++i) {
            // e = p_i - p_{j0}, a difference of two positions
            const std::int64_t e = (q.offset() + i0 + i) - (k.offset() + j0);
            // d >= cl for j <= e - cl; d <= -cl for j >= e + cl (bounds saturate, then clamp)
            const std::int64_t hi_end =
                cl < 0 ? 0
                       : std::clamp<std::int64_t>(
                             detail::saturating_add(detail::saturating_sub(e, cl), 1), 0, cols);
            const std::int64_t mid_end =
                cl < 0 ? cols
                       : std::clamp<std::int64_t>(detail::saturating_add(e, cl), hi_end, cols);
            const T* gr = g.row(i).data();
            T* row = s.row(i).data();
            const T* ukp = uk.data();
            for (std::int64_t j = 0; j < hi_end; ++j)
              row[j] += gr[cl - lo] + ukp[j];
            for (std::int64_t j = hi_end; j < mid_end; ++j)
              row[j] += gr[e - j - lo] + ukp[j];
            for (std::int64_t j = mid_end; j < cols; ++j)
              row[j] += gr[-cl - lo] + ukp[j];
          }
        } else {
          for (Index i = 0; i < s.rows(); ++i)
            for (Index j = 0; j < s.cols(); ++j)
              s(i, j) += g(i, static_cast<Index>(enc->clamp(q[i0 + i] - k[j0 + j]) - lo)) + uk(j);
        }
      } else {
        for (Index i = 0; i < s.rows(); ++i)
          for (Index j = 0; j < s.cols(); ++j)
            s(i, j) +=
                scale * qv.row(i).dot(rh.row(index_of(enc->clamp(q[i0 + i] - k[j0 + j])))) + uk(j);
      }
    }
  };

  ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos, Index heads,
                       Index head_dim, T scale) const {
    detail::require(heads == this->heads() && head_dim == this->head_dim(),
                    "TransformerXLEncoding: u, v are [", this->heads(), ", ", this->head_dim(),
                    "], the attention has [H, Dh] = [", heads, ", ", head_dim, "]");
    ScoreBias b{this, query_pos, key_pos, scale, true, {}, Matrix<T>()};
    if (query_pos.empty() || key_pos.empty()) return b;
    const std::int64_t lo = clamp(query_pos.min() - key_pos.max());
    const std::int64_t hi = clamp(query_pos.max() - key_pos.min());
    if (detail::dense_range(lo, hi, query_pos.size(), key_pos.size())) {
      for (std::int64_t c = 0; c <= hi - lo; ++c)
        b.ds.push_back(lo + c);
    } else {
      // Sparse positions: one embedding per distinct distance (at most Nq Nk of them).
      b.dense = false;
      const std::int64_t pairs = detail::checked_elements(
          query_pos.size(), key_pos.size(), "TransformerXLEncoding: the distances [Nq, Nk]");
      detail::allocate(
          pairs, 8, [&] { b.ds.reserve(static_cast<std::size_t>(pairs)); },
          "TransformerXLEncoding: the distances [Nq, Nk]");
      for (Index i = 0; i < query_pos.size(); ++i)
        for (Index j = 0; j < key_pos.size(); ++j)
          b.ds.push_back(clamp(query_pos[i] - key_pos[j]));
      std::sort(b.ds.begin(), b.ds.end());
      b.ds.erase(std::unique(b.ds.begin(), b.ds.end()), b.ds.end());
    }
    b.r = relative_embeddings(b.ds);
    return b;
  }

  void check(const AttentionShape& shape) const {
    detail::require(
        shape.heads == heads() && shape.head_dim == head_dim() && shape.d_model == w_r_.rows(),
        "TransformerXLEncoding: built for H = ", heads(), ", Dh = ", head_dim(),
        ", D = ", w_r_.rows(), "; the attention has H = ", shape.heads, ", Dh = ", shape.head_dim,
        ", D = ", shape.d_model);
  }

 private:
  Matrix<T> u_, v_, w_r_;
  TransformerXLOptions options_;
  std::vector<double> inv_freq_;
};

}  // namespace posenc
