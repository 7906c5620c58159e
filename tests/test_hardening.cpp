// Hostile input to the library: positions near INT64_MAX, sizes beyond the stated limits,
// non-finite parameters and data, outputs that alias inputs. Each case either works exactly
// or throws posenc::error naming the parameter; none reads or writes out of bounds (the
// sanitizer build runs these too).
#include <limits>

#include "attention_support.hpp"

using namespace attention_test;

namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

template <class E>
Matrix<double> bias_tile(const E& enc, const Positions& q, const Positions& k, Index heads, Index h,
                         const Matrix<double>& qt, const Matrix<double>& kt, double scale) {
  const auto b = enc.score_bias(q, k, heads, qt.cols(), scale);
  Matrix<double> s = Matrix<double>::Zero(q.size(), k.size());
  b.add(h, 0, 0, qt, kt, s);
  return s;
}

}  // namespace

TEST_CASE("hardening: Positions never wrap past INT64_MAX", "[hardening]") {
  const Positions last(kMax, 1);
  CHECK(last.max() == kMax);
  const Positions tail(kMax - 3, 4);
  CHECK(tail.max() == kMax);
  CHECK(tail[3] == kMax);
  require_error([] { Positions(kMax, 2); }, {"offset + n - 1", std::to_string(kMax)});
  require_error([] { Positions(kMax - 2, 4); }, {"offset + n - 1"});
  require_error([] { Positions(0, -1); }, {"n = -1"});
  require_error([] { Positions(-5, 1); }, {"offset = -5"});
  // slice with a length that would overflow start + n
  require_error([&] { tail.slice(2, kMax); }, {"Positions::slice", "n = "});
  CHECK(tail.slice(1, 3).max() == kMax);
  // appending after the last representable position
  require_error([&] { tail.append(Positions(0, 1)).append(Positions(5, kMax - 4)); },
                {"Positions"});
  const Positions joined = Positions(kMax - 5, 2).append(Positions(kMax - 3, 4));
  CHECK(joined.contiguous());
  CHECK(joined.size() == 6);
  CHECK(joined.max() == kMax);
  const Positions gap = Positions(0, 2).append(Positions(kMax, 1));
  CHECK_FALSE(gap.contiguous());
  CHECK(gap[2] == kMax);
}

TEST_CASE("hardening: a learned table offset near 2^63 is rejected, not wrapped",
          "[hardening][learned]") {
  const auto enc = LearnedEncoding<double>::normal(8, 4, 1, 0.02, kMax - 1);
  Matrix<double> x = Matrix<double>::Zero(1, 4);
  require_error([&] { enc.add_to_input(x, Positions(0, 1)); },
                {"position p = 0", "table_offset", "L_max = 8"});
  const auto plain = LearnedEncoding<double>::normal(8, 4, 2);
  require_error([&] { plain.add_to_input(x, Positions(kMax, 1)); },
                {std::to_string(kMax), "L_max = 8"});
  require_error([&] { plain.add_to_input(x, Positions(std::vector<std::int64_t>{kMax})); },
                {std::to_string(kMax)});
  Matrix<double> g = Matrix<double>::Zero(8, 4);
  require_error([&] { plain.accumulate_gradient(x, Positions(kMax, 1), g); }, {"L_max = 8"});
  CHECK(g.isZero());
  // the last row is reachable with the largest offset that fits
  const auto edge = LearnedEncoding<double>::normal(8, 4, 3, 0.02, 7);
  edge.add_to_input(x, Positions(0, 1));
  CHECK(max_abs_diff(x, edge.table().row(7)) == 0.0);
}

