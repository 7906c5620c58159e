// The decoding kernel (attend with at most 8 queries: detail/attend_decode.hpp) against a dense
// float64 evaluation of conventions.md sections 6 and 6b written out here (scores, the
// encoder's bias on the whole matrix, soft-cap, the visibility rules, sinks, softmax, P V and
// Shaw's value term), on many shapes: one to eight queries, one key to several spans of
// keys, grouped heads, Dh with and without a SIMD-width multiple; also its log-sum-exp, rows
// that see nothing, NaN propagation, equality with the tiled kernel (more than 8 queries),
// and one result for any thread count. Keys and values kept as bfloat16 or half: the stored
// values rounded once, the kernel's arithmetic against the reference on the stored values.
#include "attention_support.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace attention_test;

namespace {

struct Rules {
  bool causal = false;
  std::int64_t window = 0, chunk = 0;
  std::vector<std::int64_t> qseg, kseg;
};

// Conventions 6b, pair by pair.
bool visible(const Rules& r, std::int64_t pi, std::int64_t pj, Index i, Index j) {
  if (r.causal && pj > pi) return false;
  if (r.window > 0) {
    const std::int64_t d = pi - pj;
    if (d >= r.window || (!r.causal && -d >= r.window)) return false;
  }
  if (r.chunk > 0 && pi / r.chunk != pj / r.chunk) return false;
  if (!r.qseg.empty()) {
    const std::int64_t a = r.qseg[static_cast<std::size_t>(i)],
                       b = r.kseg[static_cast<std::size_t>(j)];
    if (a < 0 || b < 0 || a != b) return false;
  }
  return true;
}

struct Reference {
  Matrix<double> out, lse;
};

// Section 6 densely in double, head by head (query head h reads key/value head h H_kv / H).
template <class E>
Reference dense_reference(const E& enc, const Matrix<double>& q, const Matrix<double>& k,
                          const Matrix<double>& v, const Positions& qpos, const Positions& kpos,
                          Index heads, Index kv_heads, double scale, const Rules& rules,
                          double softcap, const std::vector<double>& sinks) {
  const Index nq = q.rows(), nk = k.rows(), dh = q.cols() / heads;
  Reference r{Matrix<double>::Zero(nq, q.cols()), Matrix<double>(heads, nq)};
  for (Index h = 0; h < heads; ++h) {
    const Index g = h * kv_heads / heads;
    const Matrix<double> qh = q.middleCols(h * dh, dh), kh = k.middleCols(g * dh, dh),
                         vh = v.middleCols(g * dh, dh);
    Matrix<double> s = scale * qh * kh.transpose();
    if constexpr (encoder_traits<E>::biases_scores)
      enc.score_bias(qpos, kpos, heads, dh, scale).add(h, 0, 0, qh, kh, s);
    if (softcap > 0) s = softcap * (s.array() / softcap).tanh();
    Matrix<double> p = Matrix<double>::Zero(nq, nk);
    for (Index i = 0; i < nq; ++i) {
      double m = -std::numeric_limits<double>::infinity();
      for (Index j = 0; j < nk; ++j)
        if (visible(rules, qpos[i], kpos[j], i, j)) m = std::max(m, s(i, j));
      const double sink = sinks.empty() ? -std::numeric_limits<double>::infinity()
                                        : sinks[static_cast<std::size_t>(h)];
      if (m == -std::numeric_limits<double>::infinity()) {  // sees nothing
        r.lse(h, i) = std::numeric_limits<double>::infinity();
        continue;
      }
      m = std::max(m, sink);
      double sum = std::exp(sink - m);
      for (Index j = 0; j < nk; ++j)
        if (visible(rules, qpos[i], kpos[j], i, j)) sum += (p(i, j) = std::exp(s(i, j) - m));
      p.row(i) /= sum;
      r.lse(h, i) = m + std::log(sum);
    }
    Matrix<double> oh = p * vh;
    if constexpr (adds_values<E>())
      enc.score_bias(qpos, kpos, heads, dh, scale).add_values(h, 0, 0, p, oh);
    r.out.middleCols(h * dh, dh) = oh;
  }
  return r;
}

template <class F>
void for_each_encoder(Index heads, Index dh, std::uint64_t seed, F&& f) {
  f("none", NoEncoding<double>{});
  f("alibi", AlibiEncoding<double>(heads));
  f("t5", T5Encoding<double>(random_matrix<double>(32, heads, seed)));
  f("shaw", ShawEncoding<double>(random_matrix<double>(9, dh, seed + 1),
                                 random_matrix<double>(9, dh, seed + 2)));
  const Index d = heads * dh;
  if (d % 2 == 0)
    f("xl", TransformerXLEncoding<double>(random_matrix<double>(heads, dh, seed + 3, 0.3),
                                          random_matrix<double>(heads, dh, seed + 4, 0.3),
                                          random_matrix<double>(d, d, seed + 5, 0.2)));
}

AttendOptions<double> attend_options(Index heads, Index kv_heads, const Rules& r, double softcap,
                                     const std::vector<double>& sinks) {
  AttendOptions<double> o;
  o.heads = heads;
  o.kv_heads = kv_heads;
  o.visibility.causal = r.causal;
  o.visibility.window = r.window;
  o.visibility.chunk = r.chunk;
  o.query_segments = r.qseg;
  o.key_segments = r.kseg;
  if (softcap > 0) o.softcap = softcap;
  o.sinks = sinks;
  return o;
}

}  // namespace

