// DeBERTa-v2/v3 disentangled attention (conventions.md 5e): the buckets, the tables from a
// layer's weights, the terms alone on tiles, attention against a transcription of Hugging Face's
// DisentangledSelfAttention and layers of real models (tests/reference/make_golden.py,
// gen_deberta), cached decoding against the full causal call, and bad input.
#include "attention_support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace attention_test;
using posenc::DebertaEncoding;
using posenc::DebertaOptions;
using posenc::DebertaTerms;

namespace {

DebertaOptions deberta_options(Index b, Index m, DebertaTerms terms = DebertaTerms::both) {
  DebertaOptions o;
  o.position_buckets = b;
  o.max_relative_positions = m;
  o.terms = terms;
  return o;
}

// The gen_deberta layer "deb": D = 16, H = 2, Dh = 8, N = 12, biases q, k, v, o.
template <class T>
struct DebLayer {
  Matrix<T> x = load<T>("deb_x"), wq = load<T>("deb_wq"), wk = load<T>("deb_wk"),
            wv = load<T>("deb_wv"), wo = load<T>("deb_wo");
  AttentionOptions<T> opt;
  DebLayer() {
    opt.heads = 2;
    opt.bq = load<T>("deb_bq");
    opt.bk = load<T>("deb_bk");
    opt.bv = load<T>("deb_bv");
    opt.bo = load<T>("deb_bo");
  }
};

// The terms of every tile of [Nq, Nk] in blocks of bq x bk, added to zero scores.
template <class T>
Matrix<T> terms_on_tiles(const DebertaEncoding<T>& enc, Index h, const Matrix<T>& q,
                         const Matrix<T>& k, const Positions& qp, const Positions& kp, T scale,
                         Index bq, Index bk) {
  const auto b = enc.score_bias(qp, kp, enc.heads(), enc.head_dim(), scale);
  Matrix<T> s = Matrix<T>::Zero(qp.size(), kp.size());
  for (Index i0 = 0; i0 < qp.size(); i0 += bq)
    for (Index j0 = 0; j0 < kp.size(); j0 += bk) {
      const Index bi = std::min(bq, qp.size() - i0), bj = std::min(bk, kp.size() - j0);
      b.add(h, i0, j0, q.middleRows(i0, bi), k.middleRows(j0, bj), s.block(i0, j0, bi, bj));
    }
  return s;
}

template <class E, class T>
Matrix<T> decoded(const E& enc, const Matrix<T>& x, const Matrix<T>& wq, const Matrix<T>& wk,
                  const Matrix<T>& wv, const Matrix<T>& wo, const AttentionOptions<T>& opt,
                  Index prefill) {
  const Index n = x.rows();
  Matrix<T> y(n, x.cols());
  KVCache<T> cache;
  AttentionOptions<T> step = opt;
  const auto run = [&](Index i0, Index m) {
    if (opt.positions) step.positions = opt.positions->slice(i0, m);
    attention_step(x.middleRows(i0, m), wq, wk, wv, wo, enc, step, cache, y.middleRows(i0, m));
  };
  if (prefill > 0) run(0, prefill);
  for (Index i = prefill; i < n; ++i)
    run(i, 1);
  return y;
}

}  // namespace

