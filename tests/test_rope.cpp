// Rotary position embedding (conventions.md section 3) against the float64 reference, its
// precision at large positions, its cache, its algebraic properties and its input checks.
#include "test_support.hpp"

#include <cmath>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

using namespace posenc_test;
using posenc::AttentionShape;
using posenc::Positions;
using posenc::RopeScaling;
using posenc::RotaryEncoding;
using posenc::RotaryLayout;
using posenc::RotaryOptions;

namespace {

// rope_x is [N=6, H=2, Dh=16] (README).
constexpr Index kHeads = 2;
constexpr Index kHeadDim = 16;

RotaryOptions layout_opts(RotaryLayout layout, Index rotary_dim = 0) {
  RotaryOptions o;
  o.layout = layout;
  o.rotary_dim = rotary_dim;
  return o;
}

RotaryOptions scaled(RopeScaling s, double factor) {
  RotaryOptions o;
  o.scaling = s;
  o.factor = factor;
  return o;
}

RotaryOptions dynamic_f4_m8() {
  RotaryOptions o = scaled(RopeScaling::dynamic, 4.0);
  o.original_max_positions = 8;
  return o;
}

// yarn factor 4, M = 4096, beta_fast 32, beta_slow 1, truncate (the README's rope_yarn).
RotaryOptions yarn_f4(Index rotary_dim = 0) {
  RotaryOptions o = scaled(RopeScaling::yarn, 4.0);
  o.original_max_positions = 4096;
  o.rotary_dim = rotary_dim;
  return o;
}

RotaryOptions yarn_notrunc() {
  RotaryOptions o = yarn_f4();
  o.truncate = false;
  return o;
}

RotaryOptions yarn_mscale() {
  RotaryOptions o = yarn_f4();
  o.mscale = 1.0;
  o.mscale_all_dim = 0.5;
  return o;
}

RotaryOptions yarn_attnfac() {
  RotaryOptions o = yarn_f4();
  o.attention_factor = 1.3;
  return o;
}

// llama3 with base 500000 and the documented defaults factor 8, low 1, high 4, M = 8192.
RotaryOptions llama3(bool explicit_parameters) {
  RotaryOptions o;
  o.base = 500000.0;
  o.scaling = RopeScaling::llama3;
  if (explicit_parameters) {
    o.factor = 8.0;
    o.original_max_positions = 8192;
    o.low_freq_factor = 1.0;
    o.high_freq_factor = 4.0;
  }
  return o;
}

// longrope M = 8, factor 4 with the README's short and long factor files.
RotaryOptions longrope() {
  RotaryOptions o = scaled(RopeScaling::longrope, 4.0);
  o.original_max_positions = 8;
  o.short_factors = load_vector("rope_longrope_short_factors");
  o.long_factors = load_vector("rope_longrope_long_factors");
  return o;
}

double max_abs(const Matrix<double>& m) {
  return m.cwiseAbs().maxCoeff();
}

// The dot product of head h of row i of a and of row j of b, in double.
template <class T>
double head_dot(const Matrix<T>& a, Index i, const Matrix<T>& b, Index j, Index h, Index dh) {
  double s = 0.0;
  for (Index c = h * dh; c < (h + 1) * dh; ++c)
    s += static_cast<double>(a(i, c)) * static_cast<double>(b(j, c));
  return s;
}

template <class T>
double head_norm(const Matrix<T>& a, Index i, Index h, Index dh) {
  return std::sqrt(head_dot(a, i, a, i, h, dh));
}

// Rows of x, rotated at one position each.
template <class T>
Matrix<T> rotated(const RotaryEncoding<T>& enc, Matrix<T> x, const Positions& pos, Index heads) {
  enc.rotate(x, pos, heads);
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("rope: every rope golden file matches the float64 reference", "[rope]", float,
                   double) {
  using T = TestType;
  struct Case {
    const char* file;
    RotaryOptions options;
    std::int64_t offset;
  };
  const std::vector<Case> cases = {
      {"rope_half", layout_opts(RotaryLayout::half), 0},
      {"rope_interleaved", layout_opts(RotaryLayout::interleaved), 0},
      {"rope_half_offset7", layout_opts(RotaryLayout::half), 7},
      {"rope_half_R8", layout_opts(RotaryLayout::half, 8), 7},
      {"rope_interleaved_R8", layout_opts(RotaryLayout::interleaved, 8), 7},
      {"rope_linear_f4", scaled(RopeScaling::linear, 4.0), 3},
      {"rope_ntk_f4", scaled(RopeScaling::ntk, 4.0), 3},
      {"rope_dynamic_f4_M8_long", dynamic_f4_m8(), 10},  // L = 16 > M = 8: scaled base
      {"rope_dynamic_f4_M8_short", dynamic_f4_m8(), 0},  // L = 6 <= M: unscaled
      {"rope_yarn", yarn_f4(), 100},
      {"rope_yarn_notrunc", yarn_notrunc(), 100},
      {"rope_yarn_mscale", yarn_mscale(), 100},
      {"rope_yarn_attnfac", yarn_attnfac(), 100},
      {"rope_yarn_R8", yarn_f4(8), 100},
      {"rope_llama3", llama3(false), 100},     // defaults factor 8, M 8192
      {"rope_llama3", llama3(true), 100},      // the same, spelled out
      {"rope_longrope_short", longrope(), 0},  // L = 6 <= M = 8: short factors
      {"rope_longrope_long", longrope(), 5},   // L = 11 > M = 8: long factors
  };
  const Matrix<T> x = load<T>("rope_x");
  REQUIRE(x.rows() == 6);
  REQUIRE(x.cols() == kHeads * kHeadDim);
  for (const auto& c : cases) {
    INFO(c.file << " offset " << c.offset);
    const Matrix<double> ref = load<double>(c.file);
    // Tolerance: tolerance<T> (2e-6 float, 1e-12 double) relative to the largest |output|.
    const double tol = tolerance<T>(max_abs(ref));
    for (Index limit : {Index(-1), Index(0)}) {  // -1: default cache, 0: none
      RotaryEncoding<T> enc(kHeadDim, c.options);
      if (limit == 0) enc.set_cache_limit(0);  // the uncached path too
      INFO("cache limit " << limit);
      Matrix<T> y = x;
      enc.rotate(y, Positions(c.offset, x.rows()), kHeads);
      CHECK(max_abs_diff(y, ref) <= tol);
    }
  }

  SECTION("explicit positions, interleaved") {
    const Positions pos(load_ints("rope_explicit_positions"));
    const Matrix<double> ref = load<double>("rope_interleaved_explicit");
    const RotaryEncoding<T> enc(kHeadDim, layout_opts(RotaryLayout::interleaved));
    Matrix<T> y = x;
    enc.rotate(y, pos, kHeads);
    CHECK(max_abs_diff(y, ref) <= tolerance<T>(max_abs(ref)));
    // Each head on its own through the single-head form gives the same columns.
    for (Index h = 0; h < kHeads; ++h) {
      Matrix<T> xh = x.middleCols(h * kHeadDim, kHeadDim);
      enc.rotate(xh, pos);
      const Matrix<double> refh = ref.middleCols(h * kHeadDim, kHeadDim);
      CHECK(max_abs_diff(xh, refh) <= tolerance<T>(max_abs(ref)));
    }
  }
}

TEST_CASE("rope: effective inv_freq matches the rope_inv_freq files", "[rope]") {
  struct Case {
    const char* file;
    RotaryOptions options;
    std::int64_t max_position;  // the largest position of the matching rope_<case> file
  };
  const std::vector<Case> cases = {
      {"rope_inv_freq_yarn", yarn_f4(), 105},
      {"rope_inv_freq_yarn_notrunc", yarn_notrunc(), 105},
      {"rope_inv_freq_llama3", llama3(false), 105},
      {"rope_inv_freq_ntk_f4", scaled(RopeScaling::ntk, 4.0), 8},
      {"rope_inv_freq_dynamic_f4_M8_long", dynamic_f4_m8(), 15},
      {"rope_inv_freq_longrope_long", longrope(), 10},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const auto ref = load_vector(c.file);
    const RotaryEncoding<double> enc(kHeadDim, c.options);
    const auto got = enc.inv_freq(c.max_position);
    REQUIRE(got.size() == ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) {
      INFO("i = " << i << ": " << got[i] << " vs " << ref[i]);
      CHECK(std::abs(got[i] - ref[i]) <= 1e-12 * std::abs(ref[i]));
    }
  }
  // dynamic at L <= M and longrope at L <= M do not use the scaled set: they equal the
  // unscaled base^(-2i/R) and the short factors' set (computed here from the formula).
  const RotaryEncoding<double> dyn(kHeadDim, dynamic_f4_m8());
  const RotaryOptions lr = longrope();
  const RotaryEncoding<double> lre(kHeadDim, lr);
  const auto d7 = dyn.inv_freq(7), l7 = lre.inv_freq(7), l8 = lre.inv_freq(8);
  for (std::size_t i = 0; i < 8; ++i) {
    const double plain = std::pow(10000.0, -2.0 * static_cast<double>(i) / 16.0);
    CHECK(std::abs(d7[i] - plain) <= 1e-12 * plain);
    CHECK(std::abs(l7[i] - plain / lr.short_factors[i]) <= 1e-12 * plain);
    CHECK(std::abs(l8[i] - plain / lr.long_factors[i]) <= 1e-12 * plain);
  }
}

namespace {

// RoPE of x [N, heads * head_dim] at pos with the given inv_freq (R = 2 * inv_freq.size()) and
// attention factor, in double, written from conventions.md section 3 (independent of the code
// under test).
Matrix<double> reference_rope(const Matrix<double>& x, const Positions& pos,
                              const std::vector<double>& inv_freq, RotaryLayout layout, Index heads,
                              Index head_dim, double af = 1.0) {
  Matrix<double> y = x;
  const Index half = static_cast<Index>(inv_freq.size());
  for (Index n = 0; n < x.rows(); ++n)
    for (Index h = 0; h < heads; ++h)
      for (Index i = 0; i < half; ++i) {
        const Index a = h * head_dim + (layout == RotaryLayout::half ? i : 2 * i);
        const Index b = h * head_dim + (layout == RotaryLayout::half ? i + half : 2 * i + 1);
        const double th = static_cast<double>(pos[n]) * inv_freq[static_cast<std::size_t>(i)];
        y(n, a) = af * (x(n, a) * std::cos(th) - x(n, b) * std::sin(th));
        y(n, b) = af * (x(n, b) * std::cos(th) + x(n, a) * std::sin(th));
      }
  return y;
}

std::vector<double> plain_inv_freq(Index r, double base) {
  std::vector<double> f(static_cast<std::size_t>(r / 2));
  for (std::size_t i = 0; i < f.size(); ++i)
    f[i] = std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(r));
  return f;
}

}  // namespace

TEST_CASE("rope: dynamic scaling uses each call's own length", "[rope]") {
  // M = 8, factor 4, R = 16. L = max position + 1: L = 8 is not > M (unscaled), L = 9 is:
  // base' = base (4 * 9/8 - 3)^(16/14).
  const RotaryEncoding<double> enc(kHeadDim, dynamic_f4_m8());
  const Matrix<double> x = random_matrix<double>(9, kHeads * kHeadDim, 31);
  const auto unscaled = plain_inv_freq(kHeadDim, 10000.0);
  const auto scaled9 =
      plain_inv_freq(kHeadDim, 10000.0 * std::pow(4.0 * 9.0 / 8.0 - 3.0, 16.0 / 14.0));
  const double tol = 1e-12 * std::max(1.0, x.cwiseAbs().maxCoeff());
  // The order matters: a long call must not leave a larger base behind (stateless).
  for (Index n : {Index(8), Index(9), Index(8), Index(3), Index(9)}) {
    INFO("positions 0.." << n - 1);
    const Positions pos(0, n);
    const Matrix<double> xn = x.topRows(n);
    const Matrix<double> ref =
        reference_rope(xn, pos, n > 8 ? scaled9 : unscaled, RotaryLayout::half, kHeads, kHeadDim);
    CHECK(max_abs_diff(rotated(enc, xn, pos, kHeads), ref) <= tol);
  }
  // The same rows at positions 5..8 (L = 9) and 5..7 (L = 8) rotate row 5 differently.
  const Matrix<double> x5 = x.topRows(3);
  const Matrix<double> a = rotated(enc, x5, Positions(5, 3), kHeads);
  const Matrix<double> x6 = x.topRows(4);
  const Matrix<double> b = rotated(enc, x6, Positions(5, 4), kHeads);
  CHECK(max_abs_diff(a.row(0), b.row(0)) > 1e-6);
}

TEST_CASE("rope: yarn ramp bounds follow the clamps and the lo == hi rule", "[rope]") {
  // inv_freq from the yarn formula of conventions.md section 3, written out here.
  const auto yarn = [](Index r, double base, double factor, double m, double bf, double bs,
                       bool truncate) {
    const double rr = static_cast<double>(r);
    const double pi = std::acos(-1.0);
    const auto corr = [&](double rot) {
      return rr * std::log(m / (2.0 * pi * rot)) / (2.0 * std::log(base));
    };
    double lo = corr(bf), hi = corr(bs);
    if (truncate) {
      lo = std::floor(lo);
      hi = std::ceil(hi);
    }
    lo = std::max(lo, 0.0);
    hi = std::min(hi, rr - 1.0);
    if (lo == hi) hi += 0.001;
    auto f = plain_inv_freq(r, base);
    for (std::size_t i = 0; i < f.size(); ++i) {
      const double ramp = std::min(1.0, std::max(0.0, (static_cast<double>(i) - lo) / (hi - lo)));
      const double e = 1.0 - ramp;
      f[i] = (f[i] / factor) * (1.0 - e) + f[i] * e;
    }
    return f;
  };
  struct Case {
    const char* name;
    Index r;
    double base;
    std::int64_t m;
    double bf, bs;
    bool truncate;
  };
  const Case cases[] = {
      {"lo clamped to 0 (M = 100)", 16, 10000.0, 100, 32.0, 1.0, true},
      // corr(1e6) = 4.4 and corr(1) = 16.4 > R - 1: the ramp (i - 4)/(15 - 4) reaches i < R/2.
      {"hi clamped to R - 1 (M = 10^9)", 16, 10000.0, 1000000000, 1e6, 1.0, true},
      {"hi clamped, untruncated", 16, 10000.0, 1000000000, 1e6, 1.0, false},
      {"lo == hi == 0, hi += 0.001 (M = 6)", 16, 10000.0, 6, 32.0, 1.0, true},
      {"other betas, base 500000, R = 64", 64, 500000.0, 8192, 16.0, 2.0, true},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    RotaryOptions o = scaled(RopeScaling::yarn, 8.0);
    o.base = c.base;
    o.original_max_positions = c.m;
    o.beta_fast = c.bf;
    o.beta_slow = c.bs;
    o.truncate = c.truncate;
    const RotaryEncoding<double> enc(c.r, o);
    const auto ref = yarn(c.r, c.base, 8.0, static_cast<double>(c.m), c.bf, c.bs, c.truncate);
    const auto got = enc.inv_freq();
    REQUIRE(got.size() == ref.size());
    for (std::size_t i = 0; i < ref.size(); ++i) {
      INFO("i = " << i);
      CHECK(std::abs(got[i] - ref[i]) <= 1e-12 * ref[i]);
    }
  }
}

TEST_CASE("rope: attention factor rules", "[rope]") {
  const auto g = [](double s, double m) { return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0; };
  const auto af = [](RotaryOptions o) {
    return RotaryEncoding<double>(16, std::move(o)).attention_factor();
  };
  RotaryOptions y = yarn_f4();
  CHECK(std::abs(af(y) - g(4.0, 1.0)) <= 1e-15);
  y.mscale = 1.0;
  y.mscale_all_dim = 0.0;  // 0 counts as absent: g(factor, 1)
  CHECK(std::abs(af(y) - g(4.0, 1.0)) <= 1e-15);
  y.mscale = 2.0;
  y.mscale_all_dim = 0.5;
  CHECK(std::abs(af(y) - g(4.0, 2.0) / g(4.0, 0.5)) <= 1e-15);
  y.attention_factor = 0.7;  // given: used as is
  CHECK(af(y) == 0.7);
  RotaryOptions y1 = yarn_f4();
  y1.factor = 1.0;  // g(s, m) = 1 when s <= 1
  CHECK(af(y1) == 1.0);
  y1.factor = 0.5;
  CHECK(af(y1) == 1.0);
  RotaryOptions l = longrope();  // sqrt(1 + ln(factor)/ln(M)), M = 8
  CHECK(std::abs(af(l) - std::sqrt(1.0 + std::log(4.0) / std::log(8.0))) <= 1e-15);
  l.factor = 1.0;  // 1 when factor <= 1
  CHECK(af(l) == 1.0);
  l.factor = 0.25;
  CHECK(af(l) == 1.0);
  l.factor.reset();
  l.attention_factor = 1.7;  // given: no factor needed
  CHECK(af(l) == 1.7);
  CHECK(af(RotaryOptions{}) == 1.0);
  CHECK(af(scaled(RopeScaling::linear, 4.0)) == 1.0);
  CHECK(af(llama3(false)) == 1.0);
}

TEMPLATE_TEST_CASE("rope: precision at positions up to 2^20", "[rope][precision]", float, double) {
  using T = TestType;
  // conventions.md section 3: float within 1e-6 |x| of float64 up to p = 2^20, per row.
  // double: 1e-12 |x| plus the conditioning of the angle itself. theta = p inv_freq is only
  // defined to about p * 2^-52 (one rounding of inv_freq <= 1, which NumPy's power and
  // std::pow may round differently), so two correct float64 results differ by up to
  // ~p 2^-52 |x| (2.3e-10 |x| at p = 2^20; measured: 8e-12 |x|).
  const bool is_float = std::is_same<T, float>::value;
  const Matrix<T> x = load<T>("rope_highpos_x");
  REQUIRE(x.cols() == 128);
  const Positions pos(load_ints("rope_highpos_positions"));
  REQUIRE(pos.max() >= (std::int64_t(1) << 20));
  for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
    const bool half = layout == RotaryLayout::half;
    INFO((half ? "half" : "interleaved"));
    const Matrix<double> ref =
        load<double>(half ? "rope_highpos_half" : "rope_highpos_interleaved");
    for (Index limit : {Index(-1), Index(0)}) {
      INFO("cache limit " << limit);
      RotaryEncoding<T> enc(128, layout_opts(layout));
      if (limit == 0) enc.set_cache_limit(0);
      Matrix<T> y = x;
      enc.rotate(y, pos, 1);
      for (Index i = 0; i < y.rows(); ++i) {
        INFO("row " << i << " position " << pos[i]);
        const double xmax = x.row(i).cwiseAbs().maxCoeff();
        const Matrix<T> yi = y.row(i);
        const Matrix<double> ri = ref.row(i);
        const double rel = is_float ? 1e-6 : 1e-12 + std::ldexp(static_cast<double>(pos[i]), -52);
        CHECK(max_abs_diff(yi, ri) <= rel * xmax);
      }
    }
  }
}

