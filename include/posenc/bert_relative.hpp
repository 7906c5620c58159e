// posenc: BERT's relative position embeddings, Hugging Face position_embedding_type
// relative_key and relative_key_query (Huang et al. 2020, arXiv:2009.13658; conventions.md 5d).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/tile_kernels.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

namespace detail {

/// A table [rows, Dh] stored transposed, [Dh, ld] with ld >= rows + P zero-padded columns, so
/// that qk_tile (detail/tile_kernels.hpp) multiplies rows of Q or K by any run of consecutive
/// table rows: the relative-embedding encoders' content-by-position products, tile by tile.
template <class T>
class TransposedTable {
 public:
  TransposedTable() = default;
  template <class... Names>
  TransposedTable(const ConstMatrixRef<T>& table, const Names&... what)
      : rows_(table.rows()), dh_(table.cols()) {
    constexpr Index P = tile_packet<T>::size;
    ld_ = checked_add(rows_, 2 * P, what..., ": rows + padding");
    const std::int64_t n = checked_elements(dh_, ld_, what...);
    allocate(
        n, static_cast<std::int64_t>(sizeof(T)),
        [&] { data_.assign(static_cast<std::size_t>(n), T(0)); }, what...);
    for (Index r = 0; r < rows_; ++r)
      for (Index d = 0; d < dh_; ++d)
        data_[static_cast<std::size_t>(d * ld_ + r)] = table(r, d);
  }
  Index rows() const { return rows_; }
  Index dh() const { return dh_; }
  Index ld() const { return ld_; }
  /// Column r: table row r, read with stride ld.
  const T* column(Index r) const { return data_.data() + r; }