TEST_CASE("decoding: few queries against many keys equal the dense reference",
          "[attention][decode]") {
  std::mt19937_64 rng(777);
  // one key, around the block (32) and the span (1024), several spans
  const std::vector<Index> nks = {1, 3, 31, 33, 100, 1024, 1025, 2600};
  const std::vector<std::pair<Index, Index>> groups = {{4, 4}, {8, 2}, {12, 1}, {3, 1}};
  const std::vector<Index> dhs = {5, 8, 16};
  for (int trial = 0; trial < 24; ++trial) {
    const Index nq = 1 + static_cast<Index>(rng() % 8), nk = nks[rng() % nks.size()];
    const auto [heads, kv_heads] = groups[rng() % groups.size()];
    const Index dh = dhs[rng() % dhs.size()];
    const int kind = trial % 6;
    Rules rules;
    double softcap = 0;
    std::vector<double> sinks;
    // queries after the keys (a decoding step) or among them
    std::int64_t q0 = kind == 5 ? nk / 2 : nk;
    if (kind == 1) rules.causal = true;
    if (kind == 2) {
      rules.causal = true;
      rules.window = 40;
      q0 = nk - 1;  // the last queries of the sequence themselves cached
    }
    if (kind == 3) {
      rules.chunk = 300;
      softcap = 2.5;
    }
    if (kind == 4) {
      for (Index i = 0; i < nq; ++i)
        rules.qseg.push_back(i == 0 ? -1 : i % 2);  // the first query is padding
      for (Index j = 0; j < nk; ++j)
        rules.kseg.push_back(j % 7 == 0 ? -1 : (j / 5) % 2);
    }
    if (kind == 5) {
      rules.causal = true;
      for (Index h = 0; h < heads; ++h)
        sinks.push_back(h % 3 == 2 ? -std::numeric_limits<double>::infinity() : 0.3 * double(h));
    }
    const Positions kpos(0, nk), qpos(q0, nq);
    const std::uint64_t seed = 5000 + 31 * static_cast<std::uint64_t>(trial);
    const Matrix<double> q = random_matrix<double>(nq, heads * dh, seed),
                         k = random_matrix<double>(nk, kv_heads * dh, seed + 1),
                         v = random_matrix<double>(nk, kv_heads * dh, seed + 2);
    const double scale = 1.0 / std::sqrt(double(dh));
    for_each_encoder(heads, dh, seed, [&](const char* name, const auto& enc) {
      if (std::string(name) == "xl" && kv_heads != heads) return;  // XL: one K head per head
      INFO(name << ": Nq = " << nq << ", Nk = " << nk << ", H = " << heads
                << ", H_kv = " << kv_heads << ", Dh = " << dh << ", kind " << kind);
      const auto opt = attend_options(heads, kv_heads, rules, softcap, sinks);
      Matrix<double> out(nq, heads * dh), lse(heads, nq);
      attend(enc, q, k, v, qpos, kpos, opt, out, lse);
      const Reference ref =
          dense_reference(enc, q, k, v, qpos, kpos, heads, kv_heads, scale, rules, softcap, sinks);
      CHECK(max_abs_diff(out, ref.out) <= 1e-12);
      for (Index h = 0; h < heads; ++h)
        for (Index i = 0; i < nq; ++i) {
          if (std::isinf(ref.lse(h, i))) {
            CHECK(lse(h, i) == std::numeric_limits<double>::infinity());
            CHECK(out.row(i).segment(h * dh, dh).isZero(0));
          } else {
            CHECK(std::abs(lse(h, i) - ref.lse(h, i)) <= 1e-12);
          }
        }
    });
  }
}