TEMPLATE_TEST_CASE("rope: cached and uncached rotations are identical", "[rope][cache]", float,
                   double) {
  using T = TestType;
  const Index dh = 128, heads = 2;
  const Matrix<T> x = random_matrix<T>(6, heads * dh, 11);
  const Positions pos(std::vector<std::int64_t>{0, 1, 4095, 4096, 2999, 1234});
  for (auto scaling : {RopeScaling::none, RopeScaling::yarn, RopeScaling::longrope}) {
    INFO("scaling " << static_cast<int>(scaling));
    RotaryOptions o;
    o.scaling = scaling;
    if (scaling != RopeScaling::none) {
      o.factor = 4.0;
      o.original_max_positions = 2048;  // longrope takes its long set here
      o.short_factors.assign(dh / 2, 1.5);
      o.long_factors.assign(dh / 2, 3.0);
    }
    const RotaryEncoding<T> cached(dh, o);
    RotaryEncoding<T> uncached(dh, o);
    uncached.set_cache_limit(0);
    const Matrix<T> a = rotated(cached, x, pos, heads), b = rotated(uncached, x, pos, heads);
    CHECK(max_abs_diff(a, b) == 0.0);
    CHECK(max_abs_diff(a, x) > 0.1);  // and they did rotate
  }
}

