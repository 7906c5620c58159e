// posenc internals: sinusoid rows computed in double (shared by the sinusoidal encoding and
// Transformer-XL's relative sinusoid).
#pragma once

#include <cmath>
#include <vector>

#include "../types.hpp"

POSENC_NAMESPACE_BEGIN
namespace detail {

/// inv_freq_i = base^(-2i/D), i = 0 .. D/2-1  (Vaswani et al. 2017, section 3.5).
inline std::vector<double> vaswani_inv_freq(Index dim, double base) {
  std::vector<double> f(static_cast<std::size_t>(dim / 2));
  for (std::size_t i = 0; i < f.size(); ++i)
    f[i] = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
  return f;
}

/// inv_freq_i = base^(-i/(D/2-1))  (tensor2tensor get_timing_signal_1d; fairseq).
inline std::vector<double> log_timescale_inv_freq(Index dim, double base) {
  std::vector<double> f(static_cast<std::size_t>(dim / 2));
  const double denom = static_cast<double>(dim / 2 - 1);
  for (std::size_t i = 0; i < f.size(); ++i)
    f[i] = std::exp(-std::log(base) * static_cast<double>(i) / denom);
  return f;
}

/// One row of a sinusoid table at (possibly negative) position p, angles in double so that
/// float results stay within 1e-6 of the float64 formula for |p| up to 2^20 and beyond.
/// interleaved: out[2i] = sin, out[2i+1] = cos;  split: out[i] = sin, out[D/2+i] = cos.
template <class T>
void sinusoid_row(double p, const std::vector<double>& inv_freq, bool split, double scale, T* out) {
  const std::size_t half = inv_freq.size();
  for (std::size_t i = 0; i < half; ++i) {
    const double angle = p * inv_freq[i];
    const double s = scale * std::sin(angle), c = scale * std::cos(angle);
    if (split) {
      out[i] = static_cast<T>(s);
      out[half + i] = static_cast<T>(c);
    } else {
      out[2 * i] = static_cast<T>(s);
      out[2 * i + 1] = static_cast<T>(c);
    }
  }
}

}  // namespace detail
POSENC_NAMESPACE_END
