// Sinusoidal encoding (conventions.md section 1) against the float64 reference.
#include "test_support.hpp"

using namespace posenc_test;
using posenc::AttentionShape;
using posenc::Positions;
using posenc::SinusoidalEncoding;
using posenc::SinusoidalFrequencies;
using posenc::SinusoidalLayout;
using posenc::SinusoidalOptions;

namespace {
SinusoidalOptions opts(SinusoidalLayout layout, SinusoidalFrequencies freq, double base = 10000.0,
                       double scale = 1.0) {
  SinusoidalOptions o;
  o.layout = layout;
  o.frequencies = freq;
  o.base = base;
  o.scale = scale;
  return o;
}
}  // namespace

TEMPLATE_TEST_CASE("sinusoidal: tables match the float64 reference", "[sinusoidal]", float,
                   double) {
  using T = TestType;
  struct Case {
    const char* file;
    Index dim;
    SinusoidalOptions o;
  };
  const Case cases[] = {
      {"sin_interleaved_vaswani_D16", 16,
       opts(SinusoidalLayout::interleaved, SinusoidalFrequencies::vaswani)},
      {"sin_split_vaswani_D16", 16, opts(SinusoidalLayout::split, SinusoidalFrequencies::vaswani)},
      {"sin_split_logts_D16", 16,
       opts(SinusoidalLayout::split, SinusoidalFrequencies::log_timescale)},
      {"sin_interleaved_logts_D16", 16,
       opts(SinusoidalLayout::interleaved, SinusoidalFrequencies::log_timescale)},
      {"sin_interleaved_base500_D8", 8,
       opts(SinusoidalLayout::interleaved, SinusoidalFrequencies::vaswani, 500.0)},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const SinusoidalEncoding<T> enc(c.dim, c.o);
    const Matrix<double> ref = load<double>(c.file);
    const Matrix<T> got = enc.table(Positions(0, ref.rows()));
    CHECK(max_abs_diff(got, ref) <= tolerance<T>());
  }
}

TEMPLATE_TEST_CASE("sinusoidal: float matches float64 within 1e-6 up to position 2^20",
                   "[sinusoidal][precision]", float, double) {
  using T = TestType;
  // double: the angle p * inv_freq at p ~ 1e6 carries the last-bit difference between two
  // libm's pow, ~1e6 * 1e-16; float: the 1e-6 contract of conventions.md section 1.
  const double tol = std::is_same<T, float>::value ? 1e-6 : 1e-9;
  const auto positions = load_ints("sin_highpos_positions");
  const Positions pos(positions);
  for (auto layout : {SinusoidalLayout::interleaved, SinusoidalLayout::split}) {
    const bool split = layout == SinusoidalLayout::split;
    INFO((split ? "split" : "interleaved"));
    const Matrix<double> ref =
        load<double>(split ? "sin_highpos_split_D64" : "sin_highpos_interleaved_D64");
    SinusoidalEncoding<T> enc(64, opts(layout, SinusoidalFrequencies::vaswani));
    CHECK(max_abs_diff(enc.table(pos), ref) <= tol);
    // The same rows through add_to_input, cached and uncached.
    for (Index limit : {Index(0), Index(1) << 30}) {
      enc.set_cache_limit(limit);
      Matrix<T> x = Matrix<T>::Zero(pos.size(), 64);
      enc.add_to_input(x, pos);
      CHECK(max_abs_diff(x, ref) <= tol);
    }
  }
}

