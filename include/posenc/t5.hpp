// posenc: T5's bucketed relative-position bias (Raffel et al. 2020; conventions.md 5a).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "detail/dense_range.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

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

  /// dL/dT [num_buckets, H] (posenc/gradients.hpp).
  struct Gradients {
    Matrix<T> table;
    Gradients& operator+=(const Gradients& o) {
      table += o.table;
      return *this;
    }
    /// f(name, gradient) in the order of the encoder's for_each_parameter.
    template <class F>
    void for_each(F&& f) const {
      f("table", table);
    }
  };
  /// f(name, parameter) for every trained tensor (an optimiser's view; posenc/gradients.hpp).
  template <class F>
  void for_each_parameter(F&& f) {
    f("table", table_);
  }
  Gradients zero_gradients() const { return {Matrix<T>::Zero(table_.rows(), table_.cols())}; }

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
    /// dL/dT[bucket, h] = the sum of dS over the tile's entries that read it; the bias does
    /// not depend on q or k.
    void add_grad(Index h, Index i0, Index j0, const ConstMatrixRef<T>& /*q*/,
                  const ConstMatrixRef<T>& /*k*/, const ConstMatrixRef<T>& ds, MatrixRef<T> /*dq*/,
                  MatrixRef<T> /*dk*/, Gradients& g) const {
      const Index bi = ds.rows(), bj = ds.cols();
      if (q.contiguous() && k.contiguous()) {
        // p_j - p_i is constant along each diagonal j - i of the tile: sum the diagonals, then
        // one bucket per diagonal (instead of a logarithm per entry)
        auto diag = detail::thread_scratch<T, struct t5_grad_diagonals>(1, bi + bj - 1);
        diag.setZero();
        for (Index i = 0; i < bi; ++i) {
          T* d = diag.data() + (bi - 1 - i);  // d[j] is diagonal j - i
          for (Index j = 0; j < bj; ++j)
            d[j] += ds(i, j);
        }
        const std::int64_t base = (k.offset() + j0) - (q.offset() + i0) - (bi - 1);
        for (Index c = 0; c < bi + bj - 1; ++c)
          g.table(enc->bucket(base + c), h) += diag(0, c);
        return;
      }
      for (Index i = 0; i < bi; ++i) {
        const std::int64_t pi = q[i0 + i];
        for (Index j = 0; j < bj; ++j)
          g.table(enc->bucket(k[j0 + j] - pi), h) += ds(i, j);
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

POSENC_NAMESPACE_END