TEMPLATE_TEST_CASE("rope: the cache is reused across calls and offsets", "[rope][cache]", float,
                   double) {
  using T = TestType;
  const Index dh = 32, heads = 3, n = 200;
  const Matrix<T> x = random_matrix<T>(n, heads * dh, 12);
  for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
    INFO((layout == RotaryLayout::half ? "half" : "interleaved"));
    const RotaryEncoding<T> shared(dh, layout_opts(layout, 24));
    // Grows the cache (0..199, then up to 5199), then reads back into it (offset 50).
    for (std::int64_t offset : {0, 5000, 50, 4999, 0}) {
      INFO("offset " << offset);
      const Positions pos(offset, n);
      const RotaryEncoding<T> fresh(dh, layout_opts(layout, 24));
      RotaryEncoding<T> uncached(dh, layout_opts(layout, 24));
      uncached.set_cache_limit(0);
      const Matrix<T> a = rotated(shared, x, pos, heads);
      CHECK(max_abs_diff(a, rotated(fresh, x, pos, heads)) == 0.0);
      CHECK(max_abs_diff(a, rotated(uncached, x, pos, heads)) == 0.0);
    }
    // A copy of a warm encoder gives the same results.
    const RotaryEncoding<T> copy = shared;
    const Positions pos(2500, n);
    CHECK(max_abs_diff(rotated(copy, x, pos, heads), rotated(shared, x, pos, heads)) == 0.0);
  }
}