TEST_CASE("decoding: float32 over several spans within float rounding of float64",
          "[attention][decode]") {
  const Index nq = 1, nk = 3000, heads = 32, kv_heads = 8, dh = 128;
  const Matrix<double> q = random_matrix<double>(nq, heads * dh, 11),
                       k = random_matrix<double>(nk, kv_heads * dh, 12),
                       v = random_matrix<double>(nk, kv_heads * dh, 13);
  const Positions kpos(0, nk), qpos(nk, nq);
  AttendOptions<float> of;
  of.heads = heads;
  of.kv_heads = kv_heads;
  Matrix<float> out(nq, heads * dh);
  attend(AlibiEncoding<float>(heads), Matrix<float>(q.cast<float>()),
         Matrix<float>(k.cast<float>()), Matrix<float>(v.cast<float>()), qpos, kpos, of, out);
  const Reference ref = dense_reference(AlibiEncoding<double>(heads), q, k, v, qpos, kpos, heads,
                                        kv_heads, 1.0 / std::sqrt(double(dh)), Rules{}, 0, {});
  CHECK(max_abs_diff(out.cast<double>(), ref.out) <= 2e-6);
}

TEST_CASE("decoding: the same rows as the tiled kernel", "[attention][decode]") {
  // 20 queries take the tiled kernel; each slice of at most 8 of them the decoding one
  const Index nq = 20, nk = 1500, heads = 6, kv_heads = 2, dh = 16;
  const Matrix<double> q = random_matrix<double>(nq, heads * dh, 21),
                       k = random_matrix<double>(nk, kv_heads * dh, 22),
                       v = random_matrix<double>(nk, kv_heads * dh, 23);
  const Positions kpos(0, nk);
  Rules rules;
  rules.causal = true;
  const auto opt = attend_options(heads, kv_heads, rules, 0, {});
  const T5Encoding<double> enc(random_matrix<double>(32, heads, 24), T5Options{32, false});
  Matrix<double> all(nq, heads * dh);
  attend(enc, q, k, v, Positions(nk - nq, nq), kpos, opt, all);
  for (Index i0 = 0; i0 < nq; i0 += 7) {
    const Index n = std::min<Index>(7, nq - i0);
    Matrix<double> part(n, heads * dh);
    attend(enc, q.middleRows(i0, n), k, v, Positions(nk - nq + i0, n), kpos, opt, part);
    CHECK(max_abs_diff(part, all.middleRows(i0, n)) <= 1e-13);
  }
}

TEST_CASE("decoding: NaN stays in its head", "[attention][decode]") {
  const Index nk = 2100, heads = 4, kv_heads = 2, dh = 8;
  Matrix<double> q = random_matrix<double>(1, heads * dh, 31);
  const Matrix<double> k = random_matrix<double>(nk, kv_heads * dh, 32),
                       v = random_matrix<double>(nk, kv_heads * dh, 33);
  q(0, 2 * dh + 3) = std::numeric_limits<double>::quiet_NaN();  // head 2
  AttendOptions<double> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  Matrix<double> out(1, heads * dh);
  attend(NoEncoding<double>{}, q, k, v, Positions(nk, 1), Positions(0, nk), opt, out);
  CHECK(out.middleCols(2 * dh, dh).array().isNaN().all());
  CHECK(out.leftCols(2 * dh).allFinite());
  CHECK(out.rightCols(dh).allFinite());
}

