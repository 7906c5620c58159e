// Gradients of the attention core and layer (posenc/gradients.hpp) against central finite
// differences of the forward pass in double precision (conventions.md section 7), over grouped
// heads, Dh != D / H, causal or not, windows, chunks, segments with padding, sinks, soft-capping,
// listed positions, several tiles, and each encoder; float32 against float64.
#include <posenc/gradients.hpp>
#include <posenc/posenc.hpp>

#include <catch2/catch.hpp>

#include <cmath>
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

using posenc_test::check_fd;
using posenc_test::loss;

struct CoreCase {
  std::string name;
  Index nq = 9, nk = 9, heads = 4, kv_heads = 2, dh = 5;
  AttendOptions<double> opt;
  std::vector<std::int64_t> qpos, kpos;  // empty: 0 .. n-1
};

std::vector<CoreCase> core_cases() {
  std::vector<CoreCase> out;
  auto base = [](const std::string& n) {
    CoreCase c;
    c.name = n;
    c.opt.heads = 4;
    c.opt.kv_heads = 2;
    return c;
  };
  out.push_back(base("full"));
  {
    auto c = base("causal");
    c.opt.visibility.causal = true;
    out.push_back(c);
  }
  {
    auto c = base("causal window 3, MQA");
    c.opt.visibility.causal = true;
    c.opt.visibility.window = 3;
    c.opt.kv_heads = 1;
    out.push_back(c);
  }
  {
    auto c = base("bidirectional window 2, chunk 4, listed positions");
    c.opt.visibility.window = 2;
    c.opt.visibility.chunk = 4;
    c.opt.kv_heads = 4;
    c.qpos = c.kpos = {0, 1, 2, 5, 6, 7, 8, 11, 12};
    out.push_back(c);
  }
  {
    auto c = base("segments with padding, causal");
    c.opt.visibility.causal = true;
    c.opt.query_segments = c.opt.key_segments = {0, 0, 0, 1, 1, 1, 1, -1, -1};
    out.push_back(c);
  }
  {
    auto c = base("sinks, soft-cap, scale");
    c.opt.visibility.causal = true;
    c.opt.sinks = {0.3, -0.5, 1.0, -std::numeric_limits<double>::infinity()};
    c.opt.softcap = 2.0;
    c.opt.scale = 0.9;
    out.push_back(c);
  }
  {
    auto c = base("cross: 6 queries, 11 keys at later positions");
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

/// The core's gradients for encoder enc on case c, checked entry by entry.
template <class E, class More = std::nullptr_t>
void check_core(const E& enc, const CoreCase& c, std::uint64_t seed, More more = nullptr) {
  INFO("case " << c.name);
  const Index hkv = c.opt.kv_heads == 0 ? c.opt.heads : c.opt.kv_heads;
  Matrix<double> q = random_matrix<double>(c.nq, c.opt.heads * c.dh, seed, 0.8);
  Matrix<double> k = random_matrix<double>(c.nk, hkv * c.dh, seed + 1, 0.8);
  Matrix<double> v = random_matrix<double>(c.nk, hkv * c.dh, seed + 2);
  const Matrix<double> g = random_matrix<double>(c.nq, c.opt.heads * c.dh, seed + 3);
  const Positions qp = positions_or(c.qpos, c.nq), kp = positions_or(c.kpos, c.nk);
  AttendOptions<double> opt = c.opt;
  const auto forward = [&] {
    Matrix<double> o(c.nq, q.cols());
    posenc::attend(enc, q, k, v, qp, kp, opt, o);
    return loss(o, g);
  };
  Matrix<double> o(c.nq, q.cols()), lse(c.opt.heads, c.nq);
  posenc::attend(enc, q, k, v, qp, kp, opt, o, lse);
  const auto grads = posenc::attend_backward(enc, q, k, v, qp, kp, opt, o, lse, g);
  check_fd(q, grads.dq, forward, "dQ");
  check_fd(k, grads.dk, forward, "dK");
  check_fd(v, grads.dv, forward, "dV");
  if (!opt.sinks.empty()) {
    // -inf sinks stay (a constant): differentiate the finite ones only
    std::vector<double> fin = opt.sinks, gfin = grads.dsinks;
    for (std::size_t h = 0; h < fin.size(); ++h)
      if (std::isinf(fin[h])) {
        REQUIRE(gfin[h] == 0.0);
        fin[h] = 0.0;
      }
    std::vector<double> keep = opt.sinks;
    auto f = [&] {
      for (std::size_t h = 0; h < fin.size(); ++h)
        opt.sinks[h] = std::isinf(keep[h]) ? keep[h] : fin[h];
      return forward();
    };
    for (std::size_t h = 0; h < fin.size(); ++h)
      if (!std::isinf(keep[h])) fin[h] = keep[h];
    check_fd(fin, gfin, f, "dsinks");
    opt.sinks = keep;
  }
  if constexpr (!std::is_same<More, std::nullptr_t>::value) more(grads, forward);
}

}  // namespace

TEST_CASE("gradients: the core without an encoder, every visibility rule", "[gradients]") {
  std::uint64_t seed = 100;
  for (const auto& c : core_cases())
    check_core(posenc::NoEncoding<double>{}, c, seed += 10);
}

TEST_CASE("gradients: the core with ALiBi", "[gradients]") {
  std::uint64_t seed = 200;
  for (const auto& c : core_cases())
    check_core(posenc::AlibiEncoding<double>(c.opt.heads), c, seed += 10);
}

TEST_CASE("gradients: the core with T5, its table's gradient", "[gradients]") {
  std::uint64_t seed = 300;
  for (const auto& c : core_cases()) {
    const Matrix<double> table0 = random_matrix<double>(8, c.opt.heads, seed + 7);
    for (const bool bidirectional : {true, false}) {
      INFO("bidirectional " << bidirectional);
      posenc::T5Encoding<double> enc(table0, posenc::T5Options{6, bidirectional});
      check_core(enc, c, seed += 10, [&](const auto& grads, const auto&) {
        Matrix<double> table = table0;
        const Index hkv = c.opt.kv_heads == 0 ? c.opt.heads : c.opt.kv_heads;
        // the same inputs as check_core drew
        const std::uint64_t s = seed;
        const Matrix<double> q = random_matrix<double>(c.nq, c.opt.heads * c.dh, s, 0.8);
        const Matrix<double> k = random_matrix<double>(c.nk, hkv * c.dh, s + 1, 0.8);
        const Matrix<double> v = random_matrix<double>(c.nk, hkv * c.dh, s + 2);
        const Matrix<double> g = random_matrix<double>(c.nq, c.opt.heads * c.dh, s + 3);
        const Positions qp = positions_or(c.qpos, c.nq), kp = positions_or(c.kpos, c.nk);
        check_fd(
            table, grads.encoder.table,
            [&] {
              posenc::T5Encoding<double> e(table, posenc::T5Options{6, bidirectional});
              Matrix<double> o(c.nq, q.cols());
              posenc::attend(e, q, k, v, qp, kp, c.opt, o);
              return loss(o, g);
            },
            "dT (T5 table)");
      });
    }
  }
}

TEST_CASE("gradients: the core over several tiles, sampled entries", "[gradients]") {
  // full; causal with a window (tiles masked entry by entry); causal alone (the tiles across
  // the diagonal keep a prefix of each row, at query tiles that start inside a key tile)
  for (const int mode : {0, 1, 2}) {
    const bool causal = mode > 0;
    CoreCase c;
    c.name = mode == 0   ? "130 tokens"
             : mode == 1 ? "130 tokens causal window 70"
                         : "130 tokens causal";
    c.nq = c.nk = 130;
    c.dh = 8;
    c.opt.heads = 2;
    c.opt.kv_heads = 1;
    c.opt.visibility.causal = causal;
    c.opt.visibility.window = mode == 1 ? 70 : 0;
    const Matrix<double> q0 = random_matrix<double>(c.nq, 2 * c.dh, 5, 0.6);
    Matrix<double> q = q0, k = random_matrix<double>(c.nk, c.dh, 6, 0.6),
                   v = random_matrix<double>(c.nk, c.dh, 7);
    const Matrix<double> g = random_matrix<double>(c.nq, 2 * c.dh, 8);
    const Positions p(0, c.nq);
    const posenc::AlibiEncoding<double> enc(2);
    const auto forward = [&] {
      Matrix<double> o(c.nq, q.cols());
      posenc::attend(enc, q, k, v, p, p, c.opt, o);
      return loss(o, g);
    };
    Matrix<double> o(c.nq, q.cols()), lse(2, c.nq);
    posenc::attend(enc, q, k, v, p, p, c.opt, o, lse);
    const auto grads = posenc::attend_backward(enc, q, k, v, p, p, c.opt, o, lse, g);
    check_fd(q, grads.dq, forward, c.name + " dQ", 60);
    check_fd(k, grads.dk, forward, c.name + " dK", 60);
    check_fd(v, grads.dv, forward, c.name + " dV", 60);
  }
}

namespace {

struct LayerCase {
  std::string name;
  Index n = 8, d = 12, heads = 4, kv_heads = 2, dh = 4;
  bool causal = true, biases = true, sinks = false;
  std::int64_t window = 0, offset = 3;
};

/// Every gradient of attention_backward for encoder make(table-like params) on case c.
template <class E, class Make>
void check_layer(const Make& make, const LayerCase& c, std::uint64_t seed,
                 std::function<void(const posenc::AttentionGradients<E>&,
                                    const std::function<double(const E&)>&)>
                     encoder_check = {}) {
  INFO("layer case " << c.name);
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
  if (c.biases) {
    opt.bq = random_matrix<double>(qw, 1, seed + 6, 0.3);
    opt.bk = random_matrix<double>(kw, 1, seed + 7, 0.3);
    opt.bv = random_matrix<double>(kw, 1, seed + 8, 0.3);
    opt.bo = random_matrix<double>(c.d, 1, seed + 9, 0.3);
  }
  if (c.sinks) opt.sinks = {0.2, -0.4, 0.9, 0.0};
  const E enc = make();
  const auto forward_with = [&](const E& e) {
    return loss(posenc::attention(x, wq, wk, wv, wo, e, opt), g);
  };
  const auto forward = [&] { return forward_with(enc); };
  const auto r = posenc::attention_backward(x, wq, wk, wv, wo, enc, opt, g);
  posenc_test::check_layer_fd(x, wq, wk, wv, wo, opt, r, forward);
  if (!c.biases) REQUIRE(r.dbq.size() == 0);
  if (encoder_check) encoder_check(r, forward_with);
}

std::vector<LayerCase> layer_cases() {
  std::vector<LayerCase> out;
  out.push_back({"causal GQA, Dh != D/H, biases"});
  LayerCase full;
  full.name = "bidirectional, no biases, MHA";
  full.causal = false;
  full.biases = false;
  full.kv_heads = 4;
  out.push_back(full);
  LayerCase win;
  win.name = "window 3, sinks";
  win.window = 3;
  win.sinks = true;
  out.push_back(win);
  return out;
}

}  // namespace

TEST_CASE("gradients: layers without trained position parameters", "[gradients]") {
  std::uint64_t seed = 1000;
  for (const auto& c : layer_cases()) {
    seed += 20;
    check_layer<posenc::NoEncoding<double>>([] { return posenc::NoEncoding<double>{}; }, c, seed);
    check_layer<posenc::SinusoidalEncoding<double>>(
        [&] { return posenc::SinusoidalEncoding<double>(c.d); }, c, seed);
    check_layer<posenc::AlibiEncoding<double>>(
        [&] { return posenc::AlibiEncoding<double>(c.heads); }, c, seed);
    check_layer<posenc::AttentionTemperatureEncoding<double>>(
        [] {
          return posenc::AttentionTemperatureEncoding<double>({0.3, 4.0});
        },
        c, seed);
    for (const auto layout : {posenc::RotaryLayout::half, posenc::RotaryLayout::interleaved}) {
      posenc::RotaryOptions o;
      o.layout = layout;
      o.rotary_dim = 2;  // partial: Dh = 4
      o.scaling = posenc::RopeScaling::yarn;
      o.factor = 4.0;
      o.original_max_positions = 16;
      check_layer<posenc::RotaryEncoding<double>>(
          [&] { return posenc::RotaryEncoding<double>(c.dh, o); }, c, seed);
      o.rotary_dim = 0;
      o.scaling = posenc::RopeScaling::none;
      o.block = posenc::RotaryBlock::leading;
      check_layer<posenc::RotaryEncoding<double>>(
          [&] { return posenc::RotaryEncoding<double>(c.dh, o); }, c, seed);
    }
  }
}

TEST_CASE("gradients: M-RoPE layers (bound axis table)", "[gradients]") {
  posenc::MultiAxisRotaryOptions mo;
  mo.sections = {1, 1};
  mo.rope.base = 100.0;
  const posenc::MultiAxisRotaryEncoding<double> mrope(4, mo);
  posenc::AxisPositions table(2, 11);
  for (Index j = 0; j < 11; ++j) {
    table(0, j) = j;
    table(1, j) = (j * 7) % 5;
  }
  using B = decltype(mrope.bind(table, 3));
  for (const auto& c : layer_cases())
    check_layer<B>([&] { return mrope.bind(table, 0); }, c, 77);
}

TEST_CASE("gradients: layers with trained tables (learned, T5)", "[gradients]") {
  std::uint64_t seed = 2000;
  for (const auto& c : layer_cases()) {
    seed += 20;
    const Matrix<double> w0 = random_matrix<double>(16, c.d, seed + 11, 0.5);
    for (const Index offset : {Index(0), Index(2)}) {
      using L = posenc::LearnedEncoding<double>;
      check_layer<L>([&] { return L(w0, offset); }, c, seed,
                     [&](const auto& r, const auto& forward_with) {
                       Matrix<double> w = w0;
                       check_fd(
                           w, r.encoder.table, [&] { return forward_with(L(w, offset)); },
                           "dW (learned table)");
                     });
    }
    const Matrix<double> t0 = random_matrix<double>(6, c.heads, seed + 12, 0.5);
    using T5 = posenc::T5Encoding<double>;
    check_layer<T5>(
        [&] {
          return T5(t0, posenc::T5Options{5, !c.causal});
        },
        c, seed,
        [&](const auto& r, const auto& forward_with) {
          Matrix<double> t = t0;
          check_fd(
              t, r.encoder.table,
              [&] {
                return forward_with(T5(t, posenc::T5Options{5, !c.causal}));
              },
              "dT (T5 table)");
        });
  }
}

TEST_CASE("gradients: float32 agrees with float64", "[gradients]") {
  const Index n = 70, d = 16, heads = 4, dh = 4;
  const Matrix<double> x = random_matrix<double>(n, d, 1, 0.7);
  const Matrix<double> wq = random_matrix<double>(d, heads * dh, 2, 0.4);
  const Matrix<double> wk = random_matrix<double>(d, 2 * dh, 3, 0.4);
  const Matrix<double> wv = random_matrix<double>(d, 2 * dh, 4, 0.4);
  const Matrix<double> wo = random_matrix<double>(heads * dh, d, 5, 0.4);
  const Matrix<double> g = random_matrix<double>(n, d, 6);
  const Matrix<double> t5 = random_matrix<double>(8, heads, 7, 0.5);
  AttentionOptions<double> od;
  od.heads = heads;
  od.kv_heads = 2;
  od.head_dim = dh;
  od.causal = true;
  od.sinks = {0.1, 0.2, -0.3, 0.4};
  AttentionOptions<float> of;
  of.heads = heads;
  of.kv_heads = 2;
  of.head_dim = dh;
  of.causal = true;
  of.sinks = {0.1f, 0.2f, -0.3f, 0.4f};
  const auto rd =
      posenc::attention_backward(x, wq, wk, wv, wo, posenc::T5Encoding<double>(t5), od, g);
  const Matrix<float> t5f = t5.cast<float>();
  const auto rf = posenc::attention_backward<posenc::T5Encoding<float>>(
      x.cast<float>(), wq.cast<float>(), wk.cast<float>(), wv.cast<float>(), wo.cast<float>(),
      posenc::T5Encoding<float>(t5f), of, g.cast<float>());
  const auto close = [](const Matrix<float>& a, const Matrix<double>& b, const char* what) {
    INFO(what);
    const double mag = std::max(1.0, b.cwiseAbs().maxCoeff());
    REQUIRE(posenc_test::max_abs_diff(a.cast<double>(), b) <= 2e-5 * mag);
  };
  close(rf.dx, rd.dx, "dX");
  close(rf.dwq, rd.dwq, "dWq");
  close(rf.dwk, rd.dwk, "dWk");
  close(rf.dwv, rd.dwv, "dWv");
  close(rf.dwo, rd.dwo, "dWo");
  close(rf.encoder.table, rd.encoder.table, "dT");
  for (std::size_t h = 0; h < 4; ++h)
    REQUIRE(std::fabs(rf.dsinks[h] - rd.dsinks[h]) <=
            2e-5 * std::max(1.0, std::fabs(rd.dsinks[h])));
}

TEST_CASE("gradients: bad shapes are errors", "[gradients]") {
  const Matrix<double> q = random_matrix<double>(4, 8, 1), k = random_matrix<double>(4, 8, 2);
  const Positions p(0, 4);
  AttendOptions<double> opt;
  opt.heads = 2;
  Matrix<double> o(4, 8), lse(2, 4);
  posenc::attend(posenc::NoEncoding<double>{}, q, k, k, p, p, opt, o, lse);
  posenc_test::require_error(
      [&] {
        posenc::attend_backward(posenc::NoEncoding<double>{}, q, k, k, p, p, opt, o, lse,
                                Matrix<double>(3, 8));
      },
      {"dout is [3, 8]", "expected the shape of out [4, 8]"});
  posenc_test::require_error(
      [&] {
        posenc::attend_backward(posenc::NoEncoding<double>{}, q, k, k, p, p, opt, o,
                                Matrix<double>(1, 4), o);
      },
      {"lse is [1, 4]", "[H, Nq] = [2, 4]"});
  Matrix<double> bad(1, 4);
  posenc_test::require_error(
      [&] { posenc::attend(posenc::NoEncoding<double>{}, q, k, k, p, p, opt, o, bad); },
      {"lse is [1, 4]"});
}
