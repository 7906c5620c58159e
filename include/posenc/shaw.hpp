// posenc: Shaw et al.'s clipped relative position representations (2018; conventions.md 5b).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "detail/restrict.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

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

  /// dL/dA_K and dL/dA_V [2K+1, Dh] (posenc/gradients.hpp).
  struct Gradients {
    Matrix<T> a_k, a_v;
    Gradients& operator+=(const Gradients& o) {
      a_k += o.a_k;
      a_v += o.a_v;
      return *this;
    }
    /// f(name, gradient) in the order of the encoder's for_each_parameter.
    template <class F>
    void for_each(F&& f) const {
      f("rel-k", a_k);
      f("rel-v", a_v);
    }
  };
  /// f(name, parameter) for A_K ("rel-k") and A_V ("rel-v"), the command line's flags (an
  /// optimiser's view; posenc/gradients.hpp).
  template <class F>
  void for_each_parameter(F&& f) {
    f("rel-k", a_k_);
    f("rel-v", a_v_);
  }
  Gradients zero_gradients() const {
    return {Matrix<T>::Zero(a_k_.rows(), a_k_.cols()), Matrix<T>::Zero(a_v_.rows(), a_v_.cols())};
  }

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

    // The table rows [lo, lo + n) that a tile [bi, bj] at (i0, j0) reads: for contiguous
    // positions the clamped range of its distances (one row where the whole tile is K or more
    // apart, so that its products below shrink to rank one), else all 2K + 1.
    struct Rows {
      Index lo, n;
    };
    Rows rows_read(Index i0, Index j0, Index bi, Index bj) const {
      const std::int64_t kk = enc->max_relative();
      if (!(q.contiguous() && k.contiguous())) return {0, static_cast<Index>(2 * kk + 1)};
      const std::int64_t dmin = run_start(i0 + bi - 1, j0);
      const std::int64_t dmax = detail::saturating_add(run_start(i0, j0), bj - 1);
      const std::int64_t lo = std::clamp<std::int64_t>(dmin, -kk, kk) + kk;
      const std::int64_t hi = std::clamp<std::int64_t>(dmax, -kk, kk) + kk;
      return {static_cast<Index>(lo), static_cast<Index>(hi - lo + 1)};
    }
    // Row i of a tile from column j0, contiguous positions, in the columns of a [bi, n] block
    // of table rows from lo: r(i, j) - lo is at_lo on [0, lo_end), j + at_mid on
    // [lo_end, mid_end), at_hi on [mid_end, cols) (a run is empty where its row is not read).
    struct Runs {
      std::int64_t lo_end, mid_end, at_lo, at_mid, at_hi;
    };
    Runs runs(Index i, Index j0, std::int64_t cols, Index lo) const {
      const std::int64_t kk = enc->max_relative(), c = run_start(i, j0);
      const std::int64_t lo_end = std::clamp<std::int64_t>(
          detail::saturating_add(detail::saturating_sub(-kk, c), 1), 0, cols);
      const std::int64_t mid_end =
          std::clamp<std::int64_t>(detail::saturating_sub(kk, c), lo_end, cols);
      return {lo_end, mid_end, -lo, c + kk - lo, 2 * kk - lo};
    }
    // x[b] + ... + x[e - 1], in SIMD packets (a scalar loop would wait on each addition)
    static T run_sum(const T* x, std::int64_t b, std::int64_t e) {
      return e > b ? Eigen::Map<const Vector<T>>(x + b, static_cast<Index>(e - b)).sum() : T(0);
    }
    // The one-row tiles' loops, on raw rows (Eigen's per-row expressions cost more than the
    // 64 additions of a row here): w[i] = sum_j x(i, j) in eight partial sums; s(i, j) += a[i
    // lda]; d(i, k) += scale c[i] row[k].
    static void row_sums(const ConstMatrixRef<T>& x, T* w) {
      const Index cols = x.cols();
      for (Index i = 0; i < x.rows(); ++i) {
        const T* xr = x.row(i).data();
        T part[8] = {};
        Index j = 0;
        for (; j + 8 <= cols; j += 8)
          for (int l = 0; l < 8; ++l)
            part[l] += xr[j + l];
        T sum = ((part[0] + part[1]) + (part[2] + part[3])) +
                ((part[4] + part[5]) + (part[6] + part[7]));
        for (; j < cols; ++j)
          sum += xr[j];
        w[i] = sum;
      }
    }
    static void add_to_rows(const T* a, Index lda, MatrixRef<T> s) {
      const Index cols = s.cols();
      for (Index i = 0; i < s.rows(); ++i) {
        const T v = a[i * lda];
        T* POSENC_RESTRICT row = s.row(i).data();
        for (Index j = 0; j < cols; ++j)
          row[j] += v;
      }
    }
    static void add_outer(const T* c, T scale, const T* row, MatrixRef<T> d) {
      const Index cols = d.cols();
      const T* POSENC_RESTRICT r = row;
      for (Index i = 0; i < d.rows(); ++i) {
        const T v = scale * c[i];
        T* POSENC_RESTRICT out = d.row(i).data();
        for (Index k = 0; k < cols; ++k)
          out[k] += v * r[k];
      }
    }
    // w(i, r - lo) = sum of x(i, j) over the tile's entries with r(i, j) = r, w [bi, n]
    void sum_by_distance(Index i0, Index j0, Rows rows, const ConstMatrixRef<T>& x,
                         MatrixRef<T> w) const {
      if (rows.n == 1) {  // every entry reads the one row: whole-tile sums, no runs
        row_sums(x, w.data());
        return;
      }
      w.setZero();
      if (q.contiguous() && k.contiguous()) {
        const std::int64_t cols = x.cols();
        for (Index i = 0; i < x.rows(); ++i) {
          const Runs u = runs(i0 + i, j0, cols, rows.lo);
          const T* xr = x.row(i).data();
          T* wr = w.row(i).data();
          for (std::int64_t j = u.lo_end; j < u.mid_end; ++j)
            wr[j + u.at_mid] += xr[j];
          if (u.lo_end > 0) wr[u.at_lo] += run_sum(xr, 0, u.lo_end);
          if (u.mid_end < cols) wr[u.at_hi] += run_sum(xr, u.mid_end, cols);
        }
        return;
      }
      for (Index i = 0; i < x.rows(); ++i)
        for (Index j = 0; j < x.cols(); ++j)
          w(i, r(i0 + i, j0 + j) - rows.lo) += x(i, j);
    }
    // s(i, j) += a(i, r(i, j) - lo), a [bi, n]
    void gather_by_distance(Index i0, Index j0, Rows rows, const ConstMatrixRef<T>& a,
                            MatrixRef<T> s) const {
      if (rows.n == 1) {
        add_to_rows(a.data(), a.outerStride(), s);
        return;
      }
      if (q.contiguous() && k.contiguous()) {
        const std::int64_t cols = s.cols();
        for (Index i = 0; i < s.rows(); ++i) {
          const Runs u = runs(i0 + i, j0, cols, rows.lo);
          const T* ar = a.row(i).data();
          T* row = s.row(i).data();
          if (u.lo_end > 0) {
            const T v = ar[u.at_lo];
            for (std::int64_t j = 0; j < u.lo_end; ++j)
              row[j] += v;
          }
          for (std::int64_t j = u.lo_end; j < u.mid_end; ++j)
            row[j] += ar[j + u.at_mid];
          if (u.mid_end < cols) {
            const T v = ar[u.at_hi];
            for (std::int64_t j = u.mid_end; j < cols; ++j)
              row[j] += v;
          }
        }
        return;
      }
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j)
          s(i, j) += a(i, r(i0 + i, j0 + j) - rows.lo);
    }

    // s_ij += scale q_i . A_K[r(i, j)]
    void add(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
             const ConstMatrixRef<T>& /*kt*/, MatrixRef<T> s) const {
      const Rows rows = rows_read(i0, j0, s.rows(), s.cols());
      auto qa = detail::thread_scratch<T, struct shaw_qa>(qt.rows(), rows.n);
      // one table row: products of vectors (Eigen's GEMM would pack for a depth of 1)
      if (rows.n == 1)
        qa.col(0).noalias() = scale * (qt * enc->a_k_.row(rows.lo).transpose());
      else
        qa.noalias() = scale * qt * enc->a_k_.middleRows(rows.lo, rows.n).transpose();
      gather_by_distance(i0, j0, rows, qa, s);
    }
    // out_i += sum_j p_ij A_V[r(i, j)]
    void add_values(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& p,
                    MatrixRef<T> out) const {
      const Rows rows = rows_read(i0, j0, p.rows(), p.cols());
      auto w = detail::thread_scratch<T, struct shaw_w>(p.rows(), rows.n);
      sum_by_distance(i0, j0, rows, p, w);
      if (rows.n == 1)
        out.noalias() += w.col(0) * enc->a_v_.row(rows.lo);
      else
        out.noalias() += w * enc->a_v_.middleRows(rows.lo, rows.n);
    }

    // Backward (posenc/gradients.hpp).
    /// The score term's gradients given dS of the tile: with w(i, r) = sum of ds_ij over the
    /// entries reading A_K[r], dq += scale w A_K and dA_K += scale w^T q (no k term).
    void add_grad(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
                  const ConstMatrixRef<T>& /*kt*/, const ConstMatrixRef<T>& ds, MatrixRef<T> dq,
                  MatrixRef<T> /*dk*/, Gradients& g) const {
      const Rows rows = rows_read(i0, j0, ds.rows(), ds.cols());
      auto w = detail::thread_scratch<T, struct shaw_grad_w>(ds.rows(), rows.n);
      sum_by_distance(i0, j0, rows, ds, w);
      if (rows.n == 1) {
        add_outer(w.data(), scale, enc->a_k_.row(rows.lo).data(), dq);
        g.a_k.row(rows.lo).noalias() += scale * (w.col(0).transpose() * qt);
        return;
      }
      dq.noalias() += scale * (w * enc->a_k_.middleRows(rows.lo, rows.n));
      g.a_k.middleRows(rows.lo, rows.n).noalias() += scale * (w.transpose() * qt);
    }
    /// The value term's gradients: dp_ij += dout_i . A_V[r(i, j)], and with w(i, r) = the sum
    /// of p_ij over the entries reading A_V[r], dA_V += w^T dout.
    void add_values_grad(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& p,
                         const ConstMatrixRef<T>& dout, MatrixRef<T> dp, Gradients& g) const {
      const Rows rows = rows_read(i0, j0, p.rows(), p.cols());
      auto w = detail::thread_scratch<T, struct shaw_grad_w>(p.rows(), rows.n);
      sum_by_distance(i0, j0, rows, p, w);
      auto da = detail::thread_scratch<T, struct shaw_grad_da>(p.rows(), rows.n);
      if (rows.n == 1) {
        g.a_v.row(rows.lo).noalias() += w.col(0).transpose() * dout;
        da.col(0).noalias() = dout * enc->a_v_.row(rows.lo).transpose();
      } else {
        g.a_v.middleRows(rows.lo, rows.n).noalias() += w.transpose() * dout;
        da.noalias() = dout * enc->a_v_.middleRows(rows.lo, rows.n).transpose();
      }
      gather_by_distance(i0, j0, rows, da, dp);
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

POSENC_NAMESPACE_END
