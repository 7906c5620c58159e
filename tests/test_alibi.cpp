// ALiBi (conventions.md section 4) against the float64 reference.
#include "test_support.hpp"

using namespace posenc_test;
using posenc::alibi_slopes;
using posenc::AlibiEncoding;
using posenc::AttentionShape;
using posenc::Positions;

TEST_CASE("alibi: slopes match the reference for any number of heads", "[alibi]") {
  struct Case {
    Index heads;
    double b;
    const char* file;
  };
  const Case cases[] = {
      {1, 8, "alibi_slopes_H1_b8"},   {2, 8, "alibi_slopes_H2_b8"},
      {3, 8, "alibi_slopes_H3_b8"},   {4, 8, "alibi_slopes_H4_b8"},
      {5, 8, "alibi_slopes_H5_b8"},   {6, 8, "alibi_slopes_H6_b8"},
      {7, 8, "alibi_slopes_H7_b8"},   {8, 8, "alibi_slopes_H8_b8"},
      {12, 8, "alibi_slopes_H12_b8"}, {16, 8, "alibi_slopes_H16_b8"},
      {24, 8, "alibi_slopes_H24_b8"}, {32, 8, "alibi_slopes_H32_b8"},
      {40, 8, "alibi_slopes_H40_b8"}, {8, 16, "alibi_slopes_H8_b16"},
      {6, 4, "alibi_slopes_H6_b4"},   {12, 4.5, "alibi_slopes_H12_b4.5"},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    const auto ref = load_vector(c.file);
    const auto got = alibi_slopes(c.heads, c.b);
    REQUIRE(got.size() == ref.size());
    for (std::size_t h = 0; h < ref.size(); ++h)
      CHECK(std::abs(got[h] - ref[h]) <= 1e-15 * ref[h]);
  }
}

TEST_CASE("alibi: 8 heads are 1/2 ... 1/256 and the non-power-of-two rule holds",
          "[alibi][property]") {
  const auto m8 = alibi_slopes(8);
  for (int h = 0; h < 8; ++h)
    CHECK(m8[static_cast<std::size_t>(h)] == std::ldexp(1.0, -(h + 1)));
  // 12 heads: the 8 slopes of 8 heads, then entries 0, 2, 4, 6 of the 16-head slopes,
  // which are 2^(-0.5), 2^(-1.5), 2^(-2.5), 2^(-3.5).
  const auto m12 = alibi_slopes(12), m16 = alibi_slopes(16);
  for (std::size_t h = 0; h < 8; ++h)
    CHECK(m12[h] == m8[h]);
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(m12[8 + k] == m16[2 * k]);
    CHECK(std::abs(m12[8 + k] - std::exp2(-0.5 - static_cast<double>(k))) < 1e-15);
  }
  // Slopes are distinct and in (0, 1) for every head count up to 64.
  for (Index heads = 1; heads <= 64; ++heads) {
    auto m = alibi_slopes(heads);
    CHECK(static_cast<Index>(m.size()) == heads);
    std::sort(m.begin(), m.end());
    CHECK(std::adjacent_find(m.begin(), m.end()) == m.end());
    CHECK(m.front() > 0.0);
    CHECK(m.back() < 1.0);
  }
}

TEMPLATE_TEST_CASE("alibi: bias tensors, bidirectional and causal", "[alibi]", float, double) {
  using T = TestType;
  const AlibiEncoding<T> enc(3);
  const Positions pos(2, 5);
  for (bool causal : {false, true}) {
    INFO((causal ? "causal" : "bidirectional"));
    const Matrix<double> ref =
        load<double>(causal ? "alibi_bias_causal_H3_N5_offset2" : "alibi_bias_H3_N5_offset2");
    for (Index h = 0; h < 3; ++h) {
      const Matrix<T> b = enc.bias(h, pos, pos, causal);
      CHECK(max_abs_diff(b, head_slice(ref, h, 5, 5)) <= tolerance<T>(4.0));
    }
  }
  // The score hook adds the same values to a tile, from any tile corner.
  const auto sb = enc.score_bias(pos, pos, 3, 4, T(1));
  const Matrix<T> q = Matrix<T>::Zero(5, 4);
  for (Index h = 0; h < 3; ++h) {
    Matrix<T> tile = Matrix<T>::Zero(2, 3);
    sb.add(h, 3, 1, q.topRows(2), q.topRows(3), tile);
    CHECK(max_abs_diff(tile, enc.bias(h, pos, pos).block(3, 1, 2, 3)) == 0.0);
  }
}

TEST_CASE("alibi: bad input throws posenc::error naming the parameter", "[alibi][errors]") {
  require_error([] { alibi_slopes(0); }, {"heads", "0"});
  require_error([] { alibi_slopes(4, 0.0); }, {"max_bias", "0"});
  require_error([] { alibi_slopes(4, NAN); }, {"max_bias", "nan"});
  require_error([] { AlibiEncoding<float>(-3); }, {"heads", "-3"});
  const AlibiEncoding<float> enc(4);
  require_error([&] { enc.check(AttentionShape{64, 8, 8, 8}); }, {"4 heads", "H = 8"});
  require_error([&] { enc.bias(4, Positions(0, 2), Positions(0, 2)); }, {"head h = 4"});
}