TEMPLATE_TEST_CASE("rope: rotation preserves each head's norm and leaves dims >= R unchanged",
                   "[rope][property]", float, double) {
  using T = TestType;
  const double rel = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  struct Shape {
    Index head_dim, rotary_dim, heads, rows;
  };
  const Shape shapes[] = {{2, 0, 1, 3},  {8, 0, 1, 5},  {16, 6, 2, 7},
                          {10, 4, 3, 4}, {64, 0, 4, 9}, {128, 96, 2, 6}};
  std::uint64_t seed = 100;
  for (const auto& sh : shapes) {
    for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
      INFO("head_dim " << sh.head_dim << " R " << sh.rotary_dim << " heads " << sh.heads
                       << (layout == RotaryLayout::half ? " half" : " interleaved"));
      const RotaryEncoding<T> enc(sh.head_dim, layout_opts(layout, sh.rotary_dim));
      const Index r = enc.rotary_dim();
      const Matrix<T> x = random_matrix<T>(sh.rows, sh.heads * sh.head_dim, ++seed);
      for (const Positions& pos :
           {Positions(0, sh.rows), Positions(37, sh.rows), Positions(1000003, sh.rows)}) {
        const Matrix<T> y = rotated(enc, x, pos, sh.heads);
        for (Index i = 0; i < sh.rows; ++i)
          for (Index h = 0; h < sh.heads; ++h) {
            const double before = head_norm(x, i, h, sh.head_dim);
            const double after = head_norm(y, i, h, sh.head_dim);
            CHECK(std::abs(after - before) <= rel * before);
            // Pass-through dimensions are bit-identical.
            for (Index c = r; c < sh.head_dim; ++c)
              CHECK(y(i, h * sh.head_dim + c) == x(i, h * sh.head_dim + c));
          }
        if (pos.offset() > 0 && r > 0) CHECK(max_abs_diff(x, y) > 1e-3);  // it did rotate
      }
    }
  }
}

TEMPLATE_TEST_CASE("rope: position 0 is the identity", "[rope][property]", float, double) {
  using T = TestType;
  for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
    for (Index r : {Index(0), Index(6)}) {
      INFO("R " << r << (layout == RotaryLayout::half ? " half" : " interleaved"));
      const RotaryEncoding<T> enc(16, layout_opts(layout, r));
      const Matrix<T> x = random_matrix<T>(4, 3 * 16, 21);
      // cos 0 = 1, sin 0 = 0: every entry comes back bit-identical.
      CHECK(max_abs_diff(rotated(enc, x, Positions(std::vector<std::int64_t>(4, 0)), 3), x) == 0.0);
      const Matrix<T> x0 = x.topRows(1);
      CHECK(max_abs_diff(rotated(enc, x0, Positions(0, 1), 3), x0) == 0.0);
    }
  }
}

TEMPLATE_TEST_CASE("rope: q.k after rotation depends only on the position difference",
                   "[rope][property]", float, double) {
  using T = TestType;
  // For each pair (p, p'), dot(rot(q, p + s), rot(k, p' + s)) must not depend on the shift s.
  // Tolerance relative to |q| |k| (the dot itself may be near zero): 1e-4 float, 1e-9 double.
  const double rel = std::is_same<T, float>::value ? 1e-4 : 1e-9;
  const std::int64_t shifts[] = {0, 1, 17, 1000, 100000};
  const std::pair<std::int64_t, std::int64_t> pairs[] = {
      {0, 0}, {3, 10}, {10, 3}, {25, 7}, {4, 400}};
  struct Shape {
    Index head_dim, rotary_dim, heads;
    RopeScaling scaling;
  };
  const Shape shapes[] = {{8, 0, 1, RopeScaling::none},
                          {16, 0, 2, RopeScaling::none},
                          {16, 10, 2, RopeScaling::none},
                          {64, 0, 2, RopeScaling::none},
                          {32, 0, 2, RopeScaling::linear}};
  std::uint64_t seed = 200;
  for (const auto& sh : shapes) {
    for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
      INFO("head_dim " << sh.head_dim << " R " << sh.rotary_dim << " scaling "
                       << static_cast<int>(sh.scaling)
                       << (layout == RotaryLayout::half ? " half" : " interleaved"));
      RotaryOptions o = layout_opts(layout, sh.rotary_dim);
      if (sh.scaling != RopeScaling::none) {
        o.scaling = sh.scaling;
        o.factor = 2.0;
      }
      const RotaryEncoding<T> enc(sh.head_dim, o);
      const Index d = sh.heads * sh.head_dim;
      const Matrix<T> q = random_matrix<T>(1, d, ++seed), k = random_matrix<T>(1, d, ++seed);
      for (const auto& pp : pairs) {
        INFO("p = " << pp.first << ", p' = " << pp.second);
        std::vector<double> dot0(static_cast<std::size_t>(sh.heads));
        for (std::int64_t s : shifts) {
          INFO("shift " << s);
          const Matrix<T> qr = rotated(enc, q, Positions(pp.first + s, 1), sh.heads);
          const Matrix<T> kr = rotated(enc, k, Positions(pp.second + s, 1), sh.heads);
          for (Index h = 0; h < sh.heads; ++h) {
            const double dot = head_dot(qr, 0, kr, 0, h, sh.head_dim);
            const double scale = head_norm(q, 0, h, sh.head_dim) * head_norm(k, 0, h, sh.head_dim);
            if (s == 0)
              dot0[static_cast<std::size_t>(h)] = dot;
            else
              CHECK(std::abs(dot - dot0[static_cast<std::size_t>(h)]) <= rel * scale);
          }
        }
      }
    }
  }
  // Sanity: the dot does depend on p - p' (else the check above would be vacuous).
  const RotaryEncoding<double> enc(16);
  const Matrix<double> q = random_matrix<double>(1, 16, 300), k = random_matrix<double>(1, 16, 301);
  const double a = head_dot(rotated(enc, q, Positions(0, 1), 1), 0,
                            rotated(enc, k, Positions(0, 1), 1), 0, 0, 16);
  const double b = head_dot(rotated(enc, q, Positions(0, 1), 1), 0,
                            rotated(enc, k, Positions(3, 1), 1), 0, 0, 16);
  CHECK(std::abs(a - b) > 1e-3);
}