#if defined(_OPENMP)
TEST_CASE("decoding: one result for any thread count", "[attention][decode]") {
  const Index nk = 5000, heads = 8, kv_heads = 2, dh = 16;
  const Matrix<float> q = random_matrix<float>(3, heads * dh, 41),
                      k = random_matrix<float>(nk, kv_heads * dh, 42),
                      v = random_matrix<float>(nk, kv_heads * dh, 43);
  AttendOptions<float> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  const int saved = omp_get_max_threads();
  Matrix<float> one(3, heads * dh), two(3, heads * dh);
  omp_set_num_threads(1);
  attend(AlibiEncoding<float>(heads), q, k, v, Positions(nk, 3), Positions(0, nk), opt, one);
  omp_set_num_threads(2);
  attend(AlibiEncoding<float>(heads), q, k, v, Positions(nk, 3), Positions(0, nk), opt, two);
  omp_set_num_threads(saved);
  CHECK((one.array() == two.array()).all());
}
#endif

namespace {

// bfloat16 of a finite float by its bits: round to nearest, ties to even (the transcription
// of the format's definition, independent of Eigen's conversion).
float bf16_of(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  b = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
  float y;
  std::memcpy(&y, &b, sizeof y);
  return y;
}

}  // namespace

TEST_CASE("half storage: rounding once from double", "[attention][decode][half]") {
  using posenc::detail::round_to;
  // 1 + 2^-8 is halfway between bfloat16 1 and 1 + 2^-7: ties to even
  CHECK(static_cast<float>(round_to<Eigen::bfloat16>(1.0 + std::ldexp(1.0, -8))) == 1.0f);
  // just above halfway: up, although rounding to float first would land on the tie
  CHECK(static_cast<float>(round_to<Eigen::bfloat16>(
            1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30))) == 1.0f + std::ldexp(1.0f, -7));
  CHECK(static_cast<float>(round_to<Eigen::bfloat16>(-(
            1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30)))) == -(1.0f + std::ldexp(1.0f, -7)));
  // half: 1 + 2^-11 is the tie between 1 and 1 + 2^-10
  CHECK(static_cast<float>(round_to<Eigen::half>(1.0 + std::ldexp(1.0, -11))) == 1.0f);
  CHECK(static_cast<float>(round_to<Eigen::half>(
            1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40))) == 1.0f + std::ldexp(1.0f, -10));
  CHECK(std::isinf(static_cast<float>(round_to<Eigen::half>(70000.0))));
  CHECK(std::isnan(
      static_cast<float>(round_to<Eigen::bfloat16>(std::numeric_limits<double>::quiet_NaN()))));
  // against the bit formula on many floats
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-1e4, 1e4);
  for (int i = 0; i < 20000; ++i) {
    const float x = static_cast<float>(u(rng));
    CHECK(static_cast<float>(round_to<Eigen::bfloat16>(double(x))) == bf16_of(x));
  }
}

TEMPLATE_TEST_CASE("half storage: attend on bfloat16 and half keys and values",
                   "[attention][decode][half]", Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const Index heads = 8, kv_heads = 2, dh = 32, nk = 2200;
  const Matrix<double> k = random_matrix<double>(nk, kv_heads * dh, 51),
                       v = random_matrix<double>(nk, kv_heads * dh, 52);
  const Matrix<S> ks = to_storage<S>(k), vs = to_storage<S>(v);
  // the reference reads the stored values: only the arithmetic (float) differs
  const Matrix<double> kr = from_storage(ks), vr = from_storage(vs);
  for (const Index nq : {Index(1), Index(5), Index(8), Index(12)}) {  // 12: the tiled kernel
    const Matrix<double> q = random_matrix<double>(nq, heads * dh, 53 + std::uint64_t(nq));
    const Positions qpos(nk - nq, nq), kpos(0, nk);
    Rules rules;
    rules.causal = true;
    AttendOptions<float> of;
    of.heads = heads;
    of.kv_heads = kv_heads;
    of.visibility.causal = true;
    const auto check = [&](const char* name, const auto& encf, const auto& encd) {
      INFO(name << ", Nq = " << nq);
      Matrix<float> out(nq, heads * dh);
      attend(encf, Matrix<float>(q.cast<float>()), ks, vs, qpos, kpos, of, out);
      const Reference ref = dense_reference(encd, q, kr, vr, qpos, kpos, heads, kv_heads,
                                            1.0 / std::sqrt(double(dh)), rules, 0, {});
      CHECK(max_abs_diff(out.cast<double>(), ref.out) <= 2e-6);
    };
    check("none", NoEncoding<float>{}, NoEncoding<double>{});
    check("alibi", AlibiEncoding<float>(heads), AlibiEncoding<double>(heads));
    const Matrix<double> t5 = random_matrix<double>(32, heads, 54);
    check("t5", T5Encoding<float>(Matrix<float>(t5.cast<float>()), T5Options{32, false}),
          T5Encoding<double>(t5, T5Options{32, false}));
  }
}

