// posenc: matrix aliases and the Positions of a block of tokens.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/checked.hpp"
#include "error.hpp"

POSENC_NAMESPACE_BEGIN

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

/// The names of an option enum's values, one table for the library's messages, the command line
/// and configuration files: specialised beside each enum with
///   static constexpr std::array<std::pair<std::string_view, E>, N> table;
template <class E>
struct enum_names;

/// The name of e in enum_names<E>::table ("?" for a value outside the enum).
template <class E>
constexpr std::string_view name_of(E e) {
  for (const auto& entry : enum_names<E>::table)
    if (entry.second == e) return entry.first;
  return "?";
}

/// The names of E's values as a list for messages: "a, b or c".
template <class E>
std::string names_list() {
  std::string out;
  const auto& table = enum_names<E>::table;
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (i > 0) out += i + 1 == table.size() ? " or " : ", ";
    out += table[i].first;
  }
  return out;
}

/// The value of E named s; throws posenc::error naming `what`, s and the valid names.
template <class E>
E from_name(std::string_view s, std::string_view what) {
  for (const auto& entry : enum_names<E>::table)
    if (entry.first == s) return entry.second;
  detail::fail(what, " = '", s, "' is not one of ", names_list<E>());
}

/// The shape of an attention layer, as an encoder's check hook sees it: model width D, H query
/// heads, H_kv key/value heads, head size Dh.
struct AttentionShape {
  Index d_model = 0;
  Index heads = 1;
  Index kv_heads = 1;
  Index head_dim = 0;
};

namespace detail {
/// An uninitialised [rows, cols] matrix: the library's allocations of user-sized buffers go
/// through here, so a size beyond max_elements or an exhausted heap is a posenc::error naming
/// the buffer, never std::bad_alloc, std::length_error or an Eigen assertion.
template <class T, class... Names>
Matrix<T> new_matrix(Index rows, Index cols, const Names&... what) {
  const std::int64_t n = checked_elements(rows, cols, what...);
  return allocate(
      n, static_cast<std::int64_t>(sizeof(T)), [&] { return Matrix<T>(rows, cols); }, what...);
}

/// A [rows, cols] matrix in a buffer that the calling thread keeps for the slot Tag: the score
/// hooks' per-tile temporaries without an allocation per tile (the buffer grows to the largest
/// tile seen and is reused by every later one). Its contents are unspecified; one map per
/// (thread, Tag, T) may be in use at a time.
template <class T, class Tag>
Eigen::Map<Matrix<T>> thread_scratch(Index rows, Index cols) {
  thread_local std::vector<T> buffer;
  const auto n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  if (buffer.size() < n) buffer.resize(n);
  return Eigen::Map<Matrix<T>>(buffer.data(), rows, cols);
}
}  // namespace detail

/// The positions p_i of N tokens: either offset + i (the common case) or an explicit list of
/// non-negative integers (conventions.md, "Shapes and layout"). Every position is at most
/// INT64_MAX: a block whose last position offset + n - 1 would exceed it is an error, so
/// differences p_j - p_i of two positions always fit in int64.
class Positions {
 public:
  /// Positions offset, offset + 1, ..., offset + n - 1.
  Positions(std::int64_t offset, Index n) : offset_(offset), size_(n) {
    detail::require(offset >= 0, "Positions: offset = ", offset, " must be >= 0");
    detail::require(n >= 0, "Positions: n = ", n, " must be >= 0");
    if (n > 0) detail::checked_add(offset, n - 1, "Positions: the last position offset + n - 1");
  }
  /// Explicit positions, e.g. {5, 0, 17}.
  explicit Positions(std::vector<std::int64_t> positions)
      : list_(std::move(positions)), size_(static_cast<Index>(list_.size())), explicit_(true) {
    for (std::size_t i = 0; i < list_.size(); ++i)
      detail::require(list_[i] >= 0, "Positions: position[", i, "] = ", list_[i], " must be >= 0");
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
    return explicit_ ? *std::max_element(list_.begin(), list_.end()) : offset_ + (size_ - 1);
  }
  /// Smallest position (-1 when empty).
  std::int64_t min() const {
    if (size_ == 0) return -1;
    return explicit_ ? *std::min_element(list_.begin(), list_.end()) : offset_;
  }
  /// Positions [start, start + n) of this block.
  Positions slice(Index start, Index n) const {
    detail::require(start >= 0 && n >= 0 && start <= size_ && n <= size_ - start,
                    "Positions::slice: start = ", start, ", n = ", n, " is outside [0, ", size_,
                    ")");
    if (!explicit_) return Positions(offset_ + start, n);
    return Positions(std::vector<std::int64_t>(list_.begin() + start, list_.begin() + start + n));
  }
  /// The concatenation of this block and `next` (e.g. cached keys followed by new tokens).
  Positions append(const Positions& next) const {
    const Index total = detail::checked_add(size_, next.size_, "Positions::append: n + next.n");
    if (size_ == 0) return next;
    if (next.size_ == 0) return *this;
    if (!explicit_ && !next.explicit_ && next.offset_ - offset_ == size_)
      return Positions(offset_, total);
    detail::require(total <= max_elements, "Positions::append: ", total,
                    " explicit positions are more than the limit 2^36");
    std::vector<std::int64_t> all;
    detail::allocate(
        total, 8, [&] { all.reserve(static_cast<std::size_t>(total)); }, "Positions::append");
    for (Index i = 0; i < size_; ++i)
      all.push_back((*this)[i]);
    for (Index i = 0; i < next.size_; ++i)
      all.push_back(next[i]);
    return Positions(std::move(all));
  }

 private:
  std::vector<std::int64_t> list_;
  std::int64_t offset_ = 0;
  Index size_ = 0;
  bool explicit_ = false;
};

POSENC_NAMESPACE_END
