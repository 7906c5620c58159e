// BERT's relative position embeddings (conventions.md 5d): the terms alone on tiles, attention
// and layers of real models against the float64 reference (tests/reference/make_golden.py,
// gen_bert_relative), cached decoding against the full causal call, and bad input.
#include "attention_support.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace attention_test;
using posenc::BertRelativeEncoding;
using posenc::BertRelativeType;

namespace {

constexpr BertRelativeType kKey = BertRelativeType::relative_key;
constexpr BertRelativeType kKeyQuery = BertRelativeType::relative_key_query;

// The terms of every tile of [Nq, Nk] in blocks of bq x bk, added to zero scores.
template <class T>
Matrix<T> terms_on_tiles(const BertRelativeEncoding<T>& enc, const Matrix<T>& q, const Matrix<T>& k,
                         const Positions& qp, const Positions& kp, T scale, Index bq, Index bk) {
  const auto b = enc.score_bias(qp, kp, 1, q.cols(), scale);
  Matrix<T> s = Matrix<T>::Zero(qp.size(), kp.size());
  for (Index i0 = 0; i0 < qp.size(); i0 += bq)
    for (Index j0 = 0; j0 < kp.size(); j0 += bk) {
      const Index bi = std::min(bq, qp.size() - i0), bj = std::min(bk, kp.size() - j0);
      b.add(0, i0, j0, q.middleRows(i0, bi), k.middleRows(j0, bj), s.block(i0, j0, bi, bj));
    }
  return s;
}

// A layer case of gen_bert_relative: <name>_x, _wq, ... with the biases that exist.
template <class T>
struct Layer {
  Matrix<T> x, wq, wk, wv, wo;
  AttentionOptions<T> opt;
  Layer(const std::string& name, Index heads, Index kv_heads, Index head_dim, const char* biases)
      : x(load<T>(name + "_x")),
        wq(load<T>(name + "_wq")),
        wk(load<T>(name + "_wk")),
        wv(load<T>(name + "_wv")),
        wo(load<T>(name + "_wo")) {
    opt.heads = heads;
    opt.kv_heads = kv_heads;
    opt.head_dim = head_dim;
    const std::string b = biases;
    if (b.find('q') != std::string::npos) opt.bq = load<T>(name + "_bq");
    if (b.find('k') != std::string::npos) opt.bk = load<T>(name + "_bk");
    if (b.find('v') != std::string::npos) opt.bv = load<T>(name + "_bv");
    if (b.find('o') != std::string::npos) opt.bo = load<T>(name + "_bo");
    opt.positions = Positions(load_ints(name + "_positions"));
  }
};

// Y of a decode loop: tokens [0, prefill) in one call, then one step per token.
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

TEMPLATE_TEST_CASE("bert_relative: terms match the reference on tiles", "[bert_relative]", float,
                   double) {
  using T = TestType;
  const BertRelativeEncoding<T> key(load<T>("bert_rel_table_L12"), kKey);
  const BertRelativeEncoding<T> key_query(load<T>("bert_rel_table_L12"), kKeyQuery);
  const Matrix<T> q = load<T>("bert_rel_q"), k = load<T>("bert_rel_k");
  const Positions listed_q(load_ints("bert_rel_qpos")), listed_k(load_ints("bert_rel_kpos"));
  struct Case {
    const char* tag;
    Positions qp, kp;
  };
  const Case cases[] = {{"contiguous", Positions(5, 6), Positions(2, 9)},
                        {"listed", listed_q, listed_k}};
  struct Tiles {
    Index bq, bk;
  };
  // one tile, ragged tiles with i0, j0 > 0, single rows and columns, the kernel's own sizes
  const Tiles tilings[] = {{6, 9}, {4, 5}, {1, 3}, {5, 1}, {96, 128}};
  for (const Case& c : cases)
    for (const auto* enc : {&key, &key_query}) {
      const std::string kind(posenc::name_of(enc->type()));
      const Matrix<double> ref = load<double>("bert_rel_" + kind + "_" + c.tag);
      for (const Tiles& t : tilings)
        for (double scale : {1.0, 0.375}) {
          INFO(kind << " " << c.tag << ", tiles " << t.bq << " x " << t.bk << ", scale " << scale);
          const Matrix<T> s =
              terms_on_tiles(*enc, q, k, c.qp, c.kp, static_cast<T>(scale), t.bq, t.bk);
          CHECK(max_abs_diff(s, (scale * ref).eval()) <=
                tolerance<T>(8 * ref.cwiseAbs().maxCoeff()));
        }
    }
}

TEST_CASE("bert_relative: the index is p_i - p_j + L - 1", "[bert_relative]") {
  const BertRelativeEncoding<double> enc(Matrix<double>::Zero(15, 4));  // L = 8
  CHECK(enc.max_positions() == 8);
  CHECK(enc.head_dim() == 4);
  CHECK(enc.type() == kKey);
  CHECK(enc.index(0, 0) == 7);
  CHECK(enc.index(7, 0) == 14);
  CHECK(enc.index(0, 7) == 0);
  CHECK(enc.index(12, 9) == 10);
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  CHECK(enc.index(big, big - 7) == 14);
  CHECK(enc.index(big - 7, big) == 0);
  CHECK(posenc::from_name<BertRelativeType>("relative_key_query", "type") == kKeyQuery);
}

TEMPLATE_TEST_CASE("bert_relative: attention matches the reference", "[bert_relative]", float,
                   double) {
  using T = TestType;
  const Weights<T> w("attn");
  const Matrix<T> table = load<T>("attn_bert_table");
  struct Case {
    BertRelativeType type;
    bool causal;
    std::int64_t offset;
    const char* file;
  };
  const Case cases[] = {
      {kKey, false, 0, "attn_bert_relative_key_bidir"},
      {kKey, true, 0, "attn_bert_relative_key_causal"},
      {kKeyQuery, false, 3, "attn_bert_relative_key_query_bidir_offset3"},
      {kKeyQuery, true, 0, "attn_bert_relative_key_query_causal"},
  };
  for (const Case& c : cases) {
    INFO(c.file);
    const BertRelativeEncoding<T> enc(table, c.type);
    const Matrix<double> ref = load<double>(c.file);
    auto opt = options<T>(2, c.causal, c.offset);
    CHECK(max_abs_diff(w.run(enc, opt), ref) <= attn_tol<T>());
    // the same positions as a list (the kernel's and the encoder's list paths)
    opt.positions = Positions(listed(Positions(c.offset, 7)));
    CHECK(max_abs_diff(w.run(enc, opt), ref) <= attn_tol<T>());
    // and at positions near INT64_MAX: only differences matter
    opt.positions.reset();
    opt.offset = std::numeric_limits<std::int64_t>::max() - 6;
    CHECK(max_abs_diff(w.run(enc, opt), ref) <= attn_tol<T>());
  }
  // The two types differ: the key term is there.
  const BertRelativeEncoding<T> key(table, kKey), key_query(table, kKeyQuery);
  CHECK(max_abs_diff(w.run(key, options<T>(2, false)), w.run(key_query, options<T>(2, false))) >
        1e-3);
}

TEMPLATE_TEST_CASE("bert_relative: layers of real models match the reference", "[bert_relative]",
                   float, double) {
  using T = TestType;
  {
    // GQA 4/2, biases, explicit gapped positions, causal sliding window
    const std::string name = "bert_gqa_key_query_window_causal";
    Layer<T> l(name, 4, 2, 8, "qkvo");
    l.opt.causal = true;
    l.opt.window = 9;
    const BertRelativeEncoding<T> enc(load<T>(name + "_table"), kKeyQuery);
    const Matrix<double> ref = load<double>(name + "_y");
    CHECK(max_abs_diff(attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, l.opt), ref) <= attn_tol<T>());
  }
  {
    // MQA 4/1, Dh = 6, packed segments with padding, chunk, sinks, soft-capping
    const std::string name = "bert_mqa_key_segments_sinks_cap";
    Layer<T> l(name, 4, 1, 6, "qv");
    l.opt.chunk = 5;
    l.opt.segments = load_ints(name + "_segments");
    const Matrix<T> sinks = load<T>(name + "_sinks");
    l.opt.sinks.assign(sinks.data(), sinks.data() + sinks.size());
    l.opt.softcap = T(3);
    const BertRelativeEncoding<T> enc(load<T>(name + "_table"), kKey);
    const Matrix<double> ref = load<double>(name + "_y");
    CHECK(max_abs_diff(attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, l.opt), ref) <= attn_tol<T>());
  }
}

