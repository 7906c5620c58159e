// posenc: Transformer-XL's relative sinusoid with the global biases u, v (Dai et al. 2019;
// conventions.md 5c).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "detail/dense_range.hpp"
#include "detail/sinusoid.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

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

  /// dL/du, dL/dv [H, Dh] and dL/dW_R [D, H Dh] (posenc/gradients.hpp). During a backward
  /// pass r also holds dL/dr_d [distances, H Dh], the gradient of the relative embeddings
  /// r_d = R_d W_R of the call's distances, which the score bias's finish_grad folds into
  /// w_r (dW_R = sum_d R_d^T dr_d, one product per call instead of one per tile) and empties.
  struct Gradients {
    Matrix<T> u, v, w_r;
    Matrix<T> r;
    Gradients& operator+=(const Gradients& o) {
      u += o.u;
      v += o.v;
      w_r += o.w_r;
      if (o.r.size() != 0) {
        if (r.size() == 0)
          r = o.r;
        else
          r += o.r;
      }
      return *this;
    }
    /// f(name, gradient) in the order of the encoder's for_each_parameter.
    template <class F>
    void for_each(F&& f) const {
      f("u", u);
      f("v", v);
      f("wr", w_r);
    }
  };
  /// f(name, parameter) for u, v and W_R ("u", "v", "wr": the command line's flags; an
  /// optimiser's view, posenc/gradients.hpp).
  template <class F>
  void for_each_parameter(F&& f) {
    f("u", u_);
    f("v", v_);
    f("wr", w_r_);
  }
  Gradients zero_gradients() const {
    return {Matrix<T>::Zero(u_.rows(), u_.cols()), Matrix<T>::Zero(v_.rows(), v_.cols()),
            Matrix<T>::Zero(w_r_.rows(), w_r_.cols()), Matrix<T>()};
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
      auto uk = detail::thread_scratch<T, struct xl_uk>(kt.rows(), 1);
      uk.noalias() = scale * (kt * enc->u_.row(h).transpose());
      auto qv = detail::thread_scratch<T, struct xl_qv>(qt.rows(), qt.cols());
      qv = qt;
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
        auto g = detail::thread_scratch<T, struct xl_g>(s.rows(), static_cast<Index>(hi - lo + 1));
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

    /// The split sinusoids R_d of d = lo, lo + 1, ... (out's rows), by the angle addition
    /// (sin, cos)((d + 1) w) = (s cos w + c sin w, c cos w - s sin w) in double from an exact
    /// row every 32 (a relative drift of a few 1e-15 at most): one sine and cosine per 32 rows.
    void consecutive_sinusoids(std::int64_t lo, MatrixRef<T> out) const {
      const std::vector<double>& f = enc->inv_freq_;
      const std::size_t half = f.size();
      thread_local std::vector<double> sn, cs, step_s, step_c;
      sn.resize(half);
      cs.resize(half);
      step_s.resize(half);
      step_c.resize(half);
      for (std::size_t i = 0; i < half; ++i) {
        step_s[i] = std::sin(f[i]);
        step_c[i] = std::cos(f[i]);
      }
      for (Index c = 0; c < out.rows(); ++c) {
        T* row = out.row(c).data();
        if (c % 32 == 0) {
          const double d = static_cast<double>(lo + c);
          for (std::size_t i = 0; i < half; ++i) {
            sn[i] = std::sin(d * f[i]);
            cs[i] = std::cos(d * f[i]);
          }
        } else {
          for (std::size_t i = 0; i < half; ++i) {
            const double s0 = sn[i], c0 = cs[i];
            sn[i] = s0 * step_c[i] + c0 * step_s[i];
            cs[i] = c0 * step_c[i] - s0 * step_s[i];
          }
        }
        for (std::size_t i = 0; i < half; ++i) {
          row[i] = static_cast<T>(sn[i]);
          row[half + i] = static_cast<T>(cs[i]);
        }
      }
    }

    /// The gradients given dS of the tile (posenc/gradients.hpp): with c_j = scale sum_i ds_ij
    /// and w(i, d) = scale sum of ds_ij over the entries at (clamped) distance d,
    ///   dk_j += c_j u_h,  du_h += sum_j c_j k_j,
    ///   dq_i += sum_d w(i, d) r_{d,h},  dv_h += the same summed over i,
    ///   dr_{d,h} += sum_i w(i, d) (q_i + v_h)  (into g.r, sized here on first use);
    /// finish_grad then gives dW_R.
    void add_grad(Index h, Index i0, Index j0, const ConstMatrixRef<T>& qt,
                  const ConstMatrixRef<T>& kt, const ConstMatrixRef<T>& dst, MatrixRef<T> dq,
                  MatrixRef<T> dk, Gradients& g) const {
      const Index dh = enc->head_dim(), bi = dst.rows(), bj = dst.cols();
      // u_h . k_j
      auto cs = detail::thread_scratch<T, struct xl_grad_cs>(1, bj);
      cs.noalias() = scale * dst.colwise().sum();
      dk.noalias() += cs.transpose() * enc->u_.row(h);
      g.u.row(h).noalias() += cs * kt;
      // (q_i + v_h) . r_{d,h}
      auto qv = detail::thread_scratch<T, struct xl_grad_qv>(bi, qt.cols());
      qv = qt;
      qv.rowwise() += enc->v_.row(h);
      const auto rh = r.middleCols(h * dh, dh);
      if (g.r.size() == 0) g.r = Matrix<T>::Zero(r.rows(), r.cols());
      auto dqr = detail::thread_scratch<T, struct xl_grad_dq>(bi, dh);
      if (dense) {
        // the tile's distances lo .. hi, as add() takes them
        std::int64_t qmin = std::numeric_limits<std::int64_t>::max(), qmax = -1;
        std::int64_t kmin = qmin, kmax = -1;
        for (Index i = 0; i < bi; ++i) {
          qmin = std::min(qmin, q[i0 + i]);
          qmax = std::max(qmax, q[i0 + i]);
        }
        for (Index j = 0; j < bj; ++j) {
          kmin = std::min(kmin, k[j0 + j]);
          kmax = std::max(kmax, k[j0 + j]);
        }
        const std::int64_t lo = enc->clamp(qmin - kmax), hi = enc->clamp(qmax - kmin);
        const Index first = index_of(lo), nd = static_cast<Index>(hi - lo + 1);
        auto w = detail::thread_scratch<T, struct xl_grad_w>(bi, nd);
        w.setZero();
        if (q.contiguous() && k.contiguous()) {
          // the runs of add(): d = e - j, clamped to +-clamp_len at both ends
          const std::int64_t cols = bj, cl = enc->options_.clamp_len;
          for (Index i = 0; i < bi; ++i) {
            const std::int64_t e = (q.offset() + i0 + i) - (k.offset() + j0);
            const std::int64_t hi_end =
                cl < 0 ? 0
                       : std::clamp<std::int64_t>(
                             detail::saturating_add(detail::saturating_sub(e, cl), 1), 0, cols);
            const std::int64_t mid_end =
                cl < 0 ? cols
                       : std::clamp<std::int64_t>(detail::saturating_add(e, cl), hi_end, cols);
            const T* dsr = dst.row(i).data();
            T* wr = w.row(i).data();
            T hi_sum = 0, lo_sum = 0;
            for (std::int64_t j = 0; j < hi_end; ++j)
              hi_sum += dsr[j];
            for (std::int64_t j = hi_end; j < mid_end; ++j)
              wr[e - j - lo] += dsr[j];
            for (std::int64_t j = mid_end; j < cols; ++j)
              lo_sum += dsr[j];
            if (hi_end > 0) wr[cl - lo] += hi_sum;
            if (mid_end < cols) wr[-cl - lo] += lo_sum;
          }
        } else {
          for (Index i = 0; i < bi; ++i)
            for (Index j = 0; j < bj; ++j)
              w(i, static_cast<Index>(enc->clamp(q[i0 + i] - k[j0 + j]) - lo)) += dst(i, j);
        }
        w *= scale;
        dqr.noalias() = w * rh.middleRows(first, nd);
        g.r.block(first, h * dh, nd, dh).noalias() += w.transpose() * qv;
      } else {
        // sparse distances: entry by entry, into the rows of the call's distinct distances
        dqr.setZero();
        for (Index i = 0; i < bi; ++i)
          for (Index j = 0; j < bj; ++j) {
            const T c = scale * dst(i, j);
            if (c == T(0)) continue;  // masked
            const Index a = index_of(enc->clamp(q[i0 + i] - k[j0 + j]));
            dqr.row(i) += c * rh.row(a);
            g.r.row(a).segment(h * dh, dh) += c * qv.row(i);
          }
      }
      dq += dqr;
      g.v.row(h) += dqr.colwise().sum();
    }

    /// dW_R += R^T dr over the call's distances (R [distances, D], their split sinusoids),
    /// once after the last tile; then g.r is released.
    void finish_grad(Gradients& g) const {
      if (g.r.size() == 0) return;
      const Index nd = static_cast<Index>(ds.size());
      Matrix<T> sin_r = detail::new_matrix<T>(
          nd, enc->w_r_.rows(),
          "TransformerXLEncoding: the sinusoids of the distances [distances, D]");
      if (dense)
        consecutive_sinusoids(ds.front(), sin_r);
      else
        for (Index c = 0; c < nd; ++c)
          detail::sinusoid_row(static_cast<double>(ds[static_cast<std::size_t>(c)]), enc->inv_freq_,
                               true, 1.0, sin_r.row(c).data());
      g.w_r.noalias() += sin_r.transpose() * g.r;
      g.r = Matrix<T>();
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

POSENC_NAMESPACE_END