TEST_CASE("deberta: buckets match the reference (float32, as Hugging Face)", "[deberta]") {
  const auto rel = load_ints("deberta_bucket_rel");
  struct Config {
    Index b, m;
  };
  const Config configs[] = {{256, 512}, {256, 1024}, {128, 512}, {64, 256}, {32, 128},
                            {8, 16},    {256, 256},  {4, 8},     {5, 9}};
  std::size_t compared = 0;
  for (const Config& c : configs) {
    const std::string file = "deberta_bucket_b" + std::to_string(c.b) + "_m" + std::to_string(c.m);
    INFO(file);
    const auto ref = load_ints(file);
    const auto ties = load_ints(file + "_ties");
    REQUIRE(ref.size() == rel.size());
    std::vector<bool> tie(rel.size(), false);
    for (auto t : ties)
      tie[static_cast<std::size_t>(t)] = true;
    const DebertaEncoding<double> enc(Matrix<double>::Zero(2 * c.b, 1),
                                      Matrix<double>::Zero(2 * c.b, 1), 1,
                                      deberta_options(c.b, c.m));
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < rel.size(); ++i) {
      // where float32 and float64 part (a ceiling at an integer), the float32 logarithm's last
      // bit decides: not a property of the formula, so not compared
      if (tie[i]) continue;
      const std::int64_t got = posenc::deberta_bucket(rel[i], c.b, c.m);
      if (got != ref[i] || enc.bucket(rel[i]) != ref[i]) {
        if (++mismatches <= 5) UNSCOPED_INFO("rel " << rel[i] << ": " << got << " vs " << ref[i]);
      }
      ++compared;
      // the index both terms read is the clamped bucket
      const Index want = std::clamp<std::int64_t>(ref[i] + c.b, 0, 2 * c.b - 1);
      if (rel[i] > -(std::int64_t{1} << 40) && rel[i] < (std::int64_t{1} << 40)) {
        const std::int64_t p = std::int64_t{1} << 41;
        if (enc.relative_index(p + rel[i], p) != want) ++mismatches;
      }
    }
    CHECK(mismatches == 0);
  }
  CHECK(compared > 50000);
  // Without buckets the distance itself.
  CHECK(posenc::deberta_bucket(-70000, 0, 6) == -70000);
  const auto idx = load_ints("deberta_index_b0_m6");
  const DebertaEncoding<double> nb(Matrix<double>::Zero(12, 2), Matrix<double>::Zero(12, 2), 1,
                                   deberta_options(0, 6));
  CHECK(nb.span() == 6);
  for (std::int64_t r = -10; r <= 10; ++r)
    CHECK(nb.relative_index(20, 20 - r) == idx[static_cast<std::size_t>(r + 10)]);
}

TEST_CASE("deberta: bucket values worked out by hand", "[deberta]") {
  // b = 256, m = 512: mid = 128; |rel| <= 128 is itself; then
  // ceil(ln(|rel| / 128) / ln(511 / 128) * 127) + 128
  CHECK(posenc::deberta_bucket(0) == 0);
  CHECK(posenc::deberta_bucket(128) == 128);
  CHECK(posenc::deberta_bucket(-128) == -128);
  CHECK(posenc::deberta_bucket(129) == 129);  // ceil(0.0078 / 1.3844 * 127) = ceil(0.71) = 1
  CHECK(posenc::deberta_bucket(-129) == -129);
  CHECK(posenc::deberta_bucket(511) == 255);  // the quotient is exactly 1: 127 + 128
  CHECK(posenc::deberta_bucket(512) == 256);  // ceil(ln 4 / ln(511 / 128) * 127) = ceil(127.18)
  CHECK(posenc::deberta_bucket(-512) == -256);
  // b = 8, m = 16: mid = 4; ln(15 / 4) = 1.3218; rel = 5: ceil(0.2231 / 1.3218 * 3) + 4 = 5
  CHECK(posenc::deberta_bucket(5, 8, 16) == 5);
  CHECK(posenc::deberta_bucket(15, 8, 16) == 7);  // 3 + 4
  CHECK(posenc::deberta_bucket(16, 8, 16) == 8);  // ceil(3.146) + 4
  CHECK(posenc::deberta_bucket(-16, 8, 16) == -8);
  // the extremes of a difference of positions: no overflow, the index clamped
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  const DebertaEncoding<double> enc(Matrix<double>::Zero(512, 2), Matrix<double>::Zero(512, 2), 1);
  CHECK(enc.bucket(big) > 256);
  CHECK(enc.bucket(-big) < -256);
  CHECK(enc.relative_index(big, 0) == 511);
  CHECK(enc.relative_index(0, big) == 0);
  CHECK(enc.relative_index(big, big) == 256);
  CHECK(enc.relative_index(5, 7) == 254);
  // c(x) = clamp(x + span, 0, 2 span - 1): bucket 255 is the last row, -256 the first
  CHECK(enc.relative_index(511, 0) == 511);
  CHECK(enc.relative_index(0, 512) == 0);
  CHECK(enc.relative_index(0, 511) == 1);
}

