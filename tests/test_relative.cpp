// Relative encodings (conventions.md section 5): T5 buckets and bias against the float64
// reference, Shaw and Transformer-XL score-bias objects against the formulas computed here
// in double, and their input checks. (Full-attention goldens live in test_attention.cpp.)
#include "test_support.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

using namespace posenc_test;
using posenc::Positions;
using posenc::ShawEncoding;
using posenc::T5Encoding;
using posenc::T5Options;
using posenc::TransformerXLEncoding;
using posenc::TransformerXLOptions;

namespace {

struct Tile {
  Index i0, j0, bi, bj;
};

// Tiles of [nq, nk] in blocks of bq x bk, so that most tiles have i0 > 0 and j0 > 0 and the
// last ones are ragged.
std::vector<Tile> tiling(Index nq, Index nk, Index bq, Index bk) {
  std::vector<Tile> t;
  for (Index i0 = 0; i0 < nq; i0 += bq)
    for (Index j0 = 0; j0 < nk; j0 += bk)
      t.push_back({i0, j0, std::min(bq, nq - i0), std::min(bk, nk - j0)});
  return t;
}

// Float tolerances for the content terms computed in T (sums of a few dozen products of O(1)
// numbers): 1e-5 float, 1e-12 double, relative to the larger of 1 and the result's magnitude.
template <class T>
double content_tolerance(double magnitude) {
  return (std::is_same<T, float>::value ? 1e-5 : 1e-12) * std::max(1.0, magnitude);
}

double max_abs(const Matrix<double>& m) {
  return m.size() ? m.cwiseAbs().maxCoeff() : 0.0;
}

// T5 bias of every head from the score-bias object on zero tiles.
template <class T>
Matrix<T> t5_bias_via_add(const T5Encoding<T>& enc, Index h, const Positions& qp,
                          const Positions& kp, Index bq, Index bk) {
  const auto b = enc.score_bias(qp, kp, enc.heads(), 4, T(1));
  Matrix<T> s = Matrix<T>::Zero(qp.size(), kp.size());
  const Matrix<T> q = Matrix<T>::Zero(qp.size(), 4), k = Matrix<T>::Zero(kp.size(), 4);
  for (const Tile& t : tiling(qp.size(), kp.size(), bq, bk))
    b.add(h, t.i0, t.j0, q.middleRows(t.i0, t.bi), k.middleRows(t.j0, t.bj),
          s.block(t.i0, t.j0, t.bi, t.bj));
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------ T5

TEST_CASE("t5: buckets match the reference for every rel", "[t5]") {
  struct Config {
    Index nb, md;
  };
  const Config small[] = {{32, 128}, {16, 64}, {64, 256}, {8, 20}, {256, 4096}, {128, 128}};
  const Config big[] = {{256, 4096}, {32, 128}};
  const auto check_file = [](const std::vector<std::int64_t>& rel, const std::string& file,
                             Index nb, Index md, bool bidir) {
    INFO(file);
    const auto ref = load_ints(file);
    REQUIRE(ref.size() == rel.size());
    // The encoder's own bucket() on a table of nb buckets must agree too.
    const T5Encoding<double> enc(Matrix<double>::Zero(nb, 1), T5Options{md, bidir});
    std::size_t mismatches = 0, enc_mismatches = 0;
    for (std::size_t i = 0; i < rel.size(); ++i) {
      const Index got = posenc::t5_bucket(rel[i], nb, md, bidir);
      if (got != ref[i]) {
        if (mismatches == 0)
          UNSCOPED_INFO("first mismatch: rel " << rel[i] << " got " << got << " expected "
                                               << ref[i]);
        ++mismatches;
      }
      if (enc.bucket(rel[i]) != ref[i]) ++enc_mismatches;
    }
    CHECK(mismatches == 0);
    CHECK(enc_mismatches == 0);
  };
  const auto rel = load_ints("t5_rel");
  REQUIRE(rel.size() == 6001);
  for (const auto& c : small)
    for (bool bidir : {true, false})
      check_file(rel,
                 "t5_buckets_nb" + std::to_string(c.nb) + "_md" + std::to_string(c.md) +
                     (bidir ? "_bidir" : "_causal"),
                 c.nb, c.md, bidir);
  const auto bigrel = load_ints("t5_bigrel");
  REQUIRE(bigrel.size() == 403);
  for (const auto& c : big)
    for (bool bidir : {true, false})
      check_file(bigrel,
                 "t5_bigrel_buckets_nb" + std::to_string(c.nb) + "_md" + std::to_string(c.md) +
                     (bidir ? "_bidir" : "_causal"),
                 c.nb, c.md, bidir);
}

TEST_CASE("t5: known bucket values worked out by hand", "[t5]") {
  // Default num_buckets 32, max_distance 128, bidirectional: nb = 16, e = 8; rel > 0 adds 16.
  //   rel 0 -> n 0 < 8 -> 0;  rel -1 -> 1;  rel 1 -> 16 + 1 = 17;  rel -7 -> 7;
  //   rel -8 -> n = e: 8 + trunc(ln(8/8)/ln(128/8) * 8) = 8 + 0 = 8;
  //   rel -12 -> 8 + trunc(ln(1.5)/ln(16) * 8) = 8 + trunc(0.4055/2.7726 * 8 = 1.17) = 9;
  //   rel -1000 -> 8 + trunc(ln(125)/ln(16) * 8 = 13.93) = 21, capped at nb - 1 = 15;
  //   rel 1000 -> 16 + 15 = 31.
  CHECK(posenc::t5_bucket(0) == 0);
  CHECK(posenc::t5_bucket(-1) == 1);
  CHECK(posenc::t5_bucket(1) == 17);
  CHECK(posenc::t5_bucket(-7) == 7);
  CHECK(posenc::t5_bucket(7) == 23);
  CHECK(posenc::t5_bucket(-8) == 8);
  CHECK(posenc::t5_bucket(-12) == 9);
  CHECK(posenc::t5_bucket(-1000) == 15);
  CHECK(posenc::t5_bucket(1000) == 31);
  // Causal (32, 128): nb = 32, e = 16, n = max(-rel, 0).
  //   rel 5 -> n 0 -> 0;  rel -5 -> 5;  rel -16 -> 16 + trunc(ln 1 ...) = 16;
  //   rel -20 -> 16 + trunc(ln(1.25)/ln(8) * 16 = 0.2231/2.0794 * 16 = 1.72) = 17;
  //   rel -1000 -> 16 + trunc(ln(62.5)/ln(8) * 16 = 31.8) = 47, capped at 31.
  CHECK(posenc::t5_bucket(5, 32, 128, false) == 0);
  CHECK(posenc::t5_bucket(0, 32, 128, false) == 0);
  CHECK(posenc::t5_bucket(-5, 32, 128, false) == 5);
  CHECK(posenc::t5_bucket(-16, 32, 128, false) == 16);
  CHECK(posenc::t5_bucket(-20, 32, 128, false) == 17);
  CHECK(posenc::t5_bucket(-1000, 32, 128, false) == 31);
  // Far beyond max_distance and near the int64 edge: capped, never a log of 0 or overflow.
  CHECK(posenc::t5_bucket(std::int64_t(1) << 40) == 31);
  CHECK(posenc::t5_bucket(-(std::int64_t(1) << 40)) == 15);
  CHECK(posenc::t5_bucket(-(std::int64_t(1) << 40), 32, 128, false) == 31);
}

TEMPLATE_TEST_CASE("t5: bias matches the reference for bidirectional and causal buckets", "[t5]",
                   float, double) {
  using T = TestType;
  const Matrix<T> table = load<T>("t5_table");
  REQUIRE(table.rows() == 32);
  REQUIRE(table.cols() == 3);
  const Positions p(0, 6);
  for (bool bidir : {true, false}) {
    INFO((bidir ? "bidirectional" : "causal"));
    const Matrix<double> ref = load<double>(bidir ? "t5_bias_H3_N6_bidir" : "t5_bias_H3_N6_causal");
    REQUIRE(ref.rows() == 3);
    REQUIRE(ref.cols() == 36);
    const T5Encoding<T> enc(table, T5Options{128, bidir});
    for (Index h = 0; h < 3; ++h) {
      INFO("head " << h);
      const Matrix<double> refh = Eigen::Map<const Matrix<double>>(ref.row(h).data(), 6, 6);
      // Table entries are copied, so float matches the float32-exact inputs exactly;
      // -inf entries (p_j > p_i) must be -inf on both sides.
      const Matrix<T> got = enc.bias(h, p, p, !bidir);
      CHECK(max_abs_diff(got, refh) <= tolerance<T>());
      for (Index i = 0; i < 6; ++i)
        for (Index j = 0; j < 6; ++j)
          CHECK(std::isinf(static_cast<double>(got(i, j))) == std::isinf(refh(i, j)));
    }
  }
}

TEMPLATE_TEST_CASE("t5: score_bias add equals bias on dense and sparse positions", "[t5]", float,
                   double) {
  using T = TestType;
  const Matrix<T> table = load<T>("t5_table");
  for (bool bidir : {true, false}) {
    INFO((bidir ? "bidirectional" : "causal"));
    const T5Encoding<T> enc(table, T5Options{128, bidir});
    struct Case {
      const char* name;
      Positions q, k;
      bool dense;
    };
    const Case cases[] = {
        {"same range", Positions(0, 9), Positions(0, 9), true},
        {"queries after cached keys", Positions(40, 7), Positions(0, 47), true},
        {"explicit, unsorted", Positions({9, 2, 150, 3}), Positions({0, 300, 2, 7, 151}), true},
        {"explicit, widely spread", Positions({0, 5, 3000000}), Positions({3000000, 0, 5}), false},
        {"explicit, widely spread, uneven", Positions({7, 2999990, 1, 3000000}),
         Positions({0, 5, 3000000, 2999999, 123}), false},
    };
    for (const auto& c : cases) {
      INFO(c.name);
      // The case exercises the path it names (a dense table over the rel range or not).
      const auto b = enc.score_bias(c.q, c.k, 3, 4, T(1));
      CHECK((b.values.size() > 0) == c.dense);
      for (Index h = 0; h < 3; ++h) {
        INFO("head " << h);
        const Matrix<T> ref = enc.bias(h, c.q, c.k, false);
        // Zero tile + T[bucket] is exactly T[bucket].
        CHECK(max_abs_diff(t5_bias_via_add(enc, h, c.q, c.k, 2, 3), ref) == 0.0);
        CHECK(max_abs_diff(t5_bias_via_add(enc, h, c.q, c.k, 64, 64), ref) == 0.0);
        // And bias() itself is T[t5_bucket(p_j - p_i), h].
        double worst = 0.0;
        for (Index i = 0; i < c.q.size(); ++i)
          for (Index j = 0; j < c.k.size(); ++j)
            worst = std::max(
                worst, std::abs(static_cast<double>(ref(i, j)) -
                                static_cast<double>(
                                    table(posenc::t5_bucket(c.k[j] - c.q[i], 32, 128, bidir), h))));
        CHECK(worst == 0.0);
      }
    }
  }
}

TEST_CASE("t5: bad input throws posenc::error naming the parameter", "[t5][errors]") {
  require_error([] { posenc::t5_bucket(0, 3, 128, true); },
                {"num_buckets = 3", "bidirectional", ">= 4"});
  require_error([] { posenc::t5_bucket(0, 0, 128, true); }, {"num_buckets = 0"});
  require_error([] { posenc::t5_bucket(0, 1, 128, false); }, {"num_buckets = 1", "causal", ">= 2"});
  // max_distance must exceed the exact range e = nb/2 (bidirectional 32: 8; causal 32: 16).
  require_error([] { posenc::t5_bucket(0, 32, 8, true); },
                {"max_distance = 8", "num_buckets/4 = 8"});
  require_error([] { posenc::t5_bucket(0, 32, 5, true); },
                {"max_distance = 5", "num_buckets/4 = 8"});
  require_error([] { posenc::t5_bucket(0, 32, 16, false); },
                {"max_distance = 16", "num_buckets/2 = 16"});
  require_error([] { T5Encoding<float>(Matrix<float>::Zero(3, 2)); }, {"num_buckets = 3"});
  require_error(
      [] {
        T5Encoding<float>(Matrix<float>::Zero(32, 2), T5Options{8, true});
      },
      {"max_distance = 8"});
  require_error([] { T5Encoding<float>(Matrix<float>::Zero(32, 0)); }, {"[32, 0]"});
  const T5Encoding<float> enc(Matrix<float>::Zero(32, 3));
  require_error([&] { enc.check(posenc::AttentionShape{16, 2, 2, 8}); }, {"3 heads", "H = 2"});
  require_error([&] { enc.score_bias(Positions(0, 2), Positions(0, 2), 4, 4, 1.0f); },
                {"3 heads", "H = 4"});
  require_error([&] { enc.bias(3, Positions(0, 2), Positions(0, 2)); }, {"head h = 3", "[0, 3)"});
}

// ---------------------------------------------------------------------------------- Shaw

TEMPLATE_TEST_CASE("shaw: score and value terms match the formula on tiles", "[shaw]", float,
                   double) {
  using T = TestType;
  // e_ij = scale (q_i k_j + q_i A_K[r]),  z_i = sum_j p_ij (v_j + A_V[r]),
  // r(i, j) = clip(p_j - p_i, -K, K) + K. add() adds the A_K term, add_values the A_V term.
  const Index kmax = 3, dh = 6, heads = 2;
  const Matrix<T> ak = random_matrix<T>(2 * kmax + 1, dh, 41);
  const Matrix<T> av = random_matrix<T>(2 * kmax + 1, dh, 42);
  const ShawEncoding<T> enc(ak, av);
  CHECK(enc.max_relative() == kmax);
  CHECK(enc.head_dim() == dh);
  const T scale = T(0.37);
  struct Case {
    const char* name;
    Positions q, k;
  };
  const Case cases[] = {
      {"queries after cached keys", Positions(5, 7), Positions(0, 12)},
      {"same range with offset", Positions(20, 9), Positions(20, 9)},
      {"explicit, widely spread", Positions({0, 5, 3000000, 2}), Positions({3000001, 4, 0, 9, 1})},
  };
  std::uint64_t seed = 50;
  for (const auto& c : cases) {
    INFO(c.name);
    const Index nq = c.q.size(), nk = c.k.size();
    const auto b = enc.score_bias(c.q, c.k, heads, dh, scale);
    for (Index h = 0; h < heads; ++h) {
      INFO("head " << h);
      const Matrix<T> q = random_matrix<T>(nq, dh, ++seed), k = random_matrix<T>(nk, dh, ++seed);
      const Matrix<T> p = random_matrix<T>(nq, nk, ++seed).cwiseAbs();  // unnormalised weights
      // Direct double computation from the formula.
      Matrix<double> s_ref(nq, nk), z_ref = Matrix<double>::Zero(nq, dh);
      for (Index i = 0; i < nq; ++i)
        for (Index j = 0; j < nk; ++j) {
          const std::int64_t rel =
              std::min<std::int64_t>(std::max<std::int64_t>(c.k[j] - c.q[i], -kmax), kmax);
          const Index r = static_cast<Index>(rel + kmax);
          double dot = 0.0;
          for (Index d = 0; d < dh; ++d)
            dot += static_cast<double>(q(i, d)) * static_cast<double>(ak(r, d));
          s_ref(i, j) = static_cast<double>(scale) * dot;
          for (Index d = 0; d < dh; ++d)
            z_ref(i, d) += static_cast<double>(p(i, j)) * static_cast<double>(av(r, d));
        }
      for (const Index bq : {Index(2), Index(3), Index(64)}) {
        INFO("tiles of " << bq << " x " << bq + 1);
        Matrix<T> s = Matrix<T>::Zero(nq, nk), z = Matrix<T>::Zero(nq, dh);
        for (const Tile& t : tiling(nq, nk, bq, bq + 1)) {
          b.add(h, t.i0, t.j0, q.middleRows(t.i0, t.bi), k.middleRows(t.j0, t.bj),
                s.block(t.i0, t.j0, t.bi, t.bj));
          b.add_values(h, t.i0, t.j0, p.block(t.i0, t.j0, t.bi, t.bj), z.middleRows(t.i0, t.bi));
        }
        CHECK(max_abs_diff(s, s_ref) <= content_tolerance<T>(max_abs(s_ref)));
        CHECK(max_abs_diff(z, z_ref) <= content_tolerance<T>(max_abs(z_ref)));
      }
      // add() accumulates onto the existing scores.
      Matrix<T> s = Matrix<T>::Constant(nq, nk, T(2));
      b.add(h, 0, 0, q, k, s);
      CHECK(max_abs_diff(s, (s_ref.array() + 2.0).matrix()) <=
            content_tolerance<T>(max_abs(s_ref) + 2.0));
    }
  }
}

TEST_CASE("shaw: bad input throws posenc::error naming the parameter", "[shaw][errors]") {
  using M = Matrix<float>;
  require_error([] { ShawEncoding<float>(M::Zero(6, 8), M::Zero(6, 8)); },
                {"A_K is [6, 8]", "2K+1", "odd"});
  require_error([] { ShawEncoding<float>(M::Zero(0, 8), M::Zero(0, 8)); }, {"A_K is [0, 8]"});
  require_error([] { ShawEncoding<float>(M::Zero(7, 8), M::Zero(7, 4)); },
                {"A_V is [7, 4]", "A_K [7, 8]"});
  require_error([] { ShawEncoding<float>(M::Zero(7, 8), M::Zero(5, 8)); },
                {"A_V is [5, 8]", "A_K [7, 8]"});
  M bad = M::Zero(7, 8);
  bad(3, 2) = NAN;
  require_error([&] { ShawEncoding<float>(bad, M::Zero(7, 8)); }, {"A_K or A_V", "non-finite"});
  const ShawEncoding<float> enc(M::Zero(7, 8), M::Zero(7, 8));
  require_error([&] { enc.check(posenc::AttentionShape{18, 2, 2, 9}); }, {"Dh = 8", "Dh = 9"});
  require_error([&] { enc.check(posenc::AttentionShape{16, 4, 1, 4}); }, {"Dh = 8", "Dh = 4"});
  require_error([&] { enc.score_bias(Positions(0, 2), Positions(0, 2), 2, 4, 1.0f); },
                {"Dh = 8", "Dh = 4"});
}

// ------------------------------------------------------------------------- Transformer-XL

namespace {

// r_d = R_d W_R in double, R_d the split sinusoid of d over D dimensions:
// R_d[i] = sin(d w_i), R_d[D/2 + i] = cos(d w_i), w_i = base^(-2i/D).
template <class T>
std::vector<double> xl_r(std::int64_t d, const Matrix<T>& w_r, double base) {
  const Index dm = w_r.rows();
  std::vector<double> rd(static_cast<std::size_t>(dm)), out(static_cast<std::size_t>(dm), 0.0);
  for (Index i = 0; i < dm / 2; ++i) {
    const double w = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(dm));
    rd[static_cast<std::size_t>(i)] = std::sin(static_cast<double>(d) * w);
    rd[static_cast<std::size_t>(dm / 2 + i)] = std::cos(static_cast<double>(d) * w);
  }
  for (Index a = 0; a < dm; ++a)
    for (Index c = 0; c < dm; ++c)
      out[static_cast<std::size_t>(c)] +=
          rd[static_cast<std::size_t>(a)] * static_cast<double>(w_r(a, c));
  return out;
}

// What add() must add for head h: scale (u_h k_j + (q_i + v_h) r_{d,h}), d = clamp(p_i - p_j).
template <class T>
Matrix<double> xl_expected(const Matrix<T>& u, const Matrix<T>& v, const Matrix<T>& w_r,
                           std::int64_t clamp_len, double scale, Index h, const Matrix<T>& q,
                           const Matrix<T>& k, const Positions& qp, const Positions& kp) {
  const Index dh = u.cols();
  Matrix<double> e(qp.size(), kp.size());
  for (Index i = 0; i < qp.size(); ++i)
    for (Index j = 0; j < kp.size(); ++j) {
      std::int64_t d = qp[i] - kp[j];
      if (clamp_len >= 0) d = std::min(std::max(d, -clamp_len), clamp_len);
      const auto r = xl_r(d, w_r, 10000.0);
      double acc = 0.0;
      for (Index c = 0; c < dh; ++c) {
        acc += static_cast<double>(u(h, c)) * static_cast<double>(k(j, c));
        acc += (static_cast<double>(q(i, c)) + static_cast<double>(v(h, c))) *
               r[static_cast<std::size_t>(h * dh + c)];
      }
      e(i, j) = scale * acc;
    }
  return e;
}

template <class B, class T>
Matrix<T> xl_tiles(const B& b, Index h, const Matrix<T>& q, const Matrix<T>& k, Index bq,
                   Index bk) {
  Matrix<T> s = Matrix<T>::Zero(q.rows(), k.rows());
  for (const Tile& t : tiling(q.rows(), k.rows(), bq, bk))
    b.add(h, t.i0, t.j0, q.middleRows(t.i0, t.bi), k.middleRows(t.j0, t.bj),
          s.block(t.i0, t.j0, t.bi, t.bj));
  return s;
}

}  // namespace

TEMPLATE_TEST_CASE("xl: score terms match the formula on tiles with and without clamp_len", "[xl]",
                   float, double) {
  using T = TestType;
  const Index heads = 2, dh = 4, dm = heads * dh;
  const Matrix<T> u = random_matrix<T>(heads, dh, 61), v = random_matrix<T>(heads, dh, 62);
  const Matrix<T> w_r = random_matrix<T>(dm, dm, 63, 1.0 / std::sqrt(static_cast<double>(dm)));
  const T scale = T(1.0 / std::sqrt(static_cast<double>(dh)));
  struct Case {
    const char* name;
    Positions q, k;
    bool dense;
  };
  std::uint64_t seed = 70;
  for (std::int64_t clamp_len : {std::int64_t(-1), std::int64_t(3)}) {
    INFO("clamp_len " << clamp_len);
    TransformerXLOptions o;
    o.clamp_len = clamp_len;
    const TransformerXLEncoding<T> enc(u, v, w_r, o);
    const Case cases[] = {
        {"queries after memory (causal layout)", Positions(5, 7), Positions(0, 12), true},
        {"same range with offset", Positions(30, 9), Positions(30, 9), true},
        {"explicit, unsorted", Positions({9, 2, 15, 3}), Positions({0, 30, 2, 7, 16}), true},
        // Widely spread: sparse unless clamp_len folds every distance into [-3, 3].
        {"explicit, widely spread", Positions({0, 5, 3000000, 7}),
         Positions({3000000, 1, 5, 2999998, 0}), clamp_len >= 0},
    };
    for (const auto& c : cases) {
      INFO(c.name);
      const auto b = enc.score_bias(c.q, c.k, heads, dh, scale);
      CHECK(b.dense == c.dense);  // the case exercises the path it names
      for (Index h = 0; h < heads; ++h) {
        INFO("head " << h);
        const Matrix<T> q = random_matrix<T>(c.q.size(), dh, ++seed);
        const Matrix<T> k = random_matrix<T>(c.k.size(), dh, ++seed);
        const Matrix<double> ref =
            xl_expected(u, v, w_r, clamp_len, static_cast<double>(scale), h, q, k, c.q, c.k);
        const double tol = content_tolerance<T>(max_abs(ref));
        CHECK(max_abs_diff(xl_tiles(b, h, q, k, 2, 3), ref) <= tol);
        CHECK(max_abs_diff(xl_tiles(b, h, q, k, 3, 2), ref) <= tol);
        CHECK(max_abs_diff(xl_tiles(b, h, q, k, 64, 64), ref) <= tol);
      }
    }
  }
}

TEMPLATE_TEST_CASE("xl: the sparse path agrees with the dense path", "[xl]", float, double) {
  using T = TestType;
  // Widely spread explicit positions force the sparse path; each pair (p_i, p_j) on its own
  // (one query, one key) takes the dense path. Both compute the same entries in T.
  const Index heads = 3, dh = 4, dm = heads * dh;
  const Matrix<T> u = random_matrix<T>(heads, dh, 81), v = random_matrix<T>(heads, dh, 82);
  const Matrix<T> w_r = random_matrix<T>(dm, dm, 83, 1.0 / std::sqrt(static_cast<double>(dm)));
  const TransformerXLEncoding<T> enc(u, v, w_r);
  const Positions qp({0, 5, 3000000, 17}), kp({3000000, 0, 5, 9, 2999999});
  const T scale = T(0.5);
  const auto sparse = enc.score_bias(qp, kp, heads, dh, scale);
  REQUIRE_FALSE(sparse.dense);
  std::uint64_t seed = 90;
  for (Index h = 0; h < heads; ++h) {
    INFO("head " << h);
    const Matrix<T> q = random_matrix<T>(qp.size(), dh, ++seed);
    const Matrix<T> k = random_matrix<T>(kp.size(), dh, ++seed);
    const Matrix<T> got = xl_tiles(sparse, h, q, k, 2, 2);
    Matrix<T> dense(qp.size(), kp.size());
    for (Index i = 0; i < qp.size(); ++i)
      for (Index j = 0; j < kp.size(); ++j) {
        const auto one = enc.score_bias(Positions({qp[i]}), Positions({kp[j]}), heads, dh, scale);
        REQUIRE(one.dense);
        Matrix<T> s = Matrix<T>::Zero(1, 1);
        one.add(h, 0, 0, q.row(i), k.row(j), s);
        dense(i, j) = s(0, 0);
      }
    const Matrix<double> dense_d = dense.template cast<double>();
    CHECK(max_abs_diff(got, dense_d) <= content_tolerance<T>(max_abs(dense_d)));
    CHECK(max_abs(dense_d) > 0.1);  // not vacuous
  }
}

TEST_CASE("xl: bad input throws posenc::error naming the parameter", "[xl][errors]") {
  using M = Matrix<float>;
  using E = TransformerXLEncoding<float>;
  require_error([] { E(M::Zero(2, 8), M::Zero(2, 4), M::Zero(16, 16)); },
                {"v is [2, 4]", "u [2, 8]"});
  require_error([] { E(M::Zero(2, 8), M::Zero(3, 8), M::Zero(16, 16)); },
                {"v is [3, 8]", "u [2, 8]"});
  require_error([] { E(M::Zero(0, 8), M::Zero(0, 8), M::Zero(0, 0)); }, {"u is [0, 8]"});
  // W_R is [D, H Dh]: its columns must be H Dh = 16; its rows D are the model width
  require_error([] { E(M::Zero(2, 8), M::Zero(2, 8), M::Zero(16, 8)); },
                {"W_R is [16, 8]", "[D, H * Dh] = [D, 16]"});
  require_error([] { E(M::Zero(2, 8), M::Zero(2, 8), M::Zero(8, 8)); },
                {"W_R is [8, 8]", "[D, 16]"});
  CHECK_NOTHROW(E(M::Zero(2, 8), M::Zero(2, 8), M::Zero(24, 16)));
  require_error([] { E(M::Zero(1, 3), M::Zero(1, 3), M::Zero(3, 3)); }, {"D = 3", "even"});
  require_error(
      [] {
        TransformerXLOptions o;
        o.base = 0.0;
        E(M::Zero(2, 8), M::Zero(2, 8), M::Zero(16, 16), o);
      },
      {"base = 0"});
  const E enc(M::Zero(2, 8), M::Zero(2, 8), M::Zero(16, 16));
  require_error([&] { enc.check(posenc::AttentionShape{16, 4, 4, 8}); }, {"H = 2", "H = 4"});
  require_error([&] { enc.check(posenc::AttentionShape{24, 2, 2, 8}); }, {"D = 16", "D = 24"});
  require_error([&] { enc.score_bias(Positions(0, 2), Positions(0, 2), 3, 8, 1.0f); },
                {"[2, 8]", "[H, Dh] = [3, 8]"});
  require_error([&] { enc.score_bias(Positions(0, 2), Positions(0, 2), 2, 4, 1.0f); },
                {"[2, 8]", "[H, Dh] = [2, 4]"});
}
