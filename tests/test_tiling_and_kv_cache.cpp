// The attention kernel's tiling, causal tile skipping and online softmax against a
// single-tile evaluation, and the KV cache against full recomputation, for every encoder.
#include "attention_support.hpp"

using namespace attention_test;

namespace {

// A direct single-tile evaluation of section 6 through the encoder's own hooks: S for all
// queries and keys at once, then mask, a plain softmax and P V. It checks the kernel's tiling,
// key-tile skipping and online softmax (the formulas themselves are checked by the goldens).
template <class E>
Matrix<typename E::Scalar> single_tile(const Weights<typename E::Scalar>& w, const E& enc,
                                       const AttentionOptions<typename E::Scalar>& opt) {
  using T = typename E::Scalar;
  const Index n = w.x.rows(), d = w.x.cols(), h_n = opt.heads, dh = d / h_n;
  const Positions pos(opt.offset, n);
  Matrix<T> x = w.x;
  if constexpr (encoder_traits<E>::adds_to_input) enc.add_to_input(x, pos);
  Matrix<T> q = x * w.wq, k = x * w.wk, v = x * w.wv, o(n, d);
  if constexpr (encoder_traits<E>::rotates_qk) {
    enc.rotate(q, pos, h_n);
    enc.rotate(k, pos, h_n);
  }
  const T scale = opt.scale ? *opt.scale : T(1 / std::sqrt(double(dh)));
  for (Index h = 0; h < h_n; ++h) {
    Matrix<T> s = scale * q.middleCols(h * dh, dh) * k.middleCols(h * dh, dh).transpose();
    if constexpr (encoder_traits<E>::biases_scores) {
      const auto b = enc.score_bias(pos, pos, h_n, dh, scale);
      b.add(h, 0, 0, q.middleCols(h * dh, dh), k.middleCols(h * dh, dh), s);
    }
    if (opt.causal)
      for (Index i = 0; i < n; ++i)
        for (Index j = i + 1; j < n; ++j)
          s(i, j) = -std::numeric_limits<T>::infinity();
    Matrix<T> p = (s.colwise() - s.rowwise().maxCoeff()).array().exp();
    const Vector<T> sum = p.rowwise().sum();
    p = sum.cwiseInverse().asDiagonal() * p;
    Matrix<T> oh = p * v.middleCols(h * dh, dh);
    if constexpr (adds_values<E>()) {
      const auto b = enc.score_bias(pos, pos, h_n, dh, scale);
      b.add_values(h, 0, 0, p, oh);
    }
    o.middleCols(h * dh, dh) = oh;
  }
  return o * w.wo;
}

template <class T, class F>
void for_each_encoder(Index d, Index heads, F&& f) {
  const Index dh = d / heads;
  f("none", NoEncoding<T>{});
  f("sinusoidal", SinusoidalEncoding<T>(d));
  f("learned", LearnedEncoding<T>::normal(512, d, 3, 0.3));
  f("rope", RotaryEncoding<T>(dh));
  f("rope interleaved partial",
    RotaryEncoding<T>(dh, rope_options(dh / 2, RotaryLayout::interleaved)));
  f("alibi", AlibiEncoding<T>(heads));
  f("t5", T5Encoding<T>(random_matrix<T>(32, heads, 4)));
  f("shaw", ShawEncoding<T>(random_matrix<T>(9, dh, 5), random_matrix<T>(9, dh, 6)));
  f("xl", TransformerXLEncoding<T>(random_matrix<T>(heads, dh, 7), random_matrix<T>(heads, dh, 8),
                                   random_matrix<T>(d, d, 9, 1.0 / std::sqrt(double(d)))));
}

}  // namespace

TEMPLATE_TEST_CASE("attention: tiled kernel equals a single-tile evaluation", "[attention]", float,
                   double) {
  using T = TestType;
  // N = 1, N below, at and across the tile sizes (64 queries, 128 keys).
  for (Index n : {1, 5, 64, 129, 200}) {
    for (bool causal : {false, true}) {
      for (std::int64_t offset : {0, 37}) {
        const Index d = 16, heads = 2;
        const Weights<T> w(n, d, static_cast<std::uint64_t>(n * 7 + offset));
        const auto opt = options<T>(heads, causal, offset);
        for_each_encoder<T>(d, heads, [&](const char* name, const auto& enc) {
          INFO(name << ", N = " << n << (causal ? ", causal" : "") << ", offset " << offset);
          CHECK(max_abs_diff(w.run(enc, opt), single_tile(w, enc, opt)) <= 10 * attn_tol<T>());
        });
      }
    }
  }
}

TEMPLATE_TEST_CASE("attention: the KV cache equals full recomputation", "[attention][kv]", float,
                   double) {
  using T = TestType;
  const Index n = 23, d = 16, heads = 2;
  const Weights<T> w(n, d, 77);
  for (std::int64_t offset : {0, 9}) {
    const auto opt = options<T>(heads, true, offset);
    for_each_encoder<T>(d, heads, [&](const char* name, const auto& enc) {
      const Matrix<T> full = w.run(enc, opt);
      // Token by token, then in uneven chunks.
      for (Index chunk : {1, 4, 7}) {
        INFO(name << ", chunk " << chunk << ", offset " << offset);
        KVCache<T> cache;
        Matrix<T> y(n, d);
        for (Index i = 0; i < n; i += chunk) {
          const Index c = std::min(chunk, n - i);
          attention_step(w.x.middleRows(i, c), w.wq, w.wk, w.wv, w.wo, enc, opt, cache,
                         y.middleRows(i, c));
        }
        CHECK(cache.size() == n);
        CHECK(cache.positions().front() == offset);
        CHECK(cache.next_position() == offset + n);
        CHECK(max_abs_diff(y, full) <= 10 * attn_tol<T>());
      }
    });
  }
  // The same through MultiHeadAttention.
  const MultiHeadAttention<RotaryEncoding<T>> layer(w.wq, w.wk, w.wv, w.wo, RotaryEncoding<T>(8),
                                                    options<T>(heads, true));
  KVCache<T> cache;
  Matrix<T> y(n, d);
  for (Index i = 0; i < n; ++i)
    y.row(i) = layer.step(w.x.row(i), cache);
  CHECK(max_abs_diff(y, layer(w.x)) <= 10 * attn_tol<T>());
}