TEST_CASE("hardening: RoPE at positions up to INT64_MAX rotates exactly", "[hardening][rope]") {
  const Index dh = 8;
  const RotaryEncoding<double> enc(dh);
  const std::vector<std::int64_t> ps = {kMax, kMax - 1, std::int64_t{1} << 62, 3};
  const Matrix<double> x = random_matrix<double>(4, dh, 11);
  Matrix<double> y = x;
  enc.rotate(y, Positions(ps));
  // Reference: each pair (i, i + R/2) rotated by p inv_freq_i (conventions.md section 3),
  // with the angle of p as a double, as the library documents.
  for (Index r = 0; r < 4; ++r)
    for (Index i = 0; i < dh / 2; ++i) {
      const double th = static_cast<double>(ps[static_cast<std::size_t>(r)]) *
                        std::pow(10000.0, -2.0 * static_cast<double>(i) / dh);
      const double a = x(r, i), b = x(r, i + dh / 2);
      CHECK(std::abs(y(r, i) - (a * std::cos(th) - b * std::sin(th))) < 1e-12);
      CHECK(std::abs(y(r, i + dh / 2) - (b * std::cos(th) + a * std::sin(th))) < 1e-12);
    }
  // a contiguous block ending at INT64_MAX equals the same positions listed
  Matrix<double> c = random_matrix<double>(5, dh, 12), l = c;
  enc.rotate(c, Positions(kMax - 4, 5));
  enc.rotate(l, Positions(listed(Positions(kMax - 4, 5))));
  CHECK(max_abs_diff(c, l) == 0.0);
  // dynamic and longrope decide on L = max + 1 without wrapping
  RotaryOptions o;
  o.scaling = RopeScaling::dynamic;
  o.factor = 2.0;
  o.original_max_positions = 16;
  const RotaryEncoding<double> dyn(dh, o);
  Matrix<double> d = x;
  dyn.rotate(d, Positions(ps));
  CHECK(d.allFinite());
  CHECK(dyn.inv_freq(kMax)[1] < RotaryEncoding<double>(dh).inv_freq()[1]);
  o.scaling = RopeScaling::longrope;
  o.short_factors = {1, 1, 1, 1};
  o.long_factors = {2, 2, 2, 2};
  const RotaryEncoding<double> lr(dh, o);
  CHECK(lr.inv_freq(kMax)[0] == 0.5);
  require_error([&] { enc.rotate(y, Positions(ps), kMax); }, {"heads * head_dim"});
}