TEMPLATE_TEST_CASE("deberta: tables from a layer's weights match the reference", "[deberta]", float,
                   double) {
  using T = TestType;
  const DebLayer<T> l;
  const auto t = posenc::deberta_relative_tables<T>(
      load<T>("deberta_rel_embeddings"), load<T>("deberta_ln_weight"), load<T>("deberta_ln_bias"),
      1e-7, l.wq, l.opt.bq, l.wk, l.opt.bk, 2);
  CHECK(max_abs_diff(t.q_r, load<double>("deb_q_r")) <= tolerance<T>(8));
  CHECK(max_abs_diff(t.k_r, load<double>("deb_k_r")) <= tolerance<T>(8));
  // grouped heads: query head h takes key/value head floor(h H_kv / H); no layer norm
  const std::string g = "deb_gqa_chunk_segments_sinks_cap";
  const auto tg = posenc::deberta_relative_tables<T>(
      load<T>(g + "_rel_embeddings"), Vector<T>(), Vector<T>(), 1e-7, load<T>(g + "_wq"),
      load<T>(g + "_bq"), load<T>(g + "_wk"), load<T>(g + "_bk"), 4);
  CHECK(max_abs_diff(tg.q_r, load<double>(g + "_q_r")) <= tolerance<T>(8));
  CHECK(max_abs_diff(tg.k_r, load<double>(g + "_k_r")) <= tolerance<T>(8));
}

TEMPLATE_TEST_CASE("deberta: terms match the reference on tiles", "[deberta]", float, double) {
  using T = TestType;
  const Matrix<T> k_r = load<T>("deb_k_r"), q_r = load<T>("deb_q_r");
  const Matrix<T> q = load<T>("deb_terms_q"), k = load<T>("deb_terms_k");
  const Positions lq(load_ints("deb_terms_qpos")), lk(load_ints("deb_terms_kpos"));
  struct Tiles {
    Index bq, bk;
  };
  const Tiles tilings[] = {{5, 13}, {2, 5}, {1, 1}, {3, 13}, {96, 128}};
  for (DebertaTerms terms : {DebertaTerms::both, DebertaTerms::c2p, DebertaTerms::p2c}) {
    const std::string tag =
        terms == DebertaTerms::both ? "c2p_p2c" : std::string(posenc::name_of(terms));
    // the table a term does not read may be left empty
    const DebertaEncoding<T> enc(terms == DebertaTerms::p2c ? Matrix<T>() : k_r,
                                 terms == DebertaTerms::c2p ? Matrix<T>() : q_r, 2,
                                 deberta_options(8, 16, terms));
    for (Index h = 0; h < 2; ++h)
      for (const char* ptag : {"contiguous", "listed"}) {
        const bool contiguous = std::string(ptag) == "contiguous";
        const Positions qp = contiguous ? Positions(20, 5) : lq;
        const Positions kp = contiguous ? Positions(3, 13) : lk;
        const Matrix<double> ref =
            load<double>("deb_terms_" + tag + "_h" + std::to_string(h) + "_" + ptag);
        for (const Tiles& t : tilings) {
          INFO(tag << " head " << h << " " << ptag << ", tiles " << t.bq << " x " << t.bk);
          const Matrix<T> s = terms_on_tiles(enc, h, q, k, qp, kp, T(0.5), t.bq, t.bk);
          CHECK(max_abs_diff(s, (0.5 * ref).eval()) <= tolerance<T>(8 * ref.cwiseAbs().maxCoeff()));
        }
      }
  }
}

