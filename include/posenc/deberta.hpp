// posenc: DeBERTa's disentangled attention, v2 and v3 (He et al. 2021, arXiv:2006.03654;
// Hugging Face DisentangledSelfAttention in modeling_deberta_v2.py; conventions.md 5e).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "bert_relative.hpp"
#include "detail/tile_kernels.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// Which relative terms DeBERTa adds (Hugging Face pos_att_type): content-to-position
/// q_i . K_r[...] and position-to-content k_j . Q_r[...].
enum class DebertaTerms { both, c2p, p2c };

template <>
struct enum_names<DebertaTerms> {
  static constexpr std::array<std::pair<std::string_view, DebertaTerms>, 3> table{
      {{"both", DebertaTerms::both}, {"c2p", DebertaTerms::c2p}, {"p2c", DebertaTerms::p2c}}};
};

struct DebertaOptions {
  /// b, Hugging Face position_buckets (256 in DeBERTa-v2/v3); <= 0: no buckets.
  Index position_buckets = 256;
  /// m, Hugging Face max_relative_positions (-1 there means max_position_embeddings, 512).
  Index max_relative_positions = 512;
  DebertaTerms terms = DebertaTerms::both;
};

namespace detail {

inline void check_deberta_options(const char* who, const DebertaOptions& o) {
  const Index b = o.position_buckets, m = o.max_relative_positions;
  require(name_of(o.terms) != "?", who, ": terms = ", static_cast<int>(o.terms), " is not one of ",
          names_list<DebertaTerms>());
  require_extent(m, who, ": max_relative_positions m");
  if (b <= 0) {
    require(m >= 1 && m <= max_extent / 2, who, ": max_relative_positions m = ", m,
            " must be in [1, 2^23] without buckets (the tables have 2m rows)");
    return;
  }
  // b >= 4: mid - 1 >= 1, so that the buckets grow past span (b = 2, 3 keep every |rel| > 1
  // in bucket 1)
  require(b >= 4 && b <= max_extent / 2, who, ": position_buckets b = ", b,
          " must be in [4, 2^23] (or <= 0: no buckets)");
  // the log buckets divide by ln((m - 1) / (b / 2)), which must be > 0
  require(m - 1 > b / 2, who, ": max_relative_positions m = ", m,
          " must exceed position_buckets / 2 + 1 = ", b / 2 + 1, " (b = ", b, ")");
}

/// make_log_bucket_position of Hugging Face's modeling_deberta_v2.py, parameters checked, in
/// float32 as there: abs/mid, both logarithms, the quotient and its product with mid - 1.
inline std::int64_t deberta_bucket_unchecked(std::int64_t rel, Index buckets, Index max_relative) {
  if (buckets <= 0) return rel;
  const std::int64_t mid = buckets / 2;
  const std::int64_t a = rel < 0 ? -rel : rel;  // rel > INT64_MIN: a difference of positions
  if (a <= mid) return rel;
  const float t = std::log(static_cast<float>(a) / static_cast<float>(mid)) /
                  std::log(static_cast<float>(static_cast<double>(max_relative - 1) /
                                              static_cast<double>(mid))) *
                  static_cast<float>(mid - 1);
  // |t| grows like ln|rel|: far below 2^62 even at |rel| = 2^63
  const std::int64_t v = static_cast<std::int64_t>(std::ceil(t)) + mid;
  return rel < 0 ? -v : v;
}

}  // namespace detail

/// DeBERTa's relative position bucket of rel = p_query - p_key (Hugging Face
/// make_log_bucket_position, conventions.md 5e): with mid = b / 2, rel itself when |rel| <= mid,
/// else sign(rel) (ceil(ln(|rel| / mid) / ln((m - 1) / mid) (mid - 1)) + mid); rel when b <= 0.
/// Evaluated in float32 as Hugging Face does. Float32 and float64 give the same bucket wherever
/// the table index c(bucket) is not yet clamped; they part only far beyond (ties of the ceiling,
/// e.g. |rel| = 65317 for b = 256, m = 512), where the index is clamped either way.
inline std::int64_t deberta_bucket(std::int64_t rel, Index position_buckets = 256,
                                   Index max_relative_positions = 512) {
  DebertaOptions o;
  o.position_buckets = position_buckets;
  o.max_relative_positions = max_relative_positions;
  detail::check_deberta_options("deberta_bucket", o);
  detail::require(rel != std::numeric_limits<std::int64_t>::min(), "deberta_bucket: rel = ", rel,
                  " is not the difference of two positions");
  return detail::deberta_bucket_unchecked(rel, position_buckets, max_relative_positions);
}

