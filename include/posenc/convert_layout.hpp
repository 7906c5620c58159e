// posenc: converting a checkpoint's query and key projections between the RoPE pair layouts
// (conventions.md section 3: `half` pairs (i, i + R/2), `interleaved` pairs (2i, 2i + 1)).
#pragma once

#include <vector>

#include "rope.hpp"
#include "types.hpp"

POSENC_NAMESPACE_BEGIN

/// The column permutation that turns projections trained with pair layout `from` into ones for
/// layout `to`: column j of the converted W [D, heads Dh] is column perm[j] of the original. Within
/// each head's rotated block (its first R dimensions, or its last with RotaryBlock::trailing) the
/// pair members move to the places `to` gives them; other dimensions stay. Applied to Wq and Wk
/// (and bq, bk) alike, q_h . k_h is unchanged for every head, so attention outputs are too.
inline std::vector<Index> rotary_layout_permutation(Index heads, Index head_dim, Index rotary_dim,
                                                    RotaryLayout from, RotaryLayout to,
                                                    RotaryBlock block = RotaryBlock::leading) {
  detail::require(heads > 0 && head_dim > 0, "rotary_layout_permutation: heads = ", heads,
                  ", head_dim = ", head_dim, " must be > 0");
  const Index r = rotary_dim == 0 ? head_dim : rotary_dim;
  detail::require(r > 0 && r % 2 == 0 && r <= head_dim,
                  "rotary_layout_permutation: rotary_dim = ", r,
                  " must be even and in [2, head_dim = ", head_dim, "]");
  const Index width =
      detail::checked_mul(heads, head_dim, "rotary_layout_permutation: heads * head_dim");
  detail::require_extent(width, "rotary_layout_permutation: heads * head_dim");
  std::vector<Index> perm(static_cast<std::size_t>(width));
  for (Index j = 0; j < width; ++j)
    perm[static_cast<std::size_t>(j)] = j;
  if (from == to) return perm;
  const Index half = r / 2, first = block == RotaryBlock::trailing ? head_dim - r : 0;
  // Member m (0: a, 1: b) of pair i sits at a(i) = i, b(i) = i + R/2 (half) or 2i, 2i + 1
  // (interleaved).
  const auto place = [&](RotaryLayout layout, Index i, Index m) {
    return layout == RotaryLayout::half ? i + m * half : 2 * i + m;
  };
  for (Index h = 0; h < heads; ++h)
    for (Index i = 0; i < half; ++i)
      for (Index m = 0; m < 2; ++m)
        perm[static_cast<std::size_t>(h * head_dim + first + place(to, i, m))] =
            h * head_dim + first + place(from, i, m);
  return perm;
}

/// W [rows, heads Dh] (a query or key projection, or a bias as one row) with its columns
/// permuted by rotary_layout_permutation.
template <class T>
Matrix<T> convert_rotary_layout(const ConstMatrixRef<T>& w, Index heads, Index head_dim,
                                Index rotary_dim, RotaryLayout from, RotaryLayout to,
                                RotaryBlock block = RotaryBlock::leading) {
  detail::require(heads > 0 && head_dim > 0 && w.cols() == heads * head_dim,
                  "convert_rotary_layout: W is [", w.rows(), ", ", w.cols(),
                  "], expected [rows, heads * head_dim] with heads = ", heads,
                  ", head_dim = ", head_dim);
  const std::vector<Index> perm =
      rotary_layout_permutation(heads, head_dim, rotary_dim, from, to, block);
  Matrix<T> out = detail::new_matrix<T>(w.rows(), w.cols(), "convert_rotary_layout: W");
  for (Index j = 0; j < w.cols(); ++j)
    out.col(j) = w.col(perm[static_cast<std::size_t>(j)]);
  return out;
}

POSENC_NAMESPACE_END