TEST_CASE("rope: bad input throws posenc::error naming the parameter", "[rope][errors]") {
  using E = RotaryEncoding<float>;
  const auto with = [](const std::function<void(RotaryOptions&)>& edit) {
    RotaryOptions o;
    edit(o);
    return o;
  };
  // Widths.
  require_error([] { E(15); }, {"rotary_dim = 15", "head_dim = 15"});  // odd head_dim, R = Dh
  require_error([&] { E(16, with([](RotaryOptions& o) { o.rotary_dim = 7; })); },
                {"rotary_dim = 7", "even"});
  require_error([&] { E(16, with([](RotaryOptions& o) { o.rotary_dim = 18; })); },
                {"rotary_dim = 18", "head_dim = 16"});
  require_error([&] { E(16, with([](RotaryOptions& o) { o.rotary_dim = -2; })); },
                {"rotary_dim = -2"});
  require_error([] { E(0); }, {"head_dim = 0"});
  require_error([] { E(-4); }, {"head_dim = -4"});
  // Base.
  require_error([&] { E(16, with([](RotaryOptions& o) { o.base = 0.0; })); }, {"base = 0"});
  require_error([&] { E(16, with([](RotaryOptions& o) { o.base = -1.0; })); }, {"base = -1"});
  require_error([&] { E(16, with([](RotaryOptions& o) { o.base = NAN; })); }, {"base = nan"});
  require_error([&] { E(16, with([](RotaryOptions& o) { o.base = INFINITY; })); }, {"base = inf"});
  // Factor.
  require_error([&] { E(16, scaled(RopeScaling::linear, 0.0)); }, {"factor = 0"});
  require_error([&] { E(16, scaled(RopeScaling::ntk, -2.0)); }, {"factor = -2"});
  require_error([&] { E(16, scaled(RopeScaling::linear, NAN)); }, {"factor = nan"});
  require_error([&] { E(16, scaled(RopeScaling::linear, INFINITY)); }, {"factor = inf"});
  for (auto s : {RopeScaling::linear, RopeScaling::ntk, RopeScaling::dynamic, RopeScaling::yarn}) {
    const char* name = s == RopeScaling::linear    ? "linear"
                       : s == RopeScaling::ntk     ? "ntk"
                       : s == RopeScaling::dynamic ? "dynamic"
                                                   : "yarn";
    INFO(name);
    require_error(
        [&] {
          E(16, with([&](RotaryOptions& o) {
              o.scaling = s;
              o.original_max_positions = 64;
            }));
        },
        {name, "needs factor"});
  }
  // Original context M.
  require_error([&] { E(16, scaled(RopeScaling::dynamic, 2.0)); },
                {"dynamic", "original_max_positions"});
  require_error([&] { E(16, scaled(RopeScaling::yarn, 2.0)); }, {"yarn", "original_max_positions"});
  require_error(
      [&] {
        RotaryOptions o = longrope();
        o.original_max_positions.reset();
        E(16, o);
      },
      {"longrope", "original_max_positions"});
  require_error(
      [&] {
        RotaryOptions o = dynamic_f4_m8();
        o.original_max_positions = 0;
        E(16, o);
      },
      {"original_max_positions = 0"});
  // ntk and dynamic need R > 2 (R/(R-2)).
  require_error(
      [&] {
        RotaryOptions o = scaled(RopeScaling::ntk, 2.0);
        o.rotary_dim = 2;
        E(16, o);
      },
      {"ntk", "rotary_dim > 2", "got 2"});
  require_error(
      [&] {
        RotaryOptions o = dynamic_f4_m8();
        E(2, o);
      },
      {"dynamic", "rotary_dim > 2", "got 2"});
  // llama3 needs high_freq_factor >= low_freq_factor (equal: Llama 4, no smoothed band).
  require_error(
      [&] {
        RotaryOptions o = llama3(true);
        o.low_freq_factor = 3.0;
        o.high_freq_factor = 2.0;
        E(16, o);
      },
      {"high_freq_factor = 2", "low_freq_factor = 3"});
  // longrope factor lists need R/2 entries each.
  require_error(
      [&] {
        RotaryOptions o = longrope();
        o.short_factors.pop_back();
        E(16, o);
      },
      {"short_factors", "7 and 8 entries", "rotary_dim / 2 = 8"});
  require_error(
      [&] {
        RotaryOptions o = longrope();
        o.long_factors.push_back(1.0);
        E(16, o);
      },
      {"long_factors", "8 and 9 entries", "rotary_dim / 2 = 8"});
  require_error(
      [&] {
        RotaryOptions o = longrope();
        o.rotary_dim = 8;
        E(16, o);
      },
      {"8 and 8 entries", "rotary_dim / 2 = 4"});
  // attention_factor must be > 0.
  require_error(
      [&] {
        RotaryOptions o = yarn_f4();
        o.attention_factor = 0.0;
        E(16, o);
      },
      {"attention_factor = 0"});
  require_error(
      [&] {
        RotaryOptions o = longrope();
        o.attention_factor = -1.5;
        E(16, o);
      },
      {"attention_factor = -1.5"});
  // attention_factor belongs to yarn and longrope only.
  require_error(
      [&] {
        RotaryOptions o = scaled(RopeScaling::linear, 4.0);
        o.attention_factor = 1.2;
        E(16, o);
      },
      {"attention_factor", "linear"});
  // longrope's derived attention factor divides by ln(M): M = 1 would give inf.
  require_error(
      [&] {
        RotaryOptions o = longrope();
        o.original_max_positions = 1;
        E(16, o);
      },
      {"original_max_positions M > 1", "got 1"});
  // Shapes at rotate() and check().
  const E enc(16);
  Matrix<float> x(6, 31);
  require_error([&] { enc.rotate(x, Positions(0, 6), 2); }, {"[6, 31]", "[6, 32]", "heads = 2"});
  Matrix<float> y(5, 32);
  require_error([&] { enc.rotate(y, Positions(0, 6), 2); }, {"[5, 32]", "[6, 32]"});
  Matrix<float> z(6, 32);
  require_error([&] { enc.rotate(z, Positions(0, 6), 0); }, {"heads = 0"});
  require_error([&] { enc.rotate(z, Positions(0, 6), -2); }, {"heads = -2"});
  require_error([&] { enc.check(AttentionShape{30, 2, 2, 15}); }, {"head_dim = 16", "Dh = 15"});
  require_error(
      [&] {
        enc.check(AttentionShape{32, 4, 1, 8});
      },
      {"head_dim = 16", "Dh = 8", "H = 4"});
}