/// K_r and Q_r of one DeBERTa layer from its shared relative embeddings (Hugging Face
/// DebertaV2Encoder.get_rel_embedding and DisentangledSelfAttention with share_att_key, as in
/// DeBERTa-v2 and v3): R = LayerNorm(rel_embeddings) (weight, bias, eps; no LayerNorm when the
/// weight and bias are empty, norm_rel_ebd "none"), K_r = R Wk + bk, Q_r = R Wq + bq, each
/// [2 span, H Dh] with head h in columns [h Dh, (h + 1) Dh) (transpose_for_scores). With grouped
/// heads (Wk [D, H_kv Dh]) query head h takes key/value head floor(h H_kv / H)'s columns of
/// R Wk + bk. Empty bq, bk: no bias. The layer norm is evaluated in double.
template <class T>
struct DebertaTables {
  Matrix<T> k_r, q_r;
};

template <class T>
DebertaTables<T> deberta_relative_tables(const ConstMatrixRef<T>& rel_embeddings,
                                         const ConstVectorRef<T>& ln_weight,
                                         const ConstVectorRef<T>& ln_bias, double ln_eps,
                                         const ConstMatrixRef<T>& wq, const ConstVectorRef<T>& bq,
                                         const ConstMatrixRef<T>& wk, const ConstVectorRef<T>& bk,
                                         Index heads) {
  const char* who = "deberta_relative_tables";
  const Index n = rel_embeddings.rows(), d = rel_embeddings.cols();
  detail::require(n > 0 && d > 0, who, ": rel_embeddings is [", n, ", ", d,
                  "], expected [2 span, D] with both > 0");
  detail::require(heads > 0, who, ": heads H = ", heads, " must be > 0");
  detail::require(wq.rows() == d && wq.cols() > 0 && wq.cols() % heads == 0, who, ": Wq is [",
                  wq.rows(), ", ", wq.cols(), "], expected [D, H * Dh] with D = ", d,
                  " (rel_embeddings' columns) and H = ", heads);
  const Index dh = wq.cols() / heads;
  detail::require(
      wk.rows() == d && wk.cols() > 0 && wk.cols() % dh == 0 && heads % (wk.cols() / dh) == 0, who,
      ": Wk is [", wk.rows(), ", ", wk.cols(), "], expected [D, H_kv * Dh] with D = ", d,
      ", Dh = ", dh, " and H_kv dividing H = ", heads);
  const Index hkv = wk.cols() / dh;
  detail::require(bq.size() == 0 || bq.size() == wq.cols(), who, ": bq has ", bq.size(),
                  " entries, expected H * Dh = ", wq.cols());
  detail::require(bk.size() == 0 || bk.size() == wk.cols(), who, ": bk has ", bk.size(),
                  " entries, expected H_kv * Dh = ", wk.cols());
  const bool ln = ln_weight.size() > 0 || ln_bias.size() > 0;
  if (ln) {
    detail::require(ln_weight.size() == d && ln_bias.size() == d, who,
                    ": the layer norm's weight and bias have ", ln_weight.size(), " and ",
                    ln_bias.size(), " entries, expected D = ", d, " each");
    detail::require(std::isfinite(ln_eps) && ln_eps > 0.0, who, ": ln_eps = ", ln_eps,
                    " must be finite and > 0");
  }
  detail::require(rel_embeddings.allFinite() && wq.allFinite() && wk.allFinite() &&
                      bq.allFinite() && bk.allFinite() && ln_weight.allFinite() &&
                      ln_bias.allFinite(),
                  who, ": an input has non-finite entries");
  Matrix<T> r = detail::new_matrix<T>(n, d, who, ": LayerNorm(rel_embeddings)");
  for (Index i = 0; i < n; ++i) {
    if (!ln) {
      r.row(i) = rel_embeddings.row(i);
      continue;
    }
    // torch.nn.LayerNorm: biased variance over the row
    double mean = 0, var = 0;
    for (Index c = 0; c < d; ++c)
      mean += static_cast<double>(rel_embeddings(i, c));
    mean /= static_cast<double>(d);
    for (Index c = 0; c < d; ++c) {
      const double x = static_cast<double>(rel_embeddings(i, c)) - mean;
      var += x * x;
    }
    var /= static_cast<double>(d);
    const double inv = 1.0 / std::sqrt(var + ln_eps);
    for (Index c = 0; c < d; ++c)
      r(i, c) = static_cast<T>((static_cast<double>(rel_embeddings(i, c)) - mean) * inv *
                                   static_cast<double>(ln_weight(c)) +
                               static_cast<double>(ln_bias(c)));
  }
  DebertaTables<T> out;
  out.q_r = detail::new_matrix<T>(n, wq.cols(), who, ": Q_r");
  out.q_r.noalias() = r * wq;
  if (bq.size()) out.q_r.rowwise() += bq.transpose();
  Matrix<T> kp = detail::new_matrix<T>(n, wk.cols(), who, ": R Wk");
  kp.noalias() = r * wk;
  if (bk.size()) kp.rowwise() += bk.transpose();
  out.k_r = detail::new_matrix<T>(n, wq.cols(), who, ": K_r");
  for (Index h = 0; h < heads; ++h)
    out.k_r.middleCols(h * dh, dh) = kp.middleCols(((h * hkv) / heads) * dh, dh);
  return out;
}

