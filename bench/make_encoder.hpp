// posenc benchmarks: building every encoder for a given shape.
#pragma once

#include "common.hpp"

namespace posenc_bench {

enum Enc : int { none, sinusoidal, learned, rope, rope_interleaved, alibi, t5, shaw, xl, n_enc };

inline const char* enc_name(int e) {
  static const char* names[] = {"none",  "sinusoidal", "learned", "rope", "rope_interleaved",
                                "alibi", "t5",         "shaw",    "xl"};
  return names[e];
}

template <class T>
Matrix<T> random(Index rows, Index cols, double scale = 1.0) {
  Matrix<T> m = Matrix<T>::Random(rows, cols);
  return m * static_cast<T>(scale);
}

/// Encoder E for a model of width d = heads * head_dim and sequences up to n tokens.
template <class T, int E>
auto make_encoder(Index n, Index heads, Index head_dim) {
  const Index d = heads * head_dim;
  using namespace posenc;
  if constexpr (E == none) {
    return NoEncoding<T>{};
  } else if constexpr (E == sinusoidal) {
    return SinusoidalEncoding<T>(d);
  } else if constexpr (E == learned) {
    return LearnedEncoding<T>(random<T>(n, d, 0.02));
  } else if constexpr (E == rope || E == rope_interleaved) {
    RotaryOptions o;
    o.layout = E == rope ? RotaryLayout::half : RotaryLayout::interleaved;
    return RotaryEncoding<T>(head_dim, o);
  } else if constexpr (E == alibi) {
    return AlibiEncoding<T>(heads);
  } else if constexpr (E == t5) {
    return T5Encoding<T>(random<T>(32, heads));
  } else if constexpr (E == shaw) {
    return ShawEncoding<T>(random<T>(33, head_dim, 0.1), random<T>(33, head_dim, 0.1));
  } else {
    return TransformerXLEncoding<T>(random<T>(heads, head_dim, 0.1),
                                    random<T>(heads, head_dim, 0.1),
                                    random<T>(d, d, 1.0 / std::sqrt(double(d))));
  }
}

}  // namespace posenc_bench