TEMPLATE_TEST_CASE("bert_relative: cached decoding equals the full causal call",
                   "[bert_relative][kv]", float, double) {
  using T = TestType;
  // contiguous positions (the tiles' run path), both types
  const Weights<T> w("attn");
  for (BertRelativeType type : {kKey, kKeyQuery}) {
    const BertRelativeEncoding<T> enc(load<T>("attn_bert_table"), type);
    const auto opt = options<T>(2, true);
    const Matrix<T> full = w.run(enc, opt);
    for (Index prefill : {0, 1, 4}) {
      INFO(posenc::name_of(type) << ", prefill " << prefill);
      CHECK(max_abs_diff(decoded(enc, w.x, w.wq, w.wk, w.wv, w.wo, opt, prefill), full) <=
            10 * attn_tol<T>());
    }
  }
  const Matrix<double> ref = load<double>("attn_bert_relative_key_query_causal");
  CHECK(max_abs_diff(decoded(BertRelativeEncoding<T>(load<T>("attn_bert_table"), kKeyQuery), w.x,
                             w.wq, w.wk, w.wv, w.wo, options<T>(2, true), 3),
                     ref) <= 10 * attn_tol<T>());
  // listed positions, grouped heads, biases, a window
  const std::string name = "bert_gqa_key_query_window_causal";
  Layer<T> l(name, 4, 2, 8, "qkvo");
  l.opt.causal = true;
  l.opt.window = 9;
  const BertRelativeEncoding<T> enc(load<T>(name + "_table"), kKeyQuery);
  const Matrix<T> full = attention(l.x, l.wq, l.wk, l.wv, l.wo, enc, l.opt);
  CHECK(max_abs_diff(full, load<double>(name + "_y")) <= attn_tol<T>());
  for (Index prefill : {0, 5}) {
    INFO(name << ", prefill " << prefill);
    CHECK(max_abs_diff(decoded(enc, l.x, l.wq, l.wk, l.wv, l.wo, l.opt, prefill), full) <=
          10 * attn_tol<T>());
  }
}