TEST_CASE("hardening: T5, ALiBi, Shaw and Transformer-XL with positions 2^62 apart",
          "[hardening][relative]") {
  const std::int64_t far = std::int64_t{1} << 62;
  const Positions q(std::vector<std::int64_t>{0, far, kMax});
  const Positions k(std::vector<std::int64_t>{kMax, 0, far, 7});
  const Index dh = 4, heads = 2;
  const Matrix<double> qt = random_matrix<double>(3, dh, 21), kt = random_matrix<double>(4, dh, 22);

  SECTION("T5: every distance beyond max_distance falls in the last bucket of its side") {
    const Matrix<double> table = random_matrix<double>(32, heads, 23);
    const T5Encoding<double> t5(table);
    const Matrix<double> s = bias_tile(t5, q, k, heads, 1, qt, kt, 1.0);
    for (Index i = 0; i < 3; ++i)
      for (Index j = 0; j < 4; ++j) {
        const std::int64_t rel = k[j] - q[i];
        // bidirectional: 16 buckets a side, the last of each for |rel| >= max_distance
        const Index expect = rel == 0  ? 0
                             : rel > 0 ? (rel >= 128 ? 31 : -1)
                                       : (rel <= -128 ? 15 : -1);
        if (expect < 0) continue;  // short distances are covered by the golden tests
        CHECK(s(i, j) == table(expect, 1));
      }
    CHECK(max_abs_diff(s, t5.bias(1, q, k)) == 0.0);
  }
  SECTION("ALiBi: -m |p_i - p_j| for distances near 2^63") {
    const AlibiEncoding<double> alibi(heads);
    const Matrix<double> s = bias_tile(alibi, q, k, heads, 0, qt, kt, 1.0);
    for (Index i = 0; i < 3; ++i)
      for (Index j = 0; j < 4; ++j) {
        const double d = std::abs(static_cast<double>(q[i]) - static_cast<double>(k[j]));
        CHECK(s(i, j) == Approx(-alibi.slopes()[0] * d).epsilon(1e-15));
      }
  }
  SECTION("contiguous blocks ending at INT64_MAX take the fast paths and agree with lists") {
    const Positions qc(kMax - 2, 3), kc(kMax - 3, 4), ql(listed(qc)), kl(listed(kc));
    const AlibiEncoding<double> alibi(heads);
    CHECK(max_abs_diff(bias_tile(alibi, qc, kc, heads, 1, qt, kt, 0.5),
                       bias_tile(alibi, ql, kl, heads, 1, qt, kt, 0.5)) == 0.0);
    const ShawEncoding<double> shaw(random_matrix<double>(5, dh, 24),
                                    random_matrix<double>(5, dh, 25));
    CHECK(max_abs_diff(bias_tile(shaw, qc, kc, heads, 0, qt, kt, 0.5),
                       bias_tile(shaw, ql, kl, heads, 0, qt, kt, 0.5)) < 1e-14);
    // far apart, contiguous: keys at 0.., queries at the top
    const Positions k0(0, 4), k0l(listed(k0));
    CHECK(max_abs_diff(bias_tile(shaw, qc, k0, heads, 0, qt, kt, 0.5),
                       bias_tile(shaw, ql, k0l, heads, 0, qt, kt, 0.5)) < 1e-14);
    CHECK(max_abs_diff(bias_tile(alibi, qc, k0, heads, 0, qt, kt, 0.5),
                       bias_tile(alibi, ql, k0l, heads, 0, qt, kt, 0.5)) == 0.0);
  }
  SECTION("Transformer-XL: sparse distances, clamped or not, match the formula") {
    for (std::int64_t clamp_len : {std::int64_t{-1}, std::int64_t{5}, kMax}) {
      TransformerXLOptions o;
      o.clamp_len = clamp_len;
      const Matrix<double> u = random_matrix<double>(heads, dh, 26),
                           v = random_matrix<double>(heads, dh, 27),
                           wr = random_matrix<double>(heads * dh, heads * dh, 28, 0.3);
      const TransformerXLEncoding<double> xl(u, v, wr, o);
      const double scale = 0.5;
      const Index h = 1;
      const Matrix<double> s = bias_tile(xl, q, k, heads, h, qt, kt, scale);
      for (Index i = 0; i < 3; ++i)
        for (Index j = 0; j < 4; ++j) {
          // e_ij - scale q_i k_j = scale (u_h k_j + (q_i + v_h) r_{d,h}),  d = clamp(p_i - p_j)
          const std::int64_t d = xl.clamp(q[i] - k[j]);
          const Matrix<double> r = xl.relative_embeddings({d}).middleCols(h * dh, dh);
          const double expect =
              scale * (u.row(h).dot(kt.row(j)) + (qt.row(i) + v.row(h)).dot(r.row(0)));
          CHECK(s(i, j) == Approx(expect).epsilon(1e-12).margin(1e-12));
        }
      const Positions qc(kMax - 2, 3), kc(0, 4);
      CHECK(max_abs_diff(bias_tile(xl, qc, kc, heads, 0, qt, kt, scale),
                         bias_tile(xl, Positions(listed(qc)), Positions(listed(kc)), heads, 0, qt,
                                   kt, scale)) < 1e-12);
    }
  }
}

TEST_CASE("hardening: attention at the last representable positions", "[hardening][attention]") {
  const Index n = 12, d = 8, heads = 2;
  const Weights<double> w(n, d, 31);
  const Positions top(kMax - (n - 1), n);
  const auto run = [&](const auto& enc, bool causal) {
    AttentionOptions<double> o = options<double>(heads, causal);
    o.offset = top.offset();
    const Matrix<double> contiguous = w.run(enc, o);
    o.offset = 0;
    o.positions = Positions(listed(top));
    const Matrix<double> explicit_list = w.run(enc, o);
    CHECK(contiguous.allFinite());
    CHECK(max_abs_diff(contiguous, explicit_list) < 1e-12);
  };
  for (bool causal : {false, true}) {
    run(RotaryEncoding<double>(d / heads), causal);
    run(AlibiEncoding<double>(heads), causal);
    run(T5Encoding<double>(random_matrix<double>(32, heads, 32)), causal);
    run(ShawEncoding<double>(random_matrix<double>(7, d / heads, 33),
                             random_matrix<double>(7, d / heads, 34)),
        causal);
    run(SinusoidalEncoding<double>(d), causal);
  }
  // a decode step past the last position is an error, not a wrap
  KVCache<double> cache;
  AttentionOptions<double> o = options<double>(heads, true, kMax);
  Matrix<double> y(1, d);
  attention_step(w.x.topRows(1), w.wq, w.wk, w.wv, w.wo, NoEncoding<double>{}, o, cache, y);
  CHECK(cache.size() == 1);
  require_error([&] { (void)cache.next_position(); }, {"next_position", std::to_string(kMax)});
  require_error(
      [&] {
        attention_step(w.x.topRows(1), w.wq, w.wk, w.wv, w.wo, NoEncoding<double>{}, o, cache, y);
      },
      {"next_position"});
  CHECK(cache.size() == 1);
}