 private:
  std::vector<T> data_;
  Index rows_ = 0, dh_ = 0, ld_ = 0;
};

/// Columns of a run of w products as qk_tile writes them: w rounded up to whole packets.
template <class T>
Index packed_width(Index w) {
  constexpr Index P = tile_packet<T>::size;
  return (w + P - 1) / P * P;
}

/// The content-by-position term of a query tile, for contiguous positions:
///   s(i, j) += scale * q_i . T[f(e + i - j)],
/// with e = p_{i0} - p_{j0} the distance at the tile's corner and f a non-decreasing map from
/// the distance p_i - p_j to a table row. Rows are taken in blocks of the micro-kernel's height;
/// a block of n rows needs the table rows f(e + r - (bj - 1)) .. f(e + r + n - 1), which
/// qk_tile multiplies in one pass (about bj + n products per query instead of bj).
template <class T, class F>
void add_query_table_terms(const ConstMatrixRef<T>& qt, const TransposedTable<T>& tab,
                           std::int64_t e, const F& f, T scale, MatrixRef<T> s) {
  constexpr Index R = tile_packet<T>::rows;
  const Index bi = s.rows(), bj = s.cols(), ldq = qt.outerStride(), lds = s.outerStride();
  for (Index r = 0; r < bi; r += R) {
    const Index n = std::min(R, bi - r);
    const Index lo = f(e + r - (bj - 1)), w = f(e + r + n - 1) - lo + 1;
    const Index ldg = packed_width<T>(w);
    auto g = thread_scratch<T, struct rel_query_run>(n, ldg);
    qk_tile(qt.data() + r * ldq, ldq, n, tab.column(lo), tab.ld(), w, tab.dh(), scale, g.data(),
            ldg);
    for (Index rr = 0; rr < n; ++rr) {
      T* row = s.data() + (r + rr) * lds;
      const T* gr = g.data() + rr * ldg;
      if (w == 1) {  // one table row for the whole block (clamped distances)
        const T v = gr[0];
        for (Index j = 0; j < bj; ++j)
          row[j] += v;
        continue;
      }
      const std::int64_t d0 = e + r + rr;  // the distance at column j = 0
      for (Index j = 0; j < bj; ++j)
        row[j] += gr[f(d0 - j) - lo];
    }
  }
}

/// s [rows, cols] (row stride lds) += st^T, st [cols, rows] (row stride ldt), in blocks of B x B
/// that stay in registers and L1 (fixed-size, so that the compiler unrolls and vectorises them).
template <class T>
void add_transposed(const T* st, Index ldt, Index rows, Index cols, T* s, Index lds) {
  constexpr Index B = 16;
  using Block = Eigen::Matrix<T, B, B, Eigen::RowMajor>;
  using In = Eigen::Map<const Block, 0, Eigen::OuterStride<>>;
  using Out = Eigen::Map<Block, 0, Eigen::OuterStride<>>;
  const Index rb = rows / B * B, cb = cols / B * B;
  for (Index i0 = 0; i0 < rb; i0 += B)
    for (Index j0 = 0; j0 < cb; j0 += B)
      Out(s + i0 * lds + j0, Eigen::OuterStride<>(lds)) +=
          In(st + j0 * ldt + i0, Eigen::OuterStride<>(ldt)).transpose();
  for (Index i = 0; i < rows; ++i) {
    T* row = s + i * lds;
    for (Index j = i < rb ? cb : 0; j < cols; ++j)
      row[j] += st[j * ldt + i];
  }
}

/// The position-by-content term of a key tile, for contiguous positions:
///   s(i, j) += scale * k_j . T[f(e + i - j)],
/// blocks of keys as add_query_table_terms blocks queries (a block of n keys needs the table rows
/// f(e - (c + n - 1)) .. f(e + bi - 1 - c)); each key's products are laid out along the queries
/// in s^T (per-thread scratch), which is added transposed.
template <class T, class F>
void add_key_table_terms(const ConstMatrixRef<T>& kt, const TransposedTable<T>& tab, std::int64_t e,
                         const F& f, T scale, MatrixRef<T> s) {
  constexpr Index R = tile_packet<T>::rows;
  const Index bi = s.rows(), bj = s.cols(), ldk = kt.outerStride();
  auto st = thread_scratch<T, struct rel_key_scores>(bj, bi);
  for (Index c = 0; c < bj; c += R) {
    const Index n = std::min(R, bj - c);
    const Index lo = f(e - (c + n - 1)), w = f(e + (bi - 1) - c) - lo + 1;
    const Index ldh = packed_width<T>(w);
    auto g = thread_scratch<T, struct rel_key_run>(n, ldh);
    qk_tile(kt.data() + c * ldk, ldk, n, tab.column(lo), tab.ld(), w, tab.dh(), scale, g.data(),
            ldh);
    for (Index cc = 0; cc < n; ++cc) {
      T* out = st.data() + (c + cc) * bi;
      const T* gr = g.data() + cc * ldh;
      if (w == 1) {  // one table row for the whole block (clamped distances)
        std::fill(out, out + bi, gr[0]);
        continue;
      }
      const std::int64_t d0 = e - (c + cc);  // the distance at row i = 0
      for (Index i = 0; i < bi; ++i)
        out[i] = gr[f(d0 + i) - lo];
    }
  }
  add_transposed(st.data(), bi, bi, bj, s.data(), s.outerStride());
}

/// The two products of a block's table-term gradient, g [n, w] gathered per table row:
///   dx[x0 .. x0 + n) += scale g T[lo .. lo + w),  dT[lo .. lo + w) += scale g^T x[x0 .. x0 + n)
/// (x: the block's queries or keys, dx their gradient), in pv_tile when Dh is a multiple of the
/// packet size (the small products' packing dominated Eigen's GEMM here), gt [w, n] scratch.
template <class T, class G, class GT>
void table_terms_grad_products(G& g, GT& gt, const ConstMatrixRef<T>& tab, Index lo,
                               const ConstMatrixRef<T>& x, Index x0, T scale, MatrixRef<T> dx,
                               MatrixRef<T> dtab) {
  const Index n = g.rows(), w = g.cols(), dh = tab.cols();
  if (dh % tile_packet<T>::size != 0) {
    dx.middleRows(x0, n).noalias() += scale * (g * tab.middleRows(lo, w));
    dtab.middleRows(lo, w).noalias() += scale * (g.transpose() * x.middleRows(x0, n));
    return;
  }
  g *= scale;
  gt = g.transpose();
  pv_tile(g.data(), w, n, w, tab.data() + lo * tab.outerStride(), tab.outerStride(), dh,
          static_cast<const T*>(nullptr), dx.data() + x0 * dx.outerStride(), dx.outerStride());
  pv_tile(gt.data(), n, w, n, x.data() + x0 * x.outerStride(), x.outerStride(), dh,
          static_cast<const T*>(nullptr), dtab.data() + lo * dtab.outerStride(),
          dtab.outerStride());
}

/// Whether a table's rows are whole SIMD packets (the band and pv_tile kernels need them).
template <class T>
bool dh_in_packets(const ConstMatrixRef<T>& tab) {
  return tab.cols() % tile_packet<T>::size == 0;
}

/// The backward of add_query_table_terms (same distances, any non-decreasing f): given
/// ds [bi, bj] = dL/ds for s(i, j) += scale q_i . T[f(e + i - j)],
///   dq_i += scale sum_j ds_ij T[f(..)],  dT[f(..)] += scale sum_j ds_ij q_i,
/// tab [rows, Dh] and dtab its gradient. Where f takes the tile's distances to consecutive
/// rows (BERT everywhere, DeBERTa near the diagonal), the band kernels (band_products) run the
/// two products without a gathered copy; otherwise blocks of B query rows gather their entries
/// per table row (a block needs bj + B - 1 rows at most, fewer where f merges distances), then
/// two products per block.
template <class T, class F>
void query_table_terms_grad(const ConstMatrixRef<T>& qt, const ConstMatrixRef<T>& tab,
                            std::int64_t e, const F& f, T scale, const ConstMatrixRef<T>& ds,
                            MatrixRef<T> dq, MatrixRef<T> dtab) {
  constexpr Index B = 16;
  const Index bi = ds.rows(), bj = ds.cols();
  const std::int64_t dlo = e - (bj - 1), dhi = e + (bi - 1);
  if (dh_in_packets(tab) && f(dhi) - f(dlo) == dhi - dlo) {
    // one table row per distance of the tile: u = i - j + bj - 1 reads row f(dlo) + u
    const Index r0 = f(dlo);
    band_products(ds.data(), ds.outerStride(), Index(1), bi, bj, qt.data(), qt.outerStride(),
                  tab.data() + r0 * tab.outerStride(), tab.outerStride(), tab.cols(), scale,
                  dq.data(), dq.outerStride(), dtab.data() + r0 * dtab.outerStride(),
                  dtab.outerStride());
    return;
  }
  for (Index r = 0; r < bi; r += B) {
    const Index n = std::min(B, bi - r);
    const Index lo = f(e + r - (bj - 1)), w = f(e + r + n - 1) - lo + 1;
    auto g = thread_scratch<T, struct rel_query_grad>(n, w);
    auto gt = thread_scratch<T, struct rel_query_grad_t>(w, n);
    g.setZero();
    // column by column: the rows of a column reach distinct entries of g, so that the sums are
    // independent (along a row, neighbours in one bucket would wait for each other's store)
    const T* dsb = ds.data() + r * ds.outerStride();
    for (Index j = 0; j < bj; ++j) {
      const std::int64_t d0 = e + r - j;  // the distance at row r of the block
      for (Index rr = 0; rr < n; ++rr)
        g(rr, f(d0 + rr) - lo) += dsb[rr * ds.outerStride() + j];
    }
    table_terms_grad_products<T>(g, gt, tab, lo, qt, r, scale, dq, dtab);
  }
}

/// The backward of add_key_table_terms: for s(i, j) += scale k_j . T[f(e + i - j)],
///   dk_j += scale sum_i ds_ij T[f(..)],  dT[f(..)] += scale sum_i ds_ij k_j,
/// by the band kernels or in blocks of B keys (each needs bi + B - 1 table rows at most), as
/// there.
template <class T, class F>
void key_table_terms_grad(const ConstMatrixRef<T>& kt, const ConstMatrixRef<T>& tab, std::int64_t e,
                          const F& f, T scale, const ConstMatrixRef<T>& ds, MatrixRef<T> dk,
                          MatrixRef<T> dtab) {
  constexpr Index B = 16;
  const Index bi = ds.rows(), bj = ds.cols();
  const std::int64_t dlo = e - (bj - 1), dhi = e + (bi - 1);
  if (dh_in_packets(tab) && f(dhi) - f(dlo) == dhi - dlo) {
    // one table row per distance, dS read transposed: u = j - i + bi - 1 reads row f(dhi) - u
    const Index r0 = f(dhi);
    band_products(ds.data(), Index(1), ds.outerStride(), bj, bi, kt.data(), kt.outerStride(),
                  tab.data() + r0 * tab.outerStride(), -tab.outerStride(), tab.cols(), scale,
                  dk.data(), dk.outerStride(), dtab.data() + r0 * dtab.outerStride(),
                  -dtab.outerStride());
    return;
  }
  for (Index c = 0; c < bj; c += B) {
    const Index n = std::min(B, bj - c);
    const Index lo = f(e - (c + n - 1)), w = f(e + (bi - 1) - c) - lo + 1;
    auto g = thread_scratch<T, struct rel_key_grad>(n, w);
    auto gt = thread_scratch<T, struct rel_key_grad_t>(w, n);
    g.setZero();
    for (Index i = 0; i < bi; ++i) {
      const std::int64_t d0 = e + i - c;  // the distance at key c
      const T* dsr = ds.row(i).data() + c;
      for (Index cc = 0; cc < n; ++cc)
        g(cc, f(d0 - cc) - lo) += dsr[cc];
    }
    table_terms_grad_products<T>(g, gt, tab, lo, kt, c, scale, dk, dtab);
  }
}

}  // namespace detail

