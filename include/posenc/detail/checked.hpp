// posenc internals: overflow-checked integer arithmetic on positions and sizes, and the one
// place that bounds and performs the library's allocations. Every sum, difference and product
// of user-supplied positions or extents goes through these, so a value that does not fit in
// int64 is an error naming the parameter, never a wrapped index.
#pragma once

#include <cstdint>
#include <limits>
#include <new>
#include <utility>

#include "../error.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

/// r = a op b unless it overflows int64 (portable forms of the GCC/Clang builtins).
inline bool add_overflows(std::int64_t a, std::int64_t b, std::int64_t* r) {
  constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max(),
                         lo = std::numeric_limits<std::int64_t>::min();
  if ((b > 0 && a > hi - b) || (b < 0 && a < lo - b)) return true;
  *r = a + b;
  return false;
}
inline bool sub_overflows(std::int64_t a, std::int64_t b, std::int64_t* r) {
  constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max(),
                         lo = std::numeric_limits<std::int64_t>::min();
  if ((b < 0 && a > hi + b) || (b > 0 && a < lo + b)) return true;
  *r = a - b;
  return false;
}
inline bool mul_overflows(std::int64_t a, std::int64_t b, std::int64_t* r) {
  constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max(),
                         lo = std::numeric_limits<std::int64_t>::min();
  if (a == 0 || b == 0) {
    *r = 0;
    return false;
  }
  if ((a == -1 && b == lo) || (b == -1 && a == lo)) return true;
  if (a > 0 ? (b > 0 ? a > hi / b : b < lo / a) : (b > 0 ? a < lo / b : a < hi / b)) return true;
  *r = a * b;
  return false;
}

/// a + b, or posenc::error "<what>: a + b overflows int64".
template <class... Names>
std::int64_t checked_add(std::int64_t a, std::int64_t b, const Names&... what) {
  std::int64_t r = 0;
  if (add_overflows(a, b, &r))
    fail(what..., ": ", a, " + ", b, " overflows int64 (the largest is ",
         std::numeric_limits<std::int64_t>::max(), ")");
  return r;
}

/// a - b, or posenc::error "<what>: a - b overflows int64".
template <class... Names>
std::int64_t checked_sub(std::int64_t a, std::int64_t b, const Names&... what) {
  std::int64_t r = 0;
  if (sub_overflows(a, b, &r)) fail(what..., ": ", a, " - ", b, " overflows int64");
  return r;
}

/// a * b, or posenc::error "<what>: a * b overflows int64".
template <class... Names>
std::int64_t checked_mul(std::int64_t a, std::int64_t b, const Names&... what) {
  std::int64_t r = 0;
  if (mul_overflows(a, b, &r)) fail(what..., ": ", a, " * ", b, " overflows int64");
  return r;
}

/// a + b and a - b saturated to [INT64_MIN, INT64_MAX]: for bounds that are clamped to a
/// short range afterwards, where saturation leaves the clamped result unchanged.
inline std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (!add_overflows(a, b, &r)) return r;
  return b > 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}
inline std::int64_t saturating_sub(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (!sub_overflows(a, b, &r)) return r;
  return b < 0 ? std::numeric_limits<std::int64_t>::max()
               : std::numeric_limits<std::int64_t>::min();
}

/// True when a - b is representable (used to choose a code path, not to fail).
inline bool sub_fits(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  return !sub_overflows(a, b, &r);
}
/// True when a + b is representable.
inline bool add_fits(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  return !add_overflows(a, b, &r);
}

}  // namespace detail

/// The largest extent of one dimension the library accepts for a width, a head count, a head
/// size or a table's row count: 2^24. Beyond it constructors and entry points throw
/// posenc::error naming the parameter (work and memory then stay bounded by what is computed).
constexpr std::int64_t max_extent = std::int64_t{1} << 24;

/// The largest number of elements one buffer the library allocates may have: 2^36 (256 GiB of
/// float); larger requests throw posenc::error instead of std::bad_alloc or std::length_error.
constexpr std::int64_t max_elements = std::int64_t{1} << 36;

namespace detail {

/// Throws unless 0 <= n <= max_extent, naming the parameter.
template <class... Names>
void require_extent(std::int64_t n, const Names&... what) {
  if (n < 0 || n > max_extent) fail(what..., " = ", n, " must be in [0, 2^24 = ", max_extent, "]");
}

/// rows * cols as an element count, checked against max_elements.
template <class... Names>
std::int64_t checked_elements(std::int64_t rows, std::int64_t cols, const Names&... what) {
  if (rows < 0 || cols < 0) fail(what..., ": negative extent [", rows, ", ", cols, "]");
  const std::int64_t n = checked_mul(rows, cols, what...);
  if (n > max_elements)
    fail(what..., ": [", rows, ", ", cols, "] has ", n, " elements, more than the limit 2^36");
  return n;
}

/// Runs alloc() (which allocates a buffer of `elements` scalars of `bytes_each` bytes) and turns
/// std::bad_alloc and std::length_error into posenc::error naming what was being allocated.
template <class Alloc, class... Names>
decltype(auto) allocate([[maybe_unused]] std::int64_t elements,
                        [[maybe_unused]] std::int64_t bytes_each, Alloc&& alloc,
                        [[maybe_unused]] const Names&... what) {
#if POSENC_HAS_EXCEPTIONS
  try {
    return std::forward<Alloc>(alloc)();
  } catch (const std::bad_alloc&) {
    fail(what..., ": cannot allocate ", elements, " elements (", elements * bytes_each,
         " bytes): out of memory");
  } catch (const std::length_error&) {
    fail(what..., ": cannot allocate ", elements, " elements: too large");
  }
#else
  // Without exceptions a failed allocation aborts in the standard library.
  return std::forward<Alloc>(alloc)();
#endif
}

}  // namespace detail
POSENC_NAMESPACE_END
