// The self-attention kernel (conventions.md section 6) with every encoder: float64 reference
// outputs, the word-order example, the caller's buffers, a user-defined encoder and
// bad input (tiling and the KV cache: test_tiling_and_kv_cache.cpp).
#include "attention_support.hpp"

using namespace attention_test;

TEMPLATE_TEST_CASE("attention: every encoder matches the float64 reference", "[attention]", float,
                   double) {
  using T = TestType;
  const Weights<T> w("attn");
  const auto check = [&](const char* file, const auto& enc, const AttentionOptions<T>& opt) {
    INFO(file);
    CHECK(max_abs_diff(w.run(enc, opt), load<double>(file)) <= attn_tol<T>());
  };
  check("attn_none_bidir", NoEncoding<T>{}, options<T>(2, false));
  check("attn_none_causal", NoEncoding<T>{}, options<T>(2, true));
  auto scaled = options<T>(2, false);
  scaled.scale = T(0.5);
  check("attn_none_scale0.5", NoEncoding<T>{}, scaled);
  check("attn_sinusoidal_causal", SinusoidalEncoding<T>(16), options<T>(2, true, 3));
  check("attn_learned_bidir", LearnedEncoding<T>(load<T>("attn_learned_table"), 2),
        options<T>(2, false, 1));
  check("attn_rope_half_causal", RotaryEncoding<T>(8, rope_options(8, RotaryLayout::half)),
        options<T>(2, true, 5));
  check("attn_rope_interleaved_R4_bidir",
        RotaryEncoding<T>(8, rope_options(4, RotaryLayout::interleaved)), options<T>(2, false));
  check("attn_alibi_causal", AlibiEncoding<T>(2), options<T>(2, true));
  check("attn_alibi_bidir", AlibiEncoding<T>(2), options<T>(2, false));
  auto t5_opt = options<T>(2, false);
  t5_opt.scale = T(1);
  check("attn_t5_bidir", t5_encoding<T>(true), t5_opt);
  t5_opt.causal = true;
  check("attn_t5_causal", t5_encoding<T>(false), t5_opt);
  const ShawEncoding<T> shaw(load<T>("attn_shaw_ak"), load<T>("attn_shaw_av"));
  check("attn_shaw_bidir", shaw, options<T>(2, false));
  check("attn_shaw_causal", shaw, options<T>(2, true));
  check("attn_xl_causal", xl_encoding<T>(-1), options<T>(2, true));
  check("attn_xl_bidir_clamp3", xl_encoding<T>(3), options<T>(2, false));

  const Weights<T> w3("attn3");
  INFO("attn3: D = 24, H = 3");
  CHECK(max_abs_diff(w3.run(AlibiEncoding<T>(3), options<T>(3, true)),
                     load<double>("attn3_alibi_causal")) <= attn_tol<T>());
  CHECK(max_abs_diff(w3.run(RotaryEncoding<T>(8), options<T>(3, false, 2)),
                     load<double>("attn3_rope_half_bidir")) <= attn_tol<T>());
}

TEST_CASE("attention: the word-order example", "[attention][property]") {
  // "猫追老鼠" (the cat chases the mouse) and "老鼠追猫" (the mouse chases the cat): the same
  // four characters 猫 追 老 鼠 in another order. Without position information, attention is
  // permutation-equivariant: the second sentence's outputs are the first's, permuted.
  const Index d = 16;
  const Matrix<double> vocab = random_matrix<double>(4, d, 2024);  // 猫, 追, 老, 鼠
  const std::vector<Index> s1 = {0, 1, 2, 3}, s2 = {2, 3, 1, 0};
  Matrix<double> x1(4, d), x2(4, d);
  for (Index i = 0; i < 4; ++i) {
    x1.row(i) = vocab.row(s1[static_cast<std::size_t>(i)]);
    x2.row(i) = vocab.row(s2[static_cast<std::size_t>(i)]);
  }
  const Weights<double> w(4, d, 99);
  const auto opt = options<double>(2, false);
  // Row i of sentence 2 holds the token that sentence 1 has at row perm[i].
  const std::vector<Index> perm = {2, 3, 1, 0};
  const auto gap = [&](const auto& enc) {
    const Matrix<double> y1 = attention(x1, w.wq, w.wk, w.wv, w.wo, enc, opt);
    const Matrix<double> y2 = attention(x2, w.wq, w.wk, w.wv, w.wo, enc, opt);
    double m = 0;
    for (Index i = 0; i < 4; ++i)
      m = std::max(m,
                   (y2.row(i) - y1.row(perm[static_cast<std::size_t>(i)])).cwiseAbs().maxCoeff());
    return m;
  };
  CHECK(gap(NoEncoding<double>{}) < 1e-12);
  const double tell_apart = 1e-3;
  CHECK(gap(SinusoidalEncoding<double>(d)) > tell_apart);
  CHECK(gap(LearnedEncoding<double>::normal(8, d, 5, 0.5)) > tell_apart);
  CHECK(gap(RotaryEncoding<double>(8)) > tell_apart);
  CHECK(gap(AlibiEncoding<double>(2)) > tell_apart);
  CHECK(gap(T5Encoding<double>(random_matrix<double>(32, 2, 6))) > tell_apart);
  CHECK(gap(ShawEncoding<double>(random_matrix<double>(7, 8, 7), random_matrix<double>(7, 8, 8))) >
        tell_apart);
  CHECK(gap(TransformerXLEncoding<double>(random_matrix<double>(2, 8, 9),
                                          random_matrix<double>(2, 8, 10),
                                          random_matrix<double>(d, d, 11, 0.25))) > tell_apart);
}