TEMPLATE_TEST_CASE("rope: inverse rotation, shifts and re-rotation at positions up to 2^20",
                   "[rope][rerotate][precision]", float, double) {
  using T = TestType;
  // conventions.md 3b and 3d, checked against the float64 reference rows at large positions:
  // rows rotated at p - delta and shifted by delta are the reference rows at p; un-rotating
  // the reference rows gives x back. One more rotation than rotate itself: twice its bound.
  const bool is_float = std::is_same<T, float>::value;
  const Matrix<T> x = load<T>("rope_highpos_x");
  const Positions pos(load_ints("rope_highpos_positions"));
  for (auto layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
    const bool half = layout == RotaryLayout::half;
    INFO((half ? "half" : "interleaved"));
    const Matrix<double> ref =
        load<double>(half ? "rope_highpos_half" : "rope_highpos_interleaved");
    const RotaryEncoding<T> enc(128, layout_opts(layout));
    const auto f = enc.frequencies();
    for (std::int64_t delta : {std::int64_t(1), std::int64_t(-3), std::int64_t(1) << 19}) {
      std::vector<std::int64_t> before;
      bool fits = true;
      for (Index i = 0; i < pos.size(); ++i) {
        before.push_back(pos[i] - delta);
        fits = fits && pos[i] - delta >= 0;
      }
      if (!fits) continue;
      INFO("delta " << delta);
      Matrix<T> y = x;
      enc.rotate(y, Positions(before), 1);
      enc.shift(y, Positions(before), 1, delta, f);
      for (Index i = 0; i < y.rows(); ++i) {
        INFO("row " << i << " position " << pos[i]);
        const double xmax = x.row(i).cwiseAbs().maxCoeff();
        const double rel = is_float ? 2e-6 : 2e-12 + std::ldexp(static_cast<double>(pos[i]), -51);
        CHECK(max_abs_diff(Matrix<T>(y.row(i)), Matrix<double>(ref.row(i))) <= rel * xmax);
      }
    }
    Matrix<T> back = ref.cast<T>();
    enc.unrotate(back, pos, 1);
    for (Index i = 0; i < back.rows(); ++i) {
      INFO("unrotate row " << i << " position " << pos[i]);
      const double xmax = x.row(i).cwiseAbs().maxCoeff();
      const double rel = is_float ? 2e-6 : 2e-12 + std::ldexp(static_cast<double>(pos[i]), -51);
      CHECK(max_abs_diff(Matrix<T>(back.row(i)), Matrix<T>(x.row(i))) <= rel * xmax);
    }
  }
}

TEMPLATE_TEST_CASE("rope: re-rotating between frequency sets equals rotating with the new set",
                   "[rope][rerotate]", float, double) {
  using T = TestType;
  const double tol = std::is_same<T, float>::value ? 4e-6 : 1e-12;
  const Matrix<T> x = random_matrix<T>(40, 2 * kHeadDim, 31);
  const Positions pos(3, 40);
  // longrope: short set below M = 16, long above; dynamic: a base per length; yarn's factor.
  RotaryOptions lr;
  lr.scaling = RopeScaling::longrope;
  lr.factor = 4.0;
  lr.original_max_positions = 16;
  for (Index i = 0; i < kHeadDim / 2; ++i) {
    lr.short_factors.push_back(1.0 + 0.25 * double(i));
    lr.long_factors.push_back(2.0 + double(i));
  }
  RotaryOptions dyn = dynamic_f4_m8();
  for (const RotaryOptions& o : {lr, dyn}) {
    INFO("scaling " << posenc::name_of(o.scaling));
    const RotaryEncoding<T> enc(kHeadDim, o);
    for (auto [from, to] : {std::pair<std::int64_t, std::int64_t>{5, 42}, {42, 5}, {20, 30}}) {
      INFO("from L = " << from + 1 << " to L = " << to + 1);
      Matrix<T> a = x, b = x;
      enc.rotate(a, pos, 2, enc.frequencies(from));
      enc.rerotate(a, pos, 2, enc.frequencies(from), enc.frequencies(to));
      enc.rotate(b, pos, 2, enc.frequencies(to));
      CHECK(max_abs_diff(a, b) <= tol * x.cwiseAbs().maxCoeff() * 4);
      Matrix<T> c = x;
      enc.rotate(c, pos, 2, enc.frequencies(from));
      enc.rerotate_for(c, pos, 2, from, to);
      CHECK(max_abs_diff(c, b) <= tol * x.cwiseAbs().maxCoeff() * 4);
    }
    // The call's own set: rotate(x, pos) uses frequencies(pos.max()).
    Matrix<T> own = x, explicit_set = x;
    enc.rotate(own, pos, 2);
    enc.rotate(explicit_set, pos, 2, enc.frequencies(pos.max()));
    CHECK(max_abs_diff(own, explicit_set) <= tol * x.cwiseAbs().maxCoeff());
  }
  // A scaling that does not depend on the length: rerotate_for changes nothing.
  const RotaryEncoding<T> plain(kHeadDim);
  Matrix<T> y = x;
  plain.rerotate_for(y, pos, 2, 5, 100000);
  CHECK(max_abs_diff(y, x) == 0.0);
}

TEST_CASE("rope: re-rotation input errors name the parameter", "[rope][rerotate][errors]") {
  const RotaryEncoding<double> enc(8);
  Matrix<double> x = Matrix<double>::Ones(3, 16);
  const Positions pos(2, 3);
  const auto f = enc.frequencies();
  require_error([&] { enc.shift(x, pos, 2, -3, f); }, {"shift", "delta = -3", "[0, INT64_MAX]"});
  require_error(
      [&] { enc.shift(x, Positions(std::numeric_limits<std::int64_t>::max() - 2, 3), 2, 1, f); },
      {"shift", "delta = 1", "INT64_MAX"});
  require_error([&] { enc.unrotate(x, pos, 3); }, {"unrotate", "expected [3, 24]"});
  auto short_set = f;
  short_set.inv_freq.pop_back();
  require_error([&] { enc.rerotate(x, pos, 2, f, short_set); },
                {"rerotate", "3 entries", "rotary_dim / 2 = 4"});
  auto zero_factor = f;
  zero_factor.attention_factor = 0.0;
  require_error([&] { enc.rotate(x, pos, 2, zero_factor); }, {"rotate", "attention factor 0"});
  auto nan_freq = f;
  nan_freq.inv_freq[1] = std::nan("");
  require_error([&] { enc.unrotate(x, pos, 2, nan_freq); }, {"unrotate", "inv_freq[1] = nan"});
}

