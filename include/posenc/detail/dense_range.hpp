// posenc internals: when a lookup over relative distances is better dense than sparse.
#pragma once

#include <cstdint>

#include "../types.hpp"
#include "checked.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

/// Dense lookup over the integer keys lo .. hi when that range is short, else none. hi - lo
/// of two relative distances can exceed int64 (positions 2^62 apart): such a range is sparse.
inline bool dense_range(std::int64_t lo, std::int64_t hi, Index nq, Index nk) {
  if (!sub_fits(hi, lo)) return false;
  return hi - lo < 4 * (nq + nk) + 4096;
}

}  // namespace detail
POSENC_NAMESPACE_END
