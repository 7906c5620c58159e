// posenc: Shaw et al.'s clipped relative position representations (2018; conventions.md 5b).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

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
    // s_ij += scale q_i . A_K[r(i, j)]
    void add(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
             const ConstMatrixRef<T>& /*kt*/, MatrixRef<T> s) const {
      auto qa = detail::thread_scratch<T, struct shaw_qa>(qt.rows(), enc->a_k_.rows());
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
      auto w = detail::thread_scratch<T, struct shaw_w>(p.rows(), enc->a_v_.rows());
      w.setZero();
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

    // Backward (posenc/gradients.hpp). w(i, r) += x(i, j) summed over the tile's entries with
    // r(i, j) = r, w [bi, 2K+1] (the runs of add_values).
    void sum_by_distance(Index i0, Index j0, const ConstMatrixRef<T>& x, MatrixRef<T> w) const {
      w.setZero();
      if (q.contiguous() && k.contiguous()) {
        const std::int64_t kk = enc->max_relative(), cols = x.cols();
        for (Index i = 0; i < x.rows(); ++i) {
          const std::int64_t c = run_start(i0 + i, j0);
          const std::int64_t lo_end = std::clamp<std::int64_t>(
              detail::saturating_add(detail::saturating_sub(-kk, c), 1), 0, cols);
          const std::int64_t mid_end =
              std::clamp<std::int64_t>(detail::saturating_sub(kk, c), lo_end, cols);
          const T* xr = x.row(i).data();
          T* wr = w.row(i).data();
          T lo_sum = 0, hi_sum = 0;
          for (std::int64_t j = 0; j < lo_end; ++j)
            lo_sum += xr[j];
          for (std::int64_t j = lo_end; j < mid_end; ++j)
            wr[j + c + kk] += xr[j];
          for (std::int64_t j = mid_end; j < cols; ++j)
            hi_sum += xr[j];
          wr[0] += lo_sum;
          wr[2 * kk] += hi_sum;
        }
        return;
      }
      for (Index i = 0; i < x.rows(); ++i)
        for (Index j = 0; j < x.cols(); ++j)
          w(i, r(i0 + i, j0 + j)) += x(i, j);
    }
    // s(i, j) += a(i, r(i, j)), a [bi, 2K+1] (the runs of add).
    void gather_by_distance(Index i0, Index j0, const ConstMatrixRef<T>& a, MatrixRef<T> s) const {
      if (q.contiguous() && k.contiguous()) {
        const std::int64_t kk = enc->max_relative(), cols = s.cols();
        for (Index i = 0; i < s.rows(); ++i) {
          const std::int64_t c = run_start(i0 + i, j0);
          const std::int64_t lo_end = std::clamp<std::int64_t>(
              detail::saturating_add(detail::saturating_sub(-kk, c), 1), 0, cols);
          const std::int64_t mid_end =
              std::clamp<std::int64_t>(detail::saturating_sub(kk, c), lo_end, cols);
          const T* ar = a.row(i).data();
          T* row = s.row(i).data();
          for (std::int64_t j = 0; j < lo_end; ++j)
            row[j] += ar[0];
          for (std::int64_t j = lo_end; j < mid_end; ++j)
            row[j] += ar[j + c + kk];
          for (std::int64_t j = mid_end; j < cols; ++j)
            row[j] += ar[2 * kk];
        }
        return;
      }
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j)
          s(i, j) += a(i, r(i0 + i, j0 + j));
    }
    /// The score term's gradients given dS of the tile: with w(i, r) = sum of ds_ij over the
    /// entries reading A_K[r], dq += scale w A_K and dA_K += scale w^T q (no k term).
    void add_grad(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
                  const ConstMatrixRef<T>& /*kt*/, const ConstMatrixRef<T>& ds, MatrixRef<T> dq,
                  MatrixRef<T> /*dk*/, Gradients& g) const {
      auto w = detail::thread_scratch<T, struct shaw_grad_w>(ds.rows(), enc->a_k_.rows());
      sum_by_distance(i0, j0, ds, w);
      dq.noalias() += scale * (w * enc->a_k_);
      g.a_k.noalias() += scale * (w.transpose() * qt);
    }
    /// The value term's gradients: dp_ij += dout_i . A_V[r(i, j)], and with w(i, r) = the sum
    /// of p_ij over the entries reading A_V[r], dA_V += w^T dout.
    void add_values_grad(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& p,
                         const ConstMatrixRef<T>& dout, MatrixRef<T> dp, Gradients& g) const {
      auto w = detail::thread_scratch<T, struct shaw_grad_w>(p.rows(), enc->a_v_.rows());
      sum_by_distance(i0, j0, p, w);
      g.a_v.noalias() += w.transpose() * dout;
      auto da = detail::thread_scratch<T, struct shaw_grad_da>(p.rows(), enc->a_v_.rows());
      da.noalias() = dout * enc->a_v_.transpose();
      gather_by_distance(i0, j0, da, dp);
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