TEMPLATE_TEST_CASE("rope: variants of real models match the float64 reference", "[rope][variants]",
                   float, double) {
  using T = TestType;
  // conventions.md 3b and Hugging Face's proportional rope type (reference: make_golden.py's
  // gen_rope_variants).
  const auto with = [](const std::function<void(RotaryOptions&)>& edit) {
    RotaryOptions o;
    edit(o);
    return o;
  };
  const std::vector<double> ff = load_vector("ropev_freq_factors");
  RotaryOptions mscale = longrope();
  mscale.factor.reset();
  mscale.short_mscale = 1.1;
  mscale.long_mscale = 1.3;
  RotaryOptions l3 = llama3(true);
  l3.freq_factors = ff;
  struct Case {
    const char* file;
    RotaryOptions options;
    std::int64_t offset;
  };
  const std::vector<Case> cases = {
      {"ropev_trailing_R8_half", with([](RotaryOptions& o) {
         o.rotary_dim = 8;
         o.block = posenc::RotaryBlock::trailing;
       }),
       3},
      {"ropev_trailing_R6_interleaved", with([](RotaryOptions& o) {
         o.rotary_dim = 6;
         o.layout = RotaryLayout::interleaved;
         o.block = posenc::RotaryBlock::trailing;
       }),
       3},
      {"ropev_freqfactors_half", with([&](RotaryOptions& o) { o.freq_factors = ff; }), 2},
      {"ropev_llama3_freqfactors", l3, 100},
      {"ropev_proportional_p0.25", with([](RotaryOptions& o) {
         o.scaling = RopeScaling::proportional;
         o.partial_rotary_factor = 0.25;
       }),
       3},
      {"ropev_proportional_p0.5_f2", with([](RotaryOptions& o) {
         o.scaling = RopeScaling::proportional;
         o.base = 1e6;
         o.factor = 2.0;
         o.partial_rotary_factor = 0.5;
       }),
       1000},
      {"ropev_longrope_mscale_short", mscale, 0},
      {"ropev_longrope_mscale_long", mscale, 5},
  };
  const Matrix<T> x = load<T>("ropev_x");
  for (const auto& c : cases) {
    INFO(c.file << " offset " << c.offset);
    const Matrix<double> ref = load<double>(c.file);
    const double tol = tolerance<T>(max_abs(ref));
    for (Index limit : {Index(-1), Index(0)}) {
      RotaryEncoding<T> enc(kHeadDim, c.options);
      if (limit == 0) enc.set_cache_limit(0);
      INFO("cache limit " << limit);
      Matrix<T> y = x;
      enc.rotate(y, Positions(c.offset, x.rows()), kHeads);
      CHECK(max_abs_diff(y, ref) <= tol);
      // The inverse gives x back.
      enc.unrotate(y, Positions(c.offset, x.rows()), kHeads);
      CHECK(max_abs_diff(y, x) <= tolerance<T>(max_abs(ref)));
    }
  }
  // GGUF's Llama 3.1: unscaled RoPE with rope_freqs = the llama3 ratios equals llama3 scaling.
  const RotaryEncoding<double> scaled_l3(kHeadDim, llama3(true));
  RotaryOptions plain;
  plain.base = 500000.0;
  const RotaryEncoding<double> unscaled(kHeadDim, plain);
  RotaryOptions gguf = plain;
  for (std::size_t i = 0; i < unscaled.inv_freq().size(); ++i)
    gguf.freq_factors.push_back(unscaled.inv_freq()[i] / scaled_l3.inv_freq()[i]);
  const RotaryEncoding<double> from_gguf(kHeadDim, gguf);
  Matrix<double> a = x.template cast<double>(), b = a;
  scaled_l3.rotate(a, Positions(9000, x.rows()), kHeads);
  from_gguf.rotate(b, Positions(9000, x.rows()), kHeads);
  CHECK(max_abs_diff(a, b) <= 1e-12);
  // proportional with p = 1 and factor 1 is plain RoPE over the whole head (its exponent is
  // over Dh = R).
  Matrix<double> c = x.template cast<double>(), d = c;
  RotaryEncoding<double>(kHeadDim,
                         with([](RotaryOptions& o) { o.scaling = RopeScaling::proportional; }))
      .rotate(c, Positions(7, x.rows()), kHeads);
  RotaryEncoding<double>(kHeadDim).rotate(d, Positions(7, x.rows()), kHeads);
  CHECK(max_abs_diff(c, d) <= 1e-12);
}

TEST_CASE("rope: variant options are checked", "[rope][variants][errors]") {
  using E = RotaryEncoding<float>;
  const auto with = [](const std::function<void(RotaryOptions&)>& edit) {
    RotaryOptions o;
    edit(o);
    return o;
  };
  require_error([&] { E(16, with([](RotaryOptions& o) {
                          o.freq_factors = {1.0, 2.0};
                        })); },
                {"freq_factors has 2 entries", "rotary_dim / 2 = 8"});
  require_error(
      [&] {
        E(16, with([](RotaryOptions& o) {
            o.freq_factors.assign(8, 1.0);
            o.freq_factors[3] = 0.0;
          }));
      },
      {"freq_factors[3] = 0"});
  require_error(
      [&] {
        E(16, with([](RotaryOptions& o) {
            o.scaling = RopeScaling::proportional;
            o.rotary_dim = 8;
          }));
      },
      {"proportional", "rotary_dim = 8", "head_dim = 16"});
  require_error(
      [&] {
        E(16, with([](RotaryOptions& o) {
            o.scaling = RopeScaling::proportional;
            o.partial_rotary_factor = 1.5;
          }));
      },
      {"partial_rotary_factor = 1.5", "[0, 1]"});
  require_error([&] { E(16, with([](RotaryOptions& o) { o.partial_rotary_factor = 0.5; })); },
                {"partial_rotary_factor = 0.5", "proportional"});
  RotaryOptions lr = longrope();
  lr.short_mscale = 1.1;
  require_error([&] { E(16, lr); }, {"short_mscale and long_mscale must be given together"});
  lr.long_mscale = 1.2;
  lr.attention_factor = 1.0;
  require_error([&] { E(16, lr); }, {"attention_factor and short_mscale"});
  require_error(
      [&] {
        E(16, with([](RotaryOptions& o) {
            o.short_mscale = 1.0;
            o.long_mscale = 1.0;
          }));
      },
      {"apply to longrope", "none"});
}

TEMPLATE_TEST_CASE("rope: converting projections between pair layouts keeps attention",
                   "[rope][layout]", float, double) {
  using T = TestType;
  // A checkpoint trained with interleaved pairs run with half pairs (and back): the query and key
  // projections' columns are permuted per head; attention outputs stay, with partial rotary,
  // a trailing block and grouped heads.
  using posenc::convert_rotary_layout;
  const Index d = 32, heads = 4, kv_heads = 2, dh = 8, n = 11;
  const Matrix<T> x = random_matrix<T>(n, d, 51);
  const Matrix<T> wq = random_matrix<T>(d, heads * dh, 52, 0.3),
                  wk = random_matrix<T>(d, kv_heads * dh, 53, 0.3),
                  wv = random_matrix<T>(d, kv_heads * dh, 54, 0.3),
                  wo = random_matrix<T>(heads * dh, d, 55, 0.3);
  posenc::AttentionOptions<T> opt;
  opt.heads = heads;
  opt.kv_heads = kv_heads;
  opt.causal = true;
  opt.offset = 40;
  for (Index r : {Index(0), Index(4)}) {
    for (auto block : {posenc::RotaryBlock::leading, posenc::RotaryBlock::trailing}) {
      for (auto from : {RotaryLayout::interleaved, RotaryLayout::half}) {
        const RotaryLayout to =
            from == RotaryLayout::half ? RotaryLayout::interleaved : RotaryLayout::half;
        INFO("rotary_dim " << r << ", from " << posenc::name_of(from) << ", block "
                           << posenc::name_of(block));
        RotaryOptions a = layout_opts(from, r), b = layout_opts(to, r);
        a.block = b.block = block;
        const Matrix<T> y = posenc::attention(x, wq, wk, wv, wo, RotaryEncoding<T>(dh, a), opt);
        const Matrix<T> wq2 = convert_rotary_layout<T>(wq, heads, dh, r, from, to, block),
                        wk2 = convert_rotary_layout<T>(wk, kv_heads, dh, r, from, to, block);
        const Matrix<T> y2 = posenc::attention(x, wq2, wk2, wv, wo, RotaryEncoding<T>(dh, b), opt);
        CHECK(max_abs_diff(y, y2) <= (std::is_same<T, float>::value ? 2e-5 : 1e-12));
        // Not the identity (the test would pass on a stub that returns W).
        CHECK(max_abs_diff(wq2, wq) > 0.0);
        // And back.
        CHECK(max_abs_diff(convert_rotary_layout<T>(wq2, heads, dh, r, to, from, block), wq) ==
              0.0);
      }
    }
  }
  // Half pair i = (i, i + R/2) comes from interleaved (2i, 2i + 1): column 1 of a half head of
  // R = 8 is column 2 of the interleaved one, column 4 is column 1.
  const auto perm =
      posenc::rotary_layout_permutation(1, 8, 8, RotaryLayout::interleaved, RotaryLayout::half);
  CHECK(perm == std::vector<Index>{0, 2, 4, 6, 1, 3, 5, 7});
  require_error(
      [] {
        posenc::rotary_layout_permutation(2, 8, 5, RotaryLayout::half, RotaryLayout::interleaved);
      },
      {"rotary_dim = 5"});
  require_error(
      [&] {
        convert_rotary_layout<T>(wq, 3, dh, 0, RotaryLayout::half, RotaryLayout::interleaved);
      },
      {"convert_rotary_layout", "[32, 32]", "heads = 3"});
}