TEST_CASE("hardening: sizes beyond the stated limits throw posenc::error naming them",
          "[hardening]") {
  const Index big = max_extent + 2;
  require_error([&] { SinusoidalEncoding<float>{big}; }, {"SinusoidalEncoding: dim", "2^24"});
  require_error([&] { RotaryEncoding<float>{big}; }, {"RotaryEncoding: head_dim", "2^24"});
  require_error([&] { AlibiEncoding<float>{big}; }, {"heads", "2^24"});
  require_error([&] { LearnedEncoding<float>(Index(1) << 30, Index(1) << 20); },
                {"LearnedEncoding", "more than the limit 2^36"});
  require_error([] { KVCache<float>(-1, 4); }, {"KVCache", "width = -1"});
  require_error([] { KVCache<float>(4, -1); }, {"KVCache", "capacity = -1"});
  require_error([] { KVCache<float>(Index(1) << 24, Index(1) << 24); },
                {"KVCache", "more than the limit 2^36"});
  KVCache<float> cache(4, 2);
  const Matrix<float> kv = Matrix<float>::Ones(2, 4);
  cache.append(kv, kv, Positions(0, 2));
  require_error([&] { cache.reserve(8, 4); }, {"width = 8", "cached width H_kv * Dh = 4"});
  require_error([&] { cache.reserve(4, -3); }, {"capacity = -3"});
  AttentionOptions<float> o;
  o.heads = static_cast<Index>(big);
  const Weights<float> w(4, 4, 41);
  require_error([&] { w.run(NoEncoding<float>{}, o); }, {"heads H", "2^24"});
  // a wide encoder costs nothing until it is used on rows: no 32 x D rotation table up front
  const SinusoidalEncoding<float> wide(max_extent);
  Matrix<float> none(0, max_extent);
  wide.add_to_input(none, Positions(0, 0));
  CHECK(wide.inv_freq().size() == static_cast<std::size_t>(max_extent / 2));
}

TEST_CASE("hardening: non-finite parameters are rejected, non-finite data propagates",
          "[hardening][nan]") {
  RotaryOptions tiny;
  tiny.scaling = RopeScaling::linear;
  tiny.factor = 1e-320;  // finite and > 0, but inv_freq / factor overflows
  require_error([&] { RotaryEncoding<double>(8, tiny); }, {"inv_freq[0]", "inf", "factor"});
  RotaryOptions huge;
  huge.scaling = RopeScaling::yarn;
  huge.factor = 2.0;
  huge.original_max_positions = 64;
  huge.attention_factor = 1e300;
  require_error([&] { RotaryEncoding<float>(8, huge); }, {"attention factor", "representable"});
  CHECK_NOTHROW(RotaryEncoding<double>(8, huge));
  RotaryOptions tiny_base;
  tiny_base.base = 1e-320;
  require_error([&] { RotaryEncoding<double>(64, tiny_base); }, {"inv_freq", "base"});
  SinusoidalOptions so;
  so.scale = 1e300;
  require_error([&] { SinusoidalEncoding<float>(8, so); }, {"scale = 1", "representable"});
  CHECK_NOTHROW(SinusoidalEncoding<double>(8, so));
  so.scale = 1.0;
  so.base = 1e-320;
  require_error([&] { SinusoidalEncoding<double>(64, so); }, {"inv_freq", "not finite"});
  AttentionOptions<double> o = options<double>(2, true);
  o.scale = std::numeric_limits<double>::infinity();
  const Weights<double> w(6, 8, 51);
  require_error([&] { w.run(NoEncoding<double>{}, o); }, {"scale = inf"});

  // NaN in one token's input propagates to every row that attends to it, and is never
  // reported as "every score masked".
  Weights<double> bad(6, 8, 52);
  bad.x(3, 2) = std::numeric_limits<double>::quiet_NaN();
  for (bool causal : {false, true}) {
    const Matrix<double> y = bad.run(AlibiEncoding<double>(2), options<double>(2, causal));
    for (Index i = 3; i < 6; ++i)
      CHECK(y.row(i).array().isNaN().all());
  }
  bad.wv(0, 0) = std::numeric_limits<double>::infinity();
  CHECK_NOTHROW(bad.run(NoEncoding<double>{}, options<double>(2, false)));
}

