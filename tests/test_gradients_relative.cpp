// Gradients of the relative encoders' terms (Shaw, Transformer-XL, BERT relative, DeBERTa;
// conventions.md 5b-5e and 7): the attention core's dQ, dK, dV and the tables' gradients, and
// the layer's dX, dW, biases, sinks and tables, against central finite differences in double,
// over grouped heads, causal or not, windows, segments with padding, listed positions (dense
// and sparse distance ranges), several tiles; float32 against float64. Also checks that each
// encoder's for_each_parameter names the same tensors, in the same order, as its Gradients.
#include <posenc/gradients.hpp>
#include <posenc/posenc.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gradient_support.hpp"
#include "test_support.hpp"

namespace {

using posenc::AttendOptions;
using posenc::AttentionOptions;
using posenc::Index;
using posenc::Matrix;
using posenc::Positions;
using posenc::Vector;
using posenc_test::random_matrix;
using Params = std::vector<Matrix<double>>;
using posenc_test::check_fd;
using posenc_test::loss;
using posenc_test::worst_relative_error;
using posenc_test::worst_table_error;
using posenc_test::worst_what;

/// The encoder's gradients as (name, matrix) in for_each's order, and a check that
/// for_each_parameter names the same tensors in the same order with the parameters' values.
template <class E, class G>
std::vector<Matrix<double>> encoder_gradients(E enc, const G& grads, const Params& params,
                                              const std::vector<std::string>& names) {
  std::vector<std::string> gn, pn;
  std::vector<Matrix<double>> gm;
  grads.for_each([&](const auto& name, const Matrix<double>& m) {
    gn.emplace_back(name);
    gm.push_back(m);
  });
  std::size_t at = 0;
  enc.for_each_parameter([&](const auto& name, Matrix<double>& m) {
    pn.emplace_back(name);
    REQUIRE(at < params.size());
    REQUIRE(posenc_test::max_abs_diff(m, params[at]) == 0.0);
    ++at;
  });
  REQUIRE(gn == names);
  REQUIRE(pn == names);
  for (std::size_t i = 0; i < gm.size(); ++i) {
    REQUIRE(gm[i].rows() == params[i].rows());
    REQUIRE(gm[i].cols() == params[i].cols());
  }
  return gm;
}

struct CoreCase {
  std::string name;
  Index nq = 9, nk = 9, heads = 4, kv_heads = 2, dh = 5;
  AttendOptions<double> opt;
  std::vector<std::int64_t> qpos, kpos;  // empty: 0 .. n-1
};

CoreCase core_base(const std::string& n, bool gqa) {
  CoreCase c;
  c.name = n;
  c.opt.heads = 4;
  c.opt.kv_heads = gqa ? 2 : 4;
  return c;
}

/// The shapes of test_gradients.cpp, and listed positions whose distances span a sparse range.
std::vector<CoreCase> core_cases(bool gqa) {
  std::vector<CoreCase> out;
  out.push_back(core_base("full", gqa));
  {
    auto c = core_base("causal", gqa);
    c.opt.visibility.causal = true;
    out.push_back(c);
  }
  {
    auto c = core_base("causal window 3, MQA", gqa);
    c.opt.visibility.causal = true;
    c.opt.visibility.window = 3;
    if (gqa) c.opt.kv_heads = 1;
    out.push_back(c);
  }
  {
    auto c = core_base("bidirectional window 2, chunk 4, listed positions", gqa);
    c.opt.visibility.window = 2;
    c.opt.visibility.chunk = 4;
    c.qpos = c.kpos = {0, 1, 2, 5, 6, 7, 8, 11, 12};
    out.push_back(c);
  }
  {
    auto c = core_base("listed positions, unsorted, repeated", gqa);
    c.qpos = {4, 0, 7, 7, 12, 2, 9, 3, 1};
    c.kpos = {3, 3, 8, 0, 12, 6, 1, 10, 5};
    out.push_back(c);
  }
  {
    auto c = core_base("listed positions far apart (sparse distances), causal", gqa);
    c.opt.visibility.causal = true;
    c.qpos = c.kpos = {0, 1, 3, 9000, 9001, 9004, 20000, 20002, 20007};
    out.push_back(c);
  }
  {
    auto c = core_base("segments with padding, causal", gqa);
    c.opt.visibility.causal = true;
    c.opt.query_segments = c.opt.key_segments = {0, 0, 0, 1, 1, 1, 1, -1, -1};
    out.push_back(c);
  }
  {
    auto c = core_base("sinks, soft-cap, scale", gqa);
    c.opt.visibility.causal = true;
    c.opt.sinks = {0.3, -0.5, 1.0, -std::numeric_limits<double>::infinity()};
    c.opt.softcap = 2.0;
    c.opt.scale = 0.9;
    out.push_back(c);
  }
  {
    auto c = core_base("cross: 6 queries, 11 keys at later positions", gqa);
    c.nq = 6;
    c.nk = 11;
    c.qpos = {10, 11, 12, 13, 14, 15};
    c.kpos = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    c.opt.visibility.causal = true;
    out.push_back(c);
  }
  return out;
}

Positions positions_or(const std::vector<std::int64_t>& p, Index n) {
  return p.empty() ? Positions(0, n) : Positions(p);
}

/// Sampled entries per gradient over several tiles (and for a large table), besides the two
/// random directions check_fd adds: fewer in unoptimised (sanitizer) builds, where every
/// finite difference is two full forward passes at -O0.
#ifdef NDEBUG
constexpr int kTileSamples = 40, kTableSamples = 80;
#else
constexpr int kTileSamples = 3, kTableSamples = 6;
#endif

/// The core's gradients (dQ, dK, dV, dsinks, and each table of the encoder make(params)) on
/// case c, checked entry by entry (or `samples` sampled entries of each).
template <class Make>
void check_core(const Make& make, Params params, const std::vector<std::string>& names,
                const CoreCase& c, std::uint64_t seed, int samples = -1) {
  INFO("case " << c.name);
  using E = decltype(make(params));
  const Index hkv = c.opt.kv_heads == 0 ? c.opt.heads : c.opt.kv_heads;
  Matrix<double> q = random_matrix<double>(c.nq, c.opt.heads * c.dh, seed, 0.8);
  Matrix<double> k = random_matrix<double>(c.nk, hkv * c.dh, seed + 1, 0.8);
  Matrix<double> v = random_matrix<double>(c.nk, hkv * c.dh, seed + 2);
  const Matrix<double> g = random_matrix<double>(c.nq, c.opt.heads * c.dh, seed + 3);
  const Positions qp = positions_or(c.qpos, c.nq), kp = positions_or(c.kpos, c.nk);
  AttendOptions<double> opt = c.opt;
  const E enc = make(params);
  const auto forward_with = [&](const E& e) {
    Matrix<double> o(c.nq, q.cols());
    posenc::attend(e, q, k, v, qp, kp, opt, o);
    return loss(o, g);
  };
  const auto forward = [&] { return forward_with(enc); };
  Matrix<double> o(c.nq, q.cols()), lse(c.opt.heads, c.nq);
  posenc::attend(enc, q, k, v, qp, kp, opt, o, lse);
  const auto grads = posenc::attend_backward(enc, q, k, v, qp, kp, opt, o, lse, g);
  check_fd(q, grads.dq, forward, "dQ", samples);
  check_fd(k, grads.dk, forward, "dK", samples);
  check_fd(v, grads.dv, forward, "dV", samples);
  if (!opt.sinks.empty()) {
    std::vector<double> fin = opt.sinks, gfin = grads.dsinks;
    const std::vector<double> keep = opt.sinks;
    for (std::size_t h = 0; h < fin.size(); ++h)
      if (std::isinf(fin[h])) {
        REQUIRE(gfin[h] == 0.0);
        fin[h] = 0.0;
      }
    check_fd(
        fin, gfin,
        [&] {
          for (std::size_t h = 0; h < fin.size(); ++h)
            opt.sinks[h] = std::isinf(keep[h]) ? keep[h] : fin[h];
          return forward();
        },
        "dsinks");
    opt.sinks = keep;
  }
  const auto ge = encoder_gradients(enc, grads.encoder, params, names);
  for (std::size_t i = 0; i < ge.size(); ++i)
    check_fd(
        params[i], ge[i], [&] { return forward_with(make(params)); }, "d " + names[i],
        params[i].size() > 400 ? kTableSamples : samples);
}

struct LayerCase {
  std::string name;
  Index n = 8, d = 12, heads = 4, kv_heads = 2, dh = 4;
  bool causal = true, biases = true, sinks = false;
  std::int64_t window = 0, offset = 3;
  std::vector<std::int64_t> positions, segments;
};

std::vector<LayerCase> layer_cases(bool gqa) {
  std::vector<LayerCase> out;
  LayerCase a;
  a.name = "causal, Dh != D/H, biases";
  if (!gqa) a.kv_heads = 4;
  out.push_back(a);
  LayerCase full;
  full.name = "bidirectional, no biases, MHA";
  full.causal = false;
  full.biases = false;
  full.kv_heads = 4;
  out.push_back(full);
  LayerCase win;
  win.name = "window 3, sinks, segments with padding";
  win.window = 3;
  win.sinks = true;
  win.causal = false;
  win.segments = {0, 0, 0, 1, 1, 1, -1, -1};
  if (!gqa) win.kv_heads = 4;
  out.push_back(win);
  LayerCase listed;
  listed.name = "listed positions, causal";
  listed.positions = {2, 3, 5, 6, 10, 11, 12, 15};
  if (gqa)
    listed.kv_heads = 1;
  else
    listed.kv_heads = 4;
  out.push_back(listed);
  return out;
}

/// Every gradient of attention_backward for the encoder make(params) on case c.
template <class Make>
void check_layer(const Make& make, Params params, const std::vector<std::string>& names,
                 const LayerCase& c, std::uint64_t seed) {
  INFO("layer case " << c.name);
  using E = decltype(make(params));
  const Index qw = c.heads * c.dh, kw = c.kv_heads * c.dh;
  Matrix<double> x = random_matrix<double>(c.n, c.d, seed, 0.7);
  Matrix<double> wq = random_matrix<double>(c.d, qw, seed + 1, 0.4);
  Matrix<double> wk = random_matrix<double>(c.d, kw, seed + 2, 0.4);
  Matrix<double> wv = random_matrix<double>(c.d, kw, seed + 3, 0.4);
  Matrix<double> wo = random_matrix<double>(qw, c.d, seed + 4, 0.4);
  const Matrix<double> g = random_matrix<double>(c.n, c.d, seed + 5);
  AttentionOptions<double> opt;
  opt.heads = c.heads;
  opt.kv_heads = c.kv_heads;
  opt.head_dim = c.dh;
  opt.causal = c.causal;
  opt.window = c.window;
  opt.offset = c.offset;
  if (!c.positions.empty()) opt.positions = Positions(c.positions);
  opt.segments = c.segments;
  if (c.biases) {
    opt.bq = random_matrix<double>(qw, 1, seed + 6, 0.3);
    opt.bk = random_matrix<double>(kw, 1, seed + 7, 0.3);
    opt.bv = random_matrix<double>(kw, 1, seed + 8, 0.3);
    opt.bo = random_matrix<double>(c.d, 1, seed + 9, 0.3);
  }
  if (c.sinks) opt.sinks = {0.2, -0.4, 0.9, 0.0};
  const E enc = make(params);
  const auto forward_with = [&](const E& e) {
    return loss(posenc::attention(x, wq, wk, wv, wo, e, opt), g);
  };
  const auto forward = [&] { return forward_with(enc); };
  const auto r = posenc::attention_backward(x, wq, wk, wv, wo, enc, opt, g);
  posenc_test::check_layer_fd(x, wq, wk, wv, wo, opt, r, forward);
  const auto ge = encoder_gradients(enc, r.encoder, params, names);
  for (std::size_t i = 0; i < ge.size(); ++i)
    check_fd(
        params[i], ge[i], [&] { return forward_with(make(params)); }, "d " + names[i]);
}

/// The core over several tiles (N = 130 > both tile sizes), sampled entries.
template <class Make>
void check_tiles(const Make& make, const Params& params, const std::vector<std::string>& names,
                 Index heads, Index kv_heads, Index dh, std::uint64_t seed) {
  for (const int variant : {0, 1, 3, 2}) {
    CoreCase c;
    c.nq = c.nk = 130;
    c.dh = dh;
    c.opt.heads = heads;
    c.opt.kv_heads = kv_heads;
    if (variant == 0) {
      c.name = "130 tokens";
    } else if (variant == 1) {
      c.name = "130 tokens causal, window 70, offset 40";
      c.opt.visibility.causal = true;
      c.opt.visibility.window = 70;
      c.qpos.resize(130);
      for (Index i = 0; i < 130; ++i)
        c.qpos[static_cast<std::size_t>(i)] = 40 + i;
      c.kpos = c.qpos;
    } else if (variant == 3) {
      // the tiles across the diagonal keep a prefix of each row
      c.name = "130 tokens causal";
      c.opt.visibility.causal = true;
    } else {
      c.name = "130 listed positions (gaps), causal";
      c.opt.visibility.causal = true;
      for (Index i = 0; i < 130; ++i)
        c.qpos.push_back(i + i / 7);
      c.kpos = c.qpos;
    }
    check_core(make, params, names, c, seed + static_cast<std::uint64_t>(variant), kTileSamples);
  }
}

/// float32 through attention_backward against float64, every gradient.
template <class MakeF, class MakeD>
void check_float(const MakeF& make_f, const MakeD& make_d, const Params& params, Index heads,
                 Index kv_heads, Index dh, Index d, bool causal) {
  const Index n = 70;
  const Matrix<double> x = random_matrix<double>(n, d, 1, 0.7);
  const Matrix<double> wq = random_matrix<double>(d, heads * dh, 2, 0.4);
  const Matrix<double> wk = random_matrix<double>(d, kv_heads * dh, 3, 0.4);
  const Matrix<double> wv = random_matrix<double>(d, kv_heads * dh, 4, 0.4);
  const Matrix<double> wo = random_matrix<double>(heads * dh, d, 5, 0.4);
  const Matrix<double> g = random_matrix<double>(n, d, 6);
  AttentionOptions<double> od;
  od.heads = heads;
  od.kv_heads = kv_heads;
  od.head_dim = dh;
  od.causal = causal;
  od.offset = 5;
  AttentionOptions<float> of;
  of.heads = heads;
  of.kv_heads = kv_heads;
  of.head_dim = dh;
  of.causal = causal;
  of.offset = 5;
  std::vector<Matrix<float>> pf;
  for (const auto& p : params)
    pf.push_back(p.cast<float>());
  const auto ed = make_d(params);
  const auto ef = make_f(pf);
  const auto rd = posenc::attention_backward(x, wq, wk, wv, wo, ed, od, g);
  const auto rf =
      posenc::attention_backward(x.cast<float>(), wq.cast<float>(), wk.cast<float>(),
                                 wv.cast<float>(), wo.cast<float>(), ef, of, g.cast<float>());
  const auto close = [](const Matrix<float>& a, const Matrix<double>& b, const std::string& what) {
    INFO(what);
    const double mag = std::max(1.0, b.cwiseAbs().maxCoeff());
    REQUIRE(posenc_test::max_abs_diff(a.cast<double>(), b) <= 2e-5 * mag);
  };
  close(rf.dx, rd.dx, "dX");
  close(rf.dwq, rd.dwq, "dWq");
  close(rf.dwk, rd.dwk, "dWk");
  close(rf.dwv, rd.dwv, "dWv");
  close(rf.dwo, rd.dwo, "dWo");
  std::vector<Matrix<double>> gd;
  std::vector<Matrix<float>> gf;
  rd.encoder.for_each([&](const auto&, const Matrix<double>& m) { gd.push_back(m); });
  rf.encoder.for_each([&](const auto&, const Matrix<float>& m) { gf.push_back(m); });
  REQUIRE(gd.size() == gf.size());
  REQUIRE(!gd.empty());
  for (std::size_t i = 0; i < gd.size(); ++i)
    close(gf[i], gd[i], "encoder gradient " + std::to_string(i));
}

// ---- the encoders, built from their parameters in for_each_parameter's order

template <class T>
posenc::ShawEncoding<T> make_shaw(const std::vector<Matrix<T>>& p) {
  return posenc::ShawEncoding<T>(p[0], p[1]);
}

std::function<posenc::TransformerXLEncoding<double>(const Params&)> make_xl(std::int64_t clamp) {
  return [clamp](const Params& p) {
    posenc::TransformerXLOptions o;
    o.clamp_len = clamp;
    return posenc::TransformerXLEncoding<double>(p[0], p[1], p[2], o);
  };
}
posenc::TransformerXLEncoding<float> make_xl_float(const std::vector<Matrix<float>>& p) {
  return posenc::TransformerXLEncoding<float>(p[0], p[1], p[2]);
}

std::function<posenc::BertRelativeEncoding<double>(const Params&)> make_bert(
    posenc::BertRelativeType type) {
  return [type](const Params& p) { return posenc::BertRelativeEncoding<double>(p[0], type); };
}
std::function<posenc::BertRelativeEncoding<float>(const std::vector<Matrix<float>>&)>
make_bert_float(posenc::BertRelativeType type) {
  return [type](const std::vector<Matrix<float>>& p) {
    return posenc::BertRelativeEncoding<float>(p[0], type);
  };
}
const posenc::BertRelativeType bert_types[] = {posenc::BertRelativeType::relative_key,
                                               posenc::BertRelativeType::relative_key_query};

/// DeBERTa from its tables in for_each_parameter's order: K_r (c2p), Q_r (p2c).
template <class T>
std::function<posenc::DebertaEncoding<T>(const std::vector<Matrix<T>>&)> make_deberta(
    Index heads, posenc::DebertaOptions o) {
  return [heads, o](const std::vector<Matrix<T>>& p) {
    const bool c2p = o.terms != posenc::DebertaTerms::p2c;
    const bool p2c = o.terms != posenc::DebertaTerms::c2p;
    const Matrix<T> none;
    return posenc::DebertaEncoding<T>(c2p ? p[0] : none, p2c ? p[c2p ? 1 : 0] : none, heads, o);
  };
}
/// The tables and their names for terms o.terms, [2 span, H Dh] each.
std::pair<Params, std::vector<std::string>> deberta_params(const posenc::DebertaOptions& o,
                                                           Index hdh, std::uint64_t seed) {
  const Index span = o.position_buckets > 0 ? o.position_buckets : o.max_relative_positions;
  Params p;
  std::vector<std::string> n;
  if (o.terms != posenc::DebertaTerms::p2c) {
    p.push_back(random_matrix<double>(2 * span, hdh, seed, 0.5));
    n.emplace_back("rel-key-table");
  }
  if (o.terms != posenc::DebertaTerms::c2p) {
    p.push_back(random_matrix<double>(2 * span, hdh, seed + 1, 0.5));
    n.emplace_back("rel-query-table");
  }
  return {p, n};
}
std::vector<posenc::DebertaOptions> deberta_options(Index buckets, Index max_relative) {
  std::vector<posenc::DebertaOptions> out;
  for (const auto terms :
       {posenc::DebertaTerms::both, posenc::DebertaTerms::c2p, posenc::DebertaTerms::p2c}) {
    for (const bool bucketed : {true, false}) {
      posenc::DebertaOptions o;
      o.terms = terms;
      o.position_buckets = bucketed ? buckets : 0;
      o.max_relative_positions = bucketed ? max_relative : buckets / 2 + 1;
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("gradients, Shaw: the core's dQ, dK, dV, dA_K, dA_V", "[gradients][shaw]") {
  std::uint64_t seed = 100;
  const std::vector<std::string> names{"rel-k", "rel-v"};
  for (const Index kk : {Index(2), Index(20)}) {
    INFO("K = " << kk);
    const Params p{random_matrix<double>(2 * kk + 1, 5, 11, 0.5),
                   random_matrix<double>(2 * kk + 1, 5, 12, 0.5)};
    for (const auto& c : core_cases(true))
      check_core(make_shaw<double>, p, names, c, seed += 10);
  }
}

TEST_CASE("gradients, Shaw: several tiles", "[gradients][shaw]") {
  for (const Index kk : {Index(3), Index(100)}) {
    INFO("K = " << kk);
    const Params p{random_matrix<double>(2 * kk + 1, 8, 21, 0.5),
                   random_matrix<double>(2 * kk + 1, 8, 22, 0.5)};
    check_tiles(make_shaw<double>, p, {"rel-k", "rel-v"}, 2, 1, 8, 500);
  }
}

TEST_CASE("gradients, Shaw: layers", "[gradients][shaw]") {
  std::uint64_t seed = 1000;
  for (const auto& c : layer_cases(true)) {
    const Params p{random_matrix<double>(7, c.dh, seed + 31, 0.5),
                   random_matrix<double>(7, c.dh, seed + 32, 0.5)};
    check_layer(make_shaw<double>, p, {"rel-k", "rel-v"}, c, seed += 20);
  }
}

TEST_CASE("gradients, Shaw: float32 agrees with float64", "[gradients][shaw]") {
  const Params p{random_matrix<double>(9, 4, 41, 0.5), random_matrix<double>(9, 4, 42, 0.5)};
  check_float(make_shaw<float>, make_shaw<double>, p, 4, 2, 4, 16, true);
}

TEST_CASE("gradients, Transformer-XL: the core's dQ, dK, dV, du, dv, dW_R", "[gradients][xl]") {
  std::uint64_t seed = 2000;
  const std::vector<std::string> names{"u", "v", "wr"};
  for (const std::int64_t clamp : {std::int64_t(-1), std::int64_t(3)}) {
    INFO("clamp_len " << clamp);
    const Params p{random_matrix<double>(4, 5, 51, 0.5), random_matrix<double>(4, 5, 52, 0.5),
                   random_matrix<double>(6, 20, 53, 0.4)};
    for (const auto& c : core_cases(true))
      check_core(make_xl(clamp), p, names, c, seed += 10);
  }
}

TEST_CASE("gradients, Transformer-XL: several tiles", "[gradients][xl]") {
  for (const std::int64_t clamp : {std::int64_t(-1), std::int64_t(50)}) {
    INFO("clamp_len " << clamp);
    const Params p{random_matrix<double>(2, 8, 61, 0.5), random_matrix<double>(2, 8, 62, 0.5),
                   random_matrix<double>(8, 16, 63, 0.4)};
    check_tiles(make_xl(clamp), p, {"u", "v", "wr"}, 2, 1, 8, 600);
  }
}

TEST_CASE("gradients, Transformer-XL: layers", "[gradients][xl]") {
  std::uint64_t seed = 3000;
  for (const auto& c : layer_cases(true)) {
    const Params p{random_matrix<double>(c.heads, c.dh, seed + 31, 0.5),
                   random_matrix<double>(c.heads, c.dh, seed + 32, 0.5),
                   random_matrix<double>(c.d, c.heads * c.dh, seed + 33, 0.4)};
    for (const std::int64_t clamp : {std::int64_t(-1), std::int64_t(2)})
      check_layer(make_xl(clamp), p, {"u", "v", "wr"}, c, seed += 20);
  }
}

TEST_CASE("gradients, Transformer-XL: float32 agrees with float64", "[gradients][xl]") {
  const Params p{random_matrix<double>(4, 4, 71, 0.5), random_matrix<double>(4, 4, 72, 0.5),
                 random_matrix<double>(16, 16, 73, 0.4)};
  check_float(make_xl_float, make_xl(-1), p, 4, 2, 4, 16, true);
}

TEST_CASE("gradients, BERT relative: the core's dQ, dK, dV, dE", "[gradients][bert]") {
  std::uint64_t seed = 4000;
  for (const auto type : bert_types) {
    INFO("type " << posenc::name_of(type));
    for (const auto& c : core_cases(true)) {
      std::int64_t far = std::max<std::int64_t>(c.nq, c.nk);
      for (const auto p : c.qpos)
        far = std::max(far, p);
      for (const auto p : c.kpos)
        far = std::max(far, p);
      const Params p{random_matrix<double>(2 * (far + 2) - 1, 5, seed + 1, 0.5)};
      check_core(make_bert(type), p, {"distance-table"}, c, seed += 10);
    }
  }
}

TEST_CASE("gradients, BERT relative: several tiles", "[gradients][bert]") {
  for (const auto type : bert_types) {
    INFO("type " << posenc::name_of(type));
    const Params p{random_matrix<double>(2 * 300 - 1, 8, 81, 0.5)};
    check_tiles(make_bert(type), p, {"distance-table"}, 2, 1, 8, 700);
    // Dh 48: several column blocks of the band kernels, the last one narrower, at any SIMD width
    const Params wide{random_matrix<double>(2 * 300 - 1, 48, 82, 0.5)};
    check_tiles(make_bert(type), wide, {"distance-table"}, 1, 1, 48, 710);
  }
}

TEST_CASE("gradients, BERT relative: layers", "[gradients][bert]") {
  std::uint64_t seed = 5000;
  for (const auto& c : layer_cases(true))
    for (const auto type : bert_types) {
      INFO("type " << posenc::name_of(type));
      const Params p{random_matrix<double>(2 * 20 - 1, c.dh, seed + 31, 0.5)};
      check_layer(make_bert(type), p, {"distance-table"}, c, seed += 20);
    }
}

TEST_CASE("gradients, BERT relative: float32 agrees with float64", "[gradients][bert]") {
  const Params p{random_matrix<double>(2 * 80 - 1, 4, 91, 0.5)};
  for (const auto type : bert_types)
    check_float(make_bert_float(type), make_bert(type), p, 4, 2, 4, 16, false);
}

TEST_CASE("gradients, BERT relative: for_each_parameter's updates reach the forward pass",
          "[gradients][bert]") {
  const Matrix<double> e0 = random_matrix<double>(2 * 10 - 1, 4, 95, 0.5);
  const Matrix<double> q = random_matrix<double>(8, 8, 96), k = random_matrix<double>(8, 8, 97);
  AttendOptions<double> opt;
  opt.heads = 2;
  const Positions p(0, 8);
  for (const auto type : bert_types) {
    posenc::BertRelativeEncoding<double> enc(e0, type);
    Matrix<double>* table = nullptr;
    enc.for_each_parameter([&](const auto&, Matrix<double>& m) {
      m.array() += 0.25;  // an update inside f
      table = &m;
    });
    Matrix<double> o(8, 8), want(8, 8);
    posenc::attend(enc, q, k, k, p, p, opt, o);
    posenc::attend(posenc::BertRelativeEncoding<double>(e0.array() + 0.25, type), q, k, k, p, p,
                   opt, want);
    REQUIRE(posenc_test::max_abs_diff(o, want) == 0.0);
    table->array() -= 0.5;  // a later update through the kept reference
    enc.parameters_changed();
    posenc::attend(enc, q, k, k, p, p, opt, o);
    posenc::attend(posenc::BertRelativeEncoding<double>(*table, type), q, k, k, p, p, opt, want);
    REQUIRE(posenc_test::max_abs_diff(o, want) == 0.0);
  }
}

TEST_CASE("gradients, DeBERTa: the core's dQ, dK, dV, dK_r, dQ_r", "[gradients][deberta]") {
  std::uint64_t seed = 6000;
  for (const auto& o : deberta_options(8, 20)) {
    INFO("terms " << posenc::name_of(o.terms) << ", buckets " << o.position_buckets << ", m "
                  << o.max_relative_positions);
    const auto [p, names] = deberta_params(o, 4 * 5, seed + 1);
    for (const auto& c : core_cases(true))
      check_core(make_deberta<double>(4, o), p, names, c, seed += 10);
  }
}

TEST_CASE("gradients, DeBERTa: several tiles", "[gradients][deberta]") {
  for (const auto& o : deberta_options(32, 100)) {
    INFO("terms " << posenc::name_of(o.terms) << ", buckets " << o.position_buckets);
    const auto [p, names] = deberta_params(o, 2 * 8, 801);
    check_tiles(make_deberta<double>(2, o), p, names, 2, 1, 8, 800);
    // Dh 48: the band kernels' column blocks where the buckets are one distance each
    const auto [wide, wide_names] = deberta_params(o, 48, 802);
    check_tiles(make_deberta<double>(1, o), wide, wide_names, 1, 1, 48, 810);
  }
}

TEST_CASE("gradients, DeBERTa: layers", "[gradients][deberta]") {
  std::uint64_t seed = 7000;
  for (const auto& c : layer_cases(true))
    for (const auto& o : deberta_options(8, 12)) {
      INFO("terms " << posenc::name_of(o.terms) << ", buckets " << o.position_buckets);
      const auto [p, names] = deberta_params(o, c.heads * c.dh, seed + 31);
      check_layer(make_deberta<double>(c.heads, o), p, names, c, seed += 20);
    }
}

TEST_CASE("gradients, DeBERTa: float32 agrees with float64", "[gradients][deberta]") {
  for (const auto& o : deberta_options(16, 40)) {
    INFO("terms " << posenc::name_of(o.terms) << ", buckets " << o.position_buckets);
    const auto [p, names] = deberta_params(o, 4 * 4, 901);
    check_float(make_deberta<float>(4, o), make_deberta<double>(4, o), p, 4, 2, 4, 16, true);
  }
}

TEST_CASE("gradients, DeBERTa: for_each_parameter's updates reach the forward pass",
          "[gradients][deberta]") {
  posenc::DebertaOptions o;
  o.position_buckets = 8;
  o.max_relative_positions = 20;
  const auto [p0, names] = deberta_params(o, 2 * 4, 905);
  const Matrix<double> q = random_matrix<double>(12, 8, 96), k = random_matrix<double>(12, 8, 97);
  AttendOptions<double> opt;
  opt.heads = 2;
  const Positions pos(0, 12);
  auto enc = make_deberta<double>(2, o)(p0);
  std::vector<Matrix<double>*> kept;
  enc.for_each_parameter([&](const auto&, Matrix<double>& m) {
    m.array() += 0.25;
    kept.push_back(&m);
  });
  Matrix<double> out(12, 8), want(12, 8);
  const auto current = [&] {
    Params now;
    for (const auto* m : kept)
      now.push_back(*m);
    return make_deberta<double>(2, o)(now);
  };
  posenc::attend(enc, q, k, k, pos, pos, opt, out);
  posenc::attend(current(), q, k, k, pos, pos, opt, want);
  REQUIRE(posenc_test::max_abs_diff(out, want) == 0.0);
  for (auto* m : kept)
    m->array() *= 0.5;
  enc.parameters_changed();
  posenc::attend(enc, q, k, k, pos, pos, opt, out);
  posenc::attend(current(), q, k, k, pos, pos, opt, want);
  REQUIRE(posenc_test::max_abs_diff(out, want) == 0.0);
}

TEST_CASE("gradients, relative encoders: the worst finite-difference error", "[gradients]") {
  std::printf("worst relative finite-difference error: %.3g (%s); of the tables: %.3g\n",
              worst_relative_error, worst_what.c_str(), worst_table_error);
  SUCCEED();
}
