// posenc: the library's exception and its parameter checks.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "detail/config.hpp"

namespace posenc {

/// Thrown by every public entry point for wrong shapes and parameters. The message names
/// the parameter and the values involved, e.g. "RotaryEncoding: rotary_dim = 7 must be even".
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace posenc

POSENC_NAMESPACE_BEGIN
namespace detail {

template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << std::forward<Args>(args));
  return os.str();
}

/// Raises posenc::error with the concatenated message (POSENC_THROW: detail/config.hpp).
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  POSENC_THROW(error(concat(std::forward<Args>(args)...)));
}

/// Checks a condition that depends on user input; stays on in release builds.
template <class... Args>
void require(bool ok, Args&&... args) {
  if (!ok) fail(std::forward<Args>(args)...);
}

}  // namespace detail
POSENC_NAMESPACE_END

/// Assertion for invariants inside hot loops (debug only); redefine before including posenc.
#ifndef POSENC_ASSERT
#ifdef NDEBUG
#define POSENC_ASSERT(cond) ((void)0)
#else
#include <cassert>
#define POSENC_ASSERT(cond) assert(cond)
#endif
#endif