TEST_CASE("hardening: an output that aliases an input is computed as if it did not",
          "[hardening][attention]") {
  const Index d = 8;
  const Weights<double> w(d, d, 61);  // N = D, so y [N, D] can be Wo's storage
  const RotaryEncoding<double> enc(d / 2);
  const AttentionOptions<double> o = options<double>(2, true);
  const Matrix<double> expect = w.run(enc, o);
  Matrix<double> wo = w.wo;
  attention(w.x, w.wq, w.wk, w.wv, wo, enc, o, wo);  // y is Wo
  CHECK(max_abs_diff(wo, expect) < 1e-12);
  Matrix<double> x = w.x;
  attention(x, w.wq, w.wk, w.wv, w.wo, enc, o, x);  // y is X
  CHECK(max_abs_diff(x, expect) < 1e-12);
  // a block of Wo's buffer overlapping y partly
  Matrix<double> buf(d + 2, d);
  buf.topRows(d) = w.wo;
  attention(w.x, w.wq, w.wk, w.wv, buf.topRows(d), enc, o, buf.bottomRows(d));
  CHECK(max_abs_diff(buf.bottomRows(d), expect) < 1e-12);
}

TEST_CASE("hardening: overlap of views is decided element by element", "[hardening]") {
  Matrix<double> m(6, 10);
  using posenc::detail::overlaps;
  CHECK_FALSE(overlaps(m.middleCols(0, 4), m.middleCols(4, 4)));  // column blocks of one buffer
  CHECK(overlaps(m.middleCols(0, 5), m.middleCols(4, 4)));
  CHECK(overlaps(m.block(1, 0, 2, 10), m.block(2, 3, 1, 1)));
  CHECK_FALSE(overlaps(m.topRows(2), m.middleRows(2, 1)));
  CHECK_FALSE(overlaps(m.block(0, 6, 2, 4), m.block(1, 0, 1, 2)));  // interleaved, disjoint
  CHECK(overlaps(m.block(0, 6, 2, 4), m.block(1, 0, 1, 7)));
  CHECK(overlaps(m.block(1, 0, 1, 7), m.block(0, 6, 2, 4)));  // either order
  CHECK_FALSE(overlaps(m.block(1, 0, 1, 2), m.block(0, 6, 2, 4)));
  const Matrix<double> other(6, 10);
  CHECK_FALSE(overlaps(m, other));
  CHECK(overlaps(m, m));
}

#if defined(__GNUC__) || defined(__clang__)
TEST_CASE("hardening: the checked arithmetic agrees with the compiler's overflow builtins",
          "[hardening]") {
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
  const std::vector<std::int64_t> values = {
      0,          1,          -1,         2,        -2,     3,         kMax,
      lo,         kMax - 1,   lo + 1,     kMax / 2, lo / 2, 1LL << 32, -(1LL << 32),
      3037000499, 3037000500, -3037000500};
  int disagreements = 0;
  for (std::int64_t a : values)
    for (std::int64_t b : values) {
      std::int64_t want = 0, got = 0;
      bool over = __builtin_add_overflow(a, b, &want);
      disagreements += over != posenc::detail::add_overflows(a, b, &got) || (!over && got != want);
      over = __builtin_sub_overflow(a, b, &want);
      disagreements += over != posenc::detail::sub_overflows(a, b, &got) || (!over && got != want);
      over = __builtin_mul_overflow(a, b, &want);
      disagreements += over != posenc::detail::mul_overflows(a, b, &got) || (!over && got != want);
    }
  CHECK(disagreements == 0);
  require_error([&] { posenc::detail::checked_mul(kMax, 2, "rows * cols"); },
                {"rows * cols", "overflows int64"});
  CHECK(posenc::detail::saturating_add(kMax, 5) == kMax);
  CHECK(posenc::detail::saturating_sub(lo, 5) == lo);
}
#endif
