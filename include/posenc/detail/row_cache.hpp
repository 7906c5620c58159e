// posenc internals: a thread-safe, grow-only cache of per-position rows (sinusoid tables,
// RoPE cos/sin), built once per length and shared by later calls.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "../types.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

/// Rows [0, rows()) of a position -> row function of fixed width, valid for one `key` (the
/// frequencies it was built from). Readers hold a shared_ptr, so a table is never freed or
/// reallocated under them; growth builds a new table and swaps it in.
template <class T>
class RowCache {
 public:
  struct Table {
    std::vector<double> key;
    Matrix<T> rows;
  };

  /// Default cap: 2^24 cached scalars (64 MiB of float); beyond it callers compute rows directly.
  static constexpr Index default_max_elements = Index(1) << 24;

  RowCache() = default;
  RowCache(const RowCache& other) : table_(other.snapshot()), max_elements_(other.max_elements()) {}
  RowCache& operator=(const RowCache& other) {
    if (this != &other) {
      auto t = other.snapshot();
      const Index cap = other.max_elements();
      std::lock_guard<std::mutex> lock(mutex_);
      table_ = std::move(t);
      max_elements_ = cap;
    }
    return *this;
  }

  void set_max_elements(Index n) {
    std::lock_guard<std::mutex> lock(mutex_);
    max_elements_ = n;
  }
  Index max_elements() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_elements_;
  }

  /// A table for `key` with at least `needed` rows of `width` columns, or nullptr when that
  /// would exceed the cap. fill(p0, p1, out) writes the rows of positions [p0, p1) into out.
  /// `exact`: allocate exactly `needed` rows (a fixed-size table) instead of growing
  /// geometrically.
  template <class Fill>
  std::shared_ptr<const Table> get(const std::vector<double>& key, Index needed, Index width,
                                   Fill&& fill, bool exact = false) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (width <= 0 || needed > max_elements_ / width) return nullptr;
    if (table_ && table_->key == key && table_->rows.rows() >= needed &&
        table_->rows.cols() == width)
      return table_;
    const bool extend = table_ && table_->key == key && table_->rows.cols() == width;
    const Index old_rows = extend ? table_->rows.rows() : 0;
    // Geometric growth keeps token-by-token decoding amortised O(1) per position.
    const Index rows = exact ? needed
                             : std::min(std::max({needed, 2 * old_rows, Index(64)}),
                                        std::max(needed, max_elements_ / width));
    auto t = std::make_shared<Table>();
    t->key = key;
    t->rows = new_matrix<T>(rows, width, "position cache");
    if (old_rows > 0) t->rows.topRows(old_rows) = table_->rows;
    fill(old_rows, rows, t->rows.bottomRows(rows - old_rows));
    table_ = t;
    return table_;
  }

 private:
  std::shared_ptr<const Table> snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return table_;
  }

  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Table> table_;
  Index max_elements_ = default_max_elements;
};

}  // namespace detail
POSENC_NAMESPACE_END
