// posenc internals: bfloat16 and IEEE binary16 (Eigen::bfloat16, Eigen::half) as storage for
// float arithmetic: packet loads that widen to float (AVX-512 or AVX2 + F16C instructions where
// the build targets them, Eigen's packet conversions or one value at a time otherwise), float
// to S by the instructions that exist, and one correctly rounded narrowing from double.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "tile_kernels.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

template <class S>
struct is_half_storage : std::integral_constant<bool, std::is_same<S, Eigen::bfloat16>::value ||
                                                          std::is_same<S, Eigen::half>::value> {};

/// The storage types a Scalar T may keep keys and values in: T itself, and for float also
/// bfloat16 and half.
template <class T, class S>
struct is_storage_of
    : std::integral_constant<bool, std::is_same<T, S>::value || (std::is_same<T, float>::value &&
                                                                 is_half_storage<S>::value)> {};

/// Name of a storage type, for messages.
template <class S>
constexpr const char* storage_name() {
  if constexpr (std::is_same<S, Eigen::bfloat16>::value)
    return "bfloat16";
  else if constexpr (std::is_same<S, Eigen::half>::value)
    return "float16";
  else if constexpr (std::is_same<S, float>::value)
    return "float32";
  else
    return "float64";
}

/// P = tile_packet<T>::size consecutive values of S as one packet of T (T = S: a plain load).
template <class T, class S>
inline typename tile_packet<T>::type load_widened(const S* p) {
  using namespace Eigen::internal;
  using Packet = typename tile_packet<T>::type;
  if constexpr (std::is_same<T, S>::value) {
    return ploadu<Packet>(p);
#if defined(__AVX512F__)
  } else if constexpr (std::is_same<T, float>::value && tile_packet<T>::size == 16) {
    // widened in registers (Eigen's half2float is not always inlined)
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    if constexpr (std::is_same<S, Eigen::half>::value)
      return _mm512_cvtph_ps(raw);
    else
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
#elif defined(__AVX2__) && defined(__F16C__)
  } else if constexpr (std::is_same<T, float>::value && tile_packet<T>::size == 8) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (std::is_same<S, Eigen::half>::value)
      return _mm256_cvtph_ps(raw);
    else
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
#endif
  } else {
    using SPacket = typename packet_traits<S>::type;
    constexpr int P = tile_packet<T>::size;
    if constexpr (packet_traits<S>::Vectorizable && unpacket_traits<SPacket>::size == P &&
                  !std::is_same<SPacket, S>::value) {
      return pcast<SPacket, Packet>(ploadu<SPacket>(p));
    } else {
      T tmp[P];
      for (int l = 0; l < P; ++l)
        tmp[l] = static_cast<T>(p[l]);
      return ploadu<Packet>(tmp);
    }
  }
}

/// out[i] = the bit pattern of x[i] rounded to S (bfloat16 or half; to nearest, ties to even)
/// for n floats: vcvtneps2bf16 (AVX512-BF16), vcvtps2ph (AVX-512 or F16C) where the build
/// targets them; bfloat16 otherwise by integer rounding of the float's bits (which the
/// compiler vectorises), half through Eigen one value at a time.
template <class S>
void narrow_bits(const float* x, std::uint16_t* out, Index n) {
  static_assert(is_half_storage<S>::value, "narrow_bits: S is bfloat16 or half");
  Index i = 0;
  if constexpr (std::is_same<S, Eigen::bfloat16>::value) {
#if defined(__AVX512BF16__) && defined(__AVX512VL__)
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i))));
#endif
    for (; i < n; ++i) {
      std::uint32_t b;
      std::memcpy(&b, x + i, sizeof b);
      const bool nan = (b & 0x7fffffffu) > 0x7f800000u;
      const std::uint32_t r = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
      out[i] = static_cast<std::uint16_t>(nan ? ((b >> 16) | 0x40u) : r);
    }
  } else {
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(out + i),
          _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__F16C__)
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; ++i)
      out[i] = Eigen::numext::bit_cast<std::uint16_t>(static_cast<Eigen::half>(x[i]));
  }
}

/// dst [rows, cols] (row stride ldd) = src [rows, cols] (row stride lds) widened to T.
template <class T, class S>
void widen_rows(const S* src, Index lds, Index rows, Index cols, T* dst, Index ldd) {
  constexpr int P = tile_packet<T>::size;
  for (Index r = 0; r < rows; ++r) {
    const S* in = src + r * lds;
    T* out = dst + r * ldd;
    Index c = 0;
    for (; c + P <= cols; c += P)
      Eigen::internal::pstoreu(out + c, load_widened<T>(in + c));
    for (; c < cols; ++c)
      out[c] = static_cast<T>(in[c]);
  }
}

/// x rounded once to S, to nearest with ties to even (S = double: x itself). For float,
/// bfloat16 and half through float: x is first rounded to odd in float (truncated, its last
/// bit set when inexact), which keeps the final rounding from being a double rounding (float
/// has more than two bits beyond either format's precision).
template <class S>
inline S round_to(double x) {
  if constexpr (std::is_same<S, double>::value) {
    return x;
  } else if constexpr (std::is_same<S, float>::value) {
    return static_cast<float>(x);
  } else {
    float f = static_cast<float>(x);
    if (std::isfinite(f) && static_cast<double>(f) != x) {
      if (std::abs(static_cast<double>(f)) > std::abs(x)) f = std::nextafter(f, 0.0f);
      std::uint32_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      bits |= 1u;
      std::memcpy(&f, &bits, sizeof bits);
    }
    return S(f);  // Eigen: round to nearest, ties to even
  }
}

}  // namespace detail
POSENC_NAMESPACE_END