/// DeBERTa-v2/v3 disentangled attention (He et al. 2021; Hugging Face DisentangledSelfAttention):
///   e_ij = scale (q_i k_j + q_i K_r,h[c(d_ij)] + k_j Q_r,h[c(d_ij)]),
///   d_ij = deberta_bucket(p_i - p_j, b, m),  c(x) = clamp(x + span, 0, 2 span - 1),
/// span = b (m without buckets), per-head tables K_r, Q_r [2 span, H Dh] (deberta_relative_tables
/// builds them from a layer's weights; head h in columns [h Dh, (h + 1) Dh)). The p2c index is
/// the one Hugging Face's gather and transpose produce, c(-bucket(p_j - p_i)), which equals
/// c(d_ij) as the bucket is odd in rel; Hugging Face builds it from key positions alone when the
/// query and key lengths differ, here every pair uses its own positions (so that cached decoding
/// equals one causal call). With terms c2p or p2c only one table is read (the other may be
/// empty, 0 x 0).
///
/// Scale: DeBERTa divides every term by sqrt(f Dh), f = 3 with both terms and 2 with one. Pass
/// AttentionOptions::scale = attention_scale() = 1/sqrt(f Dh); the attention's default
/// 1/sqrt(Dh) is BERT's, not DeBERTa's. (Hugging Face rounds sqrt(f Dh) to float32 also for
/// float64 models: a difference of ~1e-8 relative.) With grouped heads, k_j is the key of the
/// query head's key/value head.
template <class T>
class DebertaEncoding {
 public:
  using Scalar = T;

