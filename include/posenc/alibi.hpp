// posenc: ALiBi, attention with linear biases (Press et al. 2022).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// Head slopes m_h. For H a power of two, m_h = 2^(-b(h+1)/H), h = 0 .. H-1, b = max_bias
/// (8 in the paper; MPT's alibi_bias_max). Otherwise, with n = 2^floor(log2 H): the n slopes of
/// n heads, then entries 0, 2, 4, ... of the slopes of 2n heads until there are H (Press et
/// al. 2022, section 3 and the paper's get_slopes; BLOOM's build_alibi_tensor).
inline std::vector<double> alibi_slopes(Index heads, double max_bias = 8.0) {
  detail::require(heads > 0, "alibi_slopes: heads = ", heads, " must be > 0");
  detail::require_extent(heads, "alibi_slopes: heads");
  detail::require(std::isfinite(max_bias) && max_bias > 0.0, "alibi_slopes: max_bias = ", max_bias,
                  " must be finite and > 0");
  Index n = 1;
  while (n * 2 <= heads)
    n *= 2;
  std::vector<double> m;
  m.reserve(static_cast<std::size_t>(heads));
  for (Index h = 0; h < n; ++h)
    m.push_back(std::exp2(-max_bias * static_cast<double>(h + 1) / static_cast<double>(n)));
  for (Index k = 0; static_cast<Index>(m.size()) < heads; k += 2)
    m.push_back(std::exp2(-max_bias * static_cast<double>(k + 1) / static_cast<double>(2 * n)));
  return m;
}

/// B[h, i, j] = -m_h * |p_i - p_j|, added to the scores of head h; no trained parameters.
/// Under a causal mask this is the paper's -m_h (i - j); BLOOM's m_h * j differs by a
/// constant per row, which softmax ignores.
template <class T>
class AlibiEncoding {
 public:
  using Scalar = T;

  explicit AlibiEncoding(Index heads, double max_bias = 8.0)
      : slopes_(alibi_slopes(heads, max_bias)), max_bias_(max_bias) {}

  /// With slopes of its own, one per head (MPT's rule for a head count that is not a power of
  /// two, Falcon's slopes divided by sqrt(Dh), a model's own). max_bias() is then 0.
  explicit AlibiEncoding(std::vector<double> slopes) : slopes_(std::move(slopes)), max_bias_(0.0) {
    detail::require(!slopes_.empty(), "AlibiEncoding: slopes is empty, expected one per head");
    detail::require_extent(static_cast<Index>(slopes_.size()),
                           "AlibiEncoding: the number of slopes");
    for (std::size_t h = 0; h < slopes_.size(); ++h)
      detail::require(std::isfinite(slopes_[h]) && slopes_[h] >= 0.0, "AlibiEncoding: slopes[", h,
                      "] = ", slopes_[h], " must be finite and >= 0");
  }

  Index heads() const { return static_cast<Index>(slopes_.size()); }
  /// b of the paper's slopes; 0 when built from slopes of its own.
  double max_bias() const { return max_bias_; }
  const std::vector<double>& slopes() const { return slopes_; }

  struct ScoreBias {
    Positions q;
    Positions k;
    std::vector<T> slopes;

    void add(Index h, Index i0, Index j0, const ConstMatrixRef<T>& /*q*/,
             const ConstMatrixRef<T>& /*k*/, MatrixRef<T> s) const {
      const T m = slopes[static_cast<std::size_t>(h)];
      if (q.contiguous() && k.contiguous()) {
        // p_i - p_j = c - j with c = q.offset() + i0 + i - k.offset() - j0: a straight line
        // of |c - j| per row, which the compiler vectorises (same values as below).
        const std::int64_t c0 = (q.offset() + i0) - (k.offset() + j0);
        const std::int64_t cols = s.cols();
        for (Index i = 0; i < s.rows(); ++i) {
          const std::int64_t c = c0 + i;
          T* row = s.row(i).data();
          for (std::int64_t j = 0; j < cols; ++j)
            row[j] -= m * static_cast<T>(c > j ? c - j : j - c);
        }
        return;
      }
      for (Index i = 0; i < s.rows(); ++i) {
        const std::int64_t pi = q[i0 + i];
        T* row = s.row(i).data();
        for (Index j = 0; j < s.cols(); ++j)
          row[j] -= m * static_cast<T>(std::llabs(pi - k[j0 + j]));
      }
    }
    /// ALiBi has no trained parameters and its bias does not depend on q or k: nothing to add.
    template <class G>
    void add_grad(Index, Index, Index, const ConstMatrixRef<T>&, const ConstMatrixRef<T>&,
                  const ConstMatrixRef<T>&, MatrixRef<T>, MatrixRef<T>, G&) const {}
  };

  ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos, Index heads,
                       Index /*head_dim*/, T /*scale*/) const {
    check_heads(heads);
    return ScoreBias{query_pos, key_pos, std::vector<T>(slopes_.begin(), slopes_.end())};
  }

  /// The bias of head h as a matrix [Nq, Nk]; with causal, entries where p_j > p_i are -inf.
  Matrix<T> bias(Index h, const Positions& query_pos, const Positions& key_pos,
                 bool causal = false) const {
    detail::require(h >= 0 && h < heads(), "AlibiEncoding::bias: head h = ", h, " is outside [0, ",
                    heads(), ")");
    Matrix<T> b =
        detail::new_matrix<T>(query_pos.size(), key_pos.size(), "AlibiEncoding::bias: [Nq, Nk]");
    const double m = slopes_[static_cast<std::size_t>(h)];
    for (Index i = 0; i < b.rows(); ++i)
      for (Index j = 0; j < b.cols(); ++j) {
        const std::int64_t d = query_pos[i] - key_pos[j];
        b(i, j) = (causal && d < 0) ? -std::numeric_limits<T>::infinity()
                                    : static_cast<T>(-m * static_cast<double>(std::llabs(d)));
      }
    return b;
  }

  void check(const AttentionShape& shape) const { check_heads(shape.heads); }

 private:
  void check_heads(Index heads) const {
    detail::require(heads == this->heads(), "AlibiEncoding: built for ", this->heads(),
                    " heads, the attention has H = ", heads);
  }

  std::vector<double> slopes_;
  double max_bias_;
};

POSENC_NAMESPACE_END