TEST_CASE("attention: accepts maps and blocks of the caller's buffers", "[attention]") {
  const Index n = 6, d = 8;
  const Weights<float> w(n, d, 5);
  std::vector<float> xs(static_cast<std::size_t>(n * d)), ys(static_cast<std::size_t>(n * d));
  Eigen::Map<Matrix<float>>(xs.data(), n, d) = w.x;
  const Eigen::Map<const Matrix<float>> xmap(xs.data(), n, d);
  Eigen::Map<Matrix<float>> ymap(ys.data(), n, d);
  const AlibiEncoding<float> enc(2);
  attention(xmap, w.wq, w.wk, w.wv, w.wo, enc, options<float>(2, true), ymap);
  CHECK(max_abs_diff(ymap, w.run(enc, options<float>(2, true))) == 0.0);
  // Weights as blocks of a larger matrix (outer stride != D).
  Matrix<float> all(d, 4 * d);
  all << w.wq, w.wk, w.wv, w.wo;
  const Matrix<float> y =
      attention(w.x, all.middleCols(0, d), all.middleCols(d, d), all.middleCols(2 * d, d),
                all.middleCols(3 * d, d), enc, options<float>(2, true));
  CHECK(max_abs_diff(y, w.run(enc, options<float>(2, true))) == 0.0);
}

namespace {
// A user-defined encoder: one small class with only the score hook. It adds -slope_h * |i - j|,
// so with ALiBi's slopes it must reproduce ALiBi exactly.
struct LinearDistancePenalty {
  using Scalar = double;
  std::vector<double> slopes;

  struct Bias {
    const LinearDistancePenalty* self;
    Positions q, k;
    void add(Index h, Index i0, Index j0, const ConstMatrixRef<double>&,
             const ConstMatrixRef<double>&, MatrixRef<double> s) const {
      for (Index i = 0; i < s.rows(); ++i)
        for (Index j = 0; j < s.cols(); ++j)
          s(i, j) -= self->slopes[static_cast<std::size_t>(h)] *
                     static_cast<double>(std::llabs(q[i0 + i] - k[j0 + j]));
    }
  };
  Bias score_bias(const Positions& q, const Positions& k, Index, Index, double) const {
    return Bias{this, q, k};
  }
};

// A user-defined additive encoder: adds a constant ramp c * p to every feature.
struct PositionRamp {
  using Scalar = float;
  float c = 0.01f;
  void add_to_input(MatrixRef<float> x, const Positions& pos) const {
    for (Index i = 0; i < x.rows(); ++i)
      x.row(i).array() += c * static_cast<float>(pos[i]);
  }
};
// An encoder whose bias masks every score.
struct MaskAll {
  using Scalar = float;
  struct Bias {
    void add(Index, Index, Index, const ConstMatrixRef<float>&, const ConstMatrixRef<float>&,
             MatrixRef<float> s) const {
      s.setConstant(-std::numeric_limits<float>::infinity());
    }
  };
  Bias score_bias(const Positions&, const Positions&, Index, Index, float) const { return {}; }
};
}  // namespace

TEST_CASE("attention: a user-defined encoder plugs in with only the hooks it needs",
          "[attention][custom]") {
  static_assert(!encoder_traits<NoEncoding<float>>::adds_to_input &&
                !encoder_traits<NoEncoding<float>>::rotates_qk &&
                !encoder_traits<NoEncoding<float>>::biases_scores);
  static_assert(encoder_traits<SinusoidalEncoding<float>>::adds_to_input &&
                !encoder_traits<SinusoidalEncoding<float>>::rotates_qk);
  static_assert(encoder_traits<RotaryEncoding<float>>::rotates_qk &&
                !encoder_traits<RotaryEncoding<float>>::biases_scores);
  static_assert(encoder_traits<AlibiEncoding<float>>::biases_scores &&
                !adds_values<AlibiEncoding<float>>());
  static_assert(adds_values<ShawEncoding<float>>() && !adds_values<TransformerXLEncoding<float>>());
  static_assert(encoder_traits<LinearDistancePenalty>::biases_scores &&
                !encoder_traits<LinearDistancePenalty>::checks_shape);
  static_assert(encoder_traits<PositionRamp>::adds_to_input);

  const Weights<double> w(9, 16, 31);
  const LinearDistancePenalty mine{alibi_slopes(2)};
  for (bool causal : {false, true}) {
    const auto opt = options<double>(2, causal, 4);
    CHECK(max_abs_diff(w.run(mine, opt), w.run(AlibiEncoding<double>(2), opt)) < 1e-13);
  }
  const Weights<float> wf(9, 16, 32);
  const Matrix<float> ramp = wf.run(PositionRamp{}, options<float>(2, false, 3));
  const Matrix<float> none = wf.run(NoEncoding<float>{}, options<float>(2, false, 3));
  CHECK(max_abs_diff(ramp, none) > 1e-4);
  CHECK(max_abs_diff(wf.run(PositionRamp{0.0f}, options<float>(2, false, 3)), none) == 0.0);
}