TEMPLATE_TEST_CASE("half storage: a KVCache of bfloat16 or half in attention_step",
                   "[attention][decode][half][kv]", Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const Index n = 40, d = 64, heads = 8;
  const Weights<float> w(n, d, 61);
  AttentionOptions<float> opt = options<float>(heads, true);
  opt.kv_heads = 2;
  const Matrix<float> wk = w.wk.leftCols(16), wv = w.wv.leftCols(16);
  const RotaryEncoding<float> rope(8);
  KVCache<float> full;
  KVCache<float, S> half;
  Matrix<float> y_full(1, d), y_half(1, d);
  double worst = 0;
  for (Index t = 0; t < n; ++t) {
    const Index p = t == 0 ? 10 : 1;  // a prefill of 10 tokens, then one at a time
    if (t > 0 && t < 10) continue;
    const Index i0 = t == 0 ? 0 : t;
    const auto x = w.x.middleRows(i0, p);
    Matrix<float> yf(p, d), yh(p, d);
    attention_step(x, w.wq, wk, wv, w.wo, rope, opt, full, yf);
    attention_step(x, w.wq, wk, wv, w.wo, rope, opt, half, yh);
    // the half cache holds the float cache's keys and values, each rounded once
    REQUIRE(half.size() == full.size());
    for (Index i = 0; i < full.size(); ++i)
      for (Index j = 0; j < full.width(); ++j) {
        const float kf = full.keys()(i, j), vf = full.values()(i, j);
        const float kh = static_cast<float>(half.keys()(i, j)),
                    vh = static_cast<float>(half.values()(i, j));
        if (std::is_same<S, Eigen::bfloat16>::value) {
          CHECK(kh == bf16_of(kf));
          CHECK(vh == bf16_of(vf));
        } else {
          CHECK(kh == static_cast<float>(posenc::detail::round_to<S>(double(kf))));
          CHECK(vh == static_cast<float>(posenc::detail::round_to<S>(double(vf))));
        }
      }
    worst = std::max(worst, max_abs_diff(yf, yh));
  }
  // outputs differ by the storage's rounding of K and V, no more
  const double unit =
      std::is_same<S, Eigen::bfloat16>::value ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  CHECK(worst <= 8 * unit);
  CHECK(worst > 0);
}

TEMPLATE_TEST_CASE("half storage: queries, keys, values and outputs all bfloat16 or half",
                   "[attention][decode][half]", Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const Index heads = 4, kv_heads = 2, dh = 32, nk = 300;
  // S's unit roundoff: 2^-8 (bfloat16) or 2^-11 (half)
  const double unit =
      std::is_same<S, Eigen::bfloat16>::value ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  const Matrix<S> ks = to_storage<S>(random_matrix<double>(nk, kv_heads * dh, 71)),
                  vs = to_storage<S>(random_matrix<double>(nk, kv_heads * dh, 72));
  const Matrix<double> kr = from_storage(ks), vr = from_storage(vs);
  for (const Index nq : {Index(1), Index(7), Index(40)}) {  // 40: the tiled kernel
    INFO("Nq = " << nq);
    const Matrix<S> qs = to_storage<S>(random_matrix<double>(nq, heads * dh, 73 + nq));
    const Matrix<double> qr = from_storage(qs);
    const Positions qpos(nk - nq, nq), kpos(0, nk);
    Rules rules;
    rules.causal = true;
    AttendOptions<float> of;
    of.heads = heads;
    of.kv_heads = kv_heads;
    of.visibility.causal = true;
    const AlibiEncoding<float> alibi(heads);
    Matrix<float> out(nq, heads * dh);
    attend(alibi, qs, ks, vs, qpos, kpos, of, out);
    const Reference ref =
        dense_reference(AlibiEncoding<double>(heads), qr, kr, vr, qpos, kpos, heads, kv_heads,
                        1.0 / std::sqrt(double(dh)), rules, 0, {});
    CHECK(max_abs_diff(out.cast<double>(), ref.out) <= 2e-6);
    // S outputs: the float result rounded once, so within half a unit of the reference
    Matrix<S> out_s(nq, heads * dh);
    attend(alibi, qs, ks, vs, qpos, kpos, of, out_s);
    for (Index i = 0; i < nq; ++i)
      for (Index j = 0; j < out.cols(); ++j) {
        REQUIRE(out_s(i, j) == S(out(i, j)));
        CHECK(std::fabs(double(static_cast<float>(out_s(i, j))) - ref.out(i, j)) <=
              unit * std::fabs(ref.out(i, j)) + 2e-6);
      }
    // the same call on float copies of the stored queries
    Matrix<float> out_f(nq, heads * dh);
    attend(alibi, Matrix<float>(qr.cast<float>()), ks, vs, qpos, kpos, of, out_f);
    CHECK(max_abs_diff(out, out_f) == 0.0);
  }
  Matrix<S> bad(2, heads * dh + 1);
  const Matrix<S> q2 = to_storage<S>(random_matrix<double>(2, heads * dh, 79));
  AttendOptions<float> of;
  of.heads = heads;
  of.kv_heads = kv_heads;
  require_error(
      [&] { attend(NoEncoding<float>{}, q2, ks, vs, Positions(0, 2), Positions(0, nk), of, bad); },
      {"attend", "out"});
}

