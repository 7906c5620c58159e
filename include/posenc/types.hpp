// posenc: matrix aliases and the Positions of a block of tokens.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "error.hpp"

namespace posenc {

using Index = Eigen::Index;

/// Row-major dynamic matrix: row i is token i ([N, D], as NumPy and PyTorch store it).
template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
/// Writable view of a user's row-major buffer (a Matrix, a Map, or a block with an outer stride).
template <class T>
using MatrixRef = Eigen::Ref<Matrix<T>>;
/// Read-only view; binds to any row-major expression without a copy.
template <class T>
using ConstMatrixRef = Eigen::Ref<const Matrix<T>>;
template <class T>
using ConstVectorRef = Eigen::Ref<const Vector<T>>;

/// The positions p_i of N tokens: either offset + i (the common case) or an explicit list of
/// non-negative integers (conventions.md, "Shapes and layout").
class Positions {
 public:
  /// Positions offset, offset + 1, ..., offset + n - 1.
  Positions(std::int64_t offset, Index n) : offset_(offset), size_(n) {
    detail::require(offset >= 0, "Positions: offset = ", offset, " must be >= 0");
    detail::require(n >= 0, "Positions: n = ", n, " must be >= 0");
  }
  /// Explicit positions, e.g. {5, 0, 17}.
  explicit Positions(std::vector<std::int64_t> positions)
      : list_(std::move(positions)), size_(static_cast<Index>(list_.size())), explicit_(true) {
    for (std::size_t i = 0; i < list_.size(); ++i)
      detail::require(list_[i] >= 0, "Positions: position[", i, "] = ", list_[i],
                      " must be >= 0");
  }
  static Positions range(std::int64_t offset, Index n) { return Positions(offset, n); }

  Index size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// True when p_i = offset() + i.
  bool contiguous() const { return !explicit_; }
  std::int64_t offset() const { return explicit_ ? 0 : offset_; }
  std::int64_t operator[](Index i) const {
    return explicit_ ? list_[static_cast<std::size_t>(i)] : offset_ + i;
  }
  /// Largest position (-1 when empty).
  std::int64_t max() const {
    if (size_ == 0) return -1;
    return explicit_ ? *std::max_element(list_.begin(), list_.end()) : offset_ + size_ - 1;
  }
  /// Smallest position (-1 when empty).
  std::int64_t min() const {
    if (size_ == 0) return -1;
    return explicit_ ? *std::min_element(list_.begin(), list_.end()) : offset_;
  }
  /// Positions [start, start + n) of this block.
  Positions slice(Index start, Index n) const {
    detail::require(start >= 0 && n >= 0 && start + n <= size_, "Positions::slice: [", start,
                    ", ", start + n, ") is outside [0, ", size_, ")");
    if (!explicit_) return Positions(offset_ + start, n);
    return Positions(std::vector<std::int64_t>(list_.begin() + start, list_.begin() + start + n));
  }
  /// The concatenation of this block and `next` (e.g. cached keys followed by new tokens).
  Positions append(const Positions& next) const {
    if (!explicit_ && !next.explicit_ && (size_ == 0 || next.offset_ == offset_ + size_))
      return size_ == 0 ? next : Positions(offset_, size_ + next.size_);
    std::vector<std::int64_t> all;
    all.reserve(static_cast<std::size_t>(size_ + next.size_));
    for (Index i = 0; i < size_; ++i) all.push_back((*this)[i]);
    for (Index i = 0; i < next.size_; ++i) all.push_back(next[i]);
    return Positions(std::move(all));
  }

 private:
  std::vector<std::int64_t> list_;
  std::int64_t offset_ = 0;
  Index size_ = 0;
  bool explicit_ = false;
};

}  // namespace posenc