TEMPLATE_TEST_CASE("deberta: attention matches Hugging Face's DisentangledSelfAttention",
                   "[deberta]", float, double) {
  using T = TestType;
  const DebLayer<T> l;
  const Matrix<T> k_r = load<T>("deb_k_r"), q_r = load<T>("deb_q_r");
  struct Case {
    const char* name;
    DebertaTerms terms;
    bool causal;
    std::int64_t window;
  };
  const Case cases[] = {{"both_bidir", DebertaTerms::both, false, 0},
                        {"c2p_causal", DebertaTerms::c2p, true, 0},
                        {"p2c_listed", DebertaTerms::p2c, false, 0},
                        {"both_window_causal", DebertaTerms::both, true, 10}};
  for (const Case& c : cases) {
    INFO(c.name);
    const std::string name = std::string("deb_") + c.name;
    const DebertaEncoding<T> enc(k_r, q_r, 2, deberta_options(8, 16, c.terms));
    const double f = c.terms == DebertaTerms::both ? 3 : 2;
    CHECK(std::abs(static_cast<double>(enc.attention_scale()) - 1 / std::sqrt(f * 8)) <= 1e-7);
    AttentionOptions<T> opt = l.opt;
    opt.causal = c.causal;
    opt.window = c.window;
    opt.scale = enc.attention_scale();
    const Positions pos(load_ints(name + "_positions"));
    const Matrix<double> ref = load<double>(name + "_y");
    opt.positions = pos;
    CHECK(max_abs_diff(attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, opt), ref) <= attn_tol<T>());
    // contiguous positions as such (the tiles' run path), and shifted near INT64_MAX
    if (pos[pos.size() - 1] - pos[0] == pos.size() - 1) {
      opt.positions = Positions(pos[0], pos.size());
      CHECK(max_abs_diff(attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, opt), ref) <= attn_tol<T>());
      opt.positions = Positions(std::numeric_limits<std::int64_t>::max() - 20, pos.size());
      CHECK(max_abs_diff(attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, opt), ref) <= attn_tol<T>());
    }
    // the default scale is not DeBERTa's
    opt.scale.reset();
    CHECK(max_abs_diff(attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, opt), ref) > 1e-3);
  }
}

TEMPLATE_TEST_CASE("deberta: DeBERTa-v3's configuration over 300 tokens", "[deberta]", float,
                   double) {
  using T = TestType;
  // b = 256, m = 512, layer norm eps 1e-7, biases on Q and K: the tables from the raw weights
  const Matrix<T> x = load<T>("deb_v3_x"), wq = load<T>("deb_v3_wq"), wk = load<T>("deb_v3_wk"),
                  wv = load<T>("deb_v3_wv"), wo = load<T>("deb_v3_wo");
  AttentionOptions<T> opt;
  opt.heads = 2;
  opt.bq = load<T>("deb_v3_bq");
  opt.bk = load<T>("deb_v3_bk");
  const auto t = posenc::deberta_relative_tables<T>(
      load<T>("deb_v3_rel_embeddings"), load<T>("deb_v3_ln_weight"), load<T>("deb_v3_ln_bias"),
      1e-7, wq, opt.bq, wk, opt.bk, 2);
  CHECK(max_abs_diff(t.k_r, load<double>("deb_v3_k_r")) <= tolerance<T>(8));
  CHECK(max_abs_diff(t.q_r, load<double>("deb_v3_q_r")) <= tolerance<T>(8));
  const DebertaEncoding<T> enc(t.k_r, t.q_r, 2);  // the defaults are v3's: b = 256, m = 512
  opt.scale = enc.attention_scale();
  const Matrix<double> ref = load<double>("deb_v3_y");
  CHECK(max_abs_diff(attention(x, wq, wk, wv, wo, enc, opt), ref) <= attn_tol<T>());
  opt.positions = Positions(listed(Positions(0, 300)));
  CHECK(max_abs_diff(attention(x, wq, wk, wv, wo, enc, opt), ref) <= attn_tol<T>());
}