  DebertaEncoding(const ConstMatrixRef<T>& k_r, const ConstMatrixRef<T>& q_r, Index heads,
                  DebertaOptions options = {})
      : options_(options) {
    const char* who = "DebertaEncoding";
    detail::check_deberta_options(who, options);
    detail::require(heads > 0, who, ": heads H = ", heads, " must be > 0");
    detail::require_extent(heads, who, ": heads H");
    heads_ = heads;
    span_ =
        options.position_buckets > 0 ? options.position_buckets : options.max_relative_positions;
    const Index rows = 2 * span_;
    const bool c2p = uses_c2p(), p2c = uses_p2c();
    const auto check_table = [&](const ConstMatrixRef<T>& t, const char* name, bool used) {
      if (!used && t.size() == 0) return;
      detail::require(t.rows() == rows && t.cols() > 0 && t.cols() % heads == 0, who, ": ", name,
                      " is [", t.rows(), ", ", t.cols(), "], expected [2 span, H * Dh] = [", rows,
                      ", H * Dh] (span = ", span_, ", H = ", heads, ")");
      detail::require(t.allFinite(), who, ": ", name, " has non-finite entries");
    };
    check_table(k_r, "K_r", c2p);
    check_table(q_r, "Q_r", p2c);
    if (c2p && p2c)
      detail::require(q_r.cols() == k_r.cols(), who, ": Q_r is [", q_r.rows(), ", ", q_r.cols(),
                      "], expected the shape of K_r [", k_r.rows(), ", ", k_r.cols(), "]");
    head_dim_ = (c2p ? k_r.cols() : q_r.cols()) / heads;
    detail::require_extent(head_dim_, who, ": Dh");
    if (c2p) k_r_ = k_r;
    if (p2c) q_r_ = q_r;
    for (Index h = 0; h < heads; ++h) {
      if (c2p) k_packed_.emplace_back(k_r_.middleCols(h * head_dim_, head_dim_), who, ": K_r^T");
      if (p2c) q_packed_.emplace_back(q_r_.middleCols(h * head_dim_, head_dim_), who, ": Q_r^T");
    }
    // Beyond |rel| >= saturation_ every index is clamped: 2 span - 1 above, 0 below (the
    // bucket's magnitude grows without bound, reaching span; without buckets at rel = span).
    if (options.position_buckets <= 0) {
      saturation_ = span_;
    } else {
      std::int64_t lo = 0, hi = 1;
      // bucket(a) >= span from a ~ mid ((m - 1) / mid)^(mid / (mid - 1)) <= 2^47 on for every
      // b, m accepted above
      while (bucket(hi) < span_ && hi < (std::int64_t{1} << 62))
        hi *= 2;
      while (lo < hi) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (bucket(mid) >= span_)
          hi = mid;
        else
          lo = mid + 1;
      }
      saturation_ = lo;
    }
  }

  Index heads() const { return heads_; }
  Index head_dim() const { return head_dim_; }
  Index span() const { return span_; }
  const DebertaOptions& options() const { return options_; }
  bool uses_c2p() const { return options_.terms != DebertaTerms::p2c; }
  bool uses_p2c() const { return options_.terms != DebertaTerms::c2p; }
  /// K_r and Q_r [2 span, H Dh] (empty when their term is off).
  const Matrix<T>& k_r() const { return k_r_; }
  const Matrix<T>& q_r() const { return q_r_; }

  /// The score scale DeBERTa uses: 1 / sqrt(f Dh), f = 1 + the number of relative terms.
  T attention_scale() const {
    const double f = options_.terms == DebertaTerms::both ? 3.0 : 2.0;
    return static_cast<T>(1.0 / std::sqrt(f * static_cast<double>(head_dim_)));
  }

  std::int64_t bucket(std::int64_t rel) const {
    return detail::deberta_bucket_unchecked(rel, options_.position_buckets,
                                            options_.max_relative_positions);
  }
  /// The table row c(bucket(p_query - p_key)) both terms read.
  Index relative_index(std::int64_t p_query, std::int64_t p_key) const {
    detail::require(p_query >= 0 && p_key >= 0, "DebertaEncoding::relative_index: positions ",
                    p_query, " and ", p_key, " must be >= 0");
    return index_of(p_query - p_key);
  }

  /// dL/dK_r and dL/dQ_r [2 span, H Dh] (posenc/gradients.hpp); a table whose term is off
  /// stays empty (0 x 0) and is skipped by for_each.
  struct Gradients {
    Matrix<T> k_r, q_r;
    Gradients& operator+=(const Gradients& o) {
      k_r += o.k_r;
      q_r += o.q_r;
      return *this;
    }
    /// f(name, gradient) in the order of the encoder's for_each_parameter.
    template <class F>
    void for_each(F&& f) const {
      if (k_r.size() > 0) f("rel-key-table", k_r);
      if (q_r.size() > 0) f("rel-query-table", q_r);
    }
  };
  /// f(name, parameter) for K_r ("rel-key-table", with c2p) and Q_r ("rel-query-table", with
  /// p2c), the command line's flags (an optimiser's view, posenc/gradients.hpp). The forward
  /// pass reads transposed per-head copies, rebuilt when f returns: an optimiser that keeps the
  /// references and writes the tables later must call parameters_changed() after each update.
  template <class F>
  void for_each_parameter(F&& f) {
    if (uses_c2p()) f("rel-key-table", k_r_);
    if (uses_p2c()) f("rel-query-table", q_r_);
    parameters_changed();
  }
  /// Rebuilds the transposed per-head copies of K_r and Q_r after they were changed through
  /// references from for_each_parameter. The tables keep their shapes.
  void parameters_changed() {
    const char* who = "DebertaEncoding";
    const Index cols = heads_ * head_dim_;
    const auto same = [&](const Matrix<T>& t, bool used, const char* name) {
      if (!used) return;
      detail::require(t.rows() == 2 * span_ && t.cols() == cols, who, ": ", name, " became [",
                      t.rows(), ", ", t.cols(), "], it was [", 2 * span_, ", ", cols, "]");
    };
    same(k_r_, uses_c2p(), "K_r");
    same(q_r_, uses_p2c(), "Q_r");
    for (Index h = 0; h < heads_; ++h) {
      const auto hs = static_cast<std::size_t>(h);
      if (uses_c2p())
        k_packed_[hs] =
            detail::TransposedTable<T>(k_r_.middleCols(h * head_dim_, head_dim_), who, ": K_r^T");
      if (uses_p2c())
        q_packed_[hs] =
            detail::TransposedTable<T>(q_r_.middleCols(h * head_dim_, head_dim_), who, ": Q_r^T");
    }
  }
  Gradients zero_gradients() const {
    return {Matrix<T>::Zero(k_r_.rows(), k_r_.cols()), Matrix<T>::Zero(q_r_.rows(), q_r_.cols())};
  }

  struct ScoreBias {
    const DebertaEncoding* enc;
    Positions q, k;
    T scale;
    // lut[rel - lut_lo] = c(bucket(rel)) for rel in [lut_lo, lut_lo + lut.size()); outside it
    // (only for listed positions) the index is clamped.
    std::int64_t lut_lo = 0;
    std::vector<std::int32_t> lut;

    Index index(std::int64_t rel) const {
      const std::int64_t a = enc->saturation_;
      if (rel >= a) return 2 * enc->span_ - 1;
      if (rel <= -a) return 0;
      return lut[static_cast<std::size_t>(rel - lut_lo)];
    }

    // s_ij += scale (q_i . K_r,h[c] + k_j . Q_r,h[c]), c = c(bucket(p_i - p_j))
    void add(Index h, Index i0, Index j0, const ConstMatrixRef<T>& qt, const ConstMatrixRef<T>& kt,
             MatrixRef<T> s) const {
      const bool c2p = enc->uses_c2p(), p2c = enc->uses_p2c();
      if (q.contiguous() && k.contiguous()) {
        // the lookup covers every distance of the call: p_i - p_j = e + i - j in the tile
        const std::int64_t e = (q.offset() + i0) - (k.offset() + j0);
        const std::int32_t* l = lut.data();
        const std::int64_t lo = lut_lo;
        const auto f = [l, lo](std::int64_t d) { return static_cast<Index>(l[d - lo]); };
        const auto hs = static_cast<std::size_t>(h);
        if (c2p) detail::add_query_table_terms(qt, enc->k_packed_[hs], e, f, scale, s);
        if (p2c) detail::add_key_table_terms(kt, enc->q_packed_[hs], e, f, scale, s);
        return;
      }
      const Index dh = enc->head_dim_;
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j) {
          const Index c = index(q[i0 + i] - k[j0 + j]);
          T v = 0;
          if (c2p) v += qt.row(i).dot(enc->k_r_.row(c).segment(h * dh, dh));
          if (p2c) v += kt.row(j).dot(enc->q_r_.row(c).segment(h * dh, dh));
          s(i, j) += scale * v;
        }
    }
    /// The gradients given dS of the tile (posenc/gradients.hpp), c = c(bucket(p_i - p_j)):
    /// c2p: dq_i += scale sum_j ds_ij K_r,h[c], dK_r,h[c] += scale ds_ij q_i;
    /// p2c: dk_j += scale sum_i ds_ij Q_r,h[c], dQ_r,h[c] += scale ds_ij k_j.
    void add_grad(Index h, Index i0, Index j0, const ConstMatrixRef<T>& qt,
                  const ConstMatrixRef<T>& kt, const ConstMatrixRef<T>& ds, MatrixRef<T> dq,
                  MatrixRef<T> dk, Gradients& g) const {
      const bool c2p = enc->uses_c2p(), p2c = enc->uses_p2c();
      const Index dh = enc->head_dim_;
      if (q.contiguous() && k.contiguous()) {
        const std::int64_t e = (q.offset() + i0) - (k.offset() + j0);
        const std::int32_t* l = lut.data();
        const std::int64_t lo = lut_lo;
        const auto f = [l, lo](std::int64_t d) { return static_cast<Index>(l[d - lo]); };
        if (c2p)
          detail::query_table_terms_grad<T>(qt, enc->k_r_.middleCols(h * dh, dh), e, f, scale, ds,
                                            dq, g.k_r.middleCols(h * dh, dh));
        if (p2c)
          detail::key_table_terms_grad<T>(kt, enc->q_r_.middleCols(h * dh, dh), e, f, scale, ds, dk,
                                          g.q_r.middleCols(h * dh, dh));
        return;
      }
      for (Index i = 0; i < ds.rows(); ++i)
        for (Index j = 0; j < ds.cols(); ++j) {
          const T v = scale * ds(i, j);
          if (v == T(0)) continue;  // masked
          const Index c = index(q[i0 + i] - k[j0 + j]);
          if (c2p) {
            dq.row(i) += v * enc->k_r_.row(c).segment(h * dh, dh);
            g.k_r.row(c).segment(h * dh, dh) += v * qt.row(i);
          }
          if (p2c) {
            dk.row(j) += v * enc->q_r_.row(c).segment(h * dh, dh);
            g.q_r.row(c).segment(h * dh, dh) += v * kt.row(j);
          }
        }
    }
  };

  ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos, Index heads,
                       Index head_dim, T scale) const {
    check_shape(heads, head_dim);
    ScoreBias b{this, query_pos, key_pos, scale, 0, {}};
    if (query_pos.empty() || key_pos.empty()) return b;
    // every distance of the call (contiguous positions: the tiles read the lookup without a
    // clamp), or those short of the clamp (listed positions)
    std::int64_t lo = query_pos.min() - key_pos.max(), hi = query_pos.max() - key_pos.min();
    if (!(query_pos.contiguous() && key_pos.contiguous())) {
      lo = std::max<std::int64_t>(lo, 1 - saturation_);
      hi = std::min<std::int64_t>(hi, saturation_ - 1);
    }
    if (lo > hi) return b;
    const std::int64_t n = detail::checked_add(hi - lo, 1, "DebertaEncoding: the distances");
    detail::allocate(
        n, 4, [&] { b.lut.resize(static_cast<std::size_t>(n)); },
        "DebertaEncoding: the index of each distance");
    b.lut_lo = lo;
    for (std::int64_t c = 0; c < n; ++c) {
      b.lut[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(index_of(lo + c));
      // the tiles take a run of table rows between the indices of their extreme distances
      detail::require(
          c == 0 || b.lut[static_cast<std::size_t>(c)] >= b.lut[static_cast<std::size_t>(c - 1)],
          "DebertaEncoding: the buckets are not monotone at rel = ", lo + c);
    }
    return b;
  }

  void check(const AttentionShape& shape) const { check_shape(shape.heads, shape.head_dim); }

 private:
  Index index_of(std::int64_t rel) const {
    const std::int64_t a = saturation_;
    if (rel >= a) return 2 * span_ - 1;
    if (rel <= -a) return 0;
    return static_cast<Index>(std::clamp<std::int64_t>(bucket(rel) + span_, 0, 2 * span_ - 1));
  }
  void check_shape(Index heads, Index head_dim) const {
    detail::require(heads == heads_ && head_dim == head_dim_,
                    "DebertaEncoding: K_r, Q_r hold H = ", heads_, " heads of Dh = ", head_dim_,
                    ", the attention has H = ", heads, ", Dh = ", head_dim);
  }

  DebertaOptions options_;
  Index heads_ = 0, head_dim_ = 0, span_ = 0;
  std::int64_t saturation_ = 0;
  Matrix<T> k_r_, q_r_;
  std::vector<detail::TransposedTable<T>> k_packed_, q_packed_;
};

POSENC_NAMESPACE_END