/// Which content terms BERT's relative embeddings add (Hugging Face position_embedding_type).
enum class BertRelativeType {
  relative_key,       // q_i . E[idx]
  relative_key_query  // q_i . E[idx] + k_j . E[idx]
};

template <>
struct enum_names<BertRelativeType> {
  static constexpr std::array<std::pair<std::string_view, BertRelativeType>, 2> table{
      {{"relative_key", BertRelativeType::relative_key},
       {"relative_key_query", BertRelativeType::relative_key_query}}};
};

/// BERT's relative position embeddings (Huang et al. 2020; Hugging Face BertSelfAttention with
/// position_embedding_type relative_key or relative_key_query): a table E [2L - 1, Dh] shared by
/// every head (Hugging Face's distance_embedding, L = max_position_embeddings), read at
/// idx(i, j) = p_i - p_j + L - 1 (query minus key), and
///   relative_key:        e_ij = scale (q_i k_j + q_i E[idx]),
///   relative_key_query:  e_ij = scale (q_i k_j + q_i E[idx] + k_j E[idx]),
/// no value term, no absolute embedding. Hugging Face divides the whole sum by sqrt(Dh): the
/// attention's default scale. With grouped heads, k_j is the key of the query head's key/value
/// head. Every query and key of a call must be at most L - 1 apart, visible or not (Hugging Face
/// reads the table for every pair); a pair further apart is an error naming both positions.
template <class T>
class BertRelativeEncoding {
 public:
  using Scalar = T;

