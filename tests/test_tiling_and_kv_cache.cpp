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

namespace {

// Every RoPE scaling with M = 12, so that a sequence of 30 tokens crosses the original context
// (longrope switches sets, dynamic changes its base at every length past M).
std::vector<RotaryOptions> every_rope_scaling(Index rotary_dim) {
  std::vector<RotaryOptions> all;
  for (auto s : {RopeScaling::none, RopeScaling::linear, RopeScaling::ntk, RopeScaling::dynamic,
                 RopeScaling::yarn, RopeScaling::llama3, RopeScaling::longrope}) {
    RotaryOptions o;
    o.scaling = s;
    o.original_max_positions = 12;
    if (s != RopeScaling::none) o.factor = 4.0;
    for (Index i = 0; s == RopeScaling::longrope && i < rotary_dim / 2; ++i) {
      o.short_factors.push_back(1.0 + 0.125 * double(i));
      o.long_factors.push_back(2.0 + double(i));
    }
    all.push_back(o);
  }
  return all;
}

}  // namespace

TEMPLATE_TEST_CASE(
    "attention: the KV cache equals full recomputation for every RoPE scaling "
    "across the original context",
    "[attention][kv][rerotate]", float, double) {
  using T = TestType;
  // conventions.md 3d: each decoded output equals the last rows of one causal call over the
  // sequence so far, which rotates every query and key with that length's frequency set.
  const Index n = 30, d = 32, heads = 4, kv_heads = 2, dh = 8;
  const Matrix<T> x = random_matrix<T>(n, d, 91);
  const Matrix<T> wq = random_matrix<T>(d, heads * dh, 92, 0.3),
                  wk = random_matrix<T>(d, kv_heads * dh, 93, 0.3),
                  wv = random_matrix<T>(d, kv_heads * dh, 94, 0.3),
                  wo = random_matrix<T>(heads * dh, d, 95, 0.3);
  AttentionOptions<T> opt = options<T>(heads, true);
  opt.kv_heads = kv_heads;
  for (const RotaryOptions& ro : every_rope_scaling(dh)) {
    const RotaryEncoding<T> enc(dh, ro);
    // A prefill below M, then steps of one and of three tokens across it.
    for (Index chunk : {1, 3}) {
      INFO("scaling " << name_of(ro.scaling) << ", chunk " << chunk);
      KVCache<T> cache;
      Matrix<T> y(n, d);
      attention_step(x.topRows(8), wq, wk, wv, wo, enc, opt, cache, y.topRows(8));
      for (Index i = 8; i < n; i += chunk) {
        const Index c = std::min(chunk, n - i);
        attention_step(x.middleRows(i, c), wq, wk, wv, wo, enc, opt, cache, y.middleRows(i, c));
        const Matrix<T> full = attention(x.topRows(i + c), wq, wk, wv, wo, enc, opt);
        INFO("tokens " << i << " .. " << i + c - 1);
        CHECK(max_abs_diff(Matrix<T>(y.middleRows(i, c)), Matrix<T>(full.bottomRows(c))) <=
              10 * attn_tol<T>());
      }
      CHECK(cache.rotated_for() == n - 1);
    }
  }
}

TEMPLATE_TEST_CASE(
    "attention: evict_and_shift equals a cache that saw the kept tokens at "
    "their new positions",
    "[attention][kv][rerotate]", float, double) {
  using T = TestType;
  // StreamingLLM: keep 4 sinks, drop tokens 4 .. 9, the rest move down by 6 positions.
  const Index n = 20, d = 16, heads = 2, dh = 8;
  const Weights<T> w(n + 1, d, 123);
  const auto opt = options<T>(heads, true);
  const auto check = [&](const char* name, const auto& enc) {
    INFO(name);
    KVCache<T> evicted, fresh;
    Matrix<T> y(n, d), y1(4, d), y2(n - 10, d), ya(1, d), yb(1, d);
    attention_step(w.x.topRows(n), w.wq, w.wk, w.wv, w.wo, enc, opt, evicted, y);
    evict_and_shift(enc, evicted, 4, 10, heads);
    attention_step(w.x.topRows(4), w.wq, w.wk, w.wv, w.wo, enc, opt, fresh, y1);
    attention_step(w.x.middleRows(10, n - 10), w.wq, w.wk, w.wv, w.wo, enc, opt, fresh, y2);
    REQUIRE(evicted.size() == n - 6);
    CHECK(evicted.positions() == fresh.positions());
    CHECK(evicted.key_positions().contiguous());
    CHECK(max_abs_diff(Matrix<T>(evicted.keys()), Matrix<T>(fresh.keys())) <= 10 * attn_tol<T>());
    CHECK(max_abs_diff(Matrix<T>(evicted.values()), Matrix<T>(fresh.values())) == 0.0);
    // The next token sees the same cache either way.
    attention_step(w.x.bottomRows(1), w.wq, w.wk, w.wv, w.wo, enc, opt, evicted, ya);
    attention_step(w.x.bottomRows(1), w.wq, w.wk, w.wv, w.wo, enc, opt, fresh, yb);
    CHECK(max_abs_diff(ya, yb) <= 10 * attn_tol<T>());
  };
  RotaryOptions dyn;
  dyn.scaling = RopeScaling::dynamic;
  dyn.factor = 2.0;
  dyn.original_max_positions = 8;
  RotaryOptions lr = every_rope_scaling(dh).back();
  lr.original_max_positions = 16;  // 20 tokens use the long set, 14 after the eviction the short
  check("rope", RotaryEncoding<T>(dh));
  check("rope interleaved, partial",
        RotaryEncoding<T>(dh, rope_options(4, RotaryLayout::interleaved)));
  check("rope dynamic", RotaryEncoding<T>(dh, dyn));
  lr.short_factors.resize(dh / 2, 1.0);
  lr.long_factors.resize(dh / 2, 3.0);
  check("rope longrope", RotaryEncoding<T>(dh, lr));
  check("alibi", AlibiEncoding<T>(heads));
  check("t5", T5Encoding<T>(random_matrix<T>(32, heads, 7)));
  check("none", NoEncoding<T>());
  // Evicting the tail only drops tokens; bad ranges name the parameter.
  KVCache<T> cache;
  Matrix<T> y(n, d);
  attention_step(w.x.topRows(n), w.wq, w.wk, w.wv, w.wo, RotaryEncoding<T>(dh), opt, cache, y);
  evict_and_shift(RotaryEncoding<T>(dh), cache, 15, n, heads);
  CHECK(cache.size() == 15);
  CHECK(cache.next_position() == 15);
  require_error([&] { evict_and_shift(RotaryEncoding<T>(dh), cache, 5, 16, heads); },
                {"evict_and_shift", "[5, 16)", "15 cached tokens"});
  require_error([&] { evict_and_shift(RotaryEncoding<T>(dh), cache, 0, 1, 3); },
                {"evict_and_shift", "kv_heads = 3"});
}