namespace {

// Half the spacing of S's values around |y| (normal numbers; the subnormal spacing below).
template <class S>
double half_ulp(double y) {
  const int mant = std::is_same<S, Eigen::bfloat16>::value ? 8 : 11;  // bits incl. the hidden one
  const int min_exp = std::is_same<S, Eigen::bfloat16>::value ? -126 : -14;
  int e = 0;
  std::frexp(std::max(std::abs(y), std::ldexp(1.0, min_exp)), &e);  // |y| in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 1 - mant);
}

}  // namespace

TEMPLATE_TEST_CASE("rope: in place on bfloat16 and half, one rounding per output", "[rope][half]",
                   Eigen::bfloat16, Eigen::half) {
  using S = TestType;
  const Matrix<double> x = load<double>("rope_x");
  const Matrix<S> xs = to_storage<S>(x);
  const Matrix<double> xw = from_storage(xs);  // the stored input, exactly
  struct Case {
    const char* file;
    RotaryOptions options;
    std::int64_t offset;
  };
  const std::vector<Case> cases = {
      {"rope_half", layout_opts(RotaryLayout::half), 0},
      {"rope_interleaved", layout_opts(RotaryLayout::interleaved), 0},
      {"rope_half_R8", layout_opts(RotaryLayout::half, 8), 7},
      {"rope_interleaved_R8", layout_opts(RotaryLayout::interleaved, 8), 7},
      {"rope_dynamic_f4_M8_long", dynamic_f4_m8(), 10},
      {"rope_yarn_mscale", yarn_mscale(), 100},
      {"rope_llama3", llama3(false), 100},
      {"rope_longrope_long", longrope(), 5},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const Positions pos(c.offset, x.rows());
    Matrix<S> y = xs;
    RotaryEncoding<float>(kHeadDim, c.options).rotate(y, pos, kHeads);
    const Matrix<double> yw = from_storage(y);
    // Against the NumPy golden of the unrounded input: off by at most the rotation of the
    // input's rounding (|R d| <= af |d| per pair, af <= 2 here) and the output's rounding.
    const Matrix<double> ref = load<double>(c.file);
    const double input_err = (xw - x).cwiseAbs().maxCoeff();
    CHECK(max_abs_diff(yw, ref) <= 2 * std::sqrt(2.0) * input_err + half_ulp<S>(max_abs(ref)));
    // One rounding: within half a unit of the exact rotation of the stored input (float64
    // rotation, checked against the goldens above to 1e-12)
    Matrix<double> exact = xw;
    RotaryEncoding<double>(kHeadDim, c.options).rotate(exact, pos, kHeads);
    for (Index i = 0; i < exact.rows(); ++i)
      for (Index j = 0; j < exact.cols(); ++j)
        CHECK(std::abs(yw(i, j) - exact(i, j)) <= half_ulp<S>(exact(i, j)) * (1 + 1e-9) + 1e-12);
  }
  SECTION("positions up to 2^20") {
    const Positions pos((std::int64_t(1) << 20) - x.rows(), x.rows());
    Matrix<S> y = xs;
    RotaryEncoding<float>(kHeadDim).rotate(y, pos, kHeads);
    Matrix<double> exact = xw;
    RotaryEncoding<double>(kHeadDim).rotate(exact, pos, kHeads);
    const Matrix<double> yw = from_storage(y);
    for (Index i = 0; i < exact.rows(); ++i)
      for (Index j = 0; j < exact.cols(); ++j)
        CHECK(std::abs(yw(i, j) - exact(i, j)) <= half_ulp<S>(exact(i, j)) * (1 + 1e-9) + 1e-12);
  }
  SECTION("one encoder across calls: its cached cos/sin rows grown and rebuilt") {
    // longrope (M = 8) switches frequency sets with the call's longest position; every call of
    // one encoder must give the bits of a fresh encoder and of one that caches nothing
    RotaryEncoding<float> shared(kHeadDim, longrope());
    RotaryEncoding<float> uncached(kHeadDim, longrope());
    uncached.set_cache_limit(0);
    const Index n = x.rows();
    for (const std::int64_t offset :
         {std::int64_t(0), std::int64_t(5), std::int64_t(0), std::int64_t(3000), std::int64_t(2)}) {
      INFO("offset " << offset);
      const Positions pos(offset, offset == 0 ? std::min<Index>(n, 4) : n);
      const Matrix<S> in = xs.topRows(pos.size());
      Matrix<S> a = in, b = in, c = in;
      shared.rotate(a, pos, kHeads);
      RotaryEncoding<float>(kHeadDim, longrope()).rotate(b, pos, kHeads);
      uncached.rotate(c, pos, kHeads);
      CHECK(from_storage(a) == from_storage(b));
      CHECK(from_storage(a) == from_storage(c));
    }
  }
  SECTION("many outputs near S's midpoints: each the exact rotation rounded once") {
    // 2^19 outputs: about one in 2^14 of them lies too close to a midpoint of S for the float
    // rotation to decide its rounding, and must come out as the double rotation rounded once
    for (const RotaryLayout layout : {RotaryLayout::half, RotaryLayout::interleaved}) {
      INFO("layout " << posenc::name_of(layout));
      const Index n = 1024, heads = 8, dh = 64;
      const Matrix<S> in = to_storage<S>(random_matrix<double>(n, heads * dh, 91, 3.0));
      const Positions pos((std::int64_t(1) << 20) - n, n);
      RotaryOptions o;
      o.layout = layout;
      Matrix<S> y = in;
      RotaryEncoding<float>(dh, o).rotate(y, pos, heads);
      Matrix<double> exact = from_storage(in);
      RotaryEncoding<double>(dh, o).rotate(exact, pos, heads);
      Index wrong = 0;
      for (Index i = 0; i < n; ++i)
        for (Index j = 0; j < heads * dh; ++j)
          wrong += Eigen::numext::bit_cast<std::uint16_t>(y(i, j)) !=
                   Eigen::numext::bit_cast<std::uint16_t>(posenc::detail::round_to<S>(exact(i, j)));
      CHECK(wrong == 0);
    }
  }
  SECTION("shape errors") {
    Matrix<S> bad(3, kHeads * kHeadDim + 1);
    CHECK_THROWS_AS(RotaryEncoding<float>(kHeadDim).rotate(bad, Positions(0, 3), kHeads),
                    posenc::error);
  }
}