TEMPLATE_TEST_CASE("sinusoidal: add_to_input adds scale times PE", "[sinusoidal]", float, double) {
  using T = TestType;
  const Matrix<double> ref = load<double>("sin_add_out");
  Matrix<T> x = load<T>("sin_add_x");
  const SinusoidalEncoding<T> enc(
      16, opts(SinusoidalLayout::interleaved, SinusoidalFrequencies::vaswani, 10000.0, 0.5));
  enc.add_to_input(x, Positions(3, 8));
  CHECK(max_abs_diff(x, ref) <= tolerance<T>(4.0));

  // Explicit positions {3..10} reversed give the reversed rows.
  Matrix<T> xr = load<T>("sin_add_x").colwise().reverse();
  enc.add_to_input(xr, Positions(std::vector<std::int64_t>{10, 9, 8, 7, 6, 5, 4, 3}));
  CHECK(max_abs_diff(xr.colwise().reverse(), ref) <= tolerance<T>(4.0));

  // A Map over the caller's own buffer is written in place.
  std::vector<T> buffer(8 * 16);
  Eigen::Map<Matrix<T>> view(buffer.data(), 8, 16);
  view = load<T>("sin_add_x");
  enc.add_to_input(view, Positions(3, 8));
  CHECK(max_abs_diff(view, ref) <= tolerance<T>(4.0));
}

TEMPLATE_TEST_CASE("sinusoidal: add_to_input on a contiguous run across 2^20",
                   "[sinusoidal][precision]", float, double) {
  // Seed rows every 16 positions rotated to the positions between them: the run crosses
  // seeds at 2^20 and beyond, and D = 200 is not a multiple of the column tile.
  using T = TestType;
  const double tol = std::is_same<T, float>::value ? 2e-6 : 1e-9;
  for (auto layout : {SinusoidalLayout::interleaved, SinusoidalLayout::split}) {
    const bool split = layout == SinusoidalLayout::split;
    INFO((split ? "split" : "interleaved"));
    const Matrix<double> ref =
        load<double>(split ? "sin_run_split_D200" : "sin_run_interleaved_D200");
    SinusoidalEncoding<T> enc(200, opts(layout, SinusoidalFrequencies::vaswani, 10000.0, 1.5));
    for (Index limit : {Index(1) << 30, Index(0)}) {
      enc.set_cache_limit(limit);
      Matrix<T> x = load<T>("sin_run_x");
      enc.add_to_input(x, Positions(1048570, 40));
      CHECK(max_abs_diff(x, ref) <= tol);
      // Every row on its own (a decode step) and the rows as an explicit list.
      Matrix<T> y = load<T>("sin_run_x");
      for (Index i = 0; i < 40; ++i)
        enc.add_to_input(y.row(i), Positions(1048570 + i, 1));
      CHECK(max_abs_diff(y, ref) <= tol);
      std::vector<std::int64_t> list;
      for (Index i = 0; i < 40; ++i)
        list.push_back(1048570 + i);
      Matrix<T> z = load<T>("sin_run_x");
      enc.add_to_input(z, Positions(list));
      CHECK(max_abs_diff(z, ref) <= tol);
    }
  }
}

TEMPLATE_TEST_CASE("sinusoidal: add_to_input equals x + scale * table on large inputs",
                   "[sinusoidal]", float, double) {
  // Large enough to be split over threads; offsets on and off a seed boundary; positions in
  // any order. table() computes each row directly from sin and cos in double.
  using T = TestType;
  const double tol = std::is_same<T, float>::value ? 1e-6 : 1e-12;
  for (auto layout : {SinusoidalLayout::interleaved, SinusoidalLayout::split}) {
    const SinusoidalEncoding<T> enc(
        384, opts(layout, SinusoidalFrequencies::log_timescale, 10000.0, -0.75));
    for (std::int64_t offset : {0, 5, 16, 777777}) {
      INFO("offset " << offset);
      const Positions pos(offset, 1200);
      const Matrix<T> x0 = random_matrix<T>(1200, 384, 7);
      Matrix<T> x = x0;
      enc.add_to_input(x, pos);
      const Matrix<T> expected = x0 + T(-0.75) * enc.table(pos);
      CHECK(max_abs_diff(x, expected.template cast<double>()) <= tol);
    }
    std::vector<std::int64_t> list;
    for (std::int64_t i = 0; i < 1200; ++i)
      list.push_back((i * 7919) % 5003);
    const Positions pos(list);
    const Matrix<T> x0 = random_matrix<T>(1200, 384, 8);
    Matrix<T> x = x0;
    enc.add_to_input(x, pos);
    const Matrix<T> expected = x0 + T(-0.75) * enc.table(pos);
    CHECK(max_abs_diff(x, expected.template cast<double>()) <= tol);
  }
}