  explicit BertRelativeEncoding(const ConstMatrixRef<T>& table,
                                BertRelativeType type = BertRelativeType::relative_key)
      : table_(table), type_(type) {
    detail::require(table.rows() >= 1 && table.rows() % 2 == 1 && table.cols() > 0,
                    "BertRelativeEncoding: table E is [", table.rows(), ", ", table.cols(),
                    "], expected [2L - 1, Dh] (an odd number of rows, Dh > 0)");
    detail::require_extent(table.rows(), "BertRelativeEncoding: the rows 2L - 1 of E");
    detail::require_extent(table.cols(), "BertRelativeEncoding: Dh, the columns of E");
    detail::require(name_of(type) != "?", "BertRelativeEncoding: type = ", static_cast<int>(type),
                    " is not one of ", names_list<BertRelativeType>());
    detail::require(table_.allFinite(), "BertRelativeEncoding: table E has non-finite entries");
    packed_ = detail::TransposedTable<T>(table_, "BertRelativeEncoding: E transposed");
  }

  /// L (max_position_embeddings): E has 2L - 1 rows.
  Index max_positions() const { return (table_.rows() + 1) / 2; }
  Index head_dim() const { return table_.cols(); }
  BertRelativeType type() const { return type_; }
  const Matrix<T>& table() const { return table_; }