TEMPLATE_TEST_CASE("deberta: grouped heads, chunks, segments, sinks and soft-capping", "[deberta]",
                   float, double) {
  using T = TestType;
  const std::string g = "deb_gqa_chunk_segments_sinks_cap";
  const Matrix<T> x = load<T>(g + "_x"), wq = load<T>(g + "_wq"), wk = load<T>(g + "_wk"),
                  wv = load<T>(g + "_wv"), wo = load<T>(g + "_wo");
  AttentionOptions<T> opt;
  opt.heads = 4;
  opt.kv_heads = 2;
  opt.head_dim = 6;
  opt.bq = load<T>(g + "_bq");
  opt.bk = load<T>(g + "_bk");
  opt.bv = load<T>(g + "_bv");
  opt.bo = load<T>(g + "_bo");
  opt.causal = true;
  opt.chunk = 7;
  opt.positions = Positions(load_ints(g + "_positions"));
  opt.segments = load_ints(g + "_segments");
  const Matrix<T> sinks = load<T>(g + "_sinks");
  opt.sinks.assign(sinks.data(), sinks.data() + sinks.size());
  opt.softcap = T(2.5);
  const DebertaEncoding<T> enc(load<T>(g + "_k_r"), load<T>(g + "_q_r"), 4, deberta_options(8, 20));
  opt.scale = enc.attention_scale();
  CHECK(max_abs_diff(attention(x, wq, wk, wv, wo, enc, opt), load<double>(g + "_y")) <=
        attn_tol<T>());
}

TEMPLATE_TEST_CASE("deberta: cached decoding equals the full causal call", "[deberta][kv]", float,
                   double) {
  using T = TestType;
  const DebLayer<T> l;
  const Matrix<T> k_r = load<T>("deb_k_r"), q_r = load<T>("deb_q_r");
  for (DebertaTerms terms : {DebertaTerms::both, DebertaTerms::c2p, DebertaTerms::p2c}) {
    const DebertaEncoding<T> enc(k_r, q_r, 2, deberta_options(8, 16, terms));
    AttentionOptions<T> opt = l.opt;
    opt.causal = true;
    opt.scale = enc.attention_scale();
    for (std::int64_t offset : {0, 5}) {
      opt.offset = offset;  // contiguous positions: the tiles' run path, also for the steps
      const Matrix<T> full = attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, opt);
      for (Index prefill : {0, 1, 6}) {
        INFO(posenc::name_of(terms) << ", offset " << offset << ", prefill " << prefill);
        CHECK(max_abs_diff(decoded(enc, l.x, l.wq, l.wk, l.wv, l.wo, opt, prefill), full) <=
              10 * attn_tol<T>());
      }
    }
  }
  // against the reference: c2p at positions 5..16
  const DebertaEncoding<T> c2p(k_r, Matrix<T>(), 2, deberta_options(8, 16, DebertaTerms::c2p));
  AttentionOptions<T> opt = l.opt;
  opt.causal = true;
  opt.offset = 5;
  opt.scale = c2p.attention_scale();
  CHECK(max_abs_diff(decoded(c2p, l.x, l.wq, l.wk, l.wv, l.wo, opt, 4),
                     load<double>("deb_c2p_causal_y")) <= 10 * attn_tol<T>());
  // listed positions with gaps past the clamp, and a window
  const DebertaEncoding<T> both(k_r, q_r, 2, deberta_options(8, 16));
  opt.offset = 0;
  opt.window = 10;
  opt.positions = Positions(load_ints("deb_both_window_causal_positions"));
  opt.scale = both.attention_scale();
  const Matrix<double> ref = load<double>("deb_both_window_causal_y");
  for (Index prefill : {0, 3})
    CHECK(max_abs_diff(decoded(both, l.x, l.wq, l.wk, l.wv, l.wo, opt, prefill), ref) <=
          10 * attn_tol<T>());
}

