// posenc: the learned absolute encoding (BERT, Devlin et al. 2019; GPT-2), trainable.
#pragma once

#include <cmath>
#include <cstdint>

#include "types.hpp"

POSENC_NAMESPACE_BEGIN

namespace detail {
/// splitmix64 (Steele et al. 2014): a portable, seedable generator, so a seeded table is
/// the same on every platform and standard library.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
/// Uniform in (0, 1), 53 random bits.
inline double uniform_open(std::uint64_t& state) {
  return (static_cast<double>(splitmix64(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
}  // namespace detail

/// PE[p] = W[p + table_offset] with a table W [L_max, D] (conventions.md section 2);
/// table_offset is 0 for BERT and GPT-2, 2 for OPT and BART.
template <class T>
class LearnedEncoding {
 public:
  using Scalar = T;

  /// A zero table [max_len, dim].
  LearnedEncoding(Index max_len, Index dim, Index table_offset = 0) : table_offset_(table_offset) {
    detail::require(max_len > 0, "LearnedEncoding: max_len = ", max_len, " must be > 0");
    detail::require(dim > 0, "LearnedEncoding: dim = ", dim, " must be > 0");
    detail::require_extent(dim, "LearnedEncoding: dim");
    detail::require(table_offset >= 0, "LearnedEncoding: table_offset = ", table_offset,
                    " must be >= 0");
    table_ = detail::new_matrix<T>(max_len, dim, "LearnedEncoding: the table [max_len, dim]");
    table_.setZero();
  }

  /// A copy of the user's table [L_max, D] (a Matrix, a Map over their own memory, a block).
  explicit LearnedEncoding(const ConstMatrixRef<T>& table, Index table_offset = 0)
      : table_(table), table_offset_(table_offset) {
    detail::require(table.rows() > 0 && table.cols() > 0, "LearnedEncoding: table is [",
                    table.rows(), ", ", table.cols(), "], expected a non-empty [L_max, D]");
    detail::require(table_offset >= 0, "LearnedEncoding: table_offset = ", table_offset,
                    " must be >= 0");
    detail::require(table_.allFinite(), "LearnedEncoding: table has non-finite entries");
  }

  /// A table of independent N(0, stddev^2) entries from a seeded, portable generator
  /// (BERT and GPT-2 initialise with stddev 0.02).
  static LearnedEncoding normal(Index max_len, Index dim, std::uint64_t seed, double stddev = 0.02,
                                Index table_offset = 0) {
    detail::require(std::isfinite(stddev) && stddev >= 0.0,
                    "LearnedEncoding::normal: stddev = ", stddev, " must be finite and >= 0");
    LearnedEncoding e(max_len, dim, table_offset);
    std::uint64_t state = seed;
    T* w = e.table_.data();
    const Index n = e.table_.size();
    // Box-Muller: two uniforms give two independent standard normals.
    for (Index i = 0; i < n; i += 2) {
      const double u1 = detail::uniform_open(state), u2 = detail::uniform_open(state);
      const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
      w[i] = static_cast<T>(stddev * r * std::cos(a));
      if (i + 1 < n) w[i + 1] = static_cast<T>(stddev * r * std::sin(a));
    }
    return e;
  }

  Index max_len() const { return table_.rows(); }
  Index dim() const { return table_.cols(); }
  Index table_offset() const { return table_offset_; }
  /// The trainable table W [L_max, D].
  const Matrix<T>& table() const { return table_; }
  Matrix<T>& table() { return table_; }

  /// x += W[p + table_offset] for each row; x is [N, D].
  void add_to_input(MatrixRef<T> x, const Positions& pos) const {
    detail::require(x.rows() == pos.size() && x.cols() == dim(), "LearnedEncoding: input is [",
                    x.rows(), ", ", x.cols(), "], expected [", pos.size(), ", ", dim(),
                    "] (positions x dim)");
    check_positions(pos);
    const Index n = pos.size();
    const bool contiguous = pos.contiguous();
    const std::int64_t off = pos.offset() + table_offset_;  // < L_max: checked above
    // x_i += W[p_i + table_offset]; rows split over threads when there is enough work.
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n > 1 && n * dim() >= (Index(1) << 17))
#endif
    for (Index i = 0; i < n; ++i)
      x.row(i) += table_.row(contiguous ? static_cast<Index>(off + i)
                                        : static_cast<Index>(pos[i] + table_offset_));
  }

  /// dL/dW given dL/dX' (grad_out [N, D]) for X' = X + W[p + table_offset]: adds row i of
  /// grad_out into row pos[i] + table_offset of grad_table [L_max, D] (accumulates; repeated
  /// positions add up).
  void accumulate_gradient(const ConstMatrixRef<T>& grad_out, const Positions& pos,
                           MatrixRef<T> grad_table) const {
    detail::require(grad_out.rows() == pos.size() && grad_out.cols() == dim(),
                    "LearnedEncoding::gradient: grad_out is [", grad_out.rows(), ", ",
                    grad_out.cols(), "], expected [", pos.size(), ", ", dim(), "]");
    detail::require(grad_table.rows() == max_len() && grad_table.cols() == dim(),
                    "LearnedEncoding::gradient: grad_table is [", grad_table.rows(), ", ",
                    grad_table.cols(), "], expected [", max_len(), ", ", dim(), "]");
    check_positions(pos);
    for (Index i = 0; i < pos.size(); ++i)
      grad_table.row(pos[i] + table_offset_) += grad_out.row(i);
  }
  /// dL/dW as a new [L_max, D] matrix (zero where no position was used).
  Matrix<T> gradient(const ConstMatrixRef<T>& grad_out, const Positions& pos) const {
    Matrix<T> g = Matrix<T>::Zero(max_len(), dim());
    accumulate_gradient(grad_out, pos, g);
    return g;
  }
  /// dL/dW (posenc/gradients.hpp): the table's gradient, [L_max, D].
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
  Gradients zero_gradients() const {
    return {Matrix<T>::Zero(table_.rows(), table_.cols())};
  }
  /// The backward hook of add_to_input: row i of dx into row pos[i] + table_offset.
  void add_to_input_backward(const ConstMatrixRef<T>& dx, const Positions& pos,
                             Gradients& g) const {
    accumulate_gradient(dx, pos, g.table);
  }

  /// W -= learning_rate * grad_table (plain SGD; bring your own optimiser through table()).
  void sgd_step(const ConstMatrixRef<T>& grad_table, T learning_rate) {
    detail::require(grad_table.rows() == max_len() && grad_table.cols() == dim(),
                    "LearnedEncoding::sgd_step: grad_table is [", grad_table.rows(), ", ",
                    grad_table.cols(), "], expected [", max_len(), ", ", dim(), "]");
    detail::require(std::isfinite(static_cast<double>(learning_rate)),
                    "LearnedEncoding::sgd_step: learning_rate = ", learning_rate,
                    " must be finite");
    table_.noalias() -= learning_rate * grad_table;
  }

  void check(const AttentionShape& shape) const {
    detail::require(shape.d_model == dim(), "LearnedEncoding: table width D = ", dim(),
                    " does not match the model width D = ", shape.d_model);
  }

 private:
  // p + table_offset < L_max, written so that neither side can wrap: table_offset < L_max and
  // p <= L_max - 1 - table_offset.
  void check_positions(const Positions& pos) const {
    if (pos.empty()) return;
    const std::int64_t p = pos.max();
    detail::require(
        table_offset_ < max_len() && p <= max_len() - 1 - table_offset_,
        "LearnedEncoding: position p = ", p,
        (table_offset_ ? " (+ table_offset " + std::to_string(table_offset_) + ")" : std::string()),
        " is outside the table: L_max = ", max_len());
  }

  Matrix<T> table_;
  Index table_offset_;
};

POSENC_NAMESPACE_END