  /// The row of E read for a query at p_query and a key at p_key: p_query - p_key + L - 1.
  Index index(std::int64_t p_query, std::int64_t p_key) const {
    detail::require(p_query >= 0 && p_key >= 0, "BertRelativeEncoding::index: positions ", p_query,
                    " and ", p_key, " must be >= 0");
    check_distance(p_query, p_key);
    return static_cast<Index>(p_query - p_key + (max_positions() - 1));
  }

  /// dL/dE [2L - 1, Dh] (posenc/gradients.hpp).
  struct Gradients {
    Matrix<T> table;
    Gradients& operator+=(const Gradients& o) {
      table += o.table;
      return *this;
    }
    /// f(name, gradient) in the order of the encoder's for_each_parameter.
    template <class F>
    void for_each(F&& f) const {
      f("distance-table", table);
    }
  };
  /// f(name, parameter) for E ("distance-table", the command line's flag; an optimiser's view,
  /// posenc/gradients.hpp). The forward pass reads a transposed copy of E, rebuilt when f
  /// returns: an optimiser that keeps the reference and writes E later must call
  /// parameters_changed() after each update.
  template <class F>
  void for_each_parameter(F&& f) {
    f("distance-table", table_);
    parameters_changed();
  }
  /// Rebuilds what the forward pass derives from E (its transposed copy) after E was changed
  /// through a reference from for_each_parameter. E keeps its shape.
  void parameters_changed() {
    detail::require(table_.rows() == packed_.rows() && table_.cols() == packed_.dh(),
                    "BertRelativeEncoding: table E became [", table_.rows(), ", ", table_.cols(),
                    "], it was [", packed_.rows(), ", ", packed_.dh(), "]");
    packed_ = detail::TransposedTable<T>(table_, "BertRelativeEncoding: E transposed");
  }
  Gradients zero_gradients() const { return {Matrix<T>::Zero(table_.rows(), table_.cols())}; }

  struct ScoreBias {
    const BertRelativeEncoding* enc;
    Positions q, k;
    T scale;

