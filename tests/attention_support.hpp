// Shared by the attention tests: seeded weights and options.
#pragma once

#include "test_support.hpp"

namespace attention_test {

using namespace posenc_test;
using namespace posenc;

template <class T>
struct Weights {
  Matrix<T> x, wq, wk, wv, wo;
  explicit Weights(const std::string& prefix)
      : x(load<T>(prefix + "_x")),
        wq(load<T>(prefix + "_wq")),
        wk(load<T>(prefix + "_wk")),
        wv(load<T>(prefix + "_wv")),
        wo(load<T>(prefix + "_wo")) {}
  Weights(Index n, Index d, std::uint64_t seed)
      : x(random_matrix<T>(n, d, seed)),
        wq(random_matrix<T>(d, d, seed + 1, 1.0 / std::sqrt(double(d)))),
        wk(random_matrix<T>(d, d, seed + 2, 1.0 / std::sqrt(double(d)))),
        wv(random_matrix<T>(d, d, seed + 3, 1.0 / std::sqrt(double(d)))),
        wo(random_matrix<T>(d, d, seed + 4, 1.0 / std::sqrt(double(d)))) {}

  template <class E>
  Matrix<T> run(const E& enc, const AttentionOptions<T>& opt) const {
    return attention(x, wq, wk, wv, wo, enc, opt);
  }
};

template <class T>
AttentionOptions<T> options(Index heads, bool causal, std::int64_t offset = 0) {
  AttentionOptions<T> o;
  o.heads = heads;
  o.causal = causal;
  o.offset = offset;
  return o;
}

template <class T>
double attn_tol() {
  return std::is_same<T, float>::value ? 2e-5 : 1e-12;
}

inline RotaryOptions rope_options(Index rotary_dim, RotaryLayout layout) {
  RotaryOptions o;
  o.rotary_dim = rotary_dim;
  o.layout = layout;
  return o;
}

template <class T>
TransformerXLEncoding<T> xl_encoding(std::int64_t clamp_len) {
  TransformerXLOptions o;
  o.clamp_len = clamp_len;
  return TransformerXLEncoding<T>(load<T>("attn_xl_u"), load<T>("attn_xl_v"), load<T>("attn_xl_wr"),
                                  o);
}

template <class T>
T5Encoding<T> t5_encoding(bool bidirectional) {
  T5Options o;
  o.bidirectional = bidirectional;
  return T5Encoding<T>(load<T>("attn_t5_table"), o);
}

/// The positions of a block as an explicit list (to run the same positions through the
/// kernels' list paths).
inline std::vector<std::int64_t> listed(const Positions& p) {
  std::vector<std::int64_t> v;
  for (Index i = 0; i < p.size(); ++i)
    v.push_back(p[i]);
  return v;
}

}  // namespace attention_test