TEST_CASE("attention: bad input throws posenc::error naming the parameter", "[attention][errors]") {
  const Weights<float> w(5, 16, 1);
  const NoEncoding<float> none;
  const auto run = [&](const Matrix<float>& x, const Matrix<float>& wq, const Matrix<float>& wk,
                       const Matrix<float>& wv, const Matrix<float>& wo, Index heads) {
    return attention(x, wq, wk, wv, wo, none, options<float>(heads, false));
  };
  require_error([&] { run(w.x, w.wq, w.wk, w.wv, w.wo, 3); }, {"H = 3", "D = 16"});
  require_error([&] { run(w.x, w.wq, w.wk, w.wv, w.wo, 0); }, {"H = 0"});
  const Matrix<float> bad(16, 12), bad2(15, 16);
  require_error([&] { run(w.x, bad, w.wk, w.wv, w.wo, 2); }, {"Wq", "[16, 12]", "[16, 16]"});
  require_error([&] { run(w.x, w.wq, bad2, w.wv, w.wo, 2); }, {"Wk", "[15, 16]"});
  require_error([&] { run(w.x, w.wq, w.wk, bad, w.wo, 2); }, {"Wv", "[16, 12]"});
  require_error([&] { run(w.x, w.wq, w.wk, w.wv, bad, 2); }, {"Wo", "[16, 12]"});
  Matrix<float> y(4, 16);
  require_error([&] { attention(w.x, w.wq, w.wk, w.wv, w.wo, none, options<float>(2, false), y); },
                {"output", "[4, 16]", "[5, 16]"});
  auto opt = options<float>(2, false);
  opt.scale = NAN;
  require_error([&] { w.run(none, opt); }, {"scale", "nan"});
  opt = options<float>(2, false);
  opt.positions = Positions(0, 3);
  require_error([&] { w.run(none, opt); }, {"positions", "3", "N = 5"});
  // The encoder must fit the attention's shape.
  require_error([&] { w.run(RotaryEncoding<float>(16), options<float>(2, false)); },
                {"head_dim = 16", "Dh = 8"});
  require_error([&] { w.run(AlibiEncoding<float>(4), options<float>(2, false)); },
                {"4 heads", "H = 2"});
  require_error([&] { w.run(SinusoidalEncoding<float>(8), options<float>(2, false)); },
                {"dim = 8"});
  require_error([&] { w.run(LearnedEncoding<float>(4, 16), options<float>(2, false)); },
                {"p = 4", "L_max = 4"});
  // A query whose every score is masked outputs 0, never NaN (conventions.md section 6).
  // Positional masks cannot do that (each token sees itself), an encoder's bias can.
  const Matrix<float> masked = w.run(MaskAll{}, options<float>(2, true));
  CHECK(masked.allFinite());
  CHECK(masked.isZero(0.0f));
  KVCache<float> cache;
  Matrix<float> y1(5, 16);
  attention_step(w.x, w.wq, w.wk, w.wv, w.wo, none, options<float>(2, true), cache, y1);
  // A cache holds one model width.
  const Weights<float> w8(2, 8, 3);
  Matrix<float> y8(2, 8);
  require_error(
      [&] {
        attention_step(w8.x, w8.wq, w8.wk, w8.wv, w8.wo, none, options<float>(2, true), cache, y8);
      },
      {"16 wide", "H_kv * Dh = 8"});
}

#include "readme_custom_encoder.hpp"

TEST_CASE("attention: the README's user-defined encoder reproduces ALiBi", "[attention][custom]") {
  const Weights<float> w(10, 16, 41);
  const auto m = alibi_slopes(2);
  const DistancePenalty mine{{static_cast<float>(m[0]), static_cast<float>(m[1])}};
  for (bool causal : {false, true}) {
    const auto opt = options<float>(2, causal, 3);
    CHECK(max_abs_diff(w.run(mine, opt), w.run(AlibiEncoding<float>(2), opt)) < 1e-5);
    CHECK(max_abs_diff(w.run(mine, opt), w.run(NoEncoding<float>{}, opt)) > 1e-3);
  }
}