TEST_CASE("bert_relative: bad input throws posenc::error naming the parameter",
          "[bert_relative][errors]") {
  using M = Matrix<double>;
  require_error([] { BertRelativeEncoding<double>(M::Zero(14, 8)); },
                {"BertRelativeEncoding", "table E", "[14, 8]", "2L - 1"});
  require_error([] { BertRelativeEncoding<double>(M::Zero(0, 8)); }, {"table E", "[0, 8]"});
  require_error([] { BertRelativeEncoding<double>(M::Zero(15, 0)); }, {"table E", "[15, 0]"});
  M bad = M::Zero(15, 8);
  bad(3, 2) = std::numeric_limits<double>::quiet_NaN();
  require_error([&] { BertRelativeEncoding<double>{bad}; }, {"table E", "non-finite"});
  require_error(
      [] { BertRelativeEncoding<double>(M::Zero(15, 8), static_cast<BertRelativeType>(7)); },
      {"type = 7", "relative_key or relative_key_query"});
  require_error(
      [] { (void)posenc::from_name<BertRelativeType>("relative", "--position-embedding-type"); },
      {"--position-embedding-type", "'relative'", "relative_key or relative_key_query"});

  const BertRelativeEncoding<double> enc(M::Zero(15, 8));  // L = 8, Dh = 8
  require_error([&] { (void)enc.index(9, 1); },
                {"query position 9", "key position 1", "8 apart", "L - 1 = 7"});
  require_error([&] { (void)enc.index(0, 8); },
                {"query position 0", "key position 8", "L - 1 = 7"});
  require_error([&] { (void)enc.index(-1, 0); }, {"index", "-1"});
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  require_error([&] { (void)enc.index(big, 0); }, {"query position 9223372036854775807", "apart"});

  // in attention: the head size, and a sequence longer than L (also when the far pairs are masked)
  const Weights<double> w("attn");  // N = 7, D = 16
  const BertRelativeEncoding<double> narrow(M::Zero(15, 4));
  require_error([&] { w.run(narrow, options<double>(2, false)); },
                {"BertRelativeEncoding", "Dh = 4", "Dh = 8"});
  const BertRelativeEncoding<double> short_table(M::Zero(11, 8));  // L = 6 < N = 7
  require_error([&] { w.run(short_table, options<double>(2, true)); },
                {"query position 6", "key position 0", "6 apart", "L - 1 = 5"});
  auto opt = options<double>(2, false);
  opt.positions = Positions(std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 40});
  opt.window = 3;
  require_error([&] { w.run(enc, opt); }, {"query position 40", "key position 0", "40 apart"});
  // the score-bias hook checks what it is given
  require_error([&] { (void)enc.score_bias(Positions(0, 3), Positions(0, 3), 2, 4, 1.0); },
                {"Dh = 8", "Dh = 4", "H = 2"});
}
