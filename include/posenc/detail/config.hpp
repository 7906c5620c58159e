// posenc internals: the configuration macros and what they change.
//
// POSENC_THROW(e)  how the library raises a posenc::error e. Default: `throw e`; without
//                  exceptions (-fno-exceptions) it prints "posenc: <message>" to stderr and calls
//                  std::abort(). Define it before including posenc to do something else (it must
//                  not return).
// POSENC_ATTN_BQ, POSENC_ATTN_BK   the attention kernel's query and key tile sizes (integer
//                  literals); OpenMP (_OPENMP) parallelises the kernel and the encoders' loops.
//
// Those last three change inline function bodies, so translation units compiled with different
// values must not be linked together silently (one definition rule). Everything that depends on
// them lives in an inline namespace whose name spells the configuration, as nlohmann/json does
// with its ABI tags: posenc::abi_v0_1 (serial, default tiles), posenc::abi_v0_1_omp_bq32 (OpenMP,
// 32-query tiles) and so on, its version part abi_v<major>_<minor> from version.hpp. Code names
// posenc::X either way; mixing configurations becomes a link error (undefined symbols), or
// distinct types, instead of one TU's bodies replacing another's. Only posenc::error sits outside
// it, so that an error is caught as posenc::error whichever configuration raised it.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "../version.hpp"

#define POSENC_DETAIL_CAT2(a, b) a##b
#define POSENC_DETAIL_CAT(a, b) POSENC_DETAIL_CAT2(a, b)

// abi_v<major>_<minor>, e.g. abi_v0_1.
#define POSENC_DETAIL_ABI_VERSION                                                         \
  POSENC_DETAIL_CAT(POSENC_DETAIL_CAT(POSENC_DETAIL_CAT(abi_v, POSENC_VERSION_MAJOR), _), \
                    POSENC_VERSION_MINOR)
#if defined(_OPENMP)
#define POSENC_DETAIL_ABI_OMP _omp
#else
#define POSENC_DETAIL_ABI_OMP
#endif
#ifdef POSENC_ATTN_BQ
#define POSENC_DETAIL_ABI_BQ POSENC_DETAIL_CAT(_bq, POSENC_ATTN_BQ)
#else
#define POSENC_DETAIL_ABI_BQ
#endif
#ifdef POSENC_ATTN_BK
#define POSENC_DETAIL_ABI_BK POSENC_DETAIL_CAT(_bk, POSENC_ATTN_BK)
#else
#define POSENC_DETAIL_ABI_BK
#endif

/// The inline namespace of this configuration, e.g. abi_v0_1_omp.
#define POSENC_ABI_NAMESPACE                                                                 \
  POSENC_DETAIL_CAT(                                                                         \
      POSENC_DETAIL_CAT(POSENC_DETAIL_CAT(POSENC_DETAIL_ABI_VERSION, POSENC_DETAIL_ABI_OMP), \
                        POSENC_DETAIL_ABI_BQ),                                               \
      POSENC_DETAIL_ABI_BK)
#define POSENC_NAMESPACE_BEGIN \
  namespace posenc {           \
  inline namespace POSENC_ABI_NAMESPACE {
#define POSENC_NAMESPACE_END \
  }                          \
  }

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define POSENC_HAS_EXCEPTIONS 1
#else
#define POSENC_HAS_EXCEPTIONS 0
#endif

#ifndef POSENC_THROW
#if POSENC_HAS_EXCEPTIONS
#define POSENC_THROW(e) throw e
#else
#define POSENC_THROW(e) \
  (std::fprintf(stderr, "posenc: %s\n", (e).what()), std::fflush(stderr), std::abort())
#endif
#endif