TEST_CASE("deberta: bad input throws posenc::error naming the parameter", "[deberta][errors]") {
  using M = Matrix<double>;
  using V = Vector<double>;
  const M t16 = M::Zero(16, 16);
  // options
  require_error([&] { DebertaEncoding<double>(t16, t16, 2, deberta_options(2, 16)); },
                {"DebertaEncoding", "position_buckets b = 2", "[4, 2^23]"});
  require_error([&] { DebertaEncoding<double>(t16, t16, 2, deberta_options(8, 5)); },
                {"max_relative_positions m = 5", "position_buckets / 2 + 1 = 5"});
  require_error([&] { DebertaEncoding<double>(t16, t16, 2, deberta_options(0, 0)); },
                {"max_relative_positions m = 0", "without buckets"});
  require_error(
      [&] { DebertaEncoding<double>(t16, t16, 2, deberta_options(8, 16, DebertaTerms(9))); },
      {"terms = 9", "both, c2p or p2c"});
  require_error([] { (void)posenc::deberta_bucket(10, 256, 100); }, {"deberta_bucket", "m = 100"});
  require_error([] { (void)posenc::deberta_bucket(std::numeric_limits<std::int64_t>::min()); },
                {"deberta_bucket", "rel = -9223372036854775808"});
  // tables
  require_error([&] { DebertaEncoding<double>(M::Zero(15, 16), t16, 2, deberta_options(8, 16)); },
                {"K_r is [15, 16]", "[2 span, H * Dh] = [16, H * Dh]", "span = 8"});
  require_error(
      [&] { DebertaEncoding<double>(M::Zero(16, 15), M::Zero(16, 15), 2, deberta_options(8, 16)); },
      {"K_r is [16, 15]", "H = 2"});
  require_error([&] { DebertaEncoding<double>(t16, M::Zero(16, 8), 2, deberta_options(8, 16)); },
                {"Q_r is [16, 8]", "the shape of K_r [16, 16]"});
  require_error([&] { DebertaEncoding<double>(t16, M(), 2, deberta_options(8, 16)); },
                {"Q_r is [0, 0]"});
  M nan = t16;
  nan(2, 3) = std::numeric_limits<double>::infinity();
  require_error([&] { DebertaEncoding<double>(nan, t16, 2, deberta_options(8, 16)); },
                {"K_r", "non-finite"});
  require_error([&] { DebertaEncoding<double>(t16, t16, 0, deberta_options(8, 16)); },
                {"heads H = 0"});
  // in attention: H and Dh against the tables
  const DebLayer<double> l;
  const DebertaEncoding<double> three(M::Zero(16, 24), M::Zero(16, 24), 3, deberta_options(8, 16));
  require_error([&] { (void)attention(l.x, l.wq, l.wk, l.wv, l.wo, three, l.opt); },
                {"DebertaEncoding", "H = 3 heads of Dh = 8", "H = 2, Dh = 8"});
  const DebertaEncoding<double> enc(t16, t16, 2, deberta_options(8, 16));
  require_error([&] { (void)enc.score_bias(Positions(0, 3), Positions(0, 3), 2, 4, 1.0); },
                {"Dh = 8", "Dh = 4"});
  require_error([&] { (void)enc.relative_index(-1, 3); }, {"relative_index", "-1"});
  // the tables' builder
  const V w16 = V::Ones(16), b16 = V::Zero(16);
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(M(), w16, b16, 1e-7, l.wq, V(), l.wk, V(), 2);
      },
      {"deberta_relative_tables", "rel_embeddings is [0, 0]"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(M::Zero(16, 12), w16, b16, 1e-7, l.wq, V(),
                                                      l.wk, V(), 2);
      },
      {"Wq is [16, 16]", "D = 12"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(t16, w16, b16, 1e-7, l.wq, V(),
                                                      M::Zero(16, 12), V(), 2);
      },
      {"Wk is [16, 12]", "Dh = 8"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(t16, w16, b16, 1e-7, l.wq, V::Zero(3), l.wk,
                                                      V(), 2);
      },
      {"bq has 3 entries", "H * Dh = 16"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(t16, w16, b16, 1e-7, l.wq, V(), l.wk,
                                                      V::Zero(5), 2);
      },
      {"bk has 5 entries", "H_kv * Dh = 16"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(t16, V::Ones(4), b16, 1e-7, l.wq, V(), l.wk,
                                                      V(), 2);
      },
      {"layer norm", "4 and 16 entries", "D = 16"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(t16, w16, b16, 0.0, l.wq, V(), l.wk, V(), 2);
      },
      {"ln_eps = 0"});
  require_error(
      [&] {
        (void)posenc::deberta_relative_tables<double>(t16, w16, b16, 1e-7, l.wq, V(), l.wk, V(), 0);
      },
      {"heads H = 0"});
}