TEST_CASE("sinusoidal: PE(p+k) is a fixed rotation of PE(p)", "[sinusoidal][property]") {
  // For each frequency, (sin, cos)((p+k) w) = R(k w) (sin, cos)(p w): the map from PE(p) to
  // PE(p+k) does not depend on p (Vaswani et al. 2017, section 3.5).
  const Index d = 32;
  const SinusoidalEncoding<double> enc(d);
  const auto& f = enc.inv_freq();
  for (std::int64_t k : {1, 7, 100}) {
    for (std::int64_t p : {0, 3, 50, 1000, 123456}) {
      const Matrix<double> a = enc.table(Positions(p, 1)), b = enc.table(Positions(p + k, 1));
      for (Index i = 0; i < d / 2; ++i) {
        const double c = std::cos(k * f[i]), s = std::sin(k * f[i]);
        const double sp = a(0, 2 * i), cp = a(0, 2 * i + 1);
        CHECK(std::abs(b(0, 2 * i) - (sp * c + cp * s)) < 1e-9);
        CHECK(std::abs(b(0, 2 * i + 1) - (cp * c - sp * s)) < 1e-9);
      }
    }
  }
}

TEST_CASE("sinusoidal: the cache grows and stays consistent", "[sinusoidal]") {
  SinusoidalEncoding<float> cached(16), uncached(16);
  uncached.set_cache_limit(0);
  for (std::int64_t offset : {0, 5, 100, 3000, 60}) {
    Matrix<float> a = Matrix<float>::Zero(9, 16), b = a;
    cached.add_to_input(a, Positions(offset, 9));
    uncached.add_to_input(b, Positions(offset, 9));
    // Rotated seeds (cached) against rows from sin and cos (uncached): a few float ulp.
    CHECK(max_abs_diff(a, b) <= 3e-7);
  }
}

TEST_CASE("sinusoidal: bad input throws posenc::error naming the parameter",
          "[sinusoidal][errors]") {
  require_error([] { SinusoidalEncoding<float>(15); }, {"dim", "15"});
  require_error([] { SinusoidalEncoding<float>(0); }, {"dim", "0"});
  require_error(
      [] {
        SinusoidalEncoding<float>(
            2, opts(SinusoidalLayout::split, SinusoidalFrequencies::log_timescale));
      },
      {"dim", "2", "log_timescale"});
  require_error(
      [] {
        SinusoidalEncoding<float>(
            8, opts(SinusoidalLayout::split, SinusoidalFrequencies::vaswani, -1.0));
      },
      {"base", "-1"});
  require_error(
      [] {
        SinusoidalEncoding<float>(
            8, opts(SinusoidalLayout::split, SinusoidalFrequencies::vaswani, INFINITY));
      },
      {"base", "inf"});
  require_error(
      [] {
        SinusoidalEncoding<float>(
            8, opts(SinusoidalLayout::split, SinusoidalFrequencies::vaswani, 10000.0, NAN));
      },
      {"scale", "nan"});
  const SinusoidalEncoding<float> enc(8);
  Matrix<float> x(3, 6);
  require_error([&] { enc.add_to_input(x, Positions(0, 3)); }, {"input", "[3, 6]", "[3, 8]"});
  Matrix<float> y(3, 8);
  require_error([&] { enc.add_to_input(y, Positions(0, 4)); }, {"input", "[3, 8]", "[4, 8]"});
  require_error([&] { enc.check(AttentionShape{10, 2, 2, 5}); }, {"dim = 8", "D = 10"});
  require_error([] { Positions(-1, 3); }, {"offset", "-1"});
  require_error([] { Positions(std::vector<std::int64_t>{0, -4}); }, {"position[1]", "-4"});
}