TEMPLATE_TEST_CASE("half storage: an attention layer on bfloat16 or half inputs",
                   "[attention][half]", Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const Index n = 70, d = 64, heads = 4;
  const double unit =
      std::is_same<S, Eigen::bfloat16>::value ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  const Weights<double> w(n, d, 81);
  const Matrix<S> xs = to_storage<S>(w.x), wqs = to_storage<S>(w.wq), wks = to_storage<S>(w.wk),
                  wvs = to_storage<S>(w.wv), wos = to_storage<S>(w.wo);
  AttentionOptions<float> of = options<float>(heads, true, 3);
  AttentionOptions<double> od = options<double>(heads, true, 3);
  const RotaryEncoding<float> rope_f(16);
  const RotaryEncoding<double> rope_d(16);
  for (const bool stored_weights : {false, true}) {
    INFO((stored_weights ? "weights stored as S" : "float weights"));
    // the double layer (checked against the NumPy references in test_attention.cpp) on the
    // values the call reads
    const auto wd = [&](const Matrix<S>& ws, const Matrix<double>& wf) {
      return stored_weights ? from_storage(ws) : Matrix<double>(wf.cast<float>().cast<double>());
    };
    const Matrix<double> ref = posenc::attention(from_storage(xs), wd(wqs, w.wq), wd(wks, w.wk),
                                                 wd(wvs, w.wv), wd(wos, w.wo), rope_d, od);
    const auto widen = [](const Matrix<S>& m) {
      return Matrix<float>(from_storage(m).template cast<float>());
    };
    Matrix<S> y(n, d);
    Matrix<float> yf;
    if (stored_weights) {
      attention(xs, wqs, wks, wvs, wos, rope_f, of, y);
      yf = posenc::attention(widen(xs), widen(wqs), widen(wks), widen(wvs), widen(wos), rope_f, of);
    } else {
      const Matrix<float> wq = w.wq.cast<float>(), wk = w.wk.cast<float>(), wv = w.wv.cast<float>(),
                          wo = w.wo.cast<float>();
      attention(xs, wq, wk, wv, wo, rope_f, of, y);
      yf = posenc::attention(widen(xs), wq, wk, wv, wo, rope_f, of);
    }
    double worst = 0;
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < d; ++j) {
        REQUIRE(y(i, j) == S(yf(i, j)));  // the float layer's result, rounded once
        const double e = std::fabs(double(static_cast<float>(y(i, j))) - ref(i, j));
        CHECK(e <= unit * std::fabs(ref(i, j)) + 1e-5);
        worst = std::max(worst, e);
      }
    CHECK(worst > 0);
  }
  Matrix<S> bad(n, d + 1);
  const Matrix<float> wq = w.wq.cast<float>();
  require_error([&] { attention(xs, wq, wq, wq, wq, rope_f, of, bad); },
                {"attention", "output is [70, 65]"});
}