    // s_ij += scale q_i . E[idx] (+ scale k_j . E[idx])
    void add(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
             const ConstMatrixRef<T>& kt, MatrixRef<T> s) const {
      const bool both = enc->type_ == BertRelativeType::relative_key_query;
      const Index shift = enc->max_positions() - 1;
      if (q.contiguous() && k.contiguous()) {
        // p_i - p_j = e + i - j in the tile; every distance of the call is within [-(L-1), L-1]
        const std::int64_t e = (q.offset() + i0) - (k.offset() + j0);
        const auto f = [shift](std::int64_t d) { return static_cast<Index>(d + shift); };
        detail::add_query_table_terms(qt, enc->packed_, e, f, scale, s);
        if (both) detail::add_key_table_terms(kt, enc->packed_, e, f, scale, s);
        return;
      }
      const Matrix<T>& t = enc->table_;
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j) {
          const Index r = static_cast<Index>(q[i0 + i] - k[j0 + j] + shift);
          T v = qt.row(i).dot(t.row(r));
          if (both) v += kt.row(j).dot(t.row(r));
          s(i, j) += scale * v;
        }
    }
    /// The gradients given dS of the tile (posenc/gradients.hpp): dq_i += scale sum_j ds_ij
    /// E[idx], dE[idx] += scale ds_ij q_i, and with relative_key_query also dk_j += scale
    /// sum_i ds_ij E[idx], dE[idx] += scale ds_ij k_j.
    void add_grad(Index /*h*/, Index i0, Index j0, const ConstMatrixRef<T>& qt,
                  const ConstMatrixRef<T>& kt, const ConstMatrixRef<T>& ds, MatrixRef<T> dq,
                  MatrixRef<T> dk, Gradients& g) const {
      const bool both = enc->type_ == BertRelativeType::relative_key_query;
      const Index shift = enc->max_positions() - 1;
      const Matrix<T>& t = enc->table_;
      if (q.contiguous() && k.contiguous()) {
        const std::int64_t e = (q.offset() + i0) - (k.offset() + j0);
        const auto f = [shift](std::int64_t d) { return static_cast<Index>(d + shift); };
        detail::query_table_terms_grad<T>(qt, t, e, f, scale, ds, dq, g.table);
        if (both) detail::key_table_terms_grad<T>(kt, t, e, f, scale, ds, dk, g.table);
        return;
      }
      for (Index i = 0; i < ds.rows(); ++i)
        for (Index j = 0; j < ds.cols(); ++j) {
          const Index r = static_cast<Index>(q[i0 + i] - k[j0 + j] + shift);
          const T c = scale * ds(i, j);
          if (c == T(0)) continue;  // masked
          dq.row(i) += c * t.row(r);
          g.table.row(r) += c * qt.row(i);
          if (both) {
            dk.row(j) += c * t.row(r);
            g.table.row(r) += c * kt.row(j);
          }
        }
    }
  };

  ScoreBias score_bias(const Positions& query_pos, const Positions& key_pos, Index heads,
                       Index head_dim, T scale) const {
    detail::require(head_dim == this->head_dim(),
                    "BertRelativeEncoding: table E has Dh = ", this->head_dim(),
                    ", the attention has Dh = ", head_dim, " (H = ", heads, ")");
    if (!query_pos.empty() && !key_pos.empty()) {
      // the extreme pairs: the latest query with the earliest key, the earliest with the latest
      check_distance(query_pos.max(), key_pos.min());
      check_distance(query_pos.min(), key_pos.max());
    }
    return ScoreBias{this, query_pos, key_pos, scale};
  }

  void check(const AttentionShape& shape) const {
    detail::require(shape.head_dim == head_dim(),
                    "BertRelativeEncoding: table E has Dh = ", head_dim(),
                    ", the attention has Dh = ", shape.head_dim);
  }

 private:
  // |p_query - p_key| <= L - 1 (a difference of two non-negative positions: no overflow)
  void check_distance(std::int64_t p_query, std::int64_t p_key) const {
    const std::int64_t d = p_query - p_key, lim = max_positions() - 1;
    detail::require(d <= lim && -d <= lim, "BertRelativeEncoding: query position ", p_query,
                    " and key position ", p_key, " are ", d < 0 ? -d : d,
                    " apart, more than L - 1 = ", lim, " (table E [2L - 1, Dh] has ", table_.rows(),
                    " rows, L = ", max_positions(), ")");
  }

  Matrix<T> table_;
  BertRelativeType type_;
  detail::TransposedTable<T> packed_;
};

POSENC_NAMESPACE_END
